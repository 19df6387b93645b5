"""Per-sample readouts against a covariate, with the fitted line of mk.tl.associate."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .. import _keys as K
from .._settings import MkcellError
from ._utils import finish, panel_save_returns_doc

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.figure import Figure


@panel_save_returns_doc
def associations(
    adata: AnnData,
    *,
    covariate: str | None = None,
    readouts: str | Sequence[str] | None = None,
    species: str | None = None,
    key: str = K.ASSOCIATIONS,
    ncols: int = 3,
    panel_size: tuple[float, float] = (3.2, 3.0),
    save: str | os.PathLike | None = None,
) -> Figure:
    """Scatter of one point per sample, readout against covariate, with the fit and its band.

    Reads ``adata.uns[key]`` written by :func:`mkcell.tl.associate` (its ``per_sample``,
    ``lines`` and ``table``); computes nothing. A log2-transformed covariate is drawn on
    a log2 axis. Each panel's title gives the effect, its interval and p.

    Parameters
    ----------
    adata
        AnnData holding ``uns[key]``.
    covariate
        The covariate drawn (default: the first).
    readouts
        Readouts drawn (default: all of the table).
    species
        Species drawn (default: all, one panel each).
    key
        Key of the results in ``adata.uns``.
    ncols
        Panels per row.
    {panel_save_returns}
    """
    import matplotlib.pyplot as plt

    if key not in adata.uns or "table" not in adata.uns[key]:
        msg = f"no `adata.uns[{key!r}]`; run mk.tl.associate(adata, covariates=...) first"
        raise MkcellError(msg)
    res = adata.uns[key]
    table, per, lines = res["table"], res["per_sample"], res["lines"]
    covariate = covariate or str(table["covariate"].iloc[0])
    sel = table[table["covariate"] == covariate]
    if readouts is not None:
        wanted = [readouts] if isinstance(readouts, str) else list(readouts)
        sel = sel[sel["readout"].isin(wanted)]
    if species is not None:
        sel = sel[sel["species"] == species]
    if sel.empty:
        msg = (
            f"nothing to draw for covariate={covariate!r}, readouts={readouts!r}, "
            f"species={species!r}; the table has covariates {sorted(set(table['covariate']))}"
        )
        raise MkcellError(msg)
    logged = covariate in res["params"].get("log2_covariates", [])
    n = len(sel)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows), squeeze=False
    )
    for ax, (_, row) in zip(axes.ravel(), sel.iterrows(), strict=False):
        pts = per[per["species"] == row["species"]]
        ax.scatter(pts[covariate], pts[row["readout"]], s=18, color="0.25", zorder=3)
        ln = lines[
            (lines["species"] == row["species"])
            & (lines["covariate"] == covariate)
            & (lines["readout"] == row["readout"])
        ]
        if not ln.empty:
            ax.plot(ln["x"], ln["fit"], color="C3")
            ax.fill_between(ln["x"], ln["ci_low"], ln["ci_high"], color="C3", alpha=0.2, lw=0)
        if logged:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(f"{covariate}{' (log2 axis)' if logged else ''}")
        ax.set_ylabel(str(row["readout"]), fontsize=8)
        ax.set_title(
            f"{row['species']}: {row['effect']:+.3g} [{row['ci_low']:.3g}, {row['ci_high']:.3g}]"
            f"\np = {row['p_value']:.2g}, n = {int(row['n_samples'])}",
            fontsize=8,
        )
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    fig.tight_layout()
    return finish(fig, save)
