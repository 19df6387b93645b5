"""HTML building blocks of the report: its style, tables, embedded figures, key-value lists."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ._words import esc as _esc

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;\
max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:0.8em}
.muted{color:#777}nav a{margin-right:1em}
.scroll{overflow-x:auto;max-width:100%}
.findings li{margin:0.35em 0}.findings h3{margin-bottom:0.2em}
"""


def table_html(df: pd.DataFrame | None, *, max_rows: int = 60) -> str:
    """Render a DataFrame as an HTML table (numbers to 4 significant digits)."""
    if df is None or not isinstance(df, pd.DataFrame):
        return "<p class='muted'>not available</p>"
    if df.empty:
        return "<p class='muted'>empty table</p>"
    extra = ""
    if len(df) > max_rows:
        extra = (
            f"<p class='muted'>first {max_rows} of {len(df)} rows; the full table is in the CSV</p>"
        )
        df = df.head(max_rows)
    text = df.to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}", na_rep="NA")
    return f"<div class='scroll'>{text}</div>{extra}"


def image_html(path: Path, alt: str) -> str:
    """Return an ``<img>`` with the PNG embedded as base64."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"<img alt='{_esc(alt)}' src='data:image/png;base64,{data}'>"


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _kv(items: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(_fmt(v))}</td></tr>" for k, v in items.items())
    return f"<div class='scroll'><table>{rows}</table></div>"


def page_html(title: str, run_dir: Path, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole page: a title, the time and folder, links to the ``(id, title, html)`` sections."""
    nav = "".join(f"<a href='#{sid}'>{_esc(name)}</a>" for sid, name, _ in sections)
    body = "".join(f"<h2 id='{sid}'>{_esc(name)}</h2>{content}" for sid, name, content in sections)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = _esc(title)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1><p class='muted'>{stamp} — {_esc(run_dir)}</p>"
        f"<nav>{nav}</nav>{body}</body></html>"
    )
