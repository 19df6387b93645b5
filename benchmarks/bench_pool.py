"""Benchmark of mk.tl.progenitor_pool against the simulator's truth.

Prints and writes ``benchmarks/results/pool.json``:

* Pearson correlation of estimated vs true per-sample MkP fractions (labels from
  ``true_state``; also with 5% and 15% of lineage labels flipped MkP<->Mk, and against
  the expected per-sample fraction the simulator drew);
* the accumulation (MDS vs control) and reduction (MDS_drug vs MDS) effects with CIs,
  next to the true population effect;
* the false-positive rate at p < 0.05 over null simulations (4 vs 4 and 2 vs 2);
* the CI width with 2 vs 2 samples against 4 vs 4, and CI coverage of the true effect.

Usage: ``.venv/bin/python benchmarks/bench_pool.py [--n-null 100] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy.special import expit, logit

import mkcell as mk

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from mkcell.datasets import _simulate as simmod

CONTRASTS = [["MDS", "control"], ["MDS_drug", "MDS"]]
N_GENES = 760  # the simulator needs >= ~750 genes for its marker panels and gene sets


def obs_only(adata: ad.AnnData, flip: float = 0.0, seed: int = 0) -> ad.AnnData:
    a = ad.AnnData(obs=adata.obs.copy())
    st = a.obs["true_state"].astype(str).to_numpy().copy()
    if flip:
        rng = np.random.default_rng(seed)
        lin = np.flatnonzero(np.isin(st, ["MkP", "Mk"]))
        idx = rng.choice(lin, size=int(flip * lin.size), replace=False)
        st[idx] = np.where(st[idx] == "MkP", "Mk", "MkP")
    a.obs["mk_state"] = st
    return a


def pool(adata: ad.AnnData, contrasts: list | None = CONTRASTS) -> dict[str, pd.DataFrame]:
    mk.tl.progenitor_pool(adata, contrasts=contrasts)
    return adata.uns["mk_pool"]


def true_effects(mds_effect: float = 1.0, rescue: float = 0.5) -> dict[str, float]:
    """Population log2 ratio of mean MkP fractions, by Monte Carlo over the sample-level noise."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.25, 400_000)  # simulate_marrow's default sample_sd
    shift = (logit(simmod.MDS_MKP_FRACTION) - logit(simmod.BASE_MKP_FRACTION)) * mds_effect
    base = logit(simmod.BASE_MKP_FRACTION)
    mean = {
        c: expit(base + s + noise).mean()
        for c, s in (("control", 0), ("MDS", shift), ("MDS_drug", shift * (1 - rescue)))
    }
    return {
        "MDS vs control": float(np.log2(mean["MDS"] / mean["control"])),
        "MDS_drug vs MDS": float(np.log2(mean["MDS_drug"] / mean["MDS"])),
    }


def accuracy(n_cells: int, seed: int) -> dict:
    sims = mk.datasets.simulate_marrow(n_cells, n_genes=N_GENES, n_species_only=0, seed=seed)
    truth = pd.concat([s.uns["mk_truth"]["samples"] for s in sims.values()]).set_index("sample")
    out = {"n_cells": n_cells, "seed": seed, "n_samples": len(truth)}
    for flip in (0.0, 0.05, 0.15):
        per = pd.concat(
            [pool(obs_only(s, flip, seed), None)["per_sample"] for s in sims.values()]
        ).set_index("sample")
        est = per.loc[truth.index, "mkp_fraction"]
        key = "labels_true_state" if flip == 0 else f"labels_{int(flip * 100)}pct_flipped"
        out[key] = {
            "pearson_vs_realised": float(np.corrcoef(est, truth["mkp_fraction"])[0, 1]),
            "pearson_vs_expected": float(np.corrcoef(est, truth["mkp_fraction_expected"])[0, 1]),
            "max_abs_error_vs_realised": float(np.abs(est - truth["mkp_fraction"]).max()),
        }
    return out


def effects(n_cells: int, seed: int, n_samples: int = 4) -> list[dict]:
    s = mk.datasets.simulate_marrow(
        n_cells,
        n_genes=N_GENES,
        n_species_only=0,
        species=("mouse",),
        n_samples=n_samples,
        seed=seed,
    )
    con = pool(obs_only(s["mouse"]))["contrasts"]
    return con[
        ["contrast", "effect_log2", "ci_low", "ci_high", "p_value", "n_samples_a", "n_samples_b"]
    ].to_dict("records")


def repeated(n_sims: int, n_cells: int, n_samples: int, null: bool, seed0: int) -> pd.DataFrame:
    rows = []
    for i in range(n_sims):
        s = mk.datasets.simulate_marrow(
            n_cells,
            n_genes=N_GENES,
            n_species_only=0,
            species=("mouse",),
            n_samples=n_samples,
            null=null,
            seed=seed0 + i,
        )
        con = pool(obs_only(s["mouse"]))["contrasts"]
        rows += con.assign(sim=i).to_dict("records")
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n-null", type=int, default=100, help="null simulations per design (>= 50)"
    )
    parser.add_argument(
        "--n-effect",
        type=int,
        default=30,
        help="effect simulations per design for CI width/coverage",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pool.json")
    args = parser.parse_args()
    t0 = time.time()
    truth = true_effects()
    res: dict = {"true_effect_log2": truth}

    res["accuracy"] = accuracy(6000, seed=0)
    print("per-sample fraction accuracy:", json.dumps(res["accuracy"], indent=1))

    res["effects_6000_cells_4v4_seed0"] = effects(6000, seed=0)
    for r in res["effects_6000_cells_4v4_seed0"]:
        print(
            f"  {r['contrast']}: {r['effect_log2']:+.3f} [{r['ci_low']:+.3f}, "
            f"{r['ci_high']:+.3f}] p={r['p_value']:.2g} (true {truth[r['contrast']]:+.3f})"
        )

    res["null"] = {}
    for n_samples in (4, 2):
        null = repeated(args.n_null, 1500, n_samples, True, seed0=1000)
        p = null["p_value"].to_numpy(float)
        width = (null["ci_high"] - null["ci_low"]).to_numpy(float)
        res["null"][f"{n_samples}v{n_samples}"] = {
            "n_simulations": args.n_null,
            "n_tests": int(p.size),
            "n_cells_per_sim": 1500,
            "false_positive_rate_p05": float(np.mean(p < 0.05)),
            "false_positive_rate_p01": float(np.mean(p < 0.01)),
            "binomial_se": float(np.sqrt(0.05 * 0.95 / p.size)),
            "median_p": float(np.median(p)),
            "median_ci_width_log2": float(np.median(width)),
        }
        print(f"null {n_samples}v{n_samples}:", res["null"][f"{n_samples}v{n_samples}"])

    res["ci"] = {}
    for n_samples in (4, 2):
        eff = repeated(args.n_effect, 6000 * n_samples // 4, n_samples, False, seed0=5000)
        eff["true"] = eff["contrast"].map(truth)
        summary = {}
        for contrast, g in eff.groupby("contrast"):
            summary[contrast] = {
                "mean_effect_log2": float(g["effect_log2"].mean()),
                "median_ci_width_log2": float((g["ci_high"] - g["ci_low"]).median()),
                "coverage_of_true_effect": float(
                    ((g["ci_low"] <= g["true"]) & (g["true"] <= g["ci_high"])).mean()
                ),
                "power_p05": float((g["p_value"] < 0.05).mean()),
            }
        res["ci"][f"{n_samples}v{n_samples}"] = {
            "n_simulations": args.n_effect,
            "cells_per_sample": 500,
        } | summary
        print(f"effects {n_samples}v{n_samples}:", json.dumps(summary, indent=1))

    res["runtime_s"] = round(time.time() - t0, 1)
    res["pool_call_s"] = _time_call()
    res["machine"] = machine()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out} ({res['runtime_s']} s)")


def _time_call() -> float:
    """Seconds of one progenitor_pool call on 100,000 cells x 24 samples (obs only)."""
    rng = np.random.default_rng(0)
    n = 100_000
    obs = pd.DataFrame(
        {
            "species": "mouse",
            "sample": rng.integers(0, 24, n).astype(str),
            "mk_state": rng.choice(["MkP", "Mk", "MEP", "myeloid"], n),
        }
    )
    obs["condition"] = np.where(obs["sample"].astype(int) < 12, "MDS", "control")
    a = ad.AnnData(obs=obs.set_axis(obs.index.astype(str)))
    t = time.time()
    mk.tl.progenitor_pool(a, contrasts=[["MDS", "control"]])
    return round(time.time() - t, 3)


if __name__ == "__main__":
    main()
