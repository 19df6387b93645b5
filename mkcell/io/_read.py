"""Read one count matrix from disk: ``.h5ad``, 10x ``.h5`` or a 10x mtx folder."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _keys as K
from .._settings import MkcellError, logger

if TYPE_CHECKING:
    from anndata import AnnData

SUPPORTED = ".h5ad file, 10x .h5 file (CellRanger HDF5) or 10x mtx folder"
INPUT_KEY = K.INPUT
_SPECIES = ("mouse", "human")
_MTX_LAYOUTS = {
    # CellRanger >= 3: everything gzipped; CellRanger 2: plain text with genes.tsv
    "v3": ("matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz"),
    "v2": ("matrix.mtx", "genes.tsv", "barcodes.tsv"),
}


class MkcellFileNotFoundError(MkcellError, FileNotFoundError):
    """An input path that does not exist (both a :class:`MkcellError` and a FileNotFoundError)."""


def read(
    path: str | os.PathLike, *, species: str | None = None, gene_symbols: str | None = None
) -> AnnData:
    """Read a count matrix from ``.h5ad``, a 10x ``.h5`` file or a 10x mtx folder.

    The input file is opened read-only and never modified.

    Parameters
    ----------
    path
        An ``.h5ad`` file, a CellRanger HDF5 file (``.h5``; v3 ``/matrix`` or legacy
        per-genome layout) or a folder holding ``matrix.mtx(.gz)``,
        ``features.tsv.gz``/``genes.tsv`` and ``barcodes.tsv(.gz)`` (a shared prefix such
        as ``GSM123_`` is allowed; the path of ``matrix.mtx(.gz)`` itself also works).
    species
        ``"mouse"`` or ``"human"``: written to ``adata.obs['species']``. ``None`` leaves
        ``obs`` as read.
    gene_symbols
        ``var`` column holding gene symbols, when ``var_names`` are IDs. Without it,
        ``var_names`` that look like Ensembl IDs (ENSG / ENSMUSG, versioned or not) are
        mapped to symbols through the shipped Ensembl BioMart / HGNC HCOP tables. Either
        way, genes sharing a symbol are summed, IDs without a symbol are kept as they are,
        and the mapping is reported per gene in ``adata.uns['mk_gene_ids']['genes']``
        (id, symbol, status).

    Returns
    -------
    The cells x genes AnnData. Gene symbols are the ``var_names`` (duplicated symbols are
    made unique with a logged note, unless they came from IDs: then they are summed);
    ``adata.uns['mk_input']`` holds ``path`` and ``format``.

    Raises
    ------
    MkcellError
        Unsupported or unreadable file, incomplete mtx folder, empty matrix or duplicated
        cell names; :class:`MkcellFileNotFoundError` (also a ``FileNotFoundError``) when
        ``path`` does not exist.
    """
    if species is not None and species not in _SPECIES:
        msg = f"species={species!r} is not supported; pass one of {list(_SPECIES)} or None"
        raise MkcellError(msg)
    path = Path(path).expanduser()
    if not path.exists():
        msg = f"no such file or folder: {path}; mk.io.read accepts an {SUPPORTED}"
        raise MkcellFileNotFoundError(msg)
    if path.is_file() and re.fullmatch(r".*matrix\.mtx(\.gz)?", path.name):
        path = path.parent
    if path.is_dir():
        fmt, adata = "10x_mtx", _read_mtx_dir(path)
    elif path.name.endswith(".h5ad"):
        fmt, adata = "h5ad", _read_h5ad(path)
    elif path.suffix == ".h5":
        fmt, adata = "10x_h5", _read_10x_h5(path)
    else:
        msg = (
            f"cannot read {path}: unsupported file type {path.suffix or '(no extension)'!r}; "
            f"pass an {SUPPORTED}"
        )
        raise MkcellError(msg)
    if adata.n_vars > 0:
        from ._gene_ids import to_symbols

        adata = to_symbols(adata, gene_symbols=gene_symbols, species=species, where=path.name)
    finish(adata, path, fmt=fmt, species=species)
    return adata


def finish(adata: AnnData, path: Path, *, fmt: str, species: str | None = None) -> None:
    """Check a freshly read AnnData and record where it came from (in place)."""
    import scipy.sparse as sp

    if adata.n_obs == 0 or adata.n_vars == 0:
        msg = (
            f"{path} holds an empty matrix ({adata.n_obs} cells x {adata.n_vars} genes); "
            "pass a file with cells and genes"
        )
        raise MkcellError(msg)
    if not adata.obs_names.is_unique:
        dups = adata.obs_names[adata.obs_names.duplicated()].unique()
        examples = ", ".join(map(repr, dups[:3]))
        msg = (
            f"{path} has {len(dups)} duplicated cell names (e.g. {examples}); make them unique "
            "first (adata.obs_names_make_unique(), then write the file again)"
        )
        raise MkcellError(msg)
    if not adata.var_names.is_unique:
        n_dup = int(adata.var_names.duplicated().sum())
        adata.var_names_make_unique()
        logger.info(
            "%s: made %d duplicated gene names unique by appending '-1', '-2', ...",
            path.name,
            n_dup,
        )
    if species is not None:
        import pandas as pd

        adata.obs["species"] = pd.Categorical([species] * adata.n_obs, categories=list(_SPECIES))
        logger.info("added `adata.obs['species']` (%s)", species)
    if sp.issparse(adata.X) and adata.X.format == "csc":
        adata.X = adata.X.tocsr()  # cells are read row by row downstream
    adata.uns[INPUT_KEY] = {"path": str(path.resolve()), "format": fmt}
    logger.info("read %s (%s): %d cells x %d genes", path, fmt, adata.n_obs, adata.n_vars)


def _unreadable(path: Path, what: str, err: BaseException) -> MkcellError:
    reason = " ".join(str(err).split())[:160] or type(err).__name__
    msg = (
        f"cannot read {path} as {what} ({type(err).__name__}: {reason}); "
        f"check that the file is complete and really is {what}"
    )
    return MkcellError(msg)


def _quiet_read(func, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    """Call a reader, silencing anndata's duplicate-name warnings (handled in :func:`finish`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*names are not unique.*")
        return func(*args, **kwargs)


def _read_h5ad(path: Path) -> AnnData:
    import anndata as ad

    try:
        return _quiet_read(ad.read_h5ad, path)
    except Exception as err:  # noqa: BLE001 - any library error becomes one clean line
        raise _unreadable(path, "an .h5ad file", err) from None


def _read_10x_h5(path: Path) -> AnnData:
    import h5py

    what = "a 10x CellRanger .h5 file"
    try:
        with h5py.File(path, "r") as f:
            keys = list(f.keys())
    except Exception as err:  # noqa: BLE001
        raise _unreadable(path, what, err) from None
    if not keys:
        msg = (
            f"{path} is an empty HDF5 file, not {what}; pass the filtered_feature_bc_matrix.h5 "
            "from CellRanger"
        )
        raise MkcellError(msg)
    if "obs" in keys and "var" in keys:
        msg = f"{path} looks like an AnnData file, not {what}; rename it to .h5ad"
        raise MkcellError(msg)
    import scanpy as sc

    try:
        return _quiet_read(sc.read_10x_h5, path)
    except Exception as err:  # noqa: BLE001
        raise _unreadable(path, what, err) from None


def _mtx_files(path: Path) -> tuple[str, tuple[str, str, str]]:
    """Return ``(prefix, (matrix, features, barcodes))`` of a 10x mtx folder, or raise."""
    matrices = sorted(
        p.name for p in path.iterdir() if re.fullmatch(r".*matrix\.mtx(\.gz)?", p.name)
    )
    if not matrices:
        msg = (
            f"folder {path} is not a 10x mtx folder: no matrix.mtx(.gz) in it; "
            f"mk.io.read accepts an {SUPPORTED}"
        )
        raise MkcellError(msg)
    if len(matrices) > 1:
        msg = (
            f"folder {path} holds several matrices ({', '.join(matrices)}); "
            "put each sample in its own folder"
        )
        raise MkcellError(msg)
    prefix = re.sub(r"matrix\.mtx(\.gz)?$", "", matrices[0])
    for layout in _MTX_LAYOUTS.values():
        if all((path / f"{prefix}{name}").is_file() for name in layout):
            return prefix, layout
    present = {p.name for p in path.iterdir()}
    gz = matrices[0].endswith(".gz")
    expected = _MTX_LAYOUTS["v3" if gz else "v2"]
    missing = [f"{prefix}{n}" for n in expected if f"{prefix}{n}" not in present]
    if missing:
        msg = (
            f"10x mtx folder {path} lacks {', '.join(missing)}; "
            f"a 10x folder needs {prefix}matrix.mtx(.gz), "
            f"{prefix}features.tsv.gz (or genes.tsv) and {prefix}barcodes.tsv(.gz) — "
            "copy the missing file from the CellRanger output"
        )
    else:  # pragma: no cover - all files present but in a mixed layout is caught above
        msg = f"10x mtx folder {path} has an unexpected layout"
    raise MkcellError(msg)


def _read_mtx_dir(path: Path) -> AnnData:
    prefix, layout = _mtx_files(path)
    import scanpy as sc

    try:
        adata = _quiet_read(
            sc.read_10x_mtx, path, var_names="gene_symbols", make_unique=False, prefix=prefix
        )
    except Exception as err:  # noqa: BLE001
        raise _unreadable(
            path, f"a 10x mtx folder ({', '.join(prefix + n for n in layout)})", err
        ) from None
    return adata


def read_text_counts(path: Path, *, chunksize: int = 2000) -> AnnData:
    """Read a delimited genes x cells count table (first column = gene names; gzip allowed).

    Used by :func:`mkcell.io.load` for GEO supplementary tables; rows are read in chunks
    and stored sparse, so large tables fit in memory.
    """
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    blocks, genes = [], []
    try:
        reader = pd.read_csv(path, sep="\t", index_col=0, chunksize=chunksize)
        cells = None
        for chunk in reader:
            cells = chunk.columns if cells is None else cells
            genes.extend(chunk.index.astype(str))
            blocks.append(sp.csr_matrix(chunk.to_numpy(dtype=np.float32)))
    except Exception as err:  # noqa: BLE001
        raise _unreadable(path, "a tab-separated genes x cells count table", err) from None
    if cells is None:
        msg = f"{path} holds no rows; pass a genes x cells count table"
        raise MkcellError(msg)
    X = sp.vstack(blocks).T.tocsr()
    obs = pd.DataFrame(index=pd.Index(cells.astype(str)))
    var = pd.DataFrame(index=pd.Index(genes))
    return _quiet_read(ad.AnnData, X=X, obs=obs, var=var)
