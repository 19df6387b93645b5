"""The query on the reference's embedding (mode=map)."""

from __future__ import annotations

import os

import numpy as np
from anndata import AnnData
from matplotlib.figure import Figure

from .. import _keys as K
from .._settings import MkcellError
from ._utils import finish


def reference_map(
    adata: AnnData,
    *,
    sample_key: str = K.SAMPLE,
    save: str | os.PathLike | None = None,
) -> Figure:
    """Plot mapped query cells on the reference's UMAP: by sample, by state, and as a density.

    Reads ``uns['mk_map']['reference_umap']`` and ``obsm['X_mk_umap']`` (both written by
    ``mk.tl.map_to_reference``); reference cells are grey, ``unknown`` query
    cells black.

    Parameters
    ----------
    adata
        Mapped query cells.
    sample_key
        ``obs`` column of the query samples.
    save
        Path to save the figure to.

    Returns
    -------
    The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    res = adata.uns.get(K.MAP)
    if not isinstance(res, dict) or "reference_umap" not in res or K.UMAP not in adata.obsm:
        msg = (
            "no mapping onto a reference with a UMAP; "
            "run mk.tl.map_to_reference(adata, reference) first"
        )
        raise MkcellError(msg)
    R = np.asarray(res["reference_umap"])
    Q = np.asarray(adata.obsm[K.UMAP])[:, :2]
    states = adata.obs[K.STATE].astype(str).to_numpy()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax in axes:
        ax.scatter(R[:, 0], R[:, 1], s=2, color="#d9d9d9", rasterized=True, label="reference")
        ax.set_xticks([])
        ax.set_yticks([])
    samples = adata.obs[sample_key].astype(str).to_numpy() if sample_key in adata.obs else states
    cmap = plt.get_cmap("tab20")
    for i, s in enumerate(np.unique(samples)):
        m = samples == s
        axes[0].scatter(Q[m, 0], Q[m, 1], s=3, color=cmap(i % 20), label=s, rasterized=True)
    axes[0].set_title("query samples on the reference")
    axes[0].legend(markerscale=3, fontsize=6, frameon=False, loc="best")
    cats = [c for c in K.MAPPED_STATES if (states == c).any()]
    tab = plt.get_cmap("tab10")
    for i, c in enumerate(cats):
        m = states == c
        color = "black" if c == K.UNKNOWN else tab(i % 10)
        axes[1].scatter(
            Q[m, 0], Q[m, 1], s=3, color=color, label=f"{c} ({m.sum()})", rasterized=True
        )
    axes[1].set_title("transferred state (unknown: black)")
    axes[1].legend(markerscale=3, fontsize=6, frameon=False, loc="best")
    lo, hi = R.min(0), R.max(0)
    rng = [[lo[0], hi[0]], [lo[1], hi[1]]]
    hq, xe, ye = np.histogram2d(Q[:, 0], Q[:, 1], bins=25, range=rng, density=True)
    hr, _, _ = np.histogram2d(R[:, 0], R[:, 1], bins=25, range=rng, density=True)
    axes[2].contour(
        (xe[:-1] + xe[1:]) / 2,
        (ye[:-1] + ye[1:]) / 2,
        hr.T,
        levels=5,
        colors="grey",
        linewidths=0.6,
    )
    axes[2].imshow(
        np.log1p(hq.T),
        origin="lower",
        extent=(*rng[0], *rng[1]),
        aspect="auto",
        cmap="magma_r",
        alpha=0.8,
    )
    axes[2].set_title("query density (reference: contours)")
    share = res.get("share_confident", np.nan)
    fig.suptitle(
        f"{adata.n_obs} query cells: {share:.0%} mapped confidently, "
        f"{res.get('share_unknown', 0):.1%} unknown",
        fontsize=10,
    )
    fig.tight_layout()
    return finish(fig, save)
