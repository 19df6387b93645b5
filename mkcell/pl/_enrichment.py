"""The patient GSEA as bars: normalised enrichment of the top sets, proliferation sets marked."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.figure import Figure

from .. import _keys as K
from .._settings import MkcellError
from ._utils import finish

#: The seed study's sets: drawn in colour when they are among the top.
PROLIFERATION = ("HALLMARK_E2F_TARGETS", "HALLMARK_G2M_CHECKPOINT", "HALLMARK_MITOTIC_SPINDLE")


def gsea(
    adata: AnnData,
    *,
    key: str = K.GSEA,
    top: int = 12,
    fdr: float = 0.05,
    save: str | os.PathLike | None = None,
) -> Figure:
    """Bars of the ``top`` sets by ``|nes|`` for each comparison in ``adata.uns[key]['table']``.

    Sets with FDR below ``fdr`` are drawn solid, the others hollow; E2F targets, G2M checkpoint
    and mitotic spindle are red. The test each comparison used is in its title.
    """
    import matplotlib.pyplot as plt

    res = adata.uns.get(key)
    table = res.get("table") if isinstance(res, dict) else None
    if not isinstance(table, pd.DataFrame) or table.empty:
        msg = f"no GSEA table in `adata.uns[{key!r}]['table']`; run the workflow's patients stage"
        raise MkcellError(msg)
    panels = list(table.groupby(["species", "groups"], sort=False))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.3 * top + 1.2))
    for ax, ((species, groups), df) in zip(np.atleast_1d(axes), panels, strict=True):
        df = df.reindex(df["nes"].abs().sort_values(ascending=False).index).head(top)[::-1]
        colors = ["tab:red" if t in PROLIFERATION else "tab:gray" for t in df["term"]]
        solid = df["fdr"].to_numpy(float) < fdr
        y = np.arange(len(df))
        ax.barh(
            y,
            df["nes"],
            color=[c if s else "none" for c, s in zip(colors, solid, strict=True)],
            edgecolor=colors,
        )
        ax.set_yticks(y, [str(t).removeprefix("HALLMARK_").lower() for t in df["term"]], fontsize=7)
        ax.axvline(0, color="black", lw=0.5)
        method = str(df["method"].iloc[0]).split(" (")[0] if len(df) else ""
        ax.set_title(f"{species}: {groups}\n{method}", fontsize=8)
        ax.set_xlabel("NES (camera: signed statistic)", fontsize=7)
    fig.tight_layout()
    return finish(fig, save)
