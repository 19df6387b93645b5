"""Seurat / scanpy ``score_genes`` for many gene sets in one sparse product."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._blocks import column_mean_var, matmul
from .._settings import MkcellError


def score_genes_matrix(
    X: sp.spmatrix | np.ndarray,
    gene_sets: Sequence[np.ndarray],
    *,
    ctrl_sizes: Sequence[int] | int = 50,
    n_bins: int = 25,
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Seurat / scanpy ``score_genes`` for many sets at once.

    Parameters
    ----------
    X
        Log-normalised expression (cells x genes).
    gene_sets
        Column indices of each set.
    ctrl_sizes
        Control genes drawn per expression bin, per set (scanpy default 50).
    n_bins
        Expression bins (scanpy's binning: ranks of the mean over ``n_bins - 1`` items).
    seed
        Seed for drawing control genes.
    rows
        Integer indices of the cells to score (default all), as if ``X[rows]`` were passed.

    Returns
    -------
    Scores (cells x sets) and the control-gene indices of each set.
    """
    rng = np.random.default_rng(seed)
    n_genes = X.shape[1]
    avg, _ = column_mean_var(X, rows)
    n_items = max(1, round(n_genes / (n_bins - 1)))
    cut = (pd.Series(avg).rank(method="min").to_numpy() // n_items).astype(int)
    by_cut = {c: np.flatnonzero(cut == c) for c in np.unique(cut)}
    if isinstance(ctrl_sizes, int):
        ctrl_sizes = [ctrl_sizes] * len(gene_sets)
    W = np.zeros((n_genes, len(gene_sets)), dtype=np.float64)
    controls = []
    for j, (idx, size) in enumerate(zip(gene_sets, ctrl_sizes, strict=True)):
        idx = np.unique(idx)
        ctrl = []
        for c in np.unique(cut[idx]):
            pool = by_cut[c]
            ctrl.append(rng.choice(pool, size, replace=False) if size < pool.size else pool)
        ctrl = np.setdiff1d(np.concatenate(ctrl), idx)
        if ctrl.size == 0:
            msg = (
                "no control genes left for a gene set; the data hold too few genes to score against"
            )
            raise MkcellError(msg)
        W[idx, j] += 1.0 / idx.size
        W[ctrl, j] -= 1.0 / ctrl.size
        controls.append(ctrl)
    return matmul(X, W, rows), controls
