"""The mouse <-> human ortholog table shipped with mkcell (HGNC HCOP + Ensembl BioMart)."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from ._utils import data_path

#: How a candidate partner is ranked: HCOP support (number of resources agreeing)
#: plus a bonus when Ensembl BioMart calls the pair one-to-one.
BIOMART_ONE2ONE_BONUS = 2


@lru_cache(maxsize=1)
def ortholog_table() -> pd.DataFrame:
    """All mouse-human ortholog pairs with their evidence.

    Returns
    -------
    One row per (mouse, human) pair with columns ``mouse``, ``human``,
    ``hcop_support`` (number of HCOP resources; 0 if only in BioMart),
    ``biomart_type`` (``ortholog_one2one``, ... or ``""`` if only in HCOP) and
    ``score`` (``hcop_support`` + ``BIOMART_ONE2ONE_BONUS`` for BioMart one-to-one).
    """
    hcop = pd.read_csv(data_path("orthologs", "hcop_mouse_to_human.csv.gz"))
    hcop = hcop.rename(columns={"Gene name": "mouse", "Human gene name": "human"})
    hcop = hcop[(hcop["human"] != "-") & hcop["human"].notna() & hcop["mouse"].notna()]
    hcop["hcop_support"] = hcop["supporting_source"].str.split(",").str.len()
    hcop = hcop.groupby(["mouse", "human"], as_index=False)["hcop_support"].max()

    bm = pd.read_csv(data_path("orthologs", "biomart_mouse_to_human.csv.gz"))
    bm = bm.rename(
        columns={
            "Gene name": "mouse",
            "Human gene name": "human",
            "Human homology type": "biomart_type",
        }
    )
    bm = bm.dropna(subset=["mouse", "human"])[["mouse", "human", "biomart_type"]].drop_duplicates(
        ["mouse", "human"]
    )

    tab = hcop.merge(bm, on=["mouse", "human"], how="outer")
    tab["hcop_support"] = tab["hcop_support"].fillna(0).astype(int)
    tab["biomart_type"] = tab["biomart_type"].fillna("")
    tab["score"] = tab["hcop_support"] + BIOMART_ONE2ONE_BONUS * (
        tab["biomart_type"] == "ortholog_one2one"
    )
    return tab.sort_values(["mouse", "human"]).reset_index(drop=True)


def best_partners(source: str) -> pd.DataFrame:
    """Best-supported partner per ``source`` gene (``source`` is "mouse" or "human").

    Ties at the top score are resolved alphabetically and flagged in ``tie``.
    """
    target = "human" if source == "mouse" else "mouse"
    tab = ortholog_table().sort_values([source, "score", target], ascending=[True, False, True])
    n_cand = tab.groupby(source)[target].transform("size")
    top = tab.groupby(source)["score"].transform("max")
    n_top = (tab["score"] == top).groupby(tab[source]).transform("sum")
    tab = tab.assign(n_candidates=n_cand, tie=n_top > 1)
    return tab.drop_duplicates(source, keep="first").set_index(source)
