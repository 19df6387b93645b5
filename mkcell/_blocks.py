"""Whole-matrix arithmetic a block of rows at a time.

scipy's ``X.mean(0)``, ``X.multiply(X)`` and ``X @ W`` with ``W`` of another dtype each
make a temporary as large as ``X`` (a scaled, squared or float64 copy). On an atlas
that is gigabytes per call, and the workflow makes such calls in every stage. These
helpers read ``X`` in blocks of :data:`ROW_BLOCK` rows, so the temporaries are the size
of one block, and take ``rows`` (cell indices) where a caller would otherwise copy a
subset of the cells first.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

#: Rows per block: ~40 MB per temporary at 500 non-zero values per row.
ROW_BLOCK = 10_000


def row_blocks(
    X: sp.spmatrix | np.ndarray, rows: np.ndarray | None = None, size: int = ROW_BLOCK
) -> Iterator[sp.csr_matrix | np.ndarray]:
    """``X`` (or its ``rows``, in that order) in consecutive blocks of at most ``size`` rows.

    Sparse blocks are CSR copies of one block; dense blocks are views or copies of one block.
    """
    if sp.issparse(X) and X.format != "csr":
        X = sp.csr_matrix(X)
    n = X.shape[0] if rows is None else len(rows)
    for start in range(0, n, size):
        stop = min(start + size, n)
        yield X[start:stop] if rows is None else X[rows[start:stop]]


def column_mean_var(
    X: sp.spmatrix | np.ndarray, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance of each column of ``X`` (or of its ``rows``), float64.

    Parameters
    ----------
    X
        Cells x genes, sparse or dense.
    rows
        Integer indices of the cells to use (default all).

    Returns
    -------
    ``(mean, var)``, each of length ``X.shape[1]``; ``var`` is ``E[x^2] - E[x]^2``, floored at 0.
    """
    n_cols = X.shape[1]
    total = np.zeros(n_cols)
    squares = np.zeros(n_cols)
    n = 0
    for block in row_blocks(X, rows):
        n += block.shape[0]
        if sp.issparse(block):
            values = block.data.astype(np.float64)
            total += np.bincount(block.indices, weights=values, minlength=n_cols)
            squares += np.bincount(block.indices, weights=values * values, minlength=n_cols)
        else:
            values = np.asarray(block, dtype=np.float64)
            total += values.sum(0)
            squares += (values * values).sum(0)
    if n == 0:
        return np.full(n_cols, np.nan), np.full(n_cols, np.nan)
    mean = total / n
    return mean, np.maximum(squares / n - mean**2, 0.0)


def matmul(
    X: sp.spmatrix | np.ndarray, W: np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """``X @ W`` (or ``X[rows] @ W``) as a dense array in the dtype numpy gives the pair.

    Each row of the product depends on its own row of ``X`` only, so the blocks give the
    same values as one product.
    """
    W = np.asarray(W)
    parts = [np.asarray(block @ W) for block in row_blocks(X, rows)]
    if not parts:
        return np.zeros((0, *W.shape[1:]), dtype=np.result_type(X.dtype, W.dtype))
    return np.concatenate(parts, axis=0)


def rmatmul(
    X: sp.spmatrix | np.ndarray, v: np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """``X.T @ v`` (or ``X[rows].T @ v``, ``v`` one value per row used), float64."""
    v = np.asarray(v, dtype=np.float64)
    out = np.zeros((X.shape[1], *v.shape[1:]))
    start = 0
    for block in row_blocks(X, rows):
        stop = start + block.shape[0]
        out += np.asarray(block.T @ v[start:stop])
        start = stop
    return out
