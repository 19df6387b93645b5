"""Curated marker panels for the marrow states mkcell annotates."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from .._utils import data_path


@lru_cache(maxsize=1)
def _panels() -> pd.DataFrame:
    return pd.read_csv(data_path("markers", "marker_panels.tsv"), sep="\t")


def marker_panels() -> pd.DataFrame:
    """Marker panels: one row per (state, gene) with ``human`` and ``mouse`` symbols and a ``source``."""
    return _panels().copy()
