"""Integration features: highly variable genes per sample, markers forced in, cycle genes out."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from .. import _keys as K
from .._genesets import cycle_genes
from .._markers import marker_panels
from .._settings import MkcellError, logger
from .._species import species_gene_set
from .._utils import check_adata, get_counts, log_write


def highly_variable_genes(
    adata: AnnData,
    *,
    n_top_genes: int = 2000,
    batch_key: str | None = K.SAMPLE,
    exclude_cycle_genes: bool = True,
    exclude_cycle_linked: bool = False,
    cycle_r: float = 0.2,
    include_markers: bool = True,
    layer: str | None = None,
    seed: int = 0,
    key_added: str = K.HVG,
) -> None:
    """Choose the features used for integration (and so for the trajectory).

    Highly variable genes are chosen on raw counts with scanpy's ``seurat_v3``
    flavour per ``batch_key`` (sample). The Mk-lineage and context marker panels are
    always added. Cell-cycle, E2F, mitotic-spindle and cytokinesis genes are left out
    when ``exclude_cycle_genes`` (default): cycling is strongest in progenitors and,
    in the features, dominates the neighbourhood graph and scrambles maturation
    order. Listed genes are not enough: in marrow each phase also moves many genes in
    no published list. With ``exclude_cycle_linked`` (off by default) those are found from the
    data (``mkcell.pp._cycle.cycle_linked_genes``: partial correlation with the S / G2M
    score within marker-panel states, lineage position regressed out) and left out
    too; the table of every candidate gene with its statistic is in
    ``uns[key_added]['cycle_linked']``. All genes stay in ``adata`` for scoring; only
    ``var[key_added]`` is set.

    Parameters
    ----------
    adata
        Raw counts, e.g. from :func:`mkcell.pp.concat_species`.
    n_top_genes
        Number of highly variable genes before markers are added and cycle genes removed.
    batch_key
        ``obs`` column; genes are ranked within each batch (None: all cells at once).
    exclude_cycle_genes
        Leave the built-in cycle / E2F / mitotic / cytokinesis genes out.
    exclude_cycle_linked
        Also leave out genes whose expression tracks the cycle scores within states
        (marker-panel genes stay in).
    cycle_r
        Partial-correlation threshold for ``exclude_cycle_linked``.
    include_markers
        Always include the marker-panel genes present.
    layer
        Layer with raw counts (default ``counts`` if present, else ``X``).
    seed
        Seed for the cycle scores' control genes and for subsampling large states.
    key_added
        ``var`` column written (bool).
    """
    import scanpy as sc

    check_adata(adata, min_obs=2, min_vars=2)
    counts = get_counts(adata, layer)
    if batch_key is not None and batch_key not in adata.obs:
        msg = f"no batch column `adata.obs[{batch_key!r}]`; pass batch_key= an obs column or None"
        raise MkcellError(msg)
    tmp = AnnData(
        X=counts,
        obs=adata.obs[[batch_key]].copy() if batch_key else None,
        var=pd.DataFrame(index=adata.var_names),
    )
    eligible = (
        ~adata.var["species_only"].to_numpy()
        if "species_only" in adata.var
        else np.ones(adata.n_vars, bool)
    )
    tmp = tmp[:, eligible].copy()
    n_top = min(n_top_genes, tmp.n_vars)
    batch = batch_key
    if batch_key is not None:
        sizes = tmp.obs[batch_key].value_counts()
        if (sizes < 10).any():  # seurat_v3 needs a few cells per batch
            logger.info("batches with < 10 cells; choosing highly variable genes over all cells")
            batch = None
    try:
        sc.pp.highly_variable_genes(
            tmp, flavor="seurat_v3", n_top_genes=n_top, batch_key=batch, subset=False
        )
    except ValueError as err:  # loess can fail on tiny or degenerate batches
        logger.info("per-batch seurat_v3 failed (%s); retrying over all cells", err)
        sc.pp.highly_variable_genes(tmp, flavor="seurat_v3", n_top_genes=n_top, subset=False)
    hvg = pd.Series(False, index=adata.var_names)
    hvg[tmp.var_names[tmp.var["highly_variable"].to_numpy()]] = True
    n_hvg = int(hvg.sum())
    markers = set()
    if include_markers:
        panel = marker_panels()
        markers = species_gene_set(set(panel["human"]), adata.var_names) & set(
            adata.var_names[eligible]
        )
        hvg[list(markers)] = True
    cyc = species_gene_set(cycle_genes(), adata.var_names) & set(adata.var_names)
    if exclude_cycle_genes:
        hvg[list(cyc)] = False
    linked = None
    if exclude_cycle_linked:
        linked = _cycle_linked(adata, layer, hvg, markers, cycle_r, seed)
        hvg[linked.loc[linked["cycle_linked"], "gene"].to_numpy()] = False
    adata.var[key_added] = hvg.to_numpy()
    adata.uns[key_added] = {
        "params": {
            "n_top_genes": n_top_genes,
            "batch_key": batch_key,
            "flavor": "seurat_v3",
            "exclude_cycle_genes": exclude_cycle_genes,
            "exclude_cycle_linked": exclude_cycle_linked,
            "cycle_r": cycle_r,
            "include_markers": include_markers,
            "seed": seed,
        },
        "n_highly_variable": n_hvg,
        "n_markers_added": len(markers),
        "n_cycle_genes_excluded": len(cyc) if exclude_cycle_genes else 0,
        "n_cycle_linked_excluded": int(linked["cycle_linked"].sum()) if linked is not None else 0,
        "n_features": int(hvg.sum()),
    }
    if linked is not None:
        adata.uns[key_added]["cycle_linked"] = linked
    logger.info(
        "%d integration features (%d HVG, markers forced in, %d listed cycle genes and "
        "%d cycle-linked genes left out)",
        hvg.sum(),
        n_hvg,
        len(cyc) if exclude_cycle_genes else 0,
        adata.uns[key_added]["n_cycle_linked_excluded"],
    )
    log_write("var", key_added)


def _cycle_linked(
    adata: AnnData,
    layer: str | None,
    hvg: pd.Series,
    markers: set[str],
    threshold: float,
    seed: int,
) -> pd.DataFrame:
    """Test non-marker candidate features for cycle linkage (``_cycle.cycle_linked_genes``)."""
    from .._markers import panel_scores
    from ._cycle import cycle_linked_genes, scores_from_lognorm
    from ._normalize import log_normalize

    X = log_normalize(adata, layer)
    panels, _ = panel_scores(adata, X)
    if panels.shape[1] == 0:
        logger.info(
            "no marker panel can be scored: cycle-linked genes are searched over all cells at once"
        )
        states = np.zeros(adata.n_obs, dtype=int)
    else:
        states = panels.columns.to_numpy()[panels.to_numpy().argmax(1)]
    scores = scores_from_lognorm(adata, X, seed=seed)
    cand = np.flatnonzero(hvg.to_numpy() & ~adata.var_names.isin(list(markers)))
    table = cycle_linked_genes(
        X[:, cand], adata.var_names[cand], scores, states, panels, threshold=threshold, seed=seed
    )
    logger.info(
        "%d of %d candidate features track the cycle within states (|partial r| > %.2f)",
        table["cycle_linked"].sum(),
        len(cand),
        threshold,
    )
    return table
