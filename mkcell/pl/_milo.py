"""Milo neighbourhoods: differential abundance on the embedding and along pseudotime."""

from __future__ import annotations

import os

import numpy as np
from anndata import AnnData
from matplotlib.figure import Figure

from .. import _keys as K
from ._pool import read_uns
from ._utils import finish, panel_save_returns_doc


@panel_save_returns_doc
def da_neighbourhoods(
    adata: AnnData,
    key: str = K.MILO,
    *,
    basis: str | None = None,
    alpha: float | None = None,
    panel_size: tuple[float, float] = (4.0, 3.5),
    save: str | os.PathLike | None = None,
) -> Figure:
    """Plot Milo neighbourhoods of ``mk.tl.da_neighbourhoods``.

    One row per species and contrast: left, the neighbourhood index cells on the
    embedding coloured by logFC (grey: SpatialFDR ≥ ``alpha``); right, logFC against
    the mean pseudotime of each neighbourhood with the binned mean.

    Parameters
    ----------
    adata
        AnnData holding ``adata.uns[key]``.
    key
        Key of the Milo results in ``adata.uns``.
    basis
        Embedding in ``adata.obsm`` for the left panel (default ``X_mk_umap`` if
        present, else the embedding used for the test, first two dimensions).
    alpha
        SpatialFDR threshold (default the one used by the tool).
    {panel_save_returns}
    """
    res = read_uns(adata, key, "mk.tl.da_neighbourhoods", ("nhoods",))
    nh, params = res["nhoods"], res.get("params", {})
    alpha = params.get("alpha", 0.1) if alpha is None else alpha
    if basis is None:
        basis = K.UMAP if K.UMAP in adata.obsm else params.get("use_rep", K.LATENT)
    emb = np.asarray(adata.obsm[basis])[:, :2] if basis in adata.obsm else None
    pos = {n: i for i, n in enumerate(adata.obs_names)}
    groups = list(nh.groupby(["species", "contrast"], sort=False)) or [(("none", "none"), nh)]
    fig = Figure(figsize=(2 * panel_size[0], panel_size[1] * len(groups)), layout="constrained")
    axes = fig.subplots(len(groups), 2, squeeze=False)
    vmax = (
        float(np.nanmax(np.abs(nh["logFC"]))) if len(nh) and np.isfinite(nh["logFC"]).any() else 1.0
    )
    for row, ((sp_name, contrast), g) in zip(axes, groups, strict=True):
        sig = (g["SpatialFDR"] < alpha).to_numpy()
        ax = row[0]
        idx = np.array([pos.get(c, -1) for c in g["index_cell"]], dtype=int)
        if emb is not None and (idx >= 0).any():
            sp_cells = (
                adata.obs[K.SPECIES].astype(str).to_numpy() == sp_name
                if K.SPECIES in adata.obs
                else slice(None)
            )
            ax.scatter(*emb[sp_cells].T, s=1, color="0.9", rasterized=True)
            ok = idx >= 0
            size = 4 + 40 * g["n_cells"].to_numpy(float) / max(g["n_cells"].max(), 1)
            ax.scatter(*emb[idx[ok & ~sig]].T, s=size[ok & ~sig], color="0.6", edgecolor="none")
            sc = ax.scatter(
                *emb[idx[ok & sig]].T,
                s=size[ok & sig],
                c=g["logFC"].to_numpy()[ok & sig],
                cmap="RdBu_r",
                vmin=-vmax,
                vmax=vmax,
                edgecolor="k",
                linewidth=0.3,
            )
            fig.colorbar(sc, ax=ax, label="logFC", shrink=0.8)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_xlabel(f"{basis} 1"), ax.set_ylabel(f"{basis} 2")
        else:
            ax.text(
                0.5,
                0.5,
                "index cells not in this AnnData",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        ax.set_title(
            f"{sp_name}: {contrast} (SpatialFDR < {alpha:g}: {int(sig.sum())})",
            fontsize=8,
            loc="left",
        )
        ax = row[1]
        x, y = g["mean_pseudotime"].to_numpy(float), g["logFC"].to_numpy(float)
        ax.scatter(x[~sig], y[~sig], s=10, color="0.6", label="n.s.")
        ax.scatter(x[sig], y[sig], s=14, color="C3", label=f"SpatialFDR < {alpha:g}")
        bins = res.get("by_pseudotime")
        if bins is not None and len(bins):
            b = bins[(bins["species"] == sp_name) & (bins["contrast"] == contrast)]
            ax.plot(b["bin_mid"], b["mean_logFC"], color="k", marker="o", label="bin mean")
        ax.axhline(0, color="k", linewidth=0.5)
        ax.set_xlabel("mean pseudotime of neighbourhood")
        ax.set_ylabel("logFC (A vs B)")
        ax.legend(fontsize=7, frameon=False)
    return finish(fig, save)
