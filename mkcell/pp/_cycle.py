"""Cell-cycle signal found from the data: S / G2M scores and the genes that track them.

Published cycle lists (Tirosh 2016, Hallmark E2F / G2M) miss many genes that move
with the cycle in marrow. :func:`cycle_linked_genes` finds them: within each coarse
state (marker-panel calls, which do not depend on the cycle), a gene is cycle-linked
when its expression correlates with the S or G2M score after the state's lineage
position (its marker-panel scores) is regressed out of both. On request the
integration features leave those genes out
(``mkcell.pp.highly_variable_genes(exclude_cycle_linked=True)``) and scVI takes the
scores as covariates (``mkcell.integrate.scvi(cycle_covariates=True)``); by default
the trajectory regresses the scores out of the lineage embedding instead
(:func:`mkcell.tl.trajectory`). Scoring still reads every gene.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._genesets import builtin_sets
from .._settings import MkcellError

#: Cells per coarse state used to find cycle-linked genes (a random subset above it).
MAX_CELLS_PER_STATE = 3000
#: States with fewer cells than this are not used to find cycle-linked genes.
MIN_CELLS_PER_STATE = 50
#: In a state of n cells, ``|r|`` must also exceed ``Z_MIN / sqrt(n)`` (about p < 1e-5),
#: so that small states do not flag genes by chance.
Z_MIN = 4.5


def cycle_scores(adata: AnnData, *, layer: str | None = None, seed: int = 0) -> pd.DataFrame:
    """S and G2M scores (Tirosh 2016 lists, scanpy's scoring), z-scored within each species.

    Parameters
    ----------
    adata
        Raw counts (``layer``, else ``layers['counts']``, else ``X``); human or mouse symbols.
        The log-normalised counts are cached in ``layers['mk_lognorm']``.
    layer
        Layer with raw counts.
    seed
        Seed for drawing control genes.

    Returns
    -------
    A table (cells x ``["S", "G2M"]``) indexed like ``adata.obs``.
    """
    from ._normalize import log_normalize

    return scores_from_lognorm(adata, log_normalize(adata, layer), seed=seed)


def scores_from_lognorm(
    adata: AnnData,
    X: sp.csr_matrix | np.ndarray,
    *,
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """:func:`cycle_scores` from log-normalised expression ``X`` of all of ``adata``'s genes.

    ``rows``: integer indices of the cells to score (default all), as if ``X[rows]`` and
    ``adata[rows]`` were passed.
    """
    from .._species import species_gene_set
    from .._utils import species_of, zscore_within
    from ._score_genes import score_genes_matrix

    sets = builtin_sets()
    idx = []
    for name in ("TIROSH2016_S_PHASE", "TIROSH2016_G2M_PHASE"):
        genes = species_gene_set(set(sets[name]), adata.var_names)
        cols = adata.var_names.get_indexer(sorted(genes))
        cols = cols[cols >= 0]
        if cols.size < 5:
            msg = (
                f"only {cols.size} genes of {name} are in `adata.var_names`; cycle scores need at "
                "least 5 — pass symbols (not IDs) as var_names, or turn the cycle correction off"
            )
            raise MkcellError(msg)
        idx.append(cols)
    S, _ = score_genes_matrix(X, idx, ctrl_sizes=min(c.size for c in idx), seed=seed, rows=rows)
    species, names = species_of(adata), adata.obs_names
    if rows is not None:
        species, names = species[rows], names[rows]
    return pd.DataFrame(zscore_within(S, species), index=names, columns=["S", "G2M"])


def _residual(Y: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Columns of ``Y`` minus their least-squares fit on ``Z`` (with an intercept)."""
    Z1 = np.column_stack([np.ones(len(Z)), Z])
    beta, *_ = np.linalg.lstsq(Z1, Y, rcond=None)
    return Y - Z1 @ beta


def cycle_linked_genes(
    X: sp.csr_matrix,
    var_names: pd.Index,
    scores: pd.DataFrame,
    states: np.ndarray,
    position: pd.DataFrame,
    *,
    threshold: float = 0.2,
    seed: int = 0,
) -> pd.DataFrame:
    """Genes whose expression tracks the S or G2M score within a state.

    Parameters
    ----------
    X
        Log-normalised expression of the candidate genes (cells x genes).
    var_names
        Names of those genes.
    scores
        :func:`cycle_scores` of the same cells.
    states
        A coarse state per cell that does not depend on the cycle (marker-panel calls).
    position
        Covariates of the lineage position (marker-panel scores), regressed out of
        genes and scores before correlating, so that maturation genes are not taken
        for cycle genes where cycling changes along maturation.
    threshold
        A gene is cycle-linked when ``|r|`` exceeds this (and ``Z_MIN / sqrt(n)``) in some
        state of n cells.
    seed
        Seed for subsampling large states.

    Returns
    -------
    One row per gene: ``gene``, ``r_S``, ``r_G2M`` (partial correlations in the state
    where ``|r|`` is largest), ``state``, ``max_abs_r``, ``cycle_linked``.
    """
    rng = np.random.default_rng(seed)
    n_genes = X.shape[1]
    best = np.zeros(n_genes)
    r_best = np.zeros((n_genes, 2))
    where = np.full(n_genes, "", dtype=object)
    linked = np.zeros(n_genes, bool)
    C, P = scores[["S", "G2M"]].to_numpy(float), position.to_numpy(float)
    for state in pd.unique(states):
        cells = np.flatnonzero(states == state)
        if cells.size < MIN_CELLS_PER_STATE:
            continue
        if cells.size > MAX_CELLS_PER_STATE:
            cells = np.sort(rng.choice(cells, MAX_CELLS_PER_STATE, replace=False))
        Y = _residual(np.asarray(X[cells].toarray(), dtype=np.float64), P[cells])
        c = _residual(C[cells], P[cells])
        Y /= np.linalg.norm(Y, axis=0) + 1e-12
        c /= np.linalg.norm(c, axis=0) + 1e-12
        r = Y.T @ c  # genes x (S, G2M)
        top = np.abs(r).max(1)
        better = top > best
        best[better], r_best[better], where[better] = top[better], r[better], state
        linked |= top > max(threshold, Z_MIN / np.sqrt(cells.size))
    return pd.DataFrame(
        {
            "gene": np.asarray(var_names, dtype=str),
            "r_S": r_best[:, 0],
            "r_G2M": r_best[:, 1],
            "state": where.astype(str),
            "max_abs_r": best,
            "cycle_linked": linked,
        }
    )
