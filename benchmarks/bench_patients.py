"""Patient-level analyses (issue 28) on a simulated cohort with a planted platelet effect.

Prints and writes ``benchmarks/results/patients.json``:

1. power: association of MkP fraction / E2F score with log2 platelets (sign, p), recovery
   of the planted low-platelet subset by the E2F clusters (Fisher p, target < 0.05), GSEA
   ranks of the E2F and G2M Hallmarks between platelet-low and -high patients;
2. calibration: platelets shuffled across patients (>= 100 times): share of p < 0.05 for
   the associations, the Fisher test and the GSEA E2F term (target: about 0.05 or less);
3. speed: a 200 x 20,000 bulk table read + GSEA + clustering + associations (target <= 60 s).

Usage: ``.venv/bin/python benchmarks/bench_patients.py [--shuffles 100] [--quick]``
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

import mkcell as mk  # noqa: E402

THRESHOLD = 150.0
TERMS = ("HALLMARK_E2F_TARGETS", "HALLMARK_G2M_CHECKPOINT")


def _gsea(bulk, platelets: pd.Series, permutations: int, seed: int) -> pd.DataFrame:
    table = pd.DataFrame(
        bulk.layers["log_expression"], index=bulk.obs_names, columns=bulk.var_names
    )
    meta = pd.DataFrame(
        {"platelet_group": np.where(platelets.loc[table.index] < THRESHOLD, "low", "high")},
        index=table.index,
    )
    return mk.tl.gsea(
        table, meta, "platelet_group", ("low", "high"), permutations=permutations, seed=seed
    )


def _power(n: int, effect: float, seed: int, permutations: int) -> dict:
    c = mk.datasets.simulate_cohort(n, platelet_effect=effect, seed=seed)
    cells, bulk, samples = c["cells"], c["bulk"], c["samples"]
    mk.io.join_samples(cells, samples)
    mk.tl.associate(cells, "platelets", adjust=["age"])
    tab = cells.uns["mk_associations"]["table"].set_index("readout")
    mk.tl.e2f_clusters(bulk, covariate="platelets", threshold=THRESHOLD)
    clus = bulk.uns["mk_e2f_clusters"]
    truth = samples.loc[clus["table"]["sample"], "truth_low_platelet_subset"].to_numpy()
    agree = float((clus["table"]["e2f_high"].to_numpy() == truth).mean())
    g = _gsea(bulk, samples["platelets"], permutations, seed)
    ranks = {t: int(np.flatnonzero(g["term"] == t)[0]) + 1 for t in TERMS}
    gp = g.set_index("term")
    out = {
        "n_patients": n,
        "platelet_effect": effect,
        "associations": {
            r: {
                "effect": float(tab.loc[r, "effect"]),
                "ci": [float(tab.loc[r, "ci_low"]), float(tab.loc[r, "ci_high"])],
                "p_value": float(tab.loc[r, "p_value"]),
                "p_adj": float(tab.loc[r, "p_adj"]),
                "n_samples": int(tab.loc[r, "n_samples"]),
                "unit": str(tab.loc[r, "unit"]),
            }
            for r in tab.index
        },
        "e2f_clusters": {
            "fisher_p": clus["fisher_p"],
            "odds_ratio": clus["odds_ratio"],
            "agreement_with_planted_subset": agree,
            "contingency": clus["contingency"].to_numpy().tolist(),
            "cut_height": clus["cut_height"],
        },
        "gsea": {
            "test": g.attrs["params"]["test_label"],
            "n_low": g.attrs["params"]["n_a"],
            "n_high": g.attrs["params"]["n_b"],
            "n_terms": len(g),
            "ranks_by_nes": ranks,
            "p_values": {t: float(gp.loc[t, "p_value"]) for t in TERMS},
            "fdr": {t: float(gp.loc[t, "fdr"]) for t in TERMS},
            "top5": list(g["term"].head(5)),
        },
    }
    return out


def _null(n: int, shuffles: int, seed: int, permutations: int) -> dict:
    """Platelets shuffled across the patients of one cohort with an effect."""
    c = mk.datasets.simulate_cohort(n, platelet_effect=1.0, seed=seed)
    cells, bulk, samples = c["cells"], c["bulk"], c["samples"]
    rng = np.random.default_rng(seed + 1)
    assoc_p, fisher_p, gsea_p, gsea_any = [], [], [], []
    readouts = ["mkp_fraction", "mk_score_e2f_targets"]
    for i in range(shuffles):
        s = samples.assign(platelets=rng.permutation(samples["platelets"].to_numpy()))
        mk.io.join_samples(cells, s[["platelets", "age"]], overwrite=True)
        mk.tl.associate(cells, "platelets", readouts=readouts, adjust=["age"])
        assoc_p.append(cells.uns["mk_associations"]["table"]["p_value"].to_numpy())
        mk.io.join_samples(bulk, s[["platelets"]], sample_key=None, overwrite=True)
        mk.tl.e2f_clusters(bulk, covariate="platelets", threshold=THRESHOLD)
        fisher_p.append(bulk.uns["mk_e2f_clusters"]["fisher_p"])
        g = _gsea(bulk, s["platelets"], permutations, seed + i).set_index("term")
        gsea_p.append([float(g.loc[t, "p_value"]) for t in TERMS])
        gsea_any.append(float((g["p_value"] < 0.05).mean()))
    assoc_p, gsea_p = np.array(assoc_p), np.array(gsea_p)
    return {
        "shuffles": shuffles,
        "n_patients": n,
        "association_false_call_rate": {
            r: float((assoc_p[:, j] < 0.05).mean()) for j, r in enumerate(readouts)
        },
        "fisher_false_call_rate": float((np.array(fisher_p) < 0.05).mean()),
        "gsea_false_call_rate": {
            t: float((gsea_p[:, j] < 0.05).mean()) for j, t in enumerate(TERMS)
        },
        "gsea_mean_share_of_terms_p05": float(np.mean(gsea_any)),
        "binomial_95pct_upper_of_0.05": float(0.05 + 1.96 * np.sqrt(0.05 * 0.95 / shuffles)),
    }


def _timing(n: int, n_genes: int, permutations: int) -> dict:
    c = mk.datasets.simulate_cohort(n, n_genes=n_genes, n_cells=0, seed=7)
    bulk = c["bulk"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bulk_genes_x_samples.tsv"
        pd.DataFrame(
            bulk.X.T.astype(np.int64), index=bulk.var_names, columns=bulk.obs_names
        ).to_csv(path, sep="\t")
        c["samples"].to_csv(Path(tmp) / "samples.csv")
        size_mb = path.stat().st_size / 1e6
        t0 = time.perf_counter()
        a = mk.io.read_bulk(path, samples=Path(tmp) / "samples.csv")
        t1 = time.perf_counter()
        g = _gsea(a, a.obs["platelets"], permutations, 0)
        t2 = time.perf_counter()
        mk.tl.e2f_clusters(a, covariate="platelets")
        t3 = time.perf_counter()
        mk.tl.associate(a, "platelets", adjust=["age"])
        t4 = time.perf_counter()
    return {
        "shape": [a.n_obs, a.n_vars],
        "file_mb": round(size_mb, 1),
        "orientation": a.uns["mk_bulk"]["orientation"],
        "gsea_test": g.attrs["params"]["test_label"],
        "gsea_permutations": permutations,
        "seconds": {
            "read_bulk": round(t1 - t0, 2),
            "gsea": round(t2 - t1, 2),
            "e2f_clusters": round(t3 - t2, 2),
            "associate": round(t4 - t3, 2),
            "total": round(t4 - t0, 2),
        },
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=24)
    ap.add_argument("--shuffles", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="10 shuffles, small timing table")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    logging.getLogger("mkcell").setLevel(logging.ERROR)
    shuffles = 10 if args.quick else args.shuffles
    t = time.perf_counter()
    power = _power(args.patients, 1.0, 0, 1000)
    weak = _power(args.patients, 0.5, 1, 1000)
    print(f"== power (platelet_effect=1.0, {args.patients} patients)")
    for r, v in power["associations"].items():
        print(
            f"  {r:26s} effect {v['effect']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}] "
            f"p {v['p_value']:.2g} ({v['unit']})"
        )
    e = power["e2f_clusters"]
    print(
        f"  E2F clusters vs platelets<150: Fisher p {e['fisher_p']:.3g} (target < 0.05), "
        f"OR {e['odds_ratio']:.3g}, agreement with planted subset {e['agreement_with_planted_subset']:.2f}"
    )
    gs = power["gsea"]
    print(
        f"  GSEA ({gs['test']}, {gs['n_low']} low vs {gs['n_high']} high): ranks {gs['ranks_by_nes']} "
        f"of {gs['n_terms']}, p {gs['p_values']}, top5 {gs['top5']}"
    )
    print("== power (platelet_effect=0.5)")
    for r in ("mkp_fraction", "mk_score_e2f_targets"):
        v = weak["associations"][r]
        print(f"  {r:26s} effect {v['effect']:+.3f} p {v['p_value']:.2g}")
    print(
        f"  Fisher p {weak['e2f_clusters']['fisher_p']:.3g}; GSEA ranks {weak['gsea']['ranks_by_nes']}"
    )
    null = _null(args.patients, shuffles, 2, 200)
    print(
        f"== null: platelets shuffled {shuffles}x (target: <= 0.05, binomial 95% upper "
        f"{null['binomial_95pct_upper_of_0.05']:.3f})"
    )
    print(f"  associations p<0.05: {null['association_false_call_rate']}")
    print(f"  Fisher p<0.05: {null['fisher_false_call_rate']:.3f}")
    print(
        f"  GSEA p<0.05: {null['gsea_false_call_rate']}; mean share of all terms "
        f"{null['gsea_mean_share_of_terms_p05']:.3f}"
    )
    n, G = (60, 5000) if args.quick else (200, 20000)
    timing = _timing(n, G, 1000)
    print(
        f"== speed: {timing['shape'][0]} x {timing['shape'][1]} ({timing['file_mb']} MB TSV, "
        f"{timing['orientation']}): {timing['seconds']} (target total <= 60 s; "
        f"{timing['cpu_count']} CPUs, load {timing['load_average_1min']:.1f}: shared machine)"
    )
    save(
        "patients" if not args.quick else "patients_quick",
        {
            "power": power,
            "power_weak": weak,
            "null": null,
            "timing": timing,
            "wall_seconds": round(time.perf_counter() - t, 1),
        },
    )


if __name__ == "__main__":
    main()
