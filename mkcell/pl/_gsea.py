"""Clustered heatmap of HALLMARK_E2F_TARGETS across samples (patient-level view)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._settings import MkcellError
from ._utils import finish

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _set_genes(result: pd.DataFrame, gene_set: str, genes: pd.Index) -> list[str]:
    """The genes of ``gene_set`` recorded by ``mk.tl.gsea`` in ``result``, in the table."""
    if not isinstance(result, pd.DataFrame) or not {"term", "genes"} <= set(result.columns):
        msg = "result must be the table returned by mk.tl.gsea (with columns 'term' and 'genes')"
        raise MkcellError(msg)
    row = result.loc[result["term"].astype(str) == gene_set, "genes"]
    if row.empty:
        terms = sorted(result["term"].astype(str))
        msg = (
            f"gene set {gene_set!r} is not in the GSEA result (terms: {terms[:10]}); run "
            "mk.tl.gsea with it (and min_size / max_size that keep it)"
        )
        raise MkcellError(msg)
    have = set(genes)
    return [g for g in dict.fromkeys(str(row.iloc[0]).split(";")) if g and g in have]


def e2f_heatmap(
    table: pd.DataFrame,
    sample_meta: pd.DataFrame,
    group_key: str,
    *,
    result: pd.DataFrame,
    gene_set: str = "HALLMARK_E2F_TARGETS",
    method: str = "average",
    metric: str = "correlation",
    vmax: float = 2.5,
    cmap: str = "RdBu_r",
    gene_labels: bool | None = None,
    figsize: tuple[float, float] = (7.0, 9.0),
    save: str | os.PathLike | None = None,
) -> Figure:
    """Clustered heatmap of a gene set's genes, z-scored across samples.

    The genes are those ``mk.tl.gsea`` recorded for ``gene_set`` in its result
    (the set's genes in the table, mapped to mouse orthologs for mouse symbols); the
    plot reads them and computes no gene set. Rows (genes) and columns (samples) are
    ordered by scipy hierarchical clustering and drawn with dendrograms; a strip on top
    colours samples by ``group_key``.

    Parameters
    ----------
    table
        Samples x genes log-scale expression (bulk or ``mk.tl.pseudobulk``), the table
        given to ``mk.tl.gsea``.
    sample_meta
        Per-sample metadata indexed by the table's sample names.
    group_key
        Column of ``sample_meta`` coloured on top.
    result
        The table returned by ``mk.tl.gsea`` (its ``genes`` column).
    gene_set
        Name of the set (default Hallmark E2F targets), a ``term`` of ``result``.
    method, metric
        Linkage method and distance of :func:`scipy.cluster.hierarchy.linkage`.
    vmax
        Colour limit of the z-scores.
    cmap
        Diverging colormap.
    gene_labels
        Write gene names (default: when at most 60 genes).
    figsize
        Figure size in inches.
    save
        Write the figure to this path.

    Returns
    -------
    The matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from scipy.cluster import hierarchy

    if group_key not in sample_meta.columns:
        msg = f"no column {group_key!r} in sample_meta; columns: {list(sample_meta.columns)}"
        raise MkcellError(msg)
    samples = table.index.astype(str)
    meta = sample_meta.set_axis(sample_meta.index.astype(str))
    if not samples.isin(meta.index).all():
        msg = "sample_meta must be indexed by the table's sample names (its rows)"
        raise MkcellError(msg)
    genes = _set_genes(result, gene_set, table.columns.astype(str))
    X = (
        table.set_axis(table.columns.astype(str), axis=1)[genes].to_numpy(float).T
    )  # genes x samples
    sd = X.std(axis=1)
    X, genes = X[sd > 0], [g for g, s in zip(genes, sd, strict=True) if s > 0]
    if len(genes) < 2 or X.shape[1] < 2:
        msg = (
            f"{gene_set}: {len(genes)} varying genes over {X.shape[1]} samples; "
            "need 2 of each to cluster"
        )
        raise MkcellError(msg)
    Z = (X - X.mean(1, keepdims=True)) / X.std(1, keepdims=True)
    row_link = hierarchy.linkage(Z, method=method, metric=metric)
    col_link = hierarchy.linkage(
        Z.T, method=method, metric=metric if np.all(Z.T.std(1) > 0) else "euclidean"
    )

    fig = plt.figure(figsize=figsize)
    gs = fig.add_gridspec(
        3, 3, width_ratios=[1.2, 6, 0.25], height_ratios=[1.2, 0.3, 8], wspace=0.02, hspace=0.02
    )
    ax_top = fig.add_subplot(gs[0, 1])
    ax_grp = fig.add_subplot(gs[1, 1])
    ax_left = fig.add_subplot(gs[2, 0])
    ax = fig.add_subplot(gs[2, 1])
    ax_cb = fig.add_subplot(gs[2, 2])
    col_d = hierarchy.dendrogram(
        col_link, ax=ax_top, no_labels=True, color_threshold=0, above_threshold_color="0.3"
    )
    row_d = hierarchy.dendrogram(
        row_link,
        ax=ax_left,
        orientation="left",
        no_labels=True,
        color_threshold=0,
        above_threshold_color="0.3",
    )
    for a in (ax_top, ax_left):
        a.set_axis_off()
    co, ro = col_d["leaves"], row_d["leaves"][::-1]
    im = ax.imshow(
        Z[np.ix_(ro, co)], aspect="auto", cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest"
    )
    groups = meta.loc[samples, group_key].astype(str).to_numpy()
    levels = list(dict.fromkeys(sorted(groups)))
    palette = plt.get_cmap("Set2")
    code = np.array([levels.index(g) for g in groups])[co]
    ax_grp.imshow(
        code[None, :],
        aspect="auto",
        cmap=palette,
        vmin=0,
        vmax=palette.N - 1,
        interpolation="nearest",
    )
    ax_grp.set_xticks([])
    ax_grp.set_yticks([0], [group_key])
    ax.set_xticks(range(len(co)), samples[co], rotation=90, fontsize=7)
    show = len(genes) <= 60 if gene_labels is None else gene_labels
    ax.yaxis.tick_right()
    if show:
        ax.set_yticks(range(len(ro)), [genes[i] for i in ro], fontsize=6)
    else:
        ax.set_yticks([])
    ax_top.set_title(f"{gene_set} ({len(genes)} genes)", fontsize=10)
    fig.colorbar(im, cax=ax_cb, label="z-score across samples")
    ax_top.legend(
        handles=[Patch(color=palette(i), label=lv) for i, lv in enumerate(levels)],
        loc="lower left",
        bbox_to_anchor=(1.0, 0.0),
        frameon=False,
        fontsize=8,
        title=group_key,
    )
    return finish(fig, save)
