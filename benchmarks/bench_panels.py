"""Issue 14 item 8: do the marker panels score highest on their own populations in real references?

Three real references, none made by mkcell:
- HematoMap: 43 human marrow cell types (mean expression), including MEP, MKP and MK;
- CIBER HMMA: 11 sorted mouse populations (log2 microarray), including MEP and MkP;
- Olsson 2016: 382 mouse myeloid progenitors (single cells, published labels), as pseudobulk.

For every panel: the population it scores highest on, and the margin over the best
population of another state (positive = right). For every population of a state: the
panel that scores highest on it. Prints the tables and writes results/panels.json.

usage: python benchmarks/bench_panels.py [--write-subsets]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from _common import save

import mkcell as mk

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SUBSETS = Path(__file__).resolve().parents[1] / "tests" / "data" / "panel_references"
#: Reference populations that belong to each mkcell state. The sorted mouse "MEP" expresses the
#: terminal erythroid genes (Gypa, Slc4a1, Alas2, Trim10) above pre-CFU-E: it is
#: erythroid-committed, so it counts for both MEP and erythroid there. Olsson's HSCP-1 and HSCP-2
#: are both LSK progenitor clusters. Only HematoMap has all six states, so only there must every
#: population's top panel be its own (without mature Mk in a reference, the Mk panel tops the MkP
#: population, as it should).
POPULATIONS = {
    "hematomap": {
        "HSC/MPP": ["HSC/MPP"],
        "MEP": ["MEP"],
        "MkP": ["MKP"],
        "Mk": ["MK"],
        "erythroid": ["pro-Ery1", "pro-Ery2", "Ery"],
        "myeloid": ["GMP", "pro-Mono", "CD14 Mono"],
    },
    "ciber_mouse_sorted": {
        "HSC/MPP": ["HSC", "MPPa", "MPPb"],
        "MEP": ["MEP"],
        "MkP": ["MkP"],
        "erythroid": ["pCFU-E", "MEP"],
        "myeloid": ["GMP"],
    },
    "olsson2016": {
        "HSC/MPP": ["HSCP-1", "HSCP-2"],
        "MkP": ["Meg"],
        "erythroid": ["Eryth"],
        "myeloid": ["Gran", "Mono", "Myelocyte"],
    },
}


def references(full: bool) -> dict[str, tuple[pd.DataFrame, str, bool]]:
    """name -> (genes x populations, species, log1p needed)."""
    if full:
        h = pd.read_csv(SHARED / "hematomap_human" / "HematoMap_human.csv.gz", index_col=0)
        m = pd.read_csv(
            SHARED / "ciber_mouse_sorted" / "HMMA_mouse_sorted_populations.csv.gz", index_col=0
        )
    else:
        h = pd.read_csv(SUBSETS / "hematomap_human_panel_genes.csv", index_col=0)
        m = pd.read_csv(SUBSETS / "ciber_mouse_sorted_panel_genes.csv", index_col=0)
    o = mk.datasets.olsson16_fig1b()
    # Olsson values are gene-centred log2 (not counts): pseudobulk = mean per published cell type
    pb = (
        pd.DataFrame(np.asarray(o.X), index=o.obs_names, columns=o.var_names)
        .groupby(o.obs["olsson_celltype"].astype(str))
        .mean()
        .T
    )
    return {
        "hematomap": (h, "human", True),
        "ciber_mouse_sorted": (m, "mouse", False),
        "olsson2016": (pb, "mouse", False),
    }


def check(scores: pd.DataFrame, populations: dict[str, list[str]]) -> dict:
    """Per panel: top population and margin; per own population: top panel."""
    rows, cols = {}, {}
    for state, own in populations.items():
        if state not in scores:
            continue
        s = scores[state]
        other = s.drop([p for p in own if p in s.index])
        rows[state] = {
            "top_population": str(s.idxmax()),
            "ok": bool(s.idxmax() in own),
            "margin": float(s[own].max() - other.max()),
        }
        for pop in own:
            cols[pop] = {
                "state": state,
                "top_panel": str(scores.loc[pop].idxmax()),
                "ok": bool(scores.loc[pop].idxmax() == state),
            }
    return {"panels": rows, "populations": cols}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--write-subsets", action="store_true", help="rewrite the panel-gene rows the test ships"
    )
    args = ap.parse_args()
    refs = references(full=True)
    if args.write_subsets:
        panels = mk.datasets.marker_panels()
        for name, col in (("hematomap", "human"), ("ciber_mouse_sorted", "mouse")):
            prof = refs[name][0]
            stem = {"hematomap": "hematomap_human", "ciber_mouse_sorted": "ciber_mouse_sorted"}[
                name
            ]
            prof.loc[[g for g in panels[col] if g in prof.index]].to_csv(
                SUBSETS / f"{stem}_panel_genes.csv", float_format="%.6g"
            )
    out = {}
    for name, (prof, species, log) in refs.items():
        scores = mk.datasets.panel_profile_scores(prof, species, log1p=log)
        out[name] = check(scores, POPULATIONS[name])
        print(f"== {name}")
        for state, r in out[name]["panels"].items():
            print(
                f"  panel {state:10s} top {r['top_population']:10s} margin "
                f"{r['margin']:+.2f} {'ok' if r['ok'] else 'WRONG'}"
            )
        for pop, r in out[name]["populations"].items():
            print(
                f"  population {pop:10s} ({r['state']}) top panel {r['top_panel']} "
                f"{'ok' if r['ok'] else 'WRONG'}"
            )
    save("panels", {"references": out, "populations": POPULATIONS})


if __name__ == "__main__":
    main()
