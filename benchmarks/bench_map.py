"""Mapping new samples onto a reference (issue 15): leave-samples-out on simulate_marrow.

The reference is a workflow run on all samples but ``--hold-out`` per condition; those
samples are the query, mapped with ``mkcell mode=map``. A de novo workflow run on all
samples is the yardstick (its integrate stage is the cost of retraining scVI on
reference + query instead of mapping). Also: the query with 30% of the reference's
features removed, and an unrelated cell type (the query's human cells with their genes
permuted: expression programs unlike any marrow state) mapped through the API.

    python benchmarks/bench_map.py --n-cells 8000 --cores 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_watched, save, stage_seconds, thread_env  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _cli(args: list[str], run_dir: Path, work: Path, cores: int) -> dict:
    cmd = [sys.executable, "-m", "mkcell", *args, f"hydra.run.dir={run_dir}"]
    env = thread_env(cores)
    env["PYTHONPATH"] = str(REPO)
    return run_watched(
        cmd, cwd=work, env=env, log=run_dir.parent / f"{run_dir.name}.log", cap_gb=20
    )


def _f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = float((pred & truth).sum())
    return 2 * tp / max(float(pred.sum() + truth.sum()), 1.0)


def main() -> None:  # noqa: PLR0915
    import anndata as ad
    from scipy.stats import spearmanr

    import mkcell as mk
    from mkcell import _keys as K

    ap = argparse.ArgumentParser()
    ap.add_argument("--n-cells", type=int, default=8000)
    ap.add_argument("--n-samples", type=int, default=4)
    ap.add_argument("--hold-out", type=int, default=2)
    ap.add_argument("--cycle-strength", type=float, default=1.5)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", default="map", help="results/<out>.json")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="keep the input files and finished runs of --work (re-map only)",
    )
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="bench_map_"))
    work.mkdir(parents=True, exist_ok=True)
    sim = mk.datasets.simulate_marrow(
        a.n_cells, n_samples=a.n_samples, cycle_strength=a.cycle_strength, seed=a.seed
    )
    files: dict[str, dict[str, Path]] = {"all": {}, "ref": {}, "query": {}}
    for s, x in sim.items():
        hold = []
        for c in sorted(x.obs["condition"].astype(str).unique()):
            ss = sorted(
                x.obs.loc[x.obs["condition"].astype(str) == c, "sample"].astype(str).unique()
            )
            hold += ss[-a.hold_out :]
        q = x.obs["sample"].astype(str).isin(hold).to_numpy()
        for part, sub in (("all", x), ("ref", x[~q]), ("query", x[q])):
            files[part][s] = work / f"{part}_{s}.h5ad"
            if not (a.reuse and files[part][s].exists()):
                sub.copy().write_h5ad(files[part][s])
    if a.reuse:
        shutil.rmtree(work / "run_map", ignore_errors=True)
    n_query = sum(int(ad.read_h5ad(p, backed="r").n_obs) for p in files["query"].values())
    print(
        f"{a.n_cells} cells, query {n_query} cells ({a.hold_out} samples per condition), "
        f"work {work}"
    )

    def inputs(part: str) -> list[str]:
        return ["data=files", *(f"data.inputs.{s}={p}" for s, p in files[part].items())]

    runs = {}
    for name in ("all", "ref"):
        print(f"workflow on {name} samples:")
        runs[name] = _cli(inputs(name), work / f"run_{name}", work, a.cores)
    print("mapping the query (mode=map):")
    runs["map"] = _cli(
        ["mode=map", f"reference.dir={work / 'run_ref'}", *inputs("query")],
        work / "run_map",
        work,
        a.cores,
    )
    for name, r in runs.items():
        if r["status"] != "ok":
            print(f"{name} failed: {r.get('error')}")
            sys.exit(1)
    denovo = ad.read_h5ad(work / "run_all" / "mkcell.h5ad")
    mapped = ad.read_h5ad(work / "run_map" / "mkcell.h5ad")
    d = denovo[mapped.obs_names]
    st_m = mapped.obs[K.STATE].astype(str).to_numpy()
    st_d = d.obs[K.STATE].astype(str).to_numpy()
    truth = mapped.obs["true_state"].astype(str).to_numpy() == K.MKP
    lin = np.isin(st_d, K.MK_LINEAGE)
    pt_m, pt_d = mapped.obs[K.PSEUDOTIME].to_numpy(float), d.obs[K.PSEUDOTIME].to_numpy(float)
    both = lin & np.isfinite(pt_m) & np.isfinite(pt_d)
    vs = pd.read_csv(work / "run_map" / "tables" / "pool_vs_reference.csv")
    own = vs[vs["own_condition"]]
    in_minmax = (own["mkp_fraction"] >= own["reference_min"]) & (
        own["mkp_fraction"] <= own["reference_max"]
    )
    nearest = vs.loc[vs.groupby(["species", "sample"])["logit_z"].apply(lambda z: z.abs().idxmin())]
    stages_map = stage_seconds(work / "run_map")
    stages_all = stage_seconds(work / "run_all")
    res = {
        "n_cells": a.n_cells,
        "n_query_cells": n_query,
        "n_samples_per_condition": a.n_samples,
        "hold_out_per_condition": a.hold_out,
        "cycle_strength": a.cycle_strength,
        "n_cycle_genes": 120,
        "state_agreement_with_de_novo": float((st_m == st_d).mean()),
        "mkp_f1_mapped": _f1(st_m == K.MKP, truth),
        "mkp_f1_de_novo": _f1(st_d == K.MKP, truth),
        "pseudotime_spearman_vs_de_novo": float(spearmanr(pt_m[both], pt_d[both]).statistic),
        "n_lineage_cells_compared": int(both.sum()),
        "share_query_samples_in_prediction_interval": float(own["in_range"].mean()),
        "share_query_samples_within_2sd": float((own["logit_z"].abs() <= 2).mean()),
        "share_query_samples_in_min_max": float(in_minmax.mean()),
        "share_query_samples_nearest_own_condition": float(
            (nearest["reference_condition"] == nearest["condition"]).mean()
        ),
        "share_unknown": float((st_m == K.UNKNOWN).mean()),
        "share_confident": float(mapped.uns[K.MAP]["share_confident"]),
        "map_workflow_seconds": runs["map"]["seconds"],
        "map_peak_rss_gb": runs["map"]["peak_rss_gb"],
        "map_stage_seconds": stages_map,
        "retrain_integrate_seconds_all_samples": stages_all.get("integrate"),
        "de_novo_workflow_seconds": round(
            sum(v or 0 for v in stages_all.values()), 2
        ),  # from the markers (--reuse)
        "pool_vs_reference_own_condition": own.to_dict("records"),
    }
    res["mkp_f1_gap"] = res["mkp_f1_de_novo"] - res["mkp_f1_mapped"]

    # 30% of the reference's features missing from the query, and an unrelated cell type (API)
    ref = mk.tl.load_reference(work / "run_ref")
    query = mk.pp.concat_species({s: ad.read_h5ad(p) for s, p in files["query"].items()})
    rng = np.random.default_rng(a.seed)
    drop = set(rng.choice(ref.features, int(0.3 * len(ref.features)), replace=False))
    q30 = query[:, [g not in drop for g in query.var_names]].copy()
    t0 = time.perf_counter()
    mk.tl.map_to_reference(q30, ref, seed=a.seed)
    st30 = q30.obs[K.STATE].astype(str).to_numpy()
    d30 = denovo[q30.obs_names].obs[K.STATE].astype(str).to_numpy()
    res["missing30_seconds"] = time.perf_counter() - t0
    res["missing30_n_missing_features"] = int(q30.uns[K.MAP]["n_missing_features"])
    res["missing30_state_agreement_with_de_novo"] = float((st30 == d30).mean())
    res["missing30_share_unknown"] = float((st30 == K.UNKNOWN).mean())
    un = query[query.obs[K.SPECIES].astype(str) == "human"].copy()
    perm = rng.permutation(un.n_vars)
    for layer in [None, *un.layers]:
        m = un.X if layer is None else un.layers[layer]
        m = m[:, perm]
        if layer is None:
            un.X = m
        else:
            un.layers[layer] = m
    un.obs[K.SAMPLE] = "unrelated_" + un.obs[K.SAMPLE].astype(str)
    mk.tl.map_to_reference(un, ref, seed=a.seed)
    res["unrelated_share_unknown"] = float((un.obs[K.STATE].astype(str) == K.UNKNOWN).mean())
    res["unrelated_n_cells"] = int(un.n_obs)

    for k, v in res.items():
        if not isinstance(v, list | dict):
            print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    print("map stage seconds:", json.dumps(stages_map))
    save(a.out, res)


if __name__ == "__main__":
    main()
