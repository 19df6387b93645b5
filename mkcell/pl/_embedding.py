"""Embeddings coloured by obs columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anndata import AnnData

from .. import _keys as K
from .._settings import MkcellError
from ._utils import finish

#: Categorical panels with more categories than this put their legend beside the panel.
LEGEND_INSIDE = 8


def _n_categories(values: object) -> int:
    """Categories of a categorical obs column (0 for a numeric one)."""
    if getattr(values, "dtype", None) is not None and values.dtype.kind in "fiu":
        return 0
    return len(values.astype("category").cat.categories)


def embedding(
    adata: AnnData,
    color: str | list[str] = (K.SPECIES, K.SAMPLE, K.STATE),
    *,
    basis: str = K.UMAP,
    title: str | None = None,
    seed: int = 0,
    save: str | Path | None = None,
):  # noqa: ANN201
    """Scatter of ``obsm[basis]`` with one panel per ``color`` column (missing columns are skipped).

    Points are drawn in one random order (seeded) for every panel and category, so no
    group — e.g. the mouse cells, drawn before the human ones in category order — hides
    under another.

    Parameters
    ----------
    adata
        Cells with ``adata.obsm[basis]``.
    color
        Column(s) of ``adata.obs``: one panel each.
    basis
        Key of the 2-D embedding in ``adata.obsm``.
    title
        Figure title.
    seed
        Seed of the drawing order.
    save
        Also write the figure to this path.

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
    n_wide = sum(_n_categories(adata.obs[c]) > LEGEND_INSIDE for c in cols)
    fig, axes = plt.subplots(
        1, len(cols), figsize=(4.2 * len(cols) + 1.6 * n_wide, 4), squeeze=False
    )
    order = np.random.default_rng(seed).permutation(adata.n_obs)
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
            palette = np.array([cmap(i % cmap.N) for i in range(len(cats.cat.categories))])
            codes = cats.cat.codes.to_numpy()[order]
            shown = codes >= 0  # NaN: not drawn
            ax.scatter(
                xy[order][shown, 0],
                xy[order][shown, 1],
                s=3,
                color=palette[codes[shown]],
                rasterized=True,
            )
            if len(cats.cat.categories) <= 20:
                handles = [
                    plt.Line2D([], [], ls="", marker="o", ms=4, color=palette[i], label=str(cat))
                    for i, cat in enumerate(cats.cat.categories)
                ]
                # a long legend goes beside the panel, where it hides no point
                outside = {"loc": "upper left", "bbox_to_anchor": (1.0, 1.0)}
                where = outside if len(handles) > LEGEND_INSIDE else {"loc": "best"}
                ax.legend(handles=handles, fontsize=7, frameon=False, **where)
        ax.set_title(col)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return finish(fig, save)
