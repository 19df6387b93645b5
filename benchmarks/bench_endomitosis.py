"""Benchmark of mk.tl.endomitosis against the simulator's endomitosis truth.

On ``simulate_marrow(..., endomitosis=True)`` (phases from ``mk.tl.score``; states are the
simulation's true states, ``obs['mk_state'] = true_state``, so the readout is tested and not
the state calls), per seed and species:

* MDS vs control (healthy) and MDS_drug vs MDS, samples as replicates: the effect (diff of
  per-sample means), its direction against the truth (cytokinesis contrast up in MDS, ploidy
  down; the drug the other way), p_adj and whether it is called (p_adj < 0.05);
* Spearman correlations within G2M Mk-lineage cells: the cytokinesis contrast with
  ``true_endomitosis`` and with the G2M score (the contrast should not be G2M again), the
  old ``mk_score_cytokinesis`` set score beside it; the ploidy proxy with ``true_ploidy``
  (Mk-lineage cells, and Mk only);

and on the null simulation (``null=True``) over ``--null-seeds`` seeds: the share of tests
called and the share of seeds with any call.

Usage: ``.venv/bin/python benchmarks/bench_endomitosis.py [--n-cells 20000] [--seeds 4]
[--null-seeds 20] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import mkcell as mk

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

CYTO, PLOIDY = "mk_cytokinesis_contrast", "mk_ploidy_proxy"
CONTRASTS = ["MDS vs control", "MDS vs healthy", "MDS_drug vs MDS"]
#: The truth's direction of each contrast x readout (+1: A above B).
EXPECTED = {
    ("MDS vs control", CYTO): 1,
    ("MDS vs healthy", CYTO): 1,
    ("MDS_drug vs MDS", CYTO): -1,
    ("MDS vs control", PLOIDY): -1,
    ("MDS vs healthy", PLOIDY): -1,
    ("MDS_drug vs MDS", PLOIDY): 1,
}


def _rho(x: pd.Series, y: pd.Series) -> float:
    return round(float(stats.spearmanr(x, y)[0]), 4)


def _partial(x: pd.Series, y: pd.Series, z: pd.Series) -> float:
    """Spearman correlation of x and y given z (ranks, linear residuals on z)."""
    r = [stats.rankdata(v) for v in (x, y, z)]
    res = [v - np.polyval(np.polyfit(r[2], v, 1), r[2]) for v in r[:2]]
    return round(float(np.corrcoef(*res)[0, 1]), 4)


def _truth_correlations(o: pd.DataFrame) -> dict[str, float]:
    g2m = o[CYTO].notna()
    lin, mkc = o[PLOIDY].notna(), o["true_state"] == "Mk"
    c, t, g = o.loc[g2m, CYTO], o.loc[g2m, "true_endomitosis"], o.loc[g2m, "G2M_score"]
    old = o.loc[g2m, "mk_score_cytokinesis"]
    return {
        "rho_cytokinesis_vs_true_endomitosis": _rho(c, t),
        "rho_cytokinesis_vs_g2m_score": _rho(c, g),
        "partial_rho_cytokinesis_vs_true_endomitosis_given_g2m": _partial(c, t, g),
        "partial_rho_cytokinesis_vs_g2m_given_true_endomitosis": _partial(c, g, t),
        "rho_g2m_score_vs_true_endomitosis": _rho(g, t),
        "rho_old_cytokinesis_set_vs_true_endomitosis": _rho(old, t),
        "rho_old_cytokinesis_set_vs_g2m_score": _rho(old, g),
        "partial_rho_old_cytokinesis_set_vs_g2m_given_true_endomitosis": _partial(old, g, t),
        "rho_ploidy_vs_true_ploidy_lineage": _rho(o.loc[lin, PLOIDY], o.loc[lin, "true_ploidy"]),
        "rho_ploidy_vs_true_ploidy_mk": _rho(
            o.loc[lin & mkc, PLOIDY], o.loc[lin & mkc, "true_ploidy"]
        ),
    }


def analyse(n_cells: int, seed: int, *, null: bool, endomitosis: bool = True) -> dict[str, dict]:
    sim = mk.datasets.simulate_marrow(n_cells, seed=seed, null=null, endomitosis=endomitosis)
    out = {}
    for species, a in sim.items():
        mk.tl.score(a)
        a.obs["mk_state"] = a.obs["true_state"]
        a.obs["mk_pseudotime"] = a.obs["true_time"]
        t0 = time.perf_counter()
        mk.tl.endomitosis(a, contrasts=[c for c in CONTRASTS if _has(a, c)])
        seconds = time.perf_counter() - t0
        tab = a.uns["mk_endomitosis"]["table"]
        rows = []
        for _, r in tab.iterrows():
            want = EXPECTED[(r["contrast"], r["score"])]
            rows.append(
                {
                    "contrast": r["contrast"],
                    "readout": r["score"],
                    "diff": round(float(r["diff"]), 4),
                    "expected_sign": want,
                    "right_direction": bool(np.sign(r["diff"]) == want),
                    "p_adj": float(r["p_adj"]),
                    "called": bool(r["p_adj"] < 0.05),
                }
            )
        o = a.obs
        g2m = o[CYTO].notna()
        out[species] = {
            "seconds": round(seconds, 3),
            "n_g2m_lineage_cells": int(g2m.sum()),
            "tests": rows,
            "rho_cytokinesis_vs_g2m_score": _rho(o.loc[g2m, CYTO], o.loc[g2m, "G2M_score"]),
        }
        if endomitosis:
            out[species] |= _truth_correlations(o)
    return out


def _has(a, contrast: str) -> bool:  # noqa: ANN001
    return set(contrast.split(" vs ")) <= set(a.obs["condition"].astype(str))


def summarise(effect: dict, null: dict, unplanted: dict) -> dict:
    eff = pd.DataFrame(
        [
            dict(t, seed=s, species=sp)
            for s, res in effect.items()
            for sp, v in res.items()
            for t in v["tests"]
        ]
    )
    by = eff.groupby(["species", "contrast", "readout"])
    table = by.agg(
        mean_diff=("diff", "mean"),
        right_direction=("right_direction", "mean"),
        called_right=("called", lambda c: float((c & eff.loc[c.index, "right_direction"]).mean())),
        max_p_adj=("p_adj", "max"),
    ).round(4)
    nul = pd.DataFrame(
        [
            dict(t, seed=s, species=sp)
            for s, res in null.items()
            for sp, v in res.items()
            for t in v["tests"]
        ]
    )
    per_seed = nul.groupby("seed")["called"].any()
    unp = pd.DataFrame(
        [
            dict(t, seed=s, species=sp)
            for s, res in unplanted.items()
            for sp, v in res.items()
            for t in v["tests"]
        ]
    )
    unp_cyto = unp[unp["readout"] == CYTO]
    cors = pd.DataFrame(
        [
            {k: v for k, v in r.items() if "rho" in k} | {"species": sp}
            for res in effect.values()
            for sp, r in res.items()
        ]
    )
    return {
        "effect": table.reset_index().to_dict(orient="records"),
        "null_test_call_rate": round(float(nul["called"].mean()), 4),
        "null_seeds_with_any_call": round(float(per_seed.mean()), 4),
        "null_n_tests": len(nul),
        "null_n_seeds": int(per_seed.size),
        "no_endomitosis_planted_cytokinesis_call_rate": round(float(unp_cyto["called"].mean()), 4),
        "no_endomitosis_planted_ploidy_call_rate": round(
            float(unp.loc[unp["readout"] == PLOIDY, "called"].mean()), 4
        ),
        "no_endomitosis_planted_rho_cytokinesis_vs_g2m": round(
            float(
                np.mean(
                    [
                        v["rho_cytokinesis_vs_g2m_score"]
                        for r in unplanted.values()
                        for v in r.values()
                    ]
                )
            ),
            4,
        ),
        "correlations_mean": cors.groupby("species").mean().round(4).to_dict(orient="index"),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n-cells", type=int, default=20_000)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--null-seeds", type=int, default=20)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "endomitosis.json"))
    args = p.parse_args()
    t0 = time.perf_counter()
    effect = {s: analyse(args.n_cells, s, null=False) for s in range(args.seeds)}
    null = {s: analyse(args.n_cells, 100 + s, null=True) for s in range(args.null_seeds)}
    # MDS cycling / E2F / Aurora effects without endomitosis truth: the readout must stay quiet
    unplanted = {
        s: analyse(args.n_cells, s, null=False, endomitosis=False) for s in range(args.seeds)
    }
    res = {
        "setup": {
            "n_cells": args.n_cells,
            "effect_seeds": list(range(args.seeds)),
            "null_seeds": [100 + s for s in range(args.null_seeds)],
            "states": "simulation's true states (obs['mk_state'] = true_state)",
            "phases": "mk.tl.score (centred rule)",
            "pseudotime": "true_time (for the trends only)",
            "called": "p_adj < 0.05 (BH over the table of each species)",
        },
        "summary": summarise(effect, null, unplanted),
        "effect": effect,
        "null": null,
        "no_endomitosis_planted": unplanted,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": machine(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
