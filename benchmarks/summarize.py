"""Print the README's benchmark table from benchmarks/results/*.json (so the two always agree)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def rows() -> list[tuple[str, str, str]]:
    out = []
    integ = _load("integration")
    if integ:
        s, b = integ["scvi"], integ["baseline_pca"]
        out += [
            ("integration", f"cross-species mixing (scVI / PCA baseline), {integ['n_cells']:,} cells", f"{s['cross_species_mixing']:.2f} / {b['cross_species_mixing']:.2f}"),
            ("integration", "kNN state purity (scVI / baseline)", f"{s['knn_state_purity']:.3f} / {b['knn_state_purity']:.3f}"),
            ("integration", "scVI training on CPU (s; cells/s per epoch)", f"{s['train_seconds']:.0f} s; {s['cells_per_second_per_epoch']:,.0f}"),
        ]
    traj = _load("trajectory")
    if traj:
        sim = traj["simulated_strong_cycling"]
        out += [
            ("trajectory", "Spearman pseudotime vs true time, strong cycling (mouse / human)", f"{sim['mouse']['spearman_vs_true_time']:.3f} / {sim['human']['spearman_vs_true_time']:.3f}"),
            ("trajectory", "MkP F1", f"{sim['mkp_f1']:.2f}"),
            ("trajectory", "Paul 2015: Spearman vs Slingshot (MEP+Mk)", f"{traj['paul15']['spearman_vs_slingshot_lineage1']:.2f}"),
            ("trajectory", "20k cells: trajectory stage time", f"{sim['trajectory_seconds']:.0f} s ({sim['fate_method']})"),
            ("trajectory", f"{traj['scale']['n_cells']:,} cells: trajectory stage time, peak memory",
             f"{traj['scale']['trajectory_seconds']:.0f} s, {traj['scale']['peak_rss_gb']:.1f} GB" if "trajectory_seconds" in traj["scale"] else "not measured yet (see trajectory.json)"),
        ]
    score = _load("score")
    if score:
        eff, null = score["effect"], score["null"]
        out.append(("score", "phase agreement with true phase (mouse / human)", f"{eff['mouse']['phase_agreement']:.3f} / {eff['human']['phase_agreement']:.3f}"))
        for sp in ("mouse", "human"):
            e = eff[sp]["mkp_contrast"]["mk_score_e2f_targets"]
            n = null[sp]["mkp_contrast"]["mk_score_e2f_targets"]
            out.append(("score", f"MkP E2F score, {e['contrast']} ({sp}): diff [CI], p; null p", f"{e['diff']:.2f} [{e['ci_low']:.2f}, {e['ci_high']:.2f}], p={e['p_value']:.1e}; null p={n['p_value']:.2f}"))
    pool = _load("pool")
    if pool:
        null = pool["null"]["4v4"]
        out.append(("pool", f"false-positive rate at p<0.05, {null['n_tests']} null tests (4 vs 4)", f"{null['false_positive_rate_p05']:.3f}"))
        for e in pool["effects_6000_cells_4v4_seed0"]:
            out.append(("pool", f"mouse {e['contrast']}: effect_log2 [CI], p", f"{e['effect_log2']:.2f} [{e['ci_low']:.2f}, {e['ci_high']:.2f}], p={e['p_value']:.3f}"))
    wf = _load("workflow")
    if wf:
        full, rerun, multi = wf["full_run"], wf["unchanged_rerun"], wf["multirun_submitit_local_two_seeds"]
        out += [
            ("workflow", f"full workflow, {wf['n_cells']:,} cells, 2 cores (s; peak RSS)", f"{full['seconds']:.0f} s; {full['peak_rss_gb_max_child']:.1f} GB (rc {full['returncode']})"),
            ("workflow", "unchanged re-run", f"{rerun['seconds']:.1f} s (rc {rerun['returncode']})"),
            ("workflow", "submitit_local multirun, 2 seeds, debug=tiny", f"{multi['seconds']:.0f} s (rc {multi['returncode']})"),
        ]
    return out


def main() -> None:
    print("| stage | measure | result |")
    print("|---|---|---|")
    for r in rows():
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
