"""Curated marker panels for the marrow states mkcell annotates, and their check on reference profiles."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from ._settings import MkcellError
from ._utils import data_path


@lru_cache(maxsize=1)
def _panels() -> pd.DataFrame:
    return pd.read_csv(data_path("markers", "marker_panels.tsv"), sep="\t")


def marker_panels() -> pd.DataFrame:
    """Marker panels: one row per (state, gene) with ``human`` and ``mouse`` symbols and a ``source``."""
    return _panels().copy()


def panel_profile_scores(
    profiles: pd.DataFrame, species: str, *, log1p: bool = False
) -> pd.DataFrame:
    """Score each state's panel on reference expression profiles (bulk, sorted or pseudobulk).

    The same statistic as :func:`mkcell.tl.annotate` uses on cells: each panel gene is
    z-scored across the profiles, and a state's score is the mean over its panel genes
    present. Use it to check the panels against a reference of your own: a panel
    should score highest on its own population.

    Parameters
    ----------
    profiles
        Genes (symbols of ``species``) x populations; mean expression.
    species
        ``"human"`` or ``"mouse"``: which symbol column of the panels to use.
    log1p
        Apply ``log1p`` first (for linear-scale means; leave off for log data).

    Returns
    -------
    Populations x states; states with no panel gene in ``profiles`` are left out.
    """
    if species not in ("human", "mouse"):
        msg = f"species={species!r}; use 'human' or 'mouse'"
        raise MkcellError(msg)
    if profiles.shape[1] < 2:
        msg = f"profiles have {profiles.shape[1]} population(s); need at least 2 columns to compare"
        raise MkcellError(msg)
    x = np.log1p(profiles.astype(float)) if log1p else profiles.astype(float)
    z = x.sub(x.mean(1), axis=0).div(x.std(1).replace(0, np.nan), axis=0).fillna(0.0)
    out = {}
    for state, rows in marker_panels().groupby("state", sort=False):
        genes = [g for g in rows[species] if g in z.index]
        if genes:
            out[state] = z.loc[genes].mean()
    return pd.DataFrame(out)
