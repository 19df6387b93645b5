"""Bulk expression tables (RNA-seq counts, microarray log values) as samples x genes AnnData.

Reads a CSV/TSV table in either orientation or a GEO series-matrix file, collapses probes
(or duplicated IDs) to gene symbols and records what happened to each probe. The patient-
level tools (:func:`mkcell.tl.gsea`, :func:`mkcell.tl.e2f_clusters`,
:func:`mkcell.tl.associate`) read the result. Input files are only read.
"""

from __future__ import annotations

import gzip
import io
import os
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._settings import MkcellError, MkcellWarning, logger
from .._utils import log_write
from ._samples import NA_VALUES, _names, check_file, join_samples, read_samples, sep_of

KINDS = ("auto", "counts", "log")
COLLAPSES = ("max_mean", "mean")
ORIENTATIONS = ("auto", "samples_x_genes", "genes_x_samples")
#: Largest value of a table taken for log-expression by ``kind="auto"``.
LOG_MAX = 50.0
#: Columns of the per-probe table in ``uns['mk_bulk']['probes']``.
PROBE_COLUMNS = ["probe", "symbol", "fate", "mean"]
BEGIN, END = "!series_matrix_table_begin", "!series_matrix_table_end"


def _open_text(path: Path) -> str:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8-sig") as fh:
                return fh.read()
        return path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError, EOFError) as err:
        msg = f"{path}: cannot be read as (gzipped) UTF-8 text ({err})"
        raise MkcellError(msg) from None


def _numeric(df: pd.DataFrame, where: str, rows: str, cols: str) -> pd.DataFrame:
    """``df`` as floats; raise naming the first cell that is not a number."""
    bad_cols = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    for c in bad_cols:
        vals = df[c].astype(str).str.strip()
        num = pd.to_numeric(vals.where(~vals.isin(NA_VALUES)), errors="coerce")
        bad = num.isna() & ~vals.isin(NA_VALUES) & df[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            msg = (
                f"{where}: {cols} {str(c)!r}, {rows} {str(df.index[i])!r} holds "
                f"{vals.iloc[i]!r}, not a number; expression tables hold numbers only"
            )
            raise MkcellError(msg)
        df[c] = num
    return df.astype(float)


def read_geo_series_matrix(path: str | os.PathLike) -> AnnData:
    """Read a GEO series-matrix file (``*_series_matrix.txt``, gzipped or not).

    The ``!Sample_...`` header lines give the sample metadata (``obs``: one column per
    key; ``characteristics`` lines written ``key: value`` become a column named ``key``);
    the ``!Series_...`` lines go to ``uns['mk_bulk']['series']``. The table between
    ``!series_matrix_table_begin`` and ``!series_matrix_table_end`` holds probes
    (``ID_REF``) x samples; it is returned as samples x probes, values as written
    (no probe collapse: see :func:`read_bulk`).

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    AnnData of samples x probes with the values in ``X``.
    """
    path = check_file(path, "series-matrix file")
    lines = _open_text(path).splitlines()
    marks = [i for i, ln in enumerate(lines) if ln.strip().lower() in (BEGIN, END)]
    if len(marks) != 2 or lines[marks[0]].strip().lower() != BEGIN:
        msg = (
            f"{path}: not a GEO series matrix (needs one {BEGIN!r} line and one {END!r} line); "
            "for a plain table use mk.io.read_bulk"
        )
        raise MkcellError(msg)
    meta, series = _header(lines[: marks[0]])
    body = "\n".join(lines[marks[0] + 1 : marks[1]])
    try:
        table = pd.read_csv(io.StringIO(body), sep="\t", index_col=0, na_values=list(NA_VALUES))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        msg = f"{path}: the series-matrix table does not parse ({str(err).splitlines()[0]})"
        raise MkcellError(msg) from None
    if table.empty:
        msg = f"{path}: the series-matrix table has no rows"
        raise MkcellError(msg)
    table.index = table.index.astype(str)
    table.columns = table.columns.astype(str)
    table = _numeric(table, str(path), "probe", "sample")
    samples = pd.Index(table.columns)
    if meta:
        n = {len(v) for v in meta.values()}
        if n != {samples.size}:
            msg = (
                f"{path}: the !Sample_ lines list {sorted(n)} samples but the table has "
                f"{samples.size} columns; the file is cut or edited"
            )
            raise MkcellError(msg)
        acc = meta.get("geo_accession")
        if acc is not None and list(acc) != list(samples):
            msg = f"{path}: !Sample_geo_accession does not match the table's columns (ID_REF line)"
            raise MkcellError(msg)
    obs = pd.DataFrame(meta, index=samples) if meta else pd.DataFrame(index=samples)
    obs.index.name = K.SAMPLE
    adata = AnnData(
        X=np.ascontiguousarray(table.to_numpy(np.float32).T),
        obs=obs,
        var=pd.DataFrame(index=pd.Index(table.index, name="probe")),
    )
    adata.uns[K.BULK] = {"path": str(path), "format": "geo_series_matrix", "series": series}
    logger.info("read GEO series matrix %s: %d samples x %d probes", path, *adata.shape)
    return adata


def _header(lines: list[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Sample metadata columns and series fields of a series matrix's header lines."""
    meta: dict[str, list[str]] = {}
    series: dict[str, str] = {}
    for ln in lines:
        parts = [p.strip().strip('"') for p in ln.rstrip("\n").split("\t")]
        key = parts[0]
        if key.startswith("!Series_"):
            name = key.removeprefix("!Series_")
            series[name] = (
                "; ".join([series[name], *parts[1:]]) if name in series else "; ".join(parts[1:])
            )
        elif key.startswith("!Sample_"):
            name, values = key.removeprefix("!Sample_"), parts[1:]
            pairs = [v.split(":", 1) for v in values]
            if name.startswith("characteristics") and all(len(p) == 2 for p in pairs):
                keys = {p[0].strip() for p in pairs}
                if len(keys) == 1:
                    name, values = keys.pop(), [p[1].strip() for p in pairs]
            base, k = name, 2
            while name in meta:
                name, k = f"{base}_{k}", k + 1
            meta[name] = values
    return meta, series


def _read_table(path: Path) -> pd.DataFrame:
    sep = sep_of(path, _open_first(path))
    try:
        df = pd.read_csv(path, sep=sep, index_col=0, na_values=list(NA_VALUES), engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        msg = f"{path}: not a CSV/TSV table ({str(err).splitlines()[0]})"
        raise MkcellError(msg) from None
    if df.empty or df.shape[1] == 0:
        msg = f"{path}: no values; write a header line of names, then one row per sample or gene"
        raise MkcellError(msg)
    df.index = df.index.astype(str)
    df.columns = df.columns.astype(str)
    return df


def _open_first(path: Path) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as fh:
            return fh.readline()
    except (UnicodeDecodeError, OSError, EOFError) as err:
        msg = f"{path}: cannot be read as (gzipped) UTF-8 text ({err})"
        raise MkcellError(msg) from None


def _orient(
    df: pd.DataFrame, orientation: str, samples: pd.DataFrame | None, probes: pd.Index | None
) -> tuple[pd.DataFrame, str]:
    """The table as samples x genes, and how its orientation was decided."""
    if orientation == "samples_x_genes":
        return df, "samples x genes (given)"
    if orientation == "genes_x_samples":
        return df.T, "genes x samples (given): transposed"
    # the axis matching the sample names holds the samples; the one matching the probes, genes
    for ids, what, sample_axis in ((samples, "sample names", 0), (probes, "probe annotation", 1)):
        if ids is None:
            continue
        ids = ids.index if isinstance(ids, pd.DataFrame) else ids
        rows, cols = int(df.index.isin(ids).sum()), int(df.columns.isin(ids).sum())
        if rows != cols:
            on_rows = (rows > cols) == (sample_axis == 0)
            if on_rows:
                return df, f"samples x genes (matched the {what})"
            return df.T, f"genes x samples (matched the {what}): transposed"
    if df.shape[0] > df.shape[1]:
        return df.T, f"genes x samples ({df.shape[0]} rows > {df.shape[1]} columns): transposed"
    return df, f"samples x genes ({df.shape[0]} rows <= {df.shape[1]} columns)"


def _annotation(probe_annotation: pd.DataFrame | str | os.PathLike) -> pd.Series:
    """Probe -> symbol of an annotation table.

    Its ``probe``/``ID`` and ``symbol``/``Gene Symbol`` columns, else its first two.
    """
    if not isinstance(probe_annotation, pd.DataFrame):
        path = check_file(probe_annotation, "probe annotation file")
        lines = [ln for ln in _open_text(path).splitlines() if not ln.startswith(("#", "!", "^"))]
        sep = sep_of(path, lines[0] if lines else "")
        try:
            probe_annotation = pd.read_csv(
                io.StringIO("\n".join(lines)), sep=sep, dtype=str, keep_default_na=False
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            msg = f"{path}: not a probe annotation table ({str(err).splitlines()[0]})"
            raise MkcellError(msg) from None
    tab = probe_annotation.reset_index() if probe_annotation.index.name else probe_annotation
    lower = {str(c).strip().lower(): c for c in tab.columns}
    pcol = next((lower[c] for c in ("probe", "id", "id_ref", "probe_id") if c in lower), None)
    scol = next(
        (lower[c] for c in ("symbol", "gene symbol", "gene_symbol", "gene") if c in lower), None
    )
    if pcol is None or scol is None:
        if tab.shape[1] < 2:
            msg = "probe_annotation needs two columns: probe ID and gene symbol"
            raise MkcellError(msg)
        pcol, scol = tab.columns[0], tab.columns[1]
    probes = tab[pcol].astype(str).str.strip()
    if probes.duplicated().any():
        msg = (
            f"probe_annotation lists probe(s) {_names(probes[probes.duplicated()].unique())} twice"
        )
        raise MkcellError(msg)
    return pd.Series(tab[scol].astype(str).str.strip().to_numpy(), index=probes)


def _collapse(
    X: np.ndarray, probes: pd.Index, symbols: pd.Series | None, how: str, counts: bool
) -> tuple[np.ndarray, pd.Index, pd.DataFrame]:
    """Collapse probe columns of ``X`` to gene symbols; the fate of every probe."""
    mean = np.nanmean(X, axis=0) if X.shape[0] else np.zeros(X.shape[1])
    if symbols is None:
        sym = pd.Series(probes.to_numpy(), index=probes)
        fate = np.full(probes.size, "kept", dtype=object)
    else:
        sym = symbols.reindex(probes)
        fate = np.full(probes.size, "kept", dtype=object)
        fate[sym.isna().to_numpy()] = "not_annotated"
        empty = sym.fillna("").isin(NA_VALUES).to_numpy() & ~sym.isna().to_numpy()
        fate[empty] = "no_symbol"
        fate[sym.fillna("").str.contains("//", regex=False).to_numpy()] = "multiple_symbols"
    fate[np.isnan(X).any(axis=0) & (fate == "kept")] = "missing_values"
    ok = fate == "kept"
    tab = pd.DataFrame({"probe": probes, "symbol": sym.to_numpy(), "mean": mean})
    grp = tab.loc[ok, "symbol"]
    n_per = grp.map(grp.value_counts())
    if how == "max_mean":
        order = tab.loc[ok].sort_values(["symbol", "mean"], ascending=[True, False], kind="stable")
        first = ~order["symbol"].duplicated()
        lower = order.index[~first.to_numpy()]
        fate[lower] = "lower_mean"
        chosen = order.index[first.to_numpy()].to_numpy()
        chosen = np.sort(chosen)
        genes = pd.Index(tab.loc[chosen, "symbol"].astype(str))
        out = X[:, chosen]
    else:
        fate[n_per.index[(n_per > 1).to_numpy()]] = "averaged"
        codes, genes = pd.factorize(grp, sort=False)
        rows = np.flatnonzero(ok)
        A = sp.csr_matrix(
            (1.0 / np.bincount(codes)[codes], (rows, codes)), shape=(probes.size, genes.size)
        )
        out = np.asarray((A.T @ np.nan_to_num(X).T).T)
        genes = pd.Index(genes.astype(str))
        if counts:
            out = np.round(out)
    tab["fate"] = fate
    return out, genes, tab[PROBE_COLUMNS]


def _kind(X: np.ndarray, kind: str, where: str) -> str:
    finite = X[np.isfinite(X)]
    if finite.size == 0:
        msg = f"{where}: no finite value in the table"
        raise MkcellError(msg)
    integer = bool(np.all(finite == np.round(finite)))
    lo, hi = float(finite.min()), float(finite.max())
    if kind == "counts":
        if lo < 0 or not integer:
            what = f"negative values (min {lo:.3g})" if lo < 0 else "non-integer values"
            msg = f"{where}: kind='counts' but the table holds {what}; pass kind='log'"
            raise MkcellError(msg)
        return "counts"
    if kind == "log":
        if hi > LOG_MAX:
            warnings.warn(
                f"{where}: kind='log' but values reach {hi:.3g}; they look linear, not log "
                "(log2 them first, or pass kind='counts' for counts)",
                MkcellWarning,
                stacklevel=3,
            )
        return "log"
    if lo >= 0 and integer and hi > LOG_MAX:
        return "counts"
    if hi > LOG_MAX:
        msg = (
            f"{where}: values reach {hi:.3g} and are not integer counts; log2-transform "
            "intensities first, or pass kind='log' or kind='counts'"
        )
        raise MkcellError(msg)
    return "log"


def read_bulk(
    path: str | os.PathLike,
    *,
    kind: Literal["auto", "counts", "log"] = "auto",
    probe_annotation: pd.DataFrame | str | os.PathLike | None = None,
    collapse: Literal["max_mean", "mean"] = "max_mean",
    samples: pd.DataFrame | str | os.PathLike | None = None,
    orientation: Literal["auto", "samples_x_genes", "genes_x_samples"] = "auto",
) -> AnnData:
    """Read a bulk expression table (RNA-seq or microarray) as samples x genes.

    Parameters
    ----------
    path
        A CSV/TSV table (gzipped too) of samples x genes or genes x samples, names in the
        first row and column, or a GEO series-matrix file (:func:`read_geo_series_matrix`,
        recognised by its ``!series_matrix_table_begin`` line).
    kind
        ``"counts"`` (non-negative integers: RNA-seq), ``"log"`` (log-expression:
        microarray, log CPM) or ``"auto"``: counts when the values are non-negative
        integers above 50, log when none exceeds 50; linear intensities raise.
    probe_annotation
        Probe -> gene symbol table (DataFrame or file; columns ``probe``/``ID`` and
        ``symbol``/``Gene Symbol``, else its first two). Probes without a symbol, with
        several (``A /// B``) or missing from it are dropped. Without it the table's IDs
        are the genes (duplicated IDs are collapsed the same way).
    collapse
        Several probes of one symbol: ``"max_mean"`` keeps the probe of the highest mean
        over samples, ``"mean"`` averages them (rounded for counts).
    samples
        Per-sample metadata (table indexed by sample or a samples file,
        :func:`~mkcell.io.read_samples`) joined into ``obs``; names must match.
    orientation
        ``"auto"``: the axis that matches ``samples`` (else the probe annotation) holds the
        samples; without either, the longer axis holds the genes. Logged.

    Returns
    -------
    AnnData of samples x genes: ``X`` the counts (``kind="counts"``, also in
    ``layers['counts']``) or the log values; ``layers['log_expression']`` the log values
    (log2(CPM + 1) of counts); ``obs`` the sample metadata; ``uns['mk_bulk']`` path,
    format, orientation, kind, collapse and ``probes`` (probe, symbol, fate, mean: one row
    per probe; fate ``kept``, ``lower_mean``, ``averaged``, ``not_annotated``,
    ``no_symbol``, ``multiple_symbols`` or ``missing_values``).
    """
    for name, value, allowed in (
        ("kind", kind, KINDS),
        ("collapse", collapse, COLLAPSES),
        ("orientation", orientation, ORIENTATIONS),
    ):
        if value not in allowed:
            msg = f"{name}={value!r}; choose one of {list(allowed)}"
            raise MkcellError(msg)
    path = check_file(path, "bulk expression file")
    symbols = None if probe_annotation is None else _annotation(probe_annotation)
    meta = None
    if samples is not None:
        meta = samples if isinstance(samples, pd.DataFrame) else read_samples(samples)
        meta = meta.set_axis(meta.index.astype(str))
    if _is_series_matrix(path):
        raw = read_geo_series_matrix(path)
        fmt, how = "geo_series_matrix", "samples x probes (series matrix)"
        X, obs, series = raw.X.astype(np.float64), raw.obs, raw.uns[K.BULK]["series"]
        probes = raw.var_names
    else:
        df, how = _orient(
            _read_table(path), orientation, meta, None if symbols is None else symbols.index
        )
        df = _numeric(df, str(path), "sample", "gene")
        fmt, series, probes = "table", {}, pd.Index(df.columns)
        X, obs = df.to_numpy(np.float64), pd.DataFrame(index=pd.Index(df.index, name=K.SAMPLE))
    _check_samples(obs.index, str(path))
    used = _kind(X, kind, str(path))
    Xg, genes, fates = _collapse(X, probes, symbols, collapse, used == "counts")
    if genes.size == 0:
        msg = (
            f"{path}: no gene left after matching probes to symbols ({fates['fate'].value_counts().to_dict()}); "
            "check probe_annotation's probe IDs"
        )
        raise MkcellError(msg)
    adata = _assemble(Xg, genes, obs, used)
    adata.uns[K.BULK] = {
        "path": str(path),
        "format": fmt,
        "orientation": how,
        "kind": used,
        "collapse": collapse,
        "probes": fates,
        "series": series,
    }
    if meta is not None:
        join_samples(adata, meta, sample_key=None, overwrite=True)
    logger.info(
        "read bulk %s (%s, %s): %d samples x %d genes from %d probes/IDs (%s)",
        path,
        fmt,
        used,
        adata.n_obs,
        adata.n_vars,
        probes.size,
        how,
    )
    log_write("uns", K.BULK)
    return adata


def _is_series_matrix(path: Path) -> bool:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as fh:
            head = fh.read(4096)
    except (UnicodeDecodeError, OSError, EOFError) as err:
        msg = f"{path}: cannot be read as (gzipped) UTF-8 text ({err})"
        raise MkcellError(msg) from None
    return head.startswith(("!Series_", "!Sample_", "^")) or BEGIN in head


def _check_samples(ids: pd.Index, where: str) -> None:
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        msg = f"{where}: sample(s) {_names(dup)} appear more than once; give each sample one name"
        raise MkcellError(msg)


def _assemble(X: np.ndarray, genes: pd.Index, obs: pd.DataFrame, kind: str) -> AnnData:
    if kind == "counts":
        lib = X.sum(1, keepdims=True)
        log = np.log2(X / np.maximum(lib, 1) * 1e6 + 1)
    else:
        log = X
    adata = AnnData(
        X=X.astype(np.float32),
        obs=obs.copy(),
        var=pd.DataFrame(index=pd.Index(genes, name="gene")),
    )
    adata.layers[K.LOG_EXPRESSION] = log.astype(np.float32)
    if kind == "counts":
        adata.layers[K.COUNTS] = adata.X.copy()
    return adata
