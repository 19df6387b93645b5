"""Per-sample metadata files (one row per sample) and their join onto the cells.

A samples file holds what is known of each person or mouse (platelet count, age, sex,
batch): covariates of :func:`mkcell.tl.associate` and terms of ``design=`` formulas. It is
read as text, checked, and never written to.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from .. import _keys as K
from .._formula import formula_columns
from .._settings import MkcellError, logger
from .._utils import check_adata, check_obs_key, log_write
from ._read import MkcellFileNotFoundError

#: Cells read as missing in a samples file (besides an empty cell).
NA_VALUES = ("", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "-")
#: How many names an error lists.
SHOW = 5
#: A column is numeric when at least this share of its filled cells parse as numbers; then
#: every filled cell must.
NUMERIC_SHARE = 0.5


def _names(values: Sequence[object]) -> str:
    values = [str(v) for v in values]
    more = f" and {len(values) - SHOW} more" if len(values) > SHOW else ""
    return f"{values[:SHOW]}{more}"


def sep_of(path: Path, first_line: str) -> str:
    """The delimiter of a text table: tab for .tsv / .txt / .tab, comma for .csv, else sniffed."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".tsv", ".txt", ".tab")):
        return "\t"
    if name.endswith(".csv"):
        return ","
    return "\t" if first_line.count("\t") > first_line.count(",") else ","


def _first_line(path: Path) -> str:
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as fh:
            return fh.readline()
    except (UnicodeDecodeError, OSError) as err:
        msg = f"{path}: cannot be read as UTF-8 text ({err}); save it as CSV or TSV"
        raise MkcellError(msg) from None


def check_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path; raise :class:`MkcellFileNotFoundError` naming ``what`` if absent."""
    path = Path(path).expanduser()
    if not path.is_file():
        msg = f"no such {what}: {path}; pass the path of a CSV or TSV file"
        raise MkcellFileNotFoundError(msg)
    return path


def read_samples(path: str | os.PathLike, *, sample_column: str | None = None) -> pd.DataFrame:
    """Read a samples file: CSV or TSV, one row per sample.

    Parameters
    ----------
    path
        The file (``.csv``, ``.tsv``, ``.txt``; gzipped too). The delimiter follows the
        suffix, else the header line.
    sample_column
        Column with the sample names. Default: a column named ``sample``, else the first.

    Returns
    -------
    One row per sample, indexed by the sample names (text, as written: ``007`` stays
    ``007``). A column is numeric (float) when most of its filled cells are numbers, else
    text; empty cells and ``NA`` are missing.

    Raises
    ------
    MkcellError
        One line for: an empty file, an unknown ``sample_column``, a missing or duplicated
        sample name, a numeric column with text in it (naming column, line and value).
    """
    path = check_file(path, "samples file")
    sep = sep_of(path, _first_line(path))
    try:
        raw = pd.read_csv(
            path, sep=sep, dtype=str, keep_default_na=False, na_values=[], encoding="utf-8-sig"
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        msg = f"{path}: not a CSV/TSV table ({str(err).splitlines()[0]}); one row per sample"
        raise MkcellError(msg) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.empty:
        msg = f"{path} has no sample rows; write a header line, then one row per sample"
        raise MkcellError(msg)
    col = sample_column or (K.SAMPLE if K.SAMPLE in raw.columns else raw.columns[0])
    if col not in raw.columns:
        msg = f"sample_column={col!r} is not a column of {path}; columns: {list(raw.columns)}"
        raise MkcellError(msg)
    ids = raw[col].str.strip()
    empty = np.flatnonzero(ids.isin(NA_VALUES).to_numpy())
    if empty.size:
        msg = f"{path}: line {empty[0] + 2} has no sample name in column {col!r}; fill it in"
        raise MkcellError(msg)
    dup = ids[ids.duplicated()].unique()
    if dup.size:
        msg = f"{path}: sample(s) {_names(dup)} appear on several rows; keep one row per sample"
        raise MkcellError(msg)
    table = raw.drop(columns=col).set_axis(pd.Index(ids, name=K.SAMPLE))
    for c in table.columns:
        table[c] = _typed(table[c], c, path)
    logger.info("read %d samples x %d columns from %s", *table.shape, path)
    return table


def _typed(col: pd.Series, name: str, path: Path | str) -> pd.Series:
    """The column as float when it is numeric, else as text; missing cells NaN."""
    text = col.str.strip()
    missing = text.isin(NA_VALUES)
    num = pd.to_numeric(text.where(~missing), errors="coerce")
    filled = int((~missing).sum())
    bad = ~missing & num.isna()
    if filled and bad.any() and (filled - int(bad.sum())) / filled >= NUMERIC_SHARE:
        i = int(np.flatnonzero(bad.to_numpy())[0])
        msg = (
            f"{path}: column {name!r} is numeric but line {i + 2} (sample "
            f"{col.index[i]!r}) holds {text.iloc[i]!r}; write a number or leave it empty"
        )
        raise MkcellError(msg)
    if filled and not bad.any():
        return num.astype(float)
    return text.where(~missing).astype(object)


def check_design_columns(
    design: str, columns: Sequence[str], *, condition_key: str = K.CONDITION
) -> None:
    """Raise one :class:`MkcellError` when ``design`` names a column absent from ``columns``.

    Parameters
    ----------
    design
        A formula such as ``"~ condition + age + C(batch)"``; ``condition`` stands for
        ``condition_key``.
    columns
        The columns available (a samples file's, or ``adata.obs``'s).
    condition_key
        The condition column.
    """
    design = str(design)
    if not design.strip().startswith("~"):
        msg = f"design={design!r} must be a formula starting with '~', e.g. '~ condition + age'"
        raise MkcellError(msg)
    names = [condition_key if w == K.CONDITION else w for w in formula_columns(design[1:])]
    have = set(map(str, columns))
    missing = [n for n in names if n not in have]
    if missing:
        msg = (
            f"design={design!r} names column(s) {_names(missing)} that are not among the "
            f"columns {_names(sorted(have))}; add them to the samples file "
            "(data.samples_file=) or drop them from design="
        )
        raise MkcellError(msg)


def _match(data_ids: pd.Index, file_ids: pd.Index, allow_extra: bool, where: str) -> None:
    missing = data_ids.difference(file_ids)
    if len(missing):
        msg = (
            f"{len(missing)} sample(s) of the data are not in {where}: {_names(missing)}; "
            "add a row for each (names must match exactly)"
        )
        raise MkcellError(msg)
    extra = file_ids.difference(data_ids)
    if len(extra) and not allow_extra:
        msg = (
            f"{len(extra)} sample(s) of {where} are not in the data: {_names(extra)}; fix the "
            "names or pass allow_extra=True to ignore them"
        )
        raise MkcellError(msg)


def join_samples(
    adata: AnnData,
    samples: pd.DataFrame | str | os.PathLike,
    *,
    sample_key: str | None = K.SAMPLE,
    columns: Sequence[str] | None = None,
    allow_extra: bool = False,
    overwrite: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Add per-sample columns to ``adata.obs`` (each cell gets its sample's values).

    Parameters
    ----------
    adata
        Cells (or bulk samples) with ``adata.obs[sample_key]``.
    samples
        A table from :func:`read_samples` (indexed by sample) or the path of a samples file.
    sample_key
        Column of ``adata.obs`` with each cell's sample; ``None``: ``obs_names`` are the
        samples (bulk data, one row per sample).
    columns
        Columns to add (default all).
    allow_extra
        Ignore samples of the file absent from the data (by default an error: often a
        misspelt name).
    overwrite
        Replace ``obs`` columns of the same name that hold other values (by default an
        error; columns that agree are left as they are).
    copy
        Return a copy instead of writing to ``adata``.

    Returns
    -------
    ``None`` or a copy (``copy=True``), with the columns in ``adata.obs`` and
    ``adata.uns['mk_samples']`` (the columns added and the file).
    """
    check_adata(adata, min_vars=0)
    where = "the samples table"
    if not isinstance(samples, pd.DataFrame):
        where = f"samples file {samples}"
        samples = read_samples(samples)
    table = samples.set_axis(samples.index.astype(str))
    if table.index.duplicated().any():
        dup = table.index[table.index.duplicated()].unique()
        msg = f"sample(s) {_names(dup)} appear on several rows of {where}; keep one row each"
        raise MkcellError(msg)
    if sample_key is None:
        ids = pd.Index(adata.obs_names.astype(str))
    else:
        check_obs_key(adata, sample_key, what="sample column")
        ids = pd.Index(adata.obs[sample_key].astype(str))
    _match(pd.Index(ids.unique()), table.index, allow_extra, where)
    cols = list(table.columns if columns is None else columns)
    absent = [c for c in cols if c not in table.columns]
    if absent:
        msg = f"columns={_names(absent)} not in {where}; its columns: {list(table.columns)}"
        raise MkcellError(msg)
    new = table.loc[ids, cols].set_axis(adata.obs_names)
    clash = [c for c in cols if c in adata.obs.columns and not _same(adata.obs[c], new[c])]
    if clash and not overwrite:
        msg = (
            f"adata.obs already has column(s) {_names(clash)} with other values than {where}; "
            "rename them there or pass overwrite=True"
        )
        raise MkcellError(msg)
    if copy:
        adata = adata.copy()
    for c in cols:
        adata.obs[c] = new[c].to_numpy()
    adata.uns[K.SAMPLES] = {
        "source": where,
        "columns": [str(c) for c in cols],
        "n_samples": int(ids.nunique()),
    }
    logger.info("added %d per-sample column(s) to `adata.obs`: %s", len(cols), cols)
    log_write("uns", K.SAMPLES)
    return adata if copy else None


def _same(a: pd.Series, b: pd.Series) -> bool:
    x, y = a.to_numpy(), b.to_numpy()
    try:
        return bool(np.allclose(x.astype(float), y.astype(float), equal_nan=True))
    except (TypeError, ValueError):
        return bool(
            (pd.Series(x).astype(str).to_numpy() == pd.Series(y).astype(str).to_numpy()).all()
        )
