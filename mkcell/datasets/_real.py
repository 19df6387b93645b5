"""Small real datasets shipped with mkcell (see mkcell/data/real/PROVENANCE.md)."""

from __future__ import annotations

import anndata as ad
from anndata import AnnData

from .._utils import data_path


def paul15_subset() -> AnnData:
    """Paul et al. 2015 (GSE72857) mouse myeloid progenitors: 2,660 cells x 240 genes, raw UMIs.

    The tradeSeq subset with Paul cluster IDs (``paul15_clusters``: ``7MEP``, ``8Mk``...),
    batch columns and the published Slingshot pseudotime (``slingPseudotime_1/2``).
    """
    return ad.read_h5ad(data_path("real", "paul15_tradeseq.h5ad"))


def olsson16_fig1b() -> AnnData:
    """Olsson et al. 2016 (GSE70245) Fig. 1b: 382 mouse progenitors x 532 genes.

    Values are row-centred log2 expression, NOT counts; ``olsson_celltype`` has a
    ``Meg`` cluster (18 cells).
    """
    return ad.read_h5ad(data_path("real", "olsson2016_fig1b.h5ad"))
