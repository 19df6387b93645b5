"""Curated marker panels for mkcell's marrow states, and their check on reference profiles."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ._blocks import column_mean_var
from ._settings import MkcellError
from ._species import species_gene_set
from ._utils import data_path


@lru_cache(maxsize=1)
def _panels() -> pd.DataFrame:
    return pd.read_csv(data_path("markers", "marker_panels.tsv"), sep="\t")


def marker_panels() -> pd.DataFrame:
    """Marker panels, one row per (state, gene).

    Each row has the ``human`` and ``mouse`` symbols and a ``source``.
    """
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


#: Panels with fewer genes present than this are not scored (their state is never called).
MIN_PANEL_GENES = 2


def panel_coverage(var_names: pd.Index) -> dict[str, list[str]]:
    """Panel genes present in ``var_names`` (human or mouse symbols), per state."""
    panels = marker_panels()
    out = {}
    for state, rows in panels.groupby("state", sort=False):
        genes = species_gene_set(set(rows["human"]), var_names)
        out[state] = sorted(g for g in genes if g in var_names)
    return out


def panel_scores(
    adata: AnnData, X: sp.csr_matrix, rows: np.ndarray | None = None
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Mean z-scored expression of each state's panel genes (cells x states).

    Parameters
    ----------
    adata
        The cells and genes of ``X`` (its ``var_names`` and ``obs_names`` are used).
    X
        Log-normalised expression, cells x genes.
    rows
        Integer indices of the cells to score (default all); the genes are z-scored over
        these cells only. Cheaper than scoring a copy ``X[rows]``.

    Returns
    -------
    Scores (cells x states, indexed by the cells' names) and the panel genes used per state.
    """
    panels = marker_panels()
    scores, used = {}, {}
    mean, var = column_mean_var(X, rows)
    sd = np.sqrt(np.maximum(var, 1e-12))
    names = adata.obs_names if rows is None else adata.obs_names[rows]
    for state, group in panels.groupby("state", sort=False):
        genes = species_gene_set(set(group["human"]), adata.var_names)
        idx = adata.var_names.get_indexer(sorted(genes))
        idx = idx[idx >= 0]
        used[state] = list(adata.var_names[idx])
        if idx.size < MIN_PANEL_GENES:
            continue
        cols = X[:, idx] if rows is None else X[:, idx][rows]
        z = (cols.toarray() - mean[idx]) / sd[idx]
        scores[state] = z.mean(1)
    return pd.DataFrame(scores, index=names), used
