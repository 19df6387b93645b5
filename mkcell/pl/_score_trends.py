"""Plot of score trends along Mk pseudotime (reads ``uns['mk_score_trends']``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from anndata import AnnData

from .. import _keys as K
from .._settings import MkcellError
from ._utils import finish

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: ``adata.uns`` key written by ``mk.tl.score_trends``.
TRENDS_KEY = f"{K.SCORE}_trends"


def score_trends(
    adata: AnnData,
    keys: Sequence[str] | None = None,
    *,
    species: Sequence[str] | None = None,
    conditions: Sequence[str] | None = None,
    key: str = TRENDS_KEY,
    band: bool = True,
    panel_size: tuple[float, float] = (3.6, 2.6),
    palette: str = "tab10",
    save: str | os.PathLike | None = None,
) -> Figure:
    """Score trends along pseudotime: one panel per score x species, a line per condition.

    Reads the table of ``mk.tl.score_trends``; computes nothing.

    Parameters
    ----------
    adata
        AnnData holding ``uns[key]['table']``.
    keys
        Scores to show (default all in the table), one row of panels each.
    species
        Species to show (default all), one column each.
    conditions
        Conditions to show and their order (default all).
    key
        ``adata.uns`` key of the trend table.
    band
        Draw the confidence band (t interval over the samples).
    panel_size
        Width and height of one panel in inches.
    palette
        Matplotlib colormap name for conditions.
    save
        Write the figure to this path (any matplotlib format).

    Returns
    -------
    The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if key not in adata.uns or "table" not in adata.uns[key]:
        msg = f"no `adata.uns[{key!r}]['table']`; run mk.tl.score_trends(adata) first"
        raise MkcellError(msg)
    tab = adata.uns[key]["table"]
    all_keys = list(dict.fromkeys(tab["key"]))
    keys = list(keys) if keys is not None else all_keys
    sp_list = list(species) if species is not None else list(dict.fromkeys(tab["species"]))
    cond_all = list(dict.fromkeys(tab["condition"]))
    conds = list(conditions) if conditions is not None else cond_all
    for what, asked, have in (
        ("keys", keys, all_keys),
        ("species", sp_list, set(tab["species"])),
        ("conditions", conds, cond_all),
    ):
        bad = [x for x in asked if x not in have]
        if bad:
            msg = (
                f"{what} {bad} are not in `adata.uns[{key!r}]['table']`; available: "
                f"{sorted(map(str, have))}"
            )
            raise MkcellError(msg)
    cmap = plt.get_cmap(palette)
    colour = {c: cmap(i % cmap.N) for i, c in enumerate(cond_all)}
    fig, axes = plt.subplots(
        len(keys),
        len(sp_list),
        figsize=(panel_size[0] * len(sp_list), panel_size[1] * len(keys)),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    for i, k in enumerate(keys):
        for j, sp_name in enumerate(sp_list):
            ax = axes[i, j]
            sub = tab[(tab["key"] == k) & (tab["species"] == sp_name)]
            for c in conds:
                d = sub[sub["condition"] == c].sort_values("pseudotime")
                if d.empty:
                    continue
                x = d["pseudotime"].to_numpy(float)
                ax.plot(x, d["mean"].to_numpy(float), color=colour[c], lw=1.8, label=c)
                if band:
                    lo, hi = d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float)
                    ok = np.isfinite(lo) & np.isfinite(hi)
                    ax.fill_between(
                        x,
                        np.where(ok, lo, np.nan),
                        np.where(ok, hi, np.nan),
                        color=colour[c],
                        alpha=0.2,
                        lw=0,
                    )
            if i == 0:
                ax.set_title(sp_name)
            if j == 0:
                ax.set_ylabel(k.removeprefix(K.SCORE_PREFIX))
            if i == len(keys) - 1:
                ax.set_xlabel("Mk pseudotime")
            ax.spines[["top", "right"]].set_visible(False)
    handles, labels = [], []
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside right upper", frameon=False, title="condition")
    return finish(fig, save)
