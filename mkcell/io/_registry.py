"""The data registry: one ``data_registry/<id>.yaml`` per public dataset, loaded by id."""

from __future__ import annotations

import difflib
import re
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._settings import MkcellError, logger
from .._utils import data_path
from . import _read
from ._fetch import cache_dir, fetch

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData

FORMATS = {
    "shipped": "an .h5ad shipped inside mkcell (field `file`, relative to mkcell/data)",
    "h5ad": "an .h5ad file, X as stored",
    "h5ad_raw": "an .h5ad whose .raw holds the raw counts (X normalised); load returns .raw",
    "10x_h5": "a CellRanger HDF5 file",
    "10x_mtx_tar": "a tar archive of 10x mtx folders (one per sample)",
    "tsv_genes_x_cells": (
        "a tab-separated (optionally gzipped) table, genes in rows, cells in columns"
    ),
    "tar_tsv_genes_x_cells": "a tar archive of such tables, one per sample",
}
REQUIRED = (
    "id",
    "title",
    "species",
    "tissue",
    "assay",
    "urls",
    "sha256",
    "format",
    "shape",
    "obs_columns",
    "citation_doi",
    "license",
)
OPTIONAL = ("notes", "file")
SPECIES = ("mouse", "human")
SAMPLE_COLUMN = "sample"
_TABLE_SUFFIXES = (".txt.gz", ".tsv.gz", ".txt", ".tsv")


def registry_dir() -> Path:
    """Folder of the registry YAML files.

    ``data_registry/`` of a source checkout, else the installed copy.
    """
    repo = Path(__file__).resolve().parents[2] / "data_registry"
    return repo if repo.is_dir() else data_path("registry")


def _known_ids() -> list[str]:
    return sorted(p.stem for p in registry_dir().glob("*.yaml"))


def registry_entry(dataset_id: str) -> dict[str, Any]:
    """Return the validated registry entry of ``dataset_id``.

    Parameters
    ----------
    dataset_id
        A file stem of ``data_registry/`` (see :func:`list_datasets`).

    Returns
    -------
    The entry as a dict; ``sha256`` is normalised to a list with one item (or ``None``)
    per URL.
    """
    known = _known_ids()
    if dataset_id not in known:
        close = difflib.get_close_matches(str(dataset_id), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        msg = f"unknown dataset {dataset_id!r}; {hint}known ids: {', '.join(known)}"
        raise MkcellError(msg)
    import yaml

    path = registry_dir() / f"{dataset_id}.yaml"
    try:
        entry = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        msg = f"cannot parse {path}: {' '.join(str(err).split())}; fix the YAML syntax"
        raise MkcellError(msg) from None
    return validate_entry(entry, stem=dataset_id)


def list_datasets() -> pd.DataFrame:
    """Return all registry entries, one row each (id, title, species, shape, keys, citation...)."""
    import pandas as pd

    columns = [
        "id",
        "title",
        "species",
        "tissue",
        "assay",
        "format",
        "n_obs",
        "n_vars",
        "sample_key",
        "cell_type_key",
        "n_files",
        "citation_doi",
        "license",
    ]
    rows = []
    for dataset_id in _known_ids():
        e = registry_entry(dataset_id)
        rows.append(
            {
                "id": e["id"],
                "title": e["title"],
                "species": e["species"],
                "tissue": e["tissue"],
                "assay": e["assay"],
                "format": e["format"],
                "n_obs": e["shape"]["n_obs"],
                "n_vars": e["shape"]["n_vars"],
                "sample_key": e["obs_columns"]["sample"],
                "cell_type_key": e["obs_columns"]["cell_type"],
                "n_files": len(e["urls"]),
                "citation_doi": e["citation_doi"],
                "license": e["license"],
            }
        )
    return pd.DataFrame(rows, columns=columns).astype({"n_obs": "Int64", "n_vars": "Int64"})


def _fail(where: str, problem: str) -> None:
    msg = f"{where}: {problem}"
    raise MkcellError(msg)


def _check_str(entry: Mapping, key: str, where: str) -> None:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        _fail(where, f"`{key}` must be a non-empty string, got {value!r}")


def _normalise_hashes(value: Any, urls: list[str], where: str) -> list[str | None]:
    if value is None:
        hashes = [None] * len(urls)
    elif isinstance(value, str):
        if len(urls) != 1:
            _fail(
                where,
                f"`sha256` is one string but there are {len(urls)} urls; "
                "give a list (one per url) or a mapping url -> hash",
            )
        hashes = [value]
    elif isinstance(value, list):
        if len(value) != len(urls):
            _fail(
                where,
                f"`sha256` has {len(value)} items for {len(urls)} urls; "
                "give one per url (null where unknown)",
            )
        hashes = list(value)
    elif isinstance(value, Mapping):
        extra = sorted(set(value) - set(urls))
        if extra:
            _fail(where, f"`sha256` names urls not in `urls`: {extra}")
        hashes = [value.get(u) for u in urls]
    else:
        _fail(
            where, f"`sha256` must be null, a hash, a list or a mapping, got {type(value).__name__}"
        )
    for h in hashes:
        if h is not None and not (isinstance(h, str) and re.fullmatch(r"[0-9a-f]{64}", h)):
            _fail(
                where,
                f"`sha256` value {h!r} is not 64 lower-case hex digits; use null where unknown",
            )
    return hashes


def _check_mapping(
    entry: Mapping, key: str, fields: tuple[str, ...], types: tuple[type, ...], where: str
) -> None:
    value = entry[key]
    if not isinstance(value, Mapping) or set(value) != set(fields):
        _fail(
            where, f"`{key}` must be a mapping with exactly the keys {list(fields)}, got {value!r}"
        )
    for name in fields:
        item = value[name]
        if item is not None and (isinstance(item, bool) or not isinstance(item, types)):
            _fail(
                where,
                f"`{key}.{name}` must be {' or '.join(t.__name__ for t in types)} or null, "
                f"got {item!r}",
            )


def validate_entry(entry: Mapping[str, Any], *, stem: str | None = None) -> dict[str, Any]:
    """Check a registry entry's fields and types; return it with ``sha256`` as a list.

    Parameters
    ----------
    entry
        The parsed YAML mapping.
    stem
        The YAML file's stem, which ``entry['id']`` must equal.

    Returns
    -------
    A copy of the entry, ``sha256`` normalised to one item per URL.

    Raises
    ------
    MkcellError
        Naming the entry and the offending key (unknown, missing or of a wrong type).
    """
    where = f"registry entry {stem or (entry.get('id') if isinstance(entry, Mapping) else None)!r}"
    if not isinstance(entry, Mapping):
        _fail(where, f"must be a YAML mapping, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        _fail(where, f"unknown key(s) {unknown}; allowed keys: {list(REQUIRED + OPTIONAL)}")
    missing = [k for k in REQUIRED if k not in entry]
    if missing:
        _fail(where, f"missing key(s) {missing}")
    for key in ("id", "title", "tissue", "assay", "license", "citation_doi"):
        _check_str(entry, key, where)
    if stem is not None and entry["id"] != stem:
        _fail(
            where, f"`id` {entry['id']!r} differs from the file name {stem}.yaml; make them equal"
        )
    if entry["species"] not in SPECIES:
        _fail(where, f"`species` must be one of {list(SPECIES)}, got {entry['species']!r}")
    fmt = entry["format"]
    if fmt not in FORMATS:
        _fail(where, f"`format` {fmt!r} is not one of {sorted(FORMATS)}")
    urls = entry["urls"]
    if not isinstance(urls, list) or not all(
        isinstance(u, str) and re.fullmatch(r"https://\S+", u) for u in urls
    ):
        _fail(where, f"`urls` must be a list of https:// addresses, got {urls!r}")
    if not urls and fmt != "shipped":
        _fail(where, "`urls` is empty; only format 'shipped' may have no urls")
    if not re.fullmatch(r"10\.\d{4,9}/\S+", entry["citation_doi"]):
        _fail(
            where,
            f"`citation_doi` {entry['citation_doi']!r} is not a DOI like "
            "10.1016/j.cell.2015.11.013",
        )
    _check_mapping(entry, "shape", ("n_obs", "n_vars"), (int,), where)
    _check_mapping(entry, "obs_columns", ("sample", "cell_type"), (str,), where)
    if "notes" in entry:
        _check_str(entry, "notes", where)
    if fmt == "shipped":
        if "file" not in entry:
            _fail(where, "format 'shipped' needs `file` (path under mkcell/data)")
        _check_str(entry, "file", where)
        if not data_path(*Path(entry["file"]).parts).is_file():
            _fail(where, f"shipped file mkcell/data/{entry['file']} does not exist")
    elif "file" in entry:
        _fail(where, "`file` is only for format 'shipped'; remote files come from `urls`")
    out = dict(entry)
    out["sha256"] = _normalise_hashes(entry["sha256"], urls, where)
    return out


def load(dataset_id: str, *, progress: bool = True) -> AnnData:
    """Load a registry dataset: shipped from the package, or downloaded once and checksummed.

    Parameters
    ----------
    dataset_id
        Registry id (see :func:`list_datasets`).
    progress
        Show download progress bars.

    Returns
    -------
    Cells x genes AnnData with ``obs['species']`` set from the entry and
    ``uns['mk_input']`` naming the dataset. Several files (or an archive of several
    samples) are concatenated with the file/sample name in ``obs['sample']``.
    """
    entry = registry_entry(dataset_id)
    fmt = entry["format"]
    if fmt == "shipped":
        source = data_path(*Path(entry["file"]).parts)
        parts = [(source.stem, _read._read_h5ad(source))]
    else:
        folder = cache_dir() / dataset_id
        parts = []
        for url, sha in zip(entry["urls"], entry["sha256"], strict=True):
            path = fetch(url, sha256=sha, dest_dir=folder, progress=progress)
            parts.extend(_read_file(path, fmt))
        source = folder
    adata = _combine(parts)
    from ._gene_ids import to_symbols

    adata = to_symbols(adata, species=entry["species"], where=dataset_id)  # Ensembl IDs -> symbols
    _read.finish(adata, source, fmt=fmt, species=entry["species"])
    adata.uns[_read.INPUT_KEY]["dataset_id"] = dataset_id
    expected = entry["shape"]
    for axis, n in (("n_obs", adata.n_obs), ("n_vars", adata.n_vars)):
        if expected[axis] is not None and expected[axis] != n:
            msg = (
                f"dataset {dataset_id!r} has {axis}={n}, registry says {expected[axis]}; "
                f"the cached files in {source} may be stale or corrupt — "
                "delete them and load again"
            )
            raise MkcellError(msg)
    return adata


def _combine(parts: list[tuple[str, AnnData]]) -> AnnData:
    if len(parts) == 1:
        return parts[0][1]
    import anndata as ad

    adata = ad.concat(
        dict(parts), label=SAMPLE_COLUMN, index_unique="-", join="outer", fill_value=0
    )
    logger.info("concatenated %d samples; added `adata.obs[%r]`", len(parts), SAMPLE_COLUMN)
    return adata


def _strip_suffix(name: str) -> str:
    for suffix in (*_TABLE_SUFFIXES, ".tar.gz", ".tgz", ".tar", ".h5ad", ".h5"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read_file(path: Path, fmt: str) -> list[tuple[str, AnnData]]:
    """Read one downloaded file as ``[(sample_name, AnnData), ...]``."""
    name = _strip_suffix(path.name)
    if fmt == "h5ad":
        return [(name, _read._read_h5ad(path))]
    if fmt == "h5ad_raw":
        adata = _read._read_h5ad(path)
        if adata.raw is None:
            msg = (
                f"{path} has no .raw counts although its registry format is 'h5ad_raw'; "
                "set format: h5ad"
            )
            raise MkcellError(msg)
        return [(name, adata.raw.to_adata())]
    if fmt == "10x_h5":
        return [(name, _read._read_10x_h5(path))]
    if fmt == "tsv_genes_x_cells":
        return [(name, _read.read_text_counts(path))]
    folder = extract(path)
    if fmt == "10x_mtx_tar":
        dirs = sorted(
            {p.parent for p in folder.rglob("*") if re.fullmatch(r".*matrix\.mtx(\.gz)?", p.name)}
        )
        parts = [
            ("_".join(d.relative_to(folder).parts) or name, _read._read_mtx_dir(d)) for d in dirs
        ]
    else:  # tar_tsv_genes_x_cells
        tables = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.name.endswith(_TABLE_SUFFIXES)
        )
        parts = [(_strip_suffix(p.name), _read.read_text_counts(p)) for p in tables]
    if not parts:
        msg = f"archive {path} holds no data files for format {fmt!r}; delete it to download again"
        raise MkcellError(msg)
    return parts


def extract(archive: Path) -> Path:
    """Unpack a tar archive next to itself, atomically (a folder appears only when complete)."""
    dest = archive.parent / f"{_strip_suffix(archive.name)}_files"
    if dest.is_dir():
        return dest
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=archive.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        tmp.replace(dest)
    except (tarfile.TarError, OSError, EOFError) as err:
        reason = " ".join(str(err).split())
        msg = (
            f"cannot unpack {archive} ({type(err).__name__}: {reason}); delete it to download again"
        )
        raise MkcellError(msg) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    logger.info("unpacked %s to %s", archive.name, dest)
    return dest
