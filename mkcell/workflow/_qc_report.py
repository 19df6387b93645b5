"""The report's QC section and its Findings line: they read what mk.pp.qc wrote, no science."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from anndata import AnnData

from .. import _keys as K
from ._html import _kv, image_html, table_html
from ._words import esc

#: Columns of the per-sample table shown in the report (all of them are in the CSV).
SHOWN = ["sample", "cells_in", *K.QC_REASONS, "cells_kept", "flagged_share"]


def _table(adata: AnnData) -> pd.DataFrame | None:
    res = adata.uns.get(K.QC)
    table = res.get("per_sample") if isinstance(res, Mapping) else None
    return table if isinstance(table, pd.DataFrame) and not table.empty else None


def qc_html(adata: AnnData, figures: Mapping[str, Path]) -> str:
    """Per-sample counts of flagged cells, the violins and the flagged share."""
    table = _table(adata)
    if table is None:
        return (
            "<p class='muted'>no quality control in this run (qc.enabled=false, or mode=map):"
            " every cell went on unchecked</p>"
        )
    params = adata.uns[K.QC].get("params", {})
    shown = {k: params[k] for k in ("nmads", "mito_nmads", "doublet_z") if k in params}
    n_in, n_kept = int(table["cells_in"].sum()), int(table["cells_kept"].sum())
    path = figures.get("qc")
    figure = image_html(path, "qc") if path is not None and Path(path).exists() else ""
    return (
        f"<p>{n_in - n_kept} of {n_in} cells flagged; flagged cells stay in mkcell.h5ad "
        "(<code>obs['mk_qc']</code>) and, unless qc.keep_flagged=true, are left out of the "
        "MkP / Mk calls and the pool.</p>"
        + _kv(shown)
        + table_html(table[[c for c in SHOWN if c in table]])
        + "<p class='muted'>all columns: tables/qc_per_sample.csv</p>"
        + figure
    )


def qc_findings_html(adata: AnnData) -> str:
    """One line per sample whose flagged share stands out (mk.pp.qc's ``stands_out``)."""
    table = _table(adata)
    if table is None or "stands_out" not in table or not table["stands_out"].any():
        return ""
    median = float(table["flagged_share"].median())
    items = []
    for _, r in table[table["stands_out"].astype(bool)].iterrows():
        top = max(K.QC_REASONS, key=lambda reason, r=r: r[reason])
        items.append(
            f"Sample {esc(r['sample'])}: {r['flagged_share']:.0%} of its {int(r['cells_in'])} "
            f"cells flagged (median over samples {median:.0%}), mostly {esc(top)}; check it "
            "before trusting its MkP fraction."
        )
    links = "<span class='muted'>(<a href='#qc'>QC table and figure</a>)</span>"
    body = "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
    return (
        f"<div class='findings'><h3>Quality control: a sample stands out {links}</h3>{body}</div>"
    )
