"""Pseudotime density of Mk-lineage cells per condition and species."""

from __future__ import annotations

import os

import numpy as np
from anndata import AnnData
from matplotlib.figure import Figure

from .. import _keys as K
from .._settings import MkcellError
from .._utils import check_obs_key
from ._utils import finish, panel_save_returns_doc


@panel_save_returns_doc
def pseudotime_density(
    adata: AnnData,
    condition_key: str = K.CONDITION,
    *,
    species_key: str = K.SPECIES,
    pseudotime_key: str = K.PSEUDOTIME,
    key: str = K.MATURATION,
    bins: int = 30,
    panel_size: tuple[float, float] = (4.0, 3.0),
    save: str | os.PathLike | None = None,
) -> Figure:
    """Plot the density of ``adata.obs[pseudotime_key]`` per condition, one panel per species.

    The MkP→Mk transition of ``mk.tl.maturation_shift`` (``adata.uns[key]``)
    is drawn when present, with its Wasserstein and mean-shift results.

    Parameters
    ----------
    adata
        Annotated cells with a pseudotime column.
    condition_key
        Column of ``adata.obs`` with the conditions.
    species_key
        Column with the species (one panel each; missing: one panel).
    pseudotime_key
        Column with the Mk pseudotime (NaN off the lineage).
    key
        Key of ``mk.tl.maturation_shift`` results in ``adata.uns`` (optional).
    bins
        Histogram bins on [0, 1].
    {panel_save_returns}
    """
    check_obs_key(adata, pseudotime_key, what="pseudotime column (run mk.tl.trajectory first)")
    check_obs_key(adata, condition_key, what="condition column")
    pt = adata.obs[pseudotime_key].to_numpy(float)
    cond = adata.obs[condition_key].astype(str).to_numpy()
    species = (
        adata.obs[species_key].astype(str).to_numpy()
        if species_key in adata.obs
        else np.full(adata.n_obs, "all")
    )
    on = np.isfinite(pt)
    if not on.any():
        msg = f"`adata.obs[{pseudotime_key!r}]` has no finite value; run mk.tl.trajectory first"
        raise MkcellError(msg)
    res = adata.uns.get(key) if isinstance(adata.uns.get(key), dict) else None
    names = list(dict.fromkeys(species[on]))
    fig = Figure(figsize=(panel_size[0] * len(names), panel_size[1]), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    edges = np.linspace(0, 1, bins + 1)
    mids = 0.5 * (edges[1:] + edges[:-1])
    for ax, sp_name in zip(axes, names, strict=True):
        m = on & (species == sp_name)
        for i, c in enumerate(dict.fromkeys(cond[m])):
            vals = pt[m & (cond == c)]
            dens, _ = np.histogram(np.clip(vals, 0, 1), bins=edges, density=True)
            ax.plot(mids, dens, color=f"C{i}", label=f"{c} (n={vals.size})", drawstyle="steps-mid")
        title = sp_name
        if res is not None:
            ax.axvline(
                res["params"]["transition"],
                color="grey",
                linestyle="--",
                linewidth=1,
                label="MkP→Mk",
            )
            tab = res["contrasts"]
            for _, r in tab[tab["species"] == sp_name].iterrows():
                title += (
                    f"\n{r['contrast']}: Δmean={r['mean_shift']:+.2f} "
                    f"[{r['mean_shift_ci_low']:.2f}, {r['mean_shift_ci_high']:.2f}], "
                    f"adj. p={r['p_adj']:.2g}"
                )
        ax.set_title(title, fontsize=8, loc="left")
        ax.set_xlabel(pseudotime_key)
        ax.set_ylabel("density")
        ax.legend(fontsize=7, frameon=False)
    return finish(fig, save)
