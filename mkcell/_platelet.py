"""The platelet transcript profile: what platelets (or their fragments) add to a droplet.

Platelets carry little RNA, dominated by a few megakaryocyte transcripts (PPBP and PF4 first;
Rowley 2011 Blood, Campbell 2021 platelet RNA-seq). A platelet stuck to another cell, or
platelet RNA in the ambient soup, adds this profile to that cell's counts. The same genes are
part of the Mk marker panel, which is why platelet contamination looks like Mk identity:
mk.pp.qc judges it only in cells whose other programs say they are not Mk lineage.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._species import species_gene_set

#: Human symbols and their share of platelet transcripts (relative weights; they sum to 1).
PLATELET_PROFILE = {
    "PPBP": 0.28,
    "PF4": 0.24,
    "NRGN": 0.06,
    "GNG11": 0.05,
    "TUBB1": 0.05,
    "GP9": 0.04,
    "SPARC": 0.03,
    "CAVIN2": 0.03,
    "OST4": 0.03,
    "ITGA2B": 0.03,
    "GP1BB": 0.03,
    "CLU": 0.03,
    "TREML1": 0.02,
    "RGS18": 0.02,
    "CMTM5": 0.02,
    "ACRBP": 0.02,
    "TAGLN2": 0.02,
}


def platelet_profile(var_names: Sequence[str]) -> dict[str, float]:
    """The platelet profile on the genes of ``var_names`` (human or mouse symbols), renormalised.

    Empty when none of the platelet genes is present.
    """
    names = set(map(str, var_names))
    out = {}
    for human, weight in PLATELET_PROFILE.items():
        for g in species_gene_set({human}, var_names):
            if g in names:
                out[g] = out.get(g, 0.0) + weight
    total = sum(out.values())
    return {g: w / total for g, w in out.items()} if total else {}
