"""Benchmark of mk.tl.score / compare_scores against the simulator's truth.

Prints and writes ``benchmarks/results/score.json``:

* phase agreement with ``true_phase`` per species (default centred rule and scanpy's
  sign rule on the same scores);
* the E2F-target score of true MkP cells, MDS vs control (healthy) per species: diff of
  per-sample means, 95% t CI and p of the design model (samples as replicates), on an effect and on a
  null simulation;
* wall time of ``mk.tl.score`` per 10k cells, and on ~200k cells (the simulated cells
  stacked 10x or more) to check the sparse path scales.

Usage: ``.venv/bin/python benchmarks/bench_score.py [--n-cells 20000] [--no-big] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

import mkcell as mk

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from mkcell.tl._score import call_phase

CONTRAST = {"mouse": "MDS vs control", "human": "MDS vs healthy"}
E2F = "mk_score_e2f_targets"


def run(sim: dict[str, ad.AnnData]) -> dict:
    out = {}
    for species, a in sim.items():
        t0 = time.perf_counter()
        mk.tl.score(a)
        dt = time.perf_counter() - t0
        truth = a.obs["true_phase"].astype(str).to_numpy()
        scanpy_phase, _ = call_phase(
            a.obs["S_score"].to_numpy(), a.obs["G2M_score"].to_numpy(), rule="scanpy"
        )
        a.obs["mk_state"] = a.obs["true_state"]
        mk.tl.compare_scores(a, keys=[E2F, "S_score", "G2M_score", "cycling_fraction"])
        tab = a.uns["mk_score_compare"]["table"]
        rows = tab[(tab["contrast"] == CONTRAST[species]) & (tab["state"] == "MkP")]
        out[species] = {
            "n_cells": a.n_obs,
            "n_genes": a.n_vars,
            "score_seconds": round(dt, 3),
            "score_seconds_per_10k_cells": round(dt / a.n_obs * 1e4, 3),
            "phase_agreement": round(float((a.obs["phase"].astype(str) == truth).mean()), 4),
            "phase_agreement_scanpy_rule": round(float((scanpy_phase == truth).mean()), 4),
            "mkp_contrast": {
                r["score"]: {
                    "contrast": r["contrast"],
                    "diff": round(float(r["diff"]), 4),
                    "ci_low": round(float(r["ci_low"]), 4),
                    "ci_high": round(float(r["ci_high"]), 4),
                    "p_value": float(f"{r['p_value']:.3g}"),
                    "n_a": int(r["n_a"]),
                    "n_b": int(r["n_b"]),
                }
                for _, r in rows.iterrows()
            },
        }
    return out


def big(a: ad.AnnData, target: int = 200_000) -> dict:
    reps = int(np.ceil(target / a.n_obs))
    X = sp.vstack([a.X] * reps, format="csr")
    b = ad.AnnData(X=X, var=a.var.copy())
    b.obs_names_make_unique()
    t0 = time.perf_counter()
    mk.tl.score(b)
    dt = time.perf_counter() - t0
    return {
        "n_cells": b.n_obs,
        "n_genes": b.n_vars,
        "nnz": int(X.nnz),
        "score_seconds": round(dt, 2),
        "score_seconds_per_10k_cells": round(dt / b.n_obs * 1e4, 3),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n-cells", type=int, default=20_000)
    p.add_argument("--no-big", action="store_true")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "score.json"))
    args = p.parse_args()

    t0 = time.perf_counter()
    effect = mk.datasets.simulate_marrow(args.n_cells, seed=0)
    null = mk.datasets.simulate_marrow(args.n_cells, seed=1, null=True)
    sim_s = time.perf_counter() - t0
    res = {
        "simulation": {
            "n_cells": args.n_cells,
            "n_genes": 1500,
            "n_samples": 4,
            "seconds": round(sim_s, 1),
        },
        "effect": run(effect),
        "null": run(null),
    }
    if not args.no_big:
        res["big_human"] = big(effect["human"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    res["machine"] = machine()
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
