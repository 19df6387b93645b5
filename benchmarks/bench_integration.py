"""Issue 3 targets: cross-species mixing and state purity of scVI vs the unintegrated
baseline, training speed.

usage: python benchmarks/bench_integration.py [n_cells]   (default 20000)
"""

from __future__ import annotations

import sys
import time

from _common import peak_rss_gb, save

import mkcell as mk
from mkcell.integrate._metrics import cross_species_mixing, knn, knn_purity


def main(n_cells: int = 20_000) -> None:
    sim = mk.datasets.simulate_marrow(n_cells, n_genes=2000, species_effect=1.0, seed=0)
    a = mk.pp.concat_species(sim)
    mk.pp.highly_variable_genes(a, n_top_genes=2000)
    species = a.obs["species"].astype(str).to_numpy()
    state = a.obs["true_state"].astype(str).to_numpy()
    res = {"n_cells": a.n_obs, "n_features": int(a.var["mk_highly_variable"].sum())}
    for model in ("scvi", "scvi_no_equalize", "sysvi"):
        t = time.perf_counter()
        mk.integrate.scvi(
            a,
            model="sysvi" if model == "sysvi" else "scvi",
            equalize="none" if model == "scvi_no_equalize" else "states",
            seed=0,
        )
        info = a.uns["mk_integrate"]
        idx = knn(a.obsm["X_mk_scvi"])
        res[model] = {
            "cross_species_mixing": cross_species_mixing(idx, species, state),
            "knn_state_purity": knn_purity(idx, state),
            "train_seconds": info["seconds"],
            "epochs": info["epochs_run"],
            "cells_per_second_per_epoch": info["cells_per_second_per_epoch"],
            "wall_seconds": time.perf_counter() - t,
        }
        print(model, res[model], flush=True)
        if model == "scvi":
            table = mk.integrate.metrics(a, label_key="true_state")
            res["metrics_table"] = table.to_dict(orient="records")
            print(table.to_string(index=False))
            keep = a.obsm["X_mk_scvi"].copy()
    a.obsm["X_mk_scvi"] = keep
    idx = knn(a.obsm["X_mk_pca"])
    res["baseline_pca"] = {
        "cross_species_mixing": cross_species_mixing(idx, species, state),
        "knn_state_purity": knn_purity(idx, state),
    }
    print("baseline", res["baseline_pca"])
    res["targets"] = {
        "mixing_ge_0.6": res["scvi"]["cross_species_mixing"] >= 0.6,
        "purity_ge_baseline": res["scvi"]["knn_state_purity"]
        >= res["baseline_pca"]["knn_state_purity"],
        "train_under_5_min": res["scvi"]["train_seconds"] < 300,
    }
    res["peak_rss_gb"] = peak_rss_gb()
    print(res["targets"])
    save("integration", res)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
