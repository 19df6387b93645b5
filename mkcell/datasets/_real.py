"""Small real datasets shipped with mkcell (sources: mkcell/data/real/PROVENANCE_*.md)."""

from __future__ import annotations

import anndata as ad
from anndata import AnnData

from .._utils import data_path

#: Paul et al. 2015 clusters -> mkcell states. Paul sorted Lin- c-Kit+ Sca-1- myeloid progenitors
#: (their Fig. 1), a gate that holds no mature, polyploid megakaryocytes; cluster 8 ("Mk", Pf4,
#: Itga2b, Gp9 high) is the Mk-committed progenitor cluster, so it maps to ``MkP``. The same answer
#: is in ``configs/experiment/paul15_real.yaml``.
PAUL15_STATES = {
    **{f"{i}Ery": "erythroid" for i in range(1, 7)},
    "7MEP": "MEP",
    "8Mk": "MkP",
    "9GMP": "myeloid",
    "10GMP": "myeloid",
    "11DC": "other",
    "12Baso": "myeloid",
    "13Baso": "myeloid",
    "14Mo": "myeloid",
    "15Mo": "myeloid",
    "16Neu": "myeloid",
    "17Neu": "myeloid",
    "18Eos": "myeloid",
    "19Lymph": "other",
}


def paul15_subset() -> AnnData:
    """Paul et al. 2015 (GSE72857) mouse myeloid progenitors: 2,660 cells x 240 genes, raw UMIs.

    The tradeSeq subset with Paul cluster IDs (``paul15_clusters``: ``7MEP``, ``8Mk``...),
    batch columns, the published Slingshot pseudotimes and weights (``slingPseudotime_1/2``,
    ``slingWeight_1/2``, defined for every cell; lineage 1 runs from MEP through cluster 8
    on into the GMP / myeloid clusters, lineage 2 is erythroid), ``obs['paul15_state']``
    (clusters mapped to mkcell states with :data:`PAUL15_STATES`) and
    ``obs['species'] = "mouse"``.
    """
    adata = ad.read_h5ad(data_path("real", "paul15_tradeseq.h5ad"))
    adata.obs["paul15_state"] = (
        adata.obs["paul15_clusters"].astype(str).map(PAUL15_STATES).astype("category")
    )
    adata.obs["species"] = "mouse"
    return adata


def olsson16_fig1b() -> AnnData:
    """Olsson et al. 2016 (GSE70245) Fig. 1b: 382 mouse progenitors x 532 genes.

    Values are log2 expression centred per gene (each gene's median is 0: the rows of
    the published heatmap table), NOT counts; ``olsson_celltype`` has a ``Meg`` cluster
    (18 cells).
    """
    return ad.read_h5ad(data_path("real", "olsson2016_fig1b.h5ad"))


def zhu2021_cd34(*, symbols: bool = True) -> AnnData:
    """Zhu et al. 2021 (GSE145531): 177 human Lin-CD34+ marrow cells, full-length, raw read counts.

    One non-severe aplastic-anaemia patient (``donor`` P17, ``condition`` ``nonSAA``, 86
    cells) and one healthy donor (Ctrl3, ``control``, 91 cells); no cell-type labels, no
    replicates. Shipped with Ensembl gene IDs (every gene with any count); see
    ``mkcell/data/real/PROVENANCE_zhu2021.md``.

    Parameters
    ----------
    symbols
        Map the Ensembl IDs to gene symbols as :func:`mkcell.io.read` does (IDs sharing a
        symbol summed, the per-gene report in ``uns['mk_gene_ids']``); ``False`` keeps the IDs.
    """
    from ..io._gene_ids import to_symbols

    adata = ad.read_h5ad(data_path("real", "zhu2021_cd34.h5ad"))
    adata.X = adata.X.tocsr()
    if symbols:
        adata = to_symbols(adata, species="human", where="zhu2021_cd34")
    adata.obs["species"] = "human"
    return adata
