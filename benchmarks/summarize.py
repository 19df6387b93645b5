"""The benchmark tables of docs/benchmarks.md, made from benchmarks/results/*.json.

Made from the results, so the tables and the results always agree; tests/test_benchmarks.py
checks that the page holds what this script makes.

.venv/bin/python benchmarks/summarize.py            # print the tables
.venv/bin/python benchmarks/summarize.py --write    # replace them in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
#: The page whose block between BEGIN and END is replaced by ``--write``.
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN, END = (
    "<!-- benchmarks:begin (made by benchmarks/summarize.py) -->",
    "<!-- benchmarks:end -->",
)


def _load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def rows() -> list[tuple[str, str, str]]:
    out = []
    integ = _load("integration")
    if integ:
        s, b = integ["scvi"], integ["baseline_pca"]
        out += [
            (
                "integration",
                f"cross-species mixing (scVI / PCA baseline), {integ['n_cells']:,} cells",
                f"{s['cross_species_mixing']:.2f} / {b['cross_species_mixing']:.2f}",
            ),
            (
                "integration",
                "kNN state purity (scVI / baseline)",
                f"{s['knn_state_purity']:.3f} / {b['knn_state_purity']:.3f}",
            ),
            (
                "integration",
                "scVI training on CPU (s; cells/s per epoch)",
                f"{s['train_seconds']:.0f} s; {s['cells_per_second_per_epoch']:,.0f}",
            ),
        ]
    traj = _load("trajectory")
    if traj:
        sim = traj["simulated_strong_cycling"]
        out += [
            (
                "trajectory",
                "Spearman pseudotime vs true time, strong cycling (mouse / human)",
                f"{sim['mouse']['spearman_vs_true_time']:.3f} / "
                f"{sim['human']['spearman_vs_true_time']:.3f}",
            ),
            ("trajectory", "MkP F1", f"{sim['mkp_f1']:.2f}"),
            (
                "trajectory",
                "Paul 2015: Spearman vs Slingshot (MEP+Mk)",
                f"{traj['paul15']['spearman_vs_slingshot_lineage1']:.2f}",
            ),
            (
                "trajectory",
                "20k cells: trajectory stage time",
                f"{sim['trajectory_seconds']:.0f} s ({sim['fate_method']})",
            ),
            (
                "trajectory",
                f"{traj['scale']['n_cells']:,} cells: trajectory stage time, peak memory",
                f"{traj['scale']['trajectory_seconds']:.0f} s, "
                f"{traj['scale']['peak_rss_gb']:.1f} GB"
                if "trajectory_seconds" in traj["scale"]
                else "not measured yet (see trajectory.json)",
            ),
        ]
    score = _load("score")
    if score:
        eff, null = score["effect"], score["null"]
        out.append(
            (
                "score",
                "phase agreement with true phase (mouse / human)",
                f"{eff['mouse']['phase_agreement']:.3f} / {eff['human']['phase_agreement']:.3f}",
            )
        )
        for sp in ("mouse", "human"):
            e = eff[sp]["mkp_contrast"]["mk_score_e2f_targets"]
            n = null[sp]["mkp_contrast"]["mk_score_e2f_targets"]
            out.append(
                (
                    "score",
                    f"MkP E2F score, {e['contrast']} ({sp}): diff [CI], p; null p",
                    f"{e['diff']:.2f} [{e['ci_low']:.2f}, {e['ci_high']:.2f}], "
                    f"p={e['p_value']:.1e}; null p={n['p_value']:.2f}",
                )
            )
    pool = _load("pool")
    if pool:
        null = pool["null"]["4v4"]
        out.append(
            (
                "pool",
                f"false-positive rate at p<0.05, {null['n_tests']} null tests (4 vs 4)",
                f"{null['false_positive_rate_p05']:.3f}",
            )
        )
        for e in pool["effects_6000_cells_4v4_seed0"]:
            out.append(
                (
                    "pool",
                    f"mouse {e['contrast']}: effect_log2 [CI], p",
                    f"{e['effect_log2']:.2f} [{e['ci_low']:.2f}, {e['ci_high']:.2f}], "
                    f"p={e['p_value']:.3f}",
                )
            )
    out += qc_rows(_load("qc"))
    wf = _load("workflow")
    if wf:
        full, rerun, multi = (
            wf["full_run"],
            wf["unchanged_rerun"],
            wf["multirun_submitit_local_two_seeds"],
        )
        out += [
            (
                "workflow",
                f"full workflow, {wf['n_cells']:,} cells, 2 cores (s; peak RSS)",
                f"{full['seconds']:.0f} s; {full['peak_rss_gb_max_child']:.2f} GB "
                f"(rc {full['returncode']})",
            ),
            (
                "workflow",
                "unchanged re-run",
                f"{rerun['seconds']:.1f} s (rc {rerun['returncode']})",
            ),
            (
                "workflow",
                "submitit_local multirun, 2 seeds, debug=tiny",
                f"{multi['seconds']:.0f} s (rc {multi['returncode']})",
            ),
        ]
    big = _load("workflow_200k")
    if big:
        full = big["full_run"]
        out.append(
            (
                "workflow",
                f"full workflow, {big['n_cells']:,} cells, 2 cores (s; peak RSS; target 900 s, 4 GB)",
                f"{full['seconds']:.0f} s; {full['peak_rss_gb_max_child']:.2f} GB "
                f"(rc {full['returncode']})",
            )
        )
    return out


def qc_rows(qc: dict) -> list[tuple[str, str, str]]:
    """mk.pp.qc against planted truth: the worst case over species and seeds."""
    w = qc.get("worst")
    if not w:
        return []
    n = len(qc["runs"])
    return [
        (
            "qc",
            f"heterotypic doublet recall / false flags on singlets (worst of {n} runs)",
            f"{w['doublet_recall_min']:.2f} / {w['doublet_false_flag_rate_singlets_max']:.3f}",
        ),
        ("qc", "platelet-coated recall (worst)", f"{w['platelet_recall_min']:.2f}"),
        ("qc", "true MkP + Mk flagged (worst)", f"{w['mk_lineage_flagged_any_max']:.3f}"),
        (
            "qc",
            "coated sample's MkP fraction, relative error: no QC (best) / with QC (worst)",
            f"{w['rel_error_no_qc_min']:.3f} / {w['rel_error_with_qc_max']:.3f}",
        ),
        (
            "qc",
            "real data (Paul 2015, Zhu 2021): largest share of a state flagged low_quality",
            f"{w['real_state_low_quality_max']:.3f}",
        ),
        (
            "qc",
            "one mk.pp.qc call, ~6,000 cells, 2 shared cores (s, slowest)",
            f"{w['qc_seconds_max']:.0f}",
        ),
    ]


def _gb(run: dict | None) -> str:
    return f"{run['peak_rss_gb']:.1f}" if run else "-"


def _secs(run: dict | None) -> str:
    if not run:
        return "not run"
    if run["status"] == "out_of_memory":
        return (
            f"out of memory ({run.get('failed_after_stage') or 'start'} done; "
            f"killed at {run['killed_at_rss_gb']:.0f} GB)"
        )
    if run["status"] != "ok":
        return f"failed after {run.get('failed_after_stage')}"
    return f"{run['seconds']:.0f}"


def reference_table() -> list[str]:
    """mkcell's workflow vs the hand-written reference, per size."""
    res = _load("vs_reference")
    if not res:
        return []
    out = [
        "| cells | scVI epochs | mkcell workflow (s) | mkcell peak RSS (GB) | reference (s) "
        "| reference peak RSS (GB) | mkcell / reference time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        m, ref = r.get("mkcell"), r.get("reference")
        ratio = r.get("time_ratio_mkcell_over_reference")
        dense_gb = 8 * r["n_cells"] ** 2 / 1e9
        ref_secs = (
            _secs(ref)
            if ref
            else "not run"
            + (
                f" (its dense n x n matrix alone: {dense_gb:.0f} GB)"
                if dense_gb > res["memory_cap_gb"]
                else ""
            )
        )
        out.append(
            f"| {r['n_cells']:,} | {r['scvi_epochs']} | {_secs(m)} | {_gb(m)} | {ref_secs} | "
            f"{_gb(ref)} | " + (f"{ratio:.2f}" if ratio is not None else "-") + " |"
        )
    exp = res.get("mkcell_scaling_exponent_20k_up")
    sizes = res.get("scaling_sizes", [])
    out.append("")
    if exp is not None:
        out.append(
            f"mkcell time grows as cells^{exp:.2f} over "
            f"{', '.join(f'{n // 1000}k' for n in sizes)} cells "
            f"({res['cores']} cores; runs killed above {res['memory_cap_gb']:.0f} GB "
            f"of the machine's {res['machine_memory_gb']:.0f} GB)."
        )
    return out


def gpu_table() -> list[str]:
    """scVI training speed on a GPU, per batch size."""
    res = _load("gpu")
    if not res:
        return []
    sw = res["sweep"]
    out = [
        f"scVI on {res['machine']['cuda']} "
        f"({sw['n_cells']:,} cells x {sw['n_features']:,} features, `benchmarks/bench_gpu.py`):",
        "",
        "| trainer | batch size | cells/s per epoch | GPU peak (GB) |",
        "|---|---|---|---|",
    ]
    for r in sw["mkcell"]:
        out.append(
            f"| mkcell (sparse minibatches) | {r['batch_size']} | "
            f"{r['cells_per_second_steady']:,} | {r['gpu_peak_gb']:.2f} |"
        )
    ref = sw["plain_scvi_tools"]
    out.append(
        f"| plain scvi-tools (defaults) | {ref['batch_size']} | "
        f"{ref['cells_per_second_steady']:,} | {ref['gpu_peak_gb']:.2f} |"
    )
    big = res.get("large")
    if big:
        out += [
            "",
            f"{big['n_cells']:,} cells ({big['tiled']}): "
            f"integration stage {big['integrate_seconds']:.0f} s, "
            f"{big['epochs']} epochs in {big['train_seconds']:.0f} s "
            f"at batch size {big['batch_size']} "
            f"({big['cells_per_second_steady']:,} cells/s per epoch), "
            f"GPU peak {big['gpu_peak_gb']:.2f} GB, "
            f"host peak RSS {big['peak_rss_gb']:.0f} GB.",
        ]
    return out


#: Variant names of bench_cycle_axis.py, as the tables call them.
CYCLE_VARIANTS = {
    "none": "no correction (mkcell before issue 13)",
    "covariates": "S/G2M scores as scVI continuous covariates",
    "exclude": "cycle-linked features left out (data-driven)",
    "both": "covariates + cycle-linked features left out",
    "regress": "cycle regressed out of the lineage embedding",
    "exclude+regress": "features left out + regression + stage boundaries",
    "default": "regression + stage boundaries on pseudotime (default)",
}


#: The cycle-axis grid as measured in issue 13, with the marker panels and species equalisation
#: before issue 14 ...
BEFORE_ISSUE_14 = ("cycle_axis_compare", "cycle_axis_exclude", "cycle_axis_grid")
#: ... and the settings re-run after them (none / regress / default).
AFTER_ISSUE_14 = ("cycle_axis_issue14",)


def _cycle_grid(names: tuple[str, ...]) -> dict[str, dict]:
    """Setting -> variant -> result from ``names``, later files overriding earlier ones."""
    merged: dict[str, dict] = {}
    for name in names:
        data = _load(name)
        superseded = set(data.get("superseded_variants", []))
        for setting, variants in data.get("grid", {}).items():
            for v, res in variants.items():
                if v not in superseded:
                    merged.setdefault(setting, {})[v] = res
    return merged


def _cycle_table(grid: dict[str, dict], settings: list[str], title: str) -> list[str]:
    """One markdown table: each variant run on every one of ``settings``, worst case over them."""
    out = [
        "",
        f"Cell-cycle confounding, {title}: {'; '.join(k.split(':', 1)[1] for k in settings)} "
        "(6,000 cells, `benchmarks/bench_cycle_axis.py`). "
        "Worst case over these settings and both species: Spearman of `mk_pseudotime` "
        "with true time on true MkP/Mk cells, overall, within each true phase and each condition.",
        "",
        "| method | overall | within phase | within condition | coverage | MkP F1 "
        "| mixing | purity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v, label in CYCLE_VARIANTS.items():
        if not all(v in grid[k] for k in settings):
            continue
        runs = [grid[k][v] for k in settings]
        w = [r["worst"] for r in runs]

        def low(key: str, w: list = w) -> float:
            return min(min(x[f"mouse_{key}"], x[f"human_{key}"]) for x in w)

        out.append(
            f"| {label} | {low('overall'):.2f} | {low('phase_min'):.2f} "
            f"| {low('condition_min'):.2f} | {low('coverage'):.3f} "
            f"| {min(x['mkp_f1'] for x in w):.2f} | "
            f"{min(r['cross_species_mixing'] for r in runs):.2f} | "
            f"{min(r['knn_state_purity'] for r in runs):.3f} |"
        )
    return out


def cycle_tables() -> list[str]:
    """Before issue 14: every method where all ran, the default on the tuning grid, held out.
    After: the settings re-run."""
    before, after = _cycle_grid(BEFORE_ISSUE_14), _cycle_grid(AFTER_ISSUE_14)
    out = []

    def split(grid: dict) -> tuple[list[str], list[str]]:
        return sorted(k for k in grid if k.startswith("tune")), sorted(
            k for k in grid if k.startswith("held_out")
        )

    tune, held = split(before)
    every = [k for k in tune if set(CYCLE_VARIANTS) <= set(before[k])]
    tag = "marker panels and species equalisation before issue 14"
    if every:
        out += _cycle_table(before, every, f"every method ({tag})")
    if tune:
        out += _cycle_table(before, tune, f"whole tuning grid ({tag})")
    if held:
        out += _cycle_table(before, held, f"held-out settings, never used for any choice ({tag})")
    tune, held = split(after)
    tag = "after issue 14: reference-checked panels, equalize=states"
    if tune:
        out += _cycle_table(after, tune, f"tuning settings re-run ({tag})")
    if held:
        out += _cycle_table(after, held, f"held-out settings ({tag})")
    return out[1:]  # block() puts the blank line before it


def cd34_table() -> list[str]:
    """CD34+ sorts, a targeted panel and species of different composition (bench_cd34), worst
    over seeds."""
    runs = _load("cd34").get("runs", {})
    if not runs:
        return []
    groups: dict[str, list[dict]] = {}
    for key, r in runs.items():
        groups.setdefault(key.rsplit(":seed=", 1)[0], []).append(r)
    seeds = sorted({k.rsplit(":seed=", 1)[1] for k in runs})
    out = [
        "CD34+ sorts and targeted panels (`benchmarks/bench_cd34.py`, "
        f"{_load('cd34')['n_cells_simulated']:,} cells simulated before the sort, "
        f"seeds {', '.join(seeds)}; worst over seeds). "
        "`cd34_panel`: human patients, CD34+-sorted, 400-gene panel without PF4/PPBP/GP9/GATA1; "
        "`same`: both species whole marrow; `mixed`: mouse whole marrow beside human CD34+. "
        "Human MDS vs healthy: called effect [CI] against the realised true effect (log2).",
        "",
        "| scenario | equalize | state purity | MkP F1 mouse / human "
        "| per-sample fraction r (human) | human denominator "
        "| human MDS vs healthy: called [CI] / true |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, rs in groups.items():
        scenario, eq = key.split(":equalize=")
        f1m = min((r["mouse"]["mkp_f1"] for r in rs if "mouse" in r), default=None)
        con = [r["human"]["MDS vs healthy"] for r in rs]
        eff = "; ".join(
            f"{c['effect_log2']:.2f} [{c['ci'][0]:.2f}, {c['ci'][1]:.2f}] / "
            f"{c['true_effect_log2']:.2f}"
            for c in con
        )
        out.append(
            f"| {scenario} | {eq} | {min(r['knn_state_purity'] for r in rs):.3f} "
            f"| {'-' if f1m is None else f'{f1m:.2f}'} / "
            f"{min(r['human']['mkp_f1'] for r in rs):.2f} "
            f"| {min(r['human']['fraction_pearson_r'] for r in rs):.2f} | "
            f"{', '.join(sorted({r['human']['denominator'] for r in rs}))} | {eff} |"
        )
    return out


def _exponent(t0: float, t1: float, n0: int, n1: int) -> str:
    import math

    return f"{math.log(t1 / t0) / math.log(n1 / n0):.2f}"


#: The stages after integration (issue 18: together at most 30 min at 1M cells).
POST_INTEGRATION = ("annotate", "trajectory", "score", "pool", "report")


def memory_table() -> list[str]:
    """Peak host memory and time of each workflow stage at each size (bench_memory)."""
    res = _load("memory")
    by_size = res.get("stages", {})
    if not by_size:
        return []
    sizes = sorted(by_size, key=int)
    expo = res.get("time_exponent", {})
    par = res.get("params", {})
    out = [
        "Each workflow stage in its own process (`benchmarks/bench_memory.py`, "
        f"{res.get('machine', {}).get('cpu_count')} cores, integration {par.get('epochs')} "
        f"epoch(s); {par.get('base', 0):,} simulated cells tiled to size, each tile thinned "
        f"anew to keep {par.get('keep', 1)} of the counts): seconds / peak host GB of the "
        f"stage's process; exponent of time between {int(sizes[0]):,} and "
        f"{int(sizes[-1]):,} cells.",
        "",
        "| stage | " + " | ".join(f"{int(n):,} cells" for n in sizes) + " | time exponent |",
        "|---|" + "---|" * len(sizes) + "---|",
    ]
    for stage in by_size[sizes[0]]:
        cells = [
            f"{by_size[n][stage]['seconds']:.0f} s / {by_size[n][stage]['peak_gb']:.1f} GB"
            for n in sizes
            if stage in by_size[n]
        ]
        exp = expo.get(stage)
        out.append(f"| {stage} | " + " | ".join(cells) + f" | {'-' if exp is None else exp} |")
    post = [
        sum(by_size[n][s]["seconds"] for s in POST_INTEGRATION if s in by_size[n]) for n in sizes
    ]
    peak = [max(by_size[n][s]["peak_gb"] for s in by_size[n]) for n in sizes]
    out.append(
        "| **annotate to report, summed** | "
        + " | ".join(f"{t / 60:.1f} min" for t in post)
        + " | "
        + (_exponent(post[0], post[-1], int(sizes[0]), int(sizes[-1])) if len(sizes) > 1 else "-")
        + " |"
    )
    out.append("| **largest stage peak** | " + " | ".join(f"{g:.1f} GB" for g in peak) + " | - |")
    return out


def _f(x: float | None, spec: str = ".3f", signed: bool = False) -> str:
    """A number for a table cell ('-' when missing or NaN)."""
    if x is None or x != x:
        return "-"
    return f"{x:{'+' if signed else ''}{spec}}"


#: Row labels of the batch-size regimes.
REGIME_NAMES = {
    "equal_epochs": "equal epochs, lr 1e-3",
    "equal_time": "equal time, lr 1e-3",
    "equal_epochs_sqrt_lr": "equal epochs, lr 1e-3·√(bs/128) (mkcell's default)",
}


def batch_size_table(res: dict | None = None) -> list[str]:
    """scVI batch size vs quality at equal epochs and equal time (bench_batch_size)."""
    res = _load("batch_size") if res is None else res
    regimes = res.get("regimes", {})
    if not any(regimes.values()):
        return []
    par = res.get("params", {})
    sim = ", ".join(f"{k}={v}" for k, v in par.get("simulation", {}).items())
    out = [
        f"scVI batch size vs quality (`benchmarks/bench_batch_size.py`, {par.get('cells', 0):,} "
        f"simulated cells, {sim}, seed {par.get('seed')}, "
        f"{par.get('accelerator_resolved', par.get('accelerator'))}, "
        f"{res.get('machine', {}).get('cpu_count')} cores). Equal epochs: "
        f"{par.get('epochs')} each; equal time: the {par.get('budget_batch_size')} run's "
        f"{_f(par.get('budget_seconds'), '.0f')} s of training. "
        "Δ = value - value at batch size 128.",
        "",
        "| regime | batch size | epochs | train (s) | mixing | purity | MkP F1 "
        "| Spearman (min) | Δ mixing | Δ purity | Δ MkP F1 | Δ Spearman |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for regime, runs in regimes.items():
        delta = res.get("delta_vs_128", {}).get(regime, {})
        for bs, r in sorted(runs.items(), key=lambda kv: int(kv[0])):
            d = delta.get(bs, {}) if bs != "128" else {}  # the base row: no difference
            reused = " (the equal-epochs run)" if r.get("reused_equal_epochs_run") else ""
            out.append(
                f"| {REGIME_NAMES.get(regime, regime)} | {bs} | {r['epochs_run']}{reused} "
                f"| {r['train_seconds']:.0f} | {_f(r['mixing'])} | {_f(r['purity'])} "
                f"| {_f(r['mkp_f1'])} | {_f(r['spearman_min'])} | "
                + " | ".join(
                    _f(d.get(m), ".3f", signed=True)
                    for m in ("mixing", "purity", "mkp_f1", "spearman_min")
                )
                + " |"
            )
    noise = res.get("seed_noise")
    if noise:
        r, d = noise["run"], noise["abs_difference"]
        out.append(
            f"| another training seed | 128 | {r['epochs_run']} | {r['train_seconds']:.0f} "
            f"| {_f(r['mixing'])} | {_f(r['purity'])} | {_f(r['mkp_f1'])} "
            f"| {_f(r['spearman_min'])} | "
            + " | ".join(
                f"±{_f(d.get(m), '.3f')}" for m in ("mixing", "purity", "mkp_f1", "spearman_min")
            )
            + " |"
        )
    return out


def block() -> str:
    """Everything between the markers of docs/benchmarks.md."""
    lines = ["| stage | measure | result |", "|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows()]
    for extra in (
        cycle_tables(),
        cd34_table(),
        reference_table(),
        gpu_table(),
        memory_table(),
        batch_size_table(),
    ):
        if extra:
            lines += ["", *extra]
    return "\n".join(lines)


def write_tables(path: Path = DOC) -> None:
    """Replace the block between the markers in ``path`` (docs/benchmarks.md); keep the rest."""
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{block()}\n{END}{tail}")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--write", action="store_true", help="replace the tables in docs/benchmarks.md")
    if p.parse_args().write:
        write_tables()
        print(f"updated {DOC}")
    else:
        print(block())


if __name__ == "__main__":
    main()
