"""Clustered heatmap of HALLMARK_E2F_TARGETS across samples (patient-level view)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData

from .. import _keys as K
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
    table: pd.DataFrame | AnnData,
    sample_meta: pd.DataFrame | None = None,
    group_key: str | None = None,
    *,
    result: pd.DataFrame | None = None,
    key: str = K.E2F_CLUSTERS,
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

    Given an AnnData, it draws what ``mk.tl.e2f_clusters`` stored in ``adata.uns[key]``:
    its z-scores and its sample tree, annotated with the clusters, the tested covariate
    (platelets) or condition, and the condition; only the gene order is clustered here.
    Given a table, as below.

    The genes are those ``mk.tl.gsea`` recorded for ``gene_set`` in its result
    (the set's genes in the table, mapped to mouse orthologs for mouse symbols); the
    plot reads them and computes no gene set. Rows (genes) and columns (samples) are
    ordered by scipy hierarchical clustering and drawn with dendrograms; a strip on top
    colours samples by ``group_key``.

    Parameters
    ----------
    table
        Samples x genes log-scale expression (bulk or ``mk.tl.pseudobulk``), the table
        given to ``mk.tl.gsea``; or an AnnData holding ``uns[key]`` (then the other
        table arguments are not used).
    sample_meta
        Per-sample metadata indexed by the table's sample names.
    group_key
        Column of ``sample_meta`` coloured on top.
    result
        The table returned by ``mk.tl.gsea`` (its ``genes`` column).
    key
        Key of ``mk.tl.e2f_clusters``' results, for an AnnData.
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
    from scipy.cluster import hierarchy

    if isinstance(table, AnnData):
        return _from_clusters(table, key, "average", (vmax, cmap, gene_labels, figsize), save)
    if sample_meta is None or group_key is None or result is None:
        msg = "e2f_heatmap(table, sample_meta, group_key, result=...) needs all four for a table"
        raise MkcellError(msg)
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

    groups = meta.loc[samples, group_key].astype(str).to_numpy()
    fig = _draw(
        Z,
        genes,
        samples,
        (row_link, col_link),
        {group_key: groups},
        title=f"{gene_set} ({len(genes)} genes)",
        style=(vmax, cmap, gene_labels, figsize),
    )
    return finish(fig, save)


def _draw(
    Z: np.ndarray,
    genes: list[str],
    samples: pd.Index,
    links: tuple[np.ndarray, np.ndarray],
    annotations: dict[str, np.ndarray],
    *,
    title: str,
    style: tuple,
) -> Figure:
    """Heatmap of genes x samples ``Z`` with both dendrograms and one strip per annotation.

    Text annotations get Set2 colours and a legend; numeric ones a viridis strip labelled
    with their range.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from scipy.cluster import hierarchy

    vmax, cmap, gene_labels, figsize = style
    row_link, col_link = links
    n_ann = max(len(annotations), 1)
    fig = plt.figure(figsize=figsize)
    gs = fig.add_gridspec(
        3,
        3,
        width_ratios=[1.2, 6, 0.25],
        height_ratios=[1.2, 0.3 * n_ann, 8],
        wspace=0.02,
        hspace=0.02,
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
    palette = plt.get_cmap("Set2")
    handles, labels, offset = [], [], 0
    for i, (name, values) in enumerate(annotations.items()):
        values = np.asarray(values)
        extent = (-0.5, len(co) - 0.5, i + 0.5, i - 0.5)
        if values.dtype.kind in "fiu":
            v = values.astype(float)[co]
            ax_grp.imshow(v[None, :], aspect="auto", cmap="viridis", extent=extent)
            labels.append(f"{name} ({np.nanmin(v):.3g}-{np.nanmax(v):.3g})")
            continue
        levels = list(dict.fromkeys(sorted(values.astype(str))))
        # each annotation takes the next colours of the palette, so strips stay distinct
        code = np.array([levels.index(g) for g in values.astype(str)])[co] + offset
        ax_grp.imshow(
            code[None, :] % palette.N,
            aspect="auto",
            cmap=palette,
            vmin=0,
            vmax=palette.N - 1,
            interpolation="nearest",
            extent=extent,
        )
        handles += [
            Patch(color=palette((offset + j) % palette.N), label=f"{name}: {lv}")
            for j, lv in enumerate(levels)
        ]
        offset = (offset + len(levels)) % palette.N
        labels.append(name)
    ax_grp.set_xlim(-0.5, len(co) - 0.5)
    ax_grp.set_ylim(n_ann - 0.5, -0.5)
    ax_grp.set_xticks([])
    ax_grp.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xticks(range(len(co)), samples[co], rotation=90, fontsize=7)
    show = len(genes) <= 60 if gene_labels is None else gene_labels
    ax.yaxis.tick_right()
    if show:
        ax.set_yticks(range(len(ro)), [genes[i] for i in ro], fontsize=6)
    else:
        ax.set_yticks([])
    ax_top.set_title(title, fontsize=10)
    fig.colorbar(im, cax=ax_cb, label="z-score across samples")
    if handles:
        ax_top.legend(
            handles=handles,
            loc="lower left",
            bbox_to_anchor=(1.0, 0.0),
            frameon=False,
            fontsize=8,
        )
    return fig


def _from_clusters(
    adata: AnnData, key: str, method: str, style: tuple, save: str | os.PathLike | None
) -> Figure:
    """The heatmap of ``adata.uns[key]`` written by ``mk.tl.e2f_clusters``."""
    from scipy.cluster import hierarchy

    res = adata.uns.get(key)
    if not isinstance(res, dict) or "z" not in res or "linkage" not in res:
        msg = f"no `adata.uns[{key!r}]`; run mk.tl.e2f_clusters(adata, covariate=...) first"
        raise MkcellError(msg)
    z, tab = res["z"], res["table"]
    Z = z.to_numpy(float).T  # genes x samples
    genes = [str(g) for g in z.columns]
    row_link = hierarchy.linkage(Z, method=method, metric="euclidean")
    params = res["params"]
    col = params.get("covariate") or params.get("groupby")
    ann = {"cluster": tab["cluster"].astype(str).to_numpy()}
    for c in dict.fromkeys([col, K.CONDITION]):
        if c in tab.columns:
            ann[str(c)] = tab[c].to_numpy()
    title = (
        f"E2F targets + Aurora ({len(genes)} genes); E2F-high vs {params['tested_group']}: "
        f"Fisher p = {res['fisher_p']:.2g}"
    )
    fig = _draw(
        Z,
        genes,
        pd.Index(tab["sample"].astype(str)),
        (row_link, np.asarray(res["linkage"])),
        ann,
        title=title,
        style=style,
    )
    return finish(fig, save)
