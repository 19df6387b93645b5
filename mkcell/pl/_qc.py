"""Quality control per sample: counts, genes and mitochondrial share, and the flagged share."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.figure import Figure

from .. import _keys as K
from .._settings import MkcellError
from ._utils import finish, panel_save_returns_doc

#: (obs column, axis label, log scale) of the violins.
_METRICS = (
    (K.QC_METRICS["total_counts"], "counts per cell", True),
    (K.QC_METRICS["n_genes_by_counts"], "genes per cell", True),
    (K.QC_METRICS["pct_counts_mt"], "mitochondrial %", False),
)


@panel_save_returns_doc
def qc(
    adata: AnnData,
    key: str = K.QC,
    *,
    sample_key: str = K.SAMPLE,
    panel_size: tuple[float, float] = (6.0, 2.2),
    save: str | os.PathLike | None = None,
) -> Figure:
    """Plot per-sample violins of counts, genes and mitochondrial share, and the flagged share.

    Reads what ``mk.pp.qc`` wrote: the metrics in ``obs`` and ``adata.uns[key]['per_sample']``
    (the last panel: the share of each sample's cells flagged, stacked by reason).

    Parameters
    ----------
    adata
        AnnData after ``mk.pp.qc``.
    key
        Key of the QC record in ``adata.uns`` (and of the verdicts in ``obs``).
    sample_key
        ``obs`` column with the sample.
    {panel_save_returns}
    """
    res = adata.uns.get(key)
    cols = [c for c, _, _ in _METRICS]
    if (
        not isinstance(res, dict)
        or "per_sample" not in res
        or any(c not in adata.obs for c in cols)
    ):
        msg = f"no QC results in `adata.uns[{key!r}]` / obs; run mk.pp.qc first (or pass key=)"
        raise MkcellError(msg)
    table = res["per_sample"]
    samples = [str(s) for s in table["sample"]]
    by_sample = adata.obs[sample_key].astype(str)
    width = max(panel_size[0], 0.35 * len(samples) + 1.5)
    fig = Figure(figsize=(width, panel_size[1] * 4), layout="constrained")
    axes = fig.subplots(4, 1, sharex=True)
    x = np.arange(len(samples))
    for ax, (col, label, log) in zip(axes[:3], _METRICS, strict=True):
        values = adata.obs[col].to_numpy(float)
        data = [values[(by_sample == s).to_numpy()] for s in samples]
        data = [np.log10(1 + d) if log else d for d in data]
        keep = [i for i, d in enumerate(data) if d.size > 1]
        if keep:
            ax.violinplot([data[i] for i in keep], positions=x[keep], showmedians=True)
        ax.set_ylabel(f"log10(1 + {label})" if log else label, fontsize=8)
    _flagged(axes[3], table, x)
    axes[3].set_xticks(x, samples, rotation=90, fontsize=7)
    return finish(fig, save)


def _flagged(ax, table: pd.DataFrame, x: np.ndarray) -> None:  # noqa: ANN001
    bottom = np.zeros(len(table))
    cells = table["cells_in"].to_numpy(float)
    for reason in K.QC_REASONS:
        share = table[reason].to_numpy(float) / np.maximum(cells, 1)
        ax.bar(x, share, bottom=bottom, label=reason)
        bottom += share
    ax.set_ylabel("share flagged", fontsize=8)
    ax.legend(fontsize=7, frameon=False, ncols=len(K.QC_REASONS), loc="upper left")
