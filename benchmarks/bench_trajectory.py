"""Issue 4 targets: pseudotime vs truth under strong cycling, MkP F1, Paul 2015 order,
100k-cell time and memory.

usage: python benchmarks/bench_trajectory.py [n_cells] [n_scale]   (defaults 20000, 100000)
       python benchmarks/bench_trajectory.py --stage FILE.h5ad
           (trajectory stage alone; prints JSON)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import peak_rss_gb, save
from scipy.stats import spearmanr
from sklearn.metrics import f1_score

import mkcell as mk


def simulated(n_cells: int) -> dict:
    sim = mk.datasets.simulate_marrow(n_cells, n_genes=2000, cycle_strength=2.0, seed=3)
    a = mk.pp.concat_species(sim)
    mk.pp.highly_variable_genes(a)
    mk.integrate.scvi(a, seed=0)
    mk.tl.annotate(a)
    t = time.perf_counter()
    mk.tl.trajectory(a)
    out = {
        "n_cells": a.n_obs,
        "trajectory_seconds": time.perf_counter() - t,
        "fate_method": a.uns["mk_trajectory"]["fate_method"],
    }
    o = a.obs
    out["mkp_f1"] = float(f1_score(o["true_state"] == "MkP", o["mk_state"] == "MkP"))
    for species in ("mouse", "human"):
        lin = (o["species"] == species) & o["true_state"].isin(["MkP", "Mk"])
        has = lin & o["mk_pseudotime"].notna()
        out[species] = {
            "spearman_vs_true_time": float(
                spearmanr(o.loc[has, "mk_pseudotime"], o.loc[has, "true_time"])[0]
            ),
            "share_with_pseudotime": float(has.sum() / lin.sum()),
        }
    fate = o.groupby("true_state", observed=True)["mk_fate"].mean()
    out["mean_fate_by_true_state"] = {str(k): float(v) for k, v in fate.items()}
    print("simulated", out, flush=True)
    return out


def paul15_adata():
    """The shipped Paul 2015 subset through scVI, its published labels and the MEP -> MkP
    (cluster 8) trajectory."""
    a = mk.datasets.paul15_subset()
    mk.pp.highly_variable_genes(a, n_top_genes=240, batch_key=None)
    mk.integrate.scvi(a, batch_key="Amp_batch_ID", max_epochs=60, seed=0)
    mk.tl.annotate(a, labels_key="paul15_state")
    mk.tl.trajectory(a, lineage=("MEP", "MkP"), root_state="MEP", terminal_state="MkP")
    return a


def paul15(a=None) -> dict:
    a = paul15_adata() if a is None else a
    o = a.obs
    lin = o["paul15_state"].isin(["MEP", "MkP"]) & o["mk_pseudotime"].notna()
    med = o[lin].groupby("paul15_state", observed=True)["mk_pseudotime"].median()
    out = {
        "median_pseudotime_MEP": float(med["MEP"]),
        "median_pseudotime_MkP": float(med["MkP"]),
        "spearman_vs_slingshot_lineage1": float(
            spearmanr(
                o.loc[lin, "mk_pseudotime"], o.loc[lin, "slingPseudotime_1"], nan_policy="omit"
            )[0]
        ),
        "n_cells": int(lin.sum()),
    }
    print("paul15", out, flush=True)
    return out


def scale(n_cells: int) -> dict:
    t0 = time.perf_counter()
    sim = mk.datasets.simulate_marrow(n_cells, n_genes=2000, seed=4)
    a = mk.pp.concat_species(sim)
    del sim
    mk.pp.highly_variable_genes(a)
    mk.integrate.scvi(a, max_epochs=10, seed=0)
    mk.tl.annotate(a)
    prep = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "prep.h5ad"
        a.write_h5ad(path)
        del a
        out = subprocess.run(
            [sys.executable, __file__, "--stage", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["n_cells"] = n_cells
    res["prep_seconds"] = prep
    print("scale", res, flush=True)
    return res


def stage(path: str) -> None:
    import anndata as ad

    a = ad.read_h5ad(path)
    a.X = None  # the stage reads counts from layers['counts']
    base = peak_rss_gb()
    t = time.perf_counter()
    mk.tl.trajectory(a)
    print(
        json.dumps(
            {
                "trajectory_seconds": time.perf_counter() - t,
                "peak_rss_gb": peak_rss_gb(),
                "rss_after_load_gb": base,
                "fate_method": a.uns["mk_trajectory"]["fate_method"],
                "share_lineage_with_pseudotime": a.uns["mk_trajectory"]["n_with_pseudotime"]
                / a.uns["mk_trajectory"]["n_lineage"],
            }
        )
    )


def main(n_cells: int, n_scale: int) -> None:
    res = {
        "simulated_strong_cycling": simulated(n_cells),
        "paul15": paul15(),
        "scale": scale(n_scale),
    }
    sim = res["simulated_strong_cycling"]
    res["targets"] = {
        "spearman_ge_0.85_each_species": all(
            sim[s]["spearman_vs_true_time"] >= 0.85 for s in ("mouse", "human")
        ),
        "coverage_ge_0.8": all(sim[s]["share_with_pseudotime"] >= 0.8 for s in ("mouse", "human")),
        "mkp_f1_ge_0.6": sim["mkp_f1"] >= 0.6,
        "paul_mk_after_mep": res["paul15"]["median_pseudotime_MkP"]
        > res["paul15"]["median_pseudotime_MEP"],
        "scale_under_10_min": res["scale"]["trajectory_seconds"] < 600,
        "scale_under_8_gb": res["scale"]["peak_rss_gb"] < 8,
    }
    print(res["targets"])
    save("trajectory", res)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--stage":
        stage(sys.argv[2])
    else:
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 20_000,
            int(sys.argv[2]) if len(sys.argv) > 2 else 100_000,
        )
