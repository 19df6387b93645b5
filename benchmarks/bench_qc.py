"""Benchmark of mk.pp.qc against planted truth, and its per-sample tables on real data.

Simulated marrow (mouse and human, two seeds each) with planted heterotypic doublets (5%,
a share of them Mk x myeloid) and one sample whose non-Mk cells are 15% platelet-coated.
Prints and writes ``benchmarks/results/qc.json``:

* doublet recall (the ``mk_doublet`` call) and its false-flag rate on real singlets; recall
  at a 5% false-flag rate of scrublet's score alone, for reference;
* platelet-coated recall and false flags on uncoated cells;
* share of true MkP + Mk singlets flagged for any reason;
* the coated sample's MkP fraction (MkP / (MkP + Mk), states from mk.tl.annotate on a PCA
  of the counts) with flagged cells left out and without QC, against the truth;
* the runtime of one qc call; the per-sample tables on Paul 2015 (mouse) and Zhu 2021 (human).

Targets: doublet recall >= 0.6 at <= 5% false flags, platelet recall >= 0.8, MkP + Mk
flagged <= 3%.

Usage: ``.venv/bin/python benchmarks/bench_qc.py [--n-cells 6000] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import mkcell as mk

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

N_GENES = 800


def planted(species: str, n_cells: int, seed: int):
    s = mk.datasets.simulate_marrow(
        n_cells, n_genes=N_GENES, n_species_only=30, species=(species,), n_samples=2, seed=seed
    )[species]
    d = mk.datasets.plant_doublets(s, rate=0.05, seed=seed)
    coated_sample = str(d.obs["sample"].iloc[0])
    d = mk.datasets.coat_with_platelets(d, fraction=0.15, samples=[coated_sample], seed=seed)
    return d, coated_sample


def mkp_fraction(states: pd.Series) -> float:
    n_mkp, n_mk = int((states == "MkP").sum()), int((states == "Mk").sum())
    return n_mkp / max(n_mkp + n_mk, 1)


def annotate_states(d) -> pd.Series:
    import scanpy as sc

    from mkcell.pp._normalize import log_normalize_matrix

    a = d.copy()
    X = log_normalize_matrix(a.X)
    a.obsm["X_mk_pca"] = sc.pp.pca(X, n_comps=20, random_state=0)
    mk.tl.annotate(a, use_rep="X_mk_pca")
    return a.obs["mk_state"].astype(str)


def one_run(species: str, n_cells: int, seed: int) -> dict:
    d, coated_sample = planted(species, n_cells, seed)
    t0 = time.perf_counter()
    mk.pp.qc(d, seed=0)
    seconds = time.perf_counter() - t0
    o = d.obs
    td, tp = o["true_doublet"].to_numpy(), o["true_platelet_coated"].to_numpy()
    st = o["true_state"].astype(str).to_numpy()
    singlet = ~td & ~tp
    mk_lineage = np.isin(st, ["MkP", "Mk"]) & ~td
    flagged = (o["mk_qc"] != "pass").to_numpy()
    score = o["mk_doublet_score"].to_numpy()
    thr = np.nanquantile(score[singlet], 0.95)
    in_coated = (o["sample"].astype(str) == coated_sample).to_numpy()
    states = annotate_states(d)
    truth = mkp_fraction(pd.Series(st[in_coated & ~td]))
    raw = mkp_fraction(states[in_coated])
    kept = mkp_fraction(states[in_coated & ~flagged])
    mk_pair = td & o["true_doublet_partner_state"].isin(["MkP", "Mk", "myeloid"]).to_numpy()
    mk_pair &= np.isin(st, ["MkP", "Mk", "myeloid"])
    return {
        "species": species,
        "seed": seed,
        "n_cells": int(d.n_obs),
        "n_samples": int(o["sample"].nunique()),
        "n_doublets": int(td.sum()),
        "n_platelet_coated": int(tp.sum()),
        "doublet_recall": float(o["mk_doublet"][td].mean()),
        "doublet_recall_mk_x_myeloid": float(o["mk_doublet"][mk_pair].mean()),
        "doublet_false_flag_rate_singlets": float(o["mk_doublet"][singlet].mean()),
        "any_flag_rate_singlets": float(flagged[singlet].mean()),
        "scrublet_score_recall_at_5pct_false": float((score[td] > thr).mean()),
        "platelet_recall": float(o["mk_qc_platelet_coated"][tp].mean()),
        "platelet_false_flag_rate_uncoated": float(o["mk_qc_platelet_coated"][~tp & ~td].mean()),
        "mk_lineage_flagged_any": float(flagged[mk_lineage].mean()),
        "mk_lineage_flagged_platelet": float(o["mk_qc_platelet_coated"][mk_lineage].mean()),
        "coated_sample": coated_sample,
        "coated_sample_mkp_fraction_truth": truth,
        "coated_sample_mkp_fraction_no_qc": raw,
        "coated_sample_mkp_fraction_with_qc": kept,
        "qc_seconds": round(seconds, 2),
    }


def real_tables() -> dict:
    out = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paul = mk.datasets.paul15_subset()
        mk.pp.qc(paul, sample_key="Amp_batch_ID")
        zhu = mk.datasets.zhu2021_cd34()
        mk.pp.qc(zhu, sample_key="donor", doublet_min_cells=50)
    for name, a in (("paul15_mouse", paul), ("zhu2021_human", zhu)):
        table = a.uns["mk_qc"]["per_sample"]
        out[name] = table.to_dict("records")
        print(f"\n{name} per-sample qc:\n{table.to_string(index=False)}")
        if name == "paul15_mouse":
            ct = pd.crosstab(a.obs["paul15_state"], a.obs["mk_qc"])
            print(ct.to_string())
            out["paul15_state_by_verdict"] = ct.to_dict()
    out["warnings"] = sorted({str(w.message) for w in caught if "mkcell" in w.category.__module__})
    for w in out["warnings"]:
        print("warning:", w)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cells", type=int, default=6000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "qc.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    runs = []
    for species in ("human", "mouse"):
        for seed in args.seeds:
            r = one_run(species, args.n_cells, seed)
            runs.append(r)
            print(json.dumps(r, indent=1, default=float), flush=True)
    df = pd.DataFrame(runs)
    num = df.select_dtypes("number").drop(columns=["seed"])
    summary = num.mean().to_dict()
    summary["targets_met"] = {
        "doublet_recall>=0.6": bool((df["doublet_recall"] >= 0.6).all()),
        "doublet_false_flags<=0.05": bool((df["doublet_false_flag_rate_singlets"] <= 0.05).all()),
        "platelet_recall>=0.8": bool((df["platelet_recall"] >= 0.8).all()),
        "mk_lineage_flagged<=0.03": bool((df["mk_lineage_flagged_any"] <= 0.03).all()),
    }
    print("mean over runs:", json.dumps(summary, indent=1, default=float))
    save("qc", {"runs": runs, "mean": summary, "real": real_tables()}, args.out)


if __name__ == "__main__":
    main()
