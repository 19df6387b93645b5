"""Embeddings coloured by obs columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anndata import AnnData

from .. import _keys as K
from .._settings import MkcellError
from ._utils import finish


def embedding(
    adata: AnnData,
    color: str | list[str] = (K.SPECIES, K.SAMPLE, K.STATE),
    *,
    basis: str = K.UMAP,
    title: str | None = None,
    save: str | Path | None = None,
):  # noqa: ANN201
    """Scatter of ``obsm[basis]`` with one panel per ``color`` column (missing columns are skipped).

    Returns
    -------
    matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if basis not in adata.obsm:
        msg = f"no `adata.obsm[{basis!r}]`; run mk.tl.umap(adata) first"
        raise MkcellError(msg)
    cols = [c for c in ([color] if isinstance(color, str) else list(color)) if c in adata.obs]
    if not cols:
        msg = f"none of {color} is an obs column"
        raise MkcellError(msg)
    xy = np.asarray(adata.obsm[basis])[:, :2]
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 4), squeeze=False)
    order = np.random.default_rng(0).permutation(adata.n_obs)
    for ax, col in zip(axes[0], cols, strict=True):
        values = adata.obs[col]
        if values.dtype.kind in "fiu":
            sc_ = ax.scatter(
                xy[order, 0],
                xy[order, 1],
                c=values.to_numpy()[order],
                s=3,
                cmap="viridis",
                rasterized=True,
            )
            fig.colorbar(sc_, ax=ax, shrink=0.7)
        else:
            cats = values.astype("category")
            cmap = plt.get_cmap("tab20" if len(cats.cat.categories) > 10 else "tab10")
            for i, cat in enumerate(cats.cat.categories):
                m = (cats == cat).to_numpy()
                ax.scatter(
                    xy[m, 0], xy[m, 1], s=3, color=cmap(i % cmap.N), label=str(cat), rasterized=True
                )
            if len(cats.cat.categories) <= 20:
                ax.legend(markerscale=3, fontsize=7, frameon=False, loc="best")
        ax.set_title(col)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return finish(fig, save)
