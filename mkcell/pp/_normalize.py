"""One log-normalisation for every step, cached in ``adata.layers['mk_lognorm']``.

Annotation, scores, cycle scores, the trajectory's drivers and the integration all read
``log1p(counts / size * 1e4)``. :func:`log_normalize` computes it once per count matrix
and keeps it in a layer, with a record in ``adata.uns['mk_lognorm']`` of what it was
computed from (source layer, ``target_sum`` and a cheap signature of the counts), so a
stale cache is never used: when the counts change, it is recomputed.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._blocks import ROW_BLOCK
from .._settings import logger
from .._utils import counts_layer, get_counts, log_write

#: Total per cell after scaling.
TARGET_SUM = 1e4


def log_normalize_matrix(
    X: sp.spmatrix | np.ndarray, target_sum: float = TARGET_SUM, *, copy: bool = True
) -> sp.csr_matrix | np.ndarray:
    """Return counts scaled to ``target_sum`` per cell, ``log1p``-transformed, as float32.

    Parameters
    ----------
    X
        Raw counts (cells x genes), sparse or dense.
    target_sum
        Total per cell after scaling (cells with no counts stay zero).
    copy
        Leave ``X`` as it was (default). The result then has new values, and, when ``X``
        is a CSR matrix in canonical format (sorted column indices, no duplicates), shares
        ``X``'s index arrays (the non-zeros are the same): neither may be re-sorted in
        place. ``False`` transforms a float32 CSR ``X`` in place and returns it (for a
        matrix the caller has just made, such as a column subset).

    Returns
    -------
    A CSR matrix for sparse ``X``, else a dense array.
    """
    if sp.issparse(X):
        if copy and X.format == "csr" and X.has_canonical_format:
            X = sp.csr_matrix((X.data.astype(np.float32), X.indices, X.indptr), shape=X.shape)
        else:
            X = sp.csr_matrix(X, dtype=np.float32, copy=copy)
        lib = np.asarray(X.sum(axis=1, dtype=np.float64)).ravel()
        scale = np.divide(target_sum, lib, out=np.zeros_like(lib), where=lib > 0).astype(np.float32)
        for start in range(0, X.shape[0], ROW_BLOCK):  # no array as long as all the values
            rows = slice(start, min(start + ROW_BLOCK, X.shape[0]))
            lo, hi = X.indptr[rows.start], X.indptr[rows.stop]
            X.data[lo:hi] *= np.repeat(scale[rows], np.diff(X.indptr[rows.start : rows.stop + 1]))
        np.log1p(X.data, out=X.data)
        return X
    X = np.array(X, dtype=np.float32, copy=True)
    lib = X.sum(axis=1, dtype=np.float64)
    scale = np.divide(target_sum, lib, out=np.zeros_like(lib), where=lib > 0).astype(np.float32)
    X *= scale[:, None]
    np.log1p(X, out=X)
    return X


def counts_signature(X: sp.spmatrix | np.ndarray) -> dict[str, object]:
    """A cheap fingerprint of a count matrix: shape, stored entries, total and a row-weighted total.

    One pass over the values. The row-weighted total changes when counts move between
    cells (or cells are reordered) with the total unchanged.
    """
    rows = np.asarray(X.sum(axis=1, dtype=np.float64)).ravel()
    weights = 1.0 + (np.arange(rows.size) % 997) / 997
    nnz = int(X.nnz) if sp.issparse(X) else int(np.count_nonzero(X))
    return {
        "shape": [int(s) for s in X.shape],
        "nnz": nnz,
        "sum": float(rows.sum()),
        "weighted_sum": float(rows @ weights),
    }


def _source(adata: AnnData, layer: str | None) -> str:
    """The layer :func:`mkcell._utils.get_counts` reads (``"X"`` for ``adata.X``)."""
    return counts_layer(adata, layer) or "X"


def _same_record(record: object, want: dict[str, object]) -> bool:
    if not isinstance(record, dict):
        return False
    sig, new = record.get("signature"), want["signature"]
    try:
        return (
            str(record.get("source")) == want["source"]
            and float(record.get("target_sum")) == want["target_sum"]
            and [int(s) for s in sig["shape"]] == new["shape"]
            and int(sig["nnz"]) == new["nnz"]
            and float(sig["sum"]) == new["sum"]
            and float(sig["weighted_sum"]) == new["weighted_sum"]
        )
    except (KeyError, TypeError, ValueError):
        return False


def log_normalize(
    adata: AnnData, layer: str | None = None, *, target_sum: float = TARGET_SUM
) -> sp.csr_matrix:
    """``log1p`` of counts scaled to ``target_sum`` per cell, cached in ``layers['mk_lognorm']``.

    The first call computes the float32 CSR matrix and stores it with a record in
    ``uns['mk_lognorm']`` (source layer, ``target_sum``, :func:`counts_signature` of the
    counts); later calls return the cached layer while the record still matches the
    counts, and recompute (overwriting the cache) when it does not. A view
    (``adata[cells]``) is never written to: slice the parent's result instead
    (``log_normalize(adata)[cells]``; normalisation is per cell, so the rows are the same).

    Parameters
    ----------
    adata
        Raw counts in ``layer``, else ``layers['counts']``, else ``X``.
    layer
        Layer with raw counts.
    target_sum
        Total per cell after scaling.

    Returns
    -------
    Cells x genes, float32 CSR. It may be the cached layer itself: do not modify it in place.
    """
    counts = get_counts(adata, layer)
    want = {
        "source": _source(adata, layer),
        "target_sum": float(target_sum),
        "signature": counts_signature(counts),
    }
    cached = adata.layers[K.LOGNORM] if K.LOGNORM in adata.layers else None
    if cached is not None and _same_record(adata.uns.get(K.LOGNORM_RECORD), want):
        logger.debug("using the cached log-normalised counts `adata.layers[%r]`", K.LOGNORM)
        return cached if isinstance(cached, sp.csr_matrix) else sp.csr_matrix(cached)
    X = log_normalize_matrix(counts if sp.issparse(counts) else sp.csr_matrix(counts), target_sum)
    if adata.is_view:
        return X
    if cached is not None:
        logger.debug("the counts changed since `adata.layers[%r]` was computed", K.LOGNORM)
    adata.layers[K.LOGNORM] = X
    adata.uns[K.LOGNORM_RECORD] = want
    log_write("layers", K.LOGNORM)
    return X
