"""Issue 14: CD34+-sorted samples, targeted panels, and species that differ in composition.

Scenarios, each from ``simulate_marrow`` reshaped with ``mk.datasets.cd34_sorted`` and run
through the API the workflow uses (features, scVI, annotate, the trajectory where mature
Mk exist (it refines the MkP / Mk boundary), progenitor_pool with the default
``denominator="auto"``), scored against the truth:

- ``cd34_panel``: human patients, CD34+-sorted (mature Mk removed but for a 2% impurity)
  on a 400-gene targeted panel without PF4, PPBP, GP9 and GATA1;
- ``same``: mouse and human both whole marrow (the composition equalisation assumes);
- ``mixed``: mouse whole marrow beside a human CD34+ cohort (the usual pairing).

``same`` and ``mixed`` run with each ``equalize`` choice of ``mk.integrate.scvi``
("states": gene means equalised within marker states both species have; "all": over all
cells). Metrics: MkP F1 per species, kNN state purity (true states, integrated space),
per-sample MkP fraction vs the truth with the same denominator (Pearson r), and each
contrast's effect, CI and p next to the true direction.

Conditions of a species are compared with the realised truth too (``true_effect_log2``: the
pooled true MkP fraction, same denominator), since per-sample noise moves it from the design.

usage: python benchmarks/bench_cd34.py [--seeds 21,22] [--cells 16000]
       [--scenarios cd34_panel,same,mixed]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from _common import save
from scipy.stats import pearsonr
from sklearn.metrics import f1_score

import mkcell as mk
from mkcell.datasets._scenarios import sample_truth
from mkcell.integrate._metrics import knn, knn_purity

CONTRASTS = [["MDS", "control"], ["MDS_drug", "MDS"], ["MDS", "healthy"]]
#: True sign of each contrast's MkP effect in the simulation (MDS accumulates MkP; the drug
#: rescues half).
TRUE_SIGN = {"MDS vs control": 1, "MDS_drug vs MDS": -1, "MDS vs healthy": 1}
TRUTH_COLUMN = {
    "hspc": "mkp_fraction_of_hspc",
    "all": "mkp_fraction_of_all",
    "mk_lineage": "mkp_fraction",
}
TRUTH_DENOMINATOR = {"hspc": "n_hspc", "all": "n_cells", "mk_lineage": "n_mk_lineage"}
HUMAN_SHARE = 0.5


def build(scenario: str, n_cells: int, seed: int) -> tuple:
    if scenario == "cd34_panel":
        sim = mk.datasets.simulate_marrow(
            n_cells, species=("human",), seed=seed
        )  # human patients only
        h = mk.datasets.cd34_sorted(sim["human"], panel_genes=400, seed=seed)
        return h, h.uns["mk_truth"]["samples"]
    sim = mk.datasets.simulate_marrow(n_cells, human_share=HUMAN_SHARE, seed=seed)
    if scenario == "mixed":
        sim["human"] = mk.datasets.cd34_sorted(sim["human"], seed=seed)
    truth = pd.concat([sample_truth(a.obs) for a in sim.values()], ignore_index=True)
    return mk.pp.concat_species(sim), truth


def evaluate(a, truth: pd.DataFrame) -> dict:
    o = a.obs
    out = {"n_cells": int(a.n_obs), "n_genes": int(a.n_vars)}
    idx = knn(np.asarray(a.obsm["X_mk_scvi"]))
    out["knn_state_purity"] = knn_purity(idx, o["true_state"].astype(str).to_numpy())
    pool = a.uns["mk_pool"]
    truth = truth.rename(
        columns={
            c: f"true_{c}" for c in truth.columns if c not in ("sample", "species", "condition")
        }
    )
    ps = pool["per_sample"].merge(truth, on=["sample", "species", "condition"])
    for sp_name in o["species"].astype(str).unique():
        m = (o["species"] == sp_name).to_numpy()
        s = ps[ps["species"] == sp_name]
        den = str(s["denominator"].iloc[0])
        r = {
            "mkp_f1": float(
                f1_score(o.loc[m, "true_state"] == "MkP", o.loc[m, "mk_state"] == "MkP")
            ),
            "denominator": den,
            "denominator_reason": str(
                pool["denominator_choice"].set_index("species").loc[sp_name, "reason"]
            ),
            "fraction_pearson_r": float(
                pearsonr(s["mkp_fraction"], s[f"true_{TRUTH_COLUMN[den]}"])[0]
            ),
        }
        for _, c in pool["contrasts"][pool["contrasts"]["species"] == sp_name].iterrows():
            a_cond, b_cond = c["contrast"].split(" vs ")
            pooled = [
                s.loc[s["condition"] == x, ["true_n_mkp", f"true_{TRUTH_DENOMINATOR[den]}"]].sum()
                for x in (a_cond, b_cond)
            ]
            true_effect = float(
                np.log2(
                    (pooled[0].iloc[0] / pooled[0].iloc[1])
                    / (pooled[1].iloc[0] / pooled[1].iloc[1])
                )
            )
            r[c["contrast"]] = {
                "true_effect_log2": true_effect,
                "effect_log2": float(c["effect_log2"]),
                "ci": [float(c["ci_low"]), float(c["ci_high"])],
                "p": float(c["p_value"]),
                "right_sign": bool(np.sign(c["effect_log2"]) == TRUE_SIGN[c["contrast"]]),
                "ci_excludes_0_right_side": bool(
                    c["ci_low"] > 0 if TRUE_SIGN[c["contrast"]] > 0 else c["ci_high"] < 0
                ),
            }
        out[sp_name] = r
    return out


def run(scenario: str, n_cells: int, seed: int, equalize: str) -> dict:
    t0 = time.perf_counter()
    a, truth = build(scenario, n_cells, seed)
    mk.pp.highly_variable_genes(a, seed=0)
    mk.integrate.scvi(a, equalize=equalize, seed=0)
    mk.tl.annotate(a)
    if (
        scenario != "cd34_panel"
    ):  # with mature Mk in the data the workflow runs the trajectory, which refines MkP / Mk
        mk.tl.trajectory(a)
    contrasts = [c for c in CONTRASTS if set(c) <= set(a.obs["condition"].astype(str))]
    mk.tl.progenitor_pool(a, contrasts=contrasts)
    res = evaluate(a, truth)
    res["seconds"] = time.perf_counter() - t0
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="21,22")
    ap.add_argument("--cells", type=int, default=16000)
    ap.add_argument("--scenarios", default="cd34_panel,same,mixed")
    ap.add_argument("--equalize", default="states,all")
    ap.add_argument("--out", default="cd34")
    args = ap.parse_args()
    out: dict = {"n_cells_simulated": args.cells, "runs": {}}
    for seed in (int(s) for s in args.seeds.split(",")):
        for scenario in args.scenarios.split(","):
            for eq in args.equalize.split(",") if scenario != "cd34_panel" else ["states"]:
                key = f"{scenario}:equalize={eq}:seed={seed}"
                out["runs"][key] = run(scenario, args.cells, seed, eq)
                print(key, out["runs"][key], flush=True)
                save(args.out, out)


if __name__ == "__main__":
    main()
