"""Words and numbers of the report: escaping, p-values, intervals, calls, small HTML pieces.

A difference is called only when its Benjamini–Hochberg adjusted p is below :data:`ALPHA`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping

import pandas as pd
from anndata import AnnData

#: A difference is called when its adjusted p is below this.
ALPHA = 0.05
#: Fewer samples than this on a side of a contrast get a caution.
FEW_SAMPLES = 3


def esc(x: object) -> str:
    """``x`` as HTML-escaped text."""
    return html.escape(str(x))


def uns_table(adata: AnnData, key: str, field: str) -> pd.DataFrame | None:
    """``adata.uns[key][field]`` when it is a table (the same table the stage wrote to CSV)."""
    res = adata.uns.get(key)
    df = res.get(field) if isinstance(res, Mapping) else None
    return df.reset_index(drop=True) if isinstance(df, pd.DataFrame) else None


def _finite(x: object) -> float | None:
    """``x`` as a finite float, or None (missing, NaN, not a number)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _num(x: object) -> str:
    """Two decimals, or two significant digits for small numbers."""
    v = _finite(x)
    if v is None:
        return "NA"
    return f"{v:.2g}" if 0 < abs(v) < 0.1 else f"{v:.2f}"


def _p(x: object) -> str:
    """A p-value: scientific below 0.001."""
    v = _finite(x)
    if v is None:
        return "NA"
    return f"{v:.1e}" if v < 0.001 else f"{v:.2g}"


def _ci(lo: object, hi: object) -> str:
    return f"[{_num(lo)}, {_num(hi)}]"


def _call(row: Mapping, estimate: str) -> int:
    """+1 / -1: ``row[estimate]``'s sign when its adjusted p is below :data:`ALPHA`; else 0."""
    p = _finite(row.get("p_adj", row.get("p_value")))
    est = _finite(row.get(estimate))
    if p is None or est is None or p >= ALPHA or est == 0:
        return 0
    return 1 if est > 0 else -1


def _adj(row: Mapping) -> str:
    """The adjusted p as text, and the smallest attainable p when it is 0.05 or more."""
    text = f", adjusted p={_p(row.get('p_adj', row.get('p_value')))}"
    p_min = _finite(row.get("p_min"))
    if p_min is not None and p_min >= ALPHA:
        text += f" (with these samples no p can go below {_num(p_min)})"
    return text


def _samples(na: object, nb: object) -> str:
    try:
        a, b = int(na), int(nb)
    except (TypeError, ValueError):
        return ""
    few = " — few samples, read with caution" if min(a, b) < FEW_SAMPLES else ""
    return f"{a} vs {b} samples{few}"


def _table(adata: AnnData, key: str, field: str) -> pd.DataFrame | None:
    """:func:`uns_table`, None when empty."""
    df = uns_table(adata, key, field)
    return None if df is None or df.empty else df


def _links(*targets: tuple[str, str]) -> str:
    links = ", ".join(f"<a href='#{t}'>{esc(w)}</a>" for t, w in targets)
    return f" <span class='muted'>({links})</span>"


def _items(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _none(text: str) -> str:
    return f"<p class='muted'>{esc(text)}</p>"
