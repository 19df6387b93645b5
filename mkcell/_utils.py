"""Small shared helpers: input checks, logging of writes, atomic file output."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from ._settings import MkcellError, logger


def log_write(slot: str, key: str) -> None:
    """Log that ``adata.<slot>[key]`` was written."""
    logger.info("added `adata.%s[%r]`", slot, key)


def check_adata(adata: object, *, name: str = "adata", min_obs: int = 1, min_vars: int = 1) -> None:
    """Raise a clear error unless ``adata`` is a non-empty AnnData."""
    if not isinstance(adata, AnnData):
        msg = (
            f"`{name}` must be an AnnData, got {type(adata).__name__}; "
            "read files with mk.io.read(path)"
        )
        raise TypeError(msg)
    if adata.n_obs < min_obs or adata.n_vars < min_vars:
        msg = (
            f"`{name}` has {adata.n_obs} cells x {adata.n_vars} genes; need at least "
            f"{min_obs} cells and {min_vars} genes"
        )
        raise MkcellError(msg)


def check_obs_key(adata: AnnData, key: str, *, what: str = "column") -> None:
    """Raise a clear error if ``adata.obs[key]`` is missing."""
    if key not in adata.obs.columns:
        cols = ", ".join(map(str, adata.obs.columns[:20]))
        msg = f"no {what} `adata.obs[{key!r}]`; available obs columns: [{cols}]"
        raise MkcellError(msg)


def counts_layer(adata: AnnData, layer: str | None = None) -> str | None:
    """The layer :func:`get_counts` reads: ``layer``, else ``'counts'`` if present, else None (X)."""
    if layer is None:
        return "counts" if "counts" in adata.layers else None
    return layer


def get_counts(adata: AnnData, layer: str | None = None) -> sp.csr_matrix | np.ndarray:
    """Return the raw-count matrix, checking it holds non-negative integers.

    Looks in ``layer`` if given, else ``adata.layers['counts']`` if present, else ``adata.X``.
    """
    layer = counts_layer(adata, layer)
    X = adata.X if layer is None else adata.layers[layer]
    where = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    if X is None:
        msg = f"{where} is empty; pass raw counts"
        raise MkcellError(msg)
    check_counts(X, where=where)
    return X


def check_counts(
    X: sp.spmatrix | np.ndarray, *, where: str = "adata.X", n_check: int = 200_000
) -> None:
    """Raise if ``X`` is not a non-negative integer count matrix.

    Checks up to ``n_check`` values.
    """
    data = X.data if sp.issparse(X) else np.asarray(X).ravel()
    sample = np.asarray(data[:n_check], dtype=np.float64)
    if sample.size == 0:
        return
    if not np.all(np.isfinite(sample)):
        msg = (
            f"{where} contains NaN or inf; raw counts are finite non-negative integers — "
            "pass the raw count matrix"
        )
        raise MkcellError(msg)
    if (sample < 0).any():
        msg = (
            f"{where} contains negative values (min {sample.min():.3g}); it looks scaled — "
            "pass raw counts (e.g. layer='counts')"
        )
        raise MkcellError(msg)
    if not np.allclose(sample, np.round(sample)):
        msg = (
            f"{where} holds non-integer values "
            f"(e.g. {sample[~np.isclose(sample, np.round(sample))][0]:.3g}); "
            "it looks normalized or log-transformed — put raw counts in "
            "adata.layers['counts'] or pass layer="
        )
        raise MkcellError(msg)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)  # noqa: PTH105 - atomic rename, also on Windows
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv_atomic(df, path: str | os.PathLike) -> None:  # noqa: ANN001
    """Write a DataFrame to CSV atomically (no index)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def write_h5ad_atomic(
    adata: AnnData, path: str | os.PathLike, *, counts_once: bool = False
) -> None:
    """Write an AnnData to ``.h5ad`` atomically, without mkcell's caches.

    The cached log-normalised layer (``layers['mk_lognorm']`` and its record) is left out
    of the file: it is derived from the counts, as large as their non-zeros, and rebuilt
    on first use after reading. ``adata`` itself keeps it.

    ``counts_once`` (the workflow's stage files): when ``X`` holds the same matrix as
    ``layers['counts']``, only the layer is written and :func:`read_h5ad_stage` puts it
    back in ``X`` (one matrix in memory, not two). ``adata`` is left the same way: its
    ``X`` becomes the layer's matrix, so a run that goes on in memory holds what a resumed
    run reads. Files for users keep both.
    """
    from . import _keys as K

    held = {
        "layer": adata.layers.pop(K.LOGNORM, None) if not adata.is_view else None,
        "record": adata.uns.pop(K.LOGNORM_RECORD, None) if not adata.is_view else None,
    }
    x_is_counts = (
        counts_once and not adata.is_view and same_matrix(adata.X, adata.layers.get(K.COUNTS))
    )
    if x_is_counts:
        adata.X = None
        adata.uns[K.X_IS_COUNTS] = True
    try:
        with atomic_path(path) as tmp:
            adata.write_h5ad(tmp)
    finally:
        if x_is_counts:
            adata.X = adata.layers[K.COUNTS]  # the same values: one matrix, not two
            del adata.uns[K.X_IS_COUNTS]
        if held["layer"] is not None:
            adata.layers[K.LOGNORM] = held["layer"]
        if held["record"] is not None:
            adata.uns[K.LOGNORM_RECORD] = held["record"]


def read_h5ad_stage(path: str | os.PathLike) -> AnnData:
    """Read a file written by :func:`write_h5ad_atomic`; ``X`` and the counts share one matrix."""
    import anndata as ad

    from . import _keys as K

    adata = ad.read_h5ad(path)
    if adata.uns.pop(K.X_IS_COUNTS, False):
        adata.X = adata.layers[K.COUNTS]
    return adata


def same_matrix(a: object, b: object) -> bool:
    """Whether two count matrices hold the same values in the same layout (O(nnz), no copy)."""
    if a is None or b is None:
        return False
    if a is b:
        return True
    if sp.issparse(a) and sp.issparse(b):
        return (
            a.format == b.format
            and a.shape == b.shape
            and a.nnz == b.nnz
            and a.dtype == b.dtype
            and all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("indptr", "indices"))
            and np.array_equal(a.data, b.data)
        )
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return False


def rng(seed: int | None) -> np.random.Generator:
    """A numpy Generator from ``seed`` (None: fresh entropy, not reproducible, as in numpy)."""
    return np.random.default_rng(seed)


def data_path(*parts: str) -> Path:
    """Path of a file shipped in ``mkcell/data``."""
    return Path(__file__).parent.joinpath("data", *parts)


def species_of(adata: AnnData) -> np.ndarray:
    """``obs['species']`` as strings, or one group (``"all"``) when the column is absent."""
    from . import _keys as K

    if K.SPECIES in adata.obs:
        return adata.obs[K.SPECIES].astype(str).to_numpy()
    return np.full(adata.n_obs, "all")


def zscore_within(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``x`` (cells, or cells x columns) centred and scaled within each group of ``groups``.

    Returns a new array.
    """
    out = np.array(x, dtype=np.float64, copy=True)
    for g in np.unique(groups):
        m = groups == g
        out[m] = (out[m] - out[m].mean(0)) / (out[m].std(0) + 1e-12)
    return out
