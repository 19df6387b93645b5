"""Your own cell labels from files: a labels table (cell, label), a label map (label -> state)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .. import _keys as K
from .._settings import ArgumentError, MkcellError

#: Column names tried, in order, when the labels file's columns are not named.
CELL_COLUMNS = ("cell", "barcode", "cell_id", "obs_names", "index")
LABEL_COLUMNS = ("label", "cell_type", "celltype", "labels", "state")
_MAP_HEADERS = {"state", K.STATE, "mkcell_state", "target"}


def _path(path: str | os.PathLike, what: str, hint: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        msg = f"{what} {p}: no such file; {hint}"
        raise MkcellError(msg)
    return p


def _read_table(path: Path, what: str, *, header: int | None = 0) -> pd.DataFrame:
    sep = (
        "\t"
        if path.suffix.lower() in (".tsv", ".txt", ".tab")
        or path.name.lower().endswith((".tsv.gz", ".txt.gz"))
        else ","
    )
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, header=header)
    except Exception as err:  # noqa: BLE001 - any parser error becomes one clean line
        reason = " ".join(str(err).split())[:160]
        msg = (
            f"cannot read the {what} {path} ({type(err).__name__}: {reason}); "
            "write a CSV (or TSV) with a header row"
        )
        raise MkcellError(msg) from None


def read_labels(
    path: str | os.PathLike, *, cell_column: str | None = None, label_column: str | None = None
) -> pd.Series:
    """Read a labels file: a CSV/TSV with one row per cell, a cell-name column and a label column.

    Parameters
    ----------
    path
        The file (``.csv``; ``.tsv`` / ``.txt`` are tab-separated). Label values may hold
        spaces and punctuation (``HSCs & MPPs``, ``CD34+ / MkP``).
    cell_column, label_column
        Column names; default: the first of :data:`CELL_COLUMNS` / :data:`LABEL_COLUMNS`
        present, or the first and second column of a two-column file.

    Returns
    -------
    Labels indexed by cell name (as strings, stripped of surrounding blanks).
    """
    p = _path(path, "labels file", "pass an existing CSV with a cell column and a label column")
    df = _read_table(p, "labels file")
    cols = [str(c) for c in df.columns]
    df.columns = cols

    def pick(given: str | None, defaults: tuple[str, ...], pos: int, role: str, key: str) -> str:
        if given is not None:
            if given not in cols:
                problem = f"labels file {p.name}: no {role} column {given!r} (columns: {cols})"
                raise ArgumentError(problem, key, "to one of them")
            return given
        found = next((c for c in cols if c.lower() in defaults), None)
        if found is not None:
            return found
        if len(cols) == 2:
            return cols[pos]
        problem = f"labels file {p.name}: which column holds the {role}? (columns: {cols})"
        raise ArgumentError(problem, key, "to one of them")

    cell = pick(cell_column, CELL_COLUMNS, 0, "cell", "cell_column")
    label = pick(label_column, LABEL_COLUMNS, 1, "label", "label_column")
    if cell == label:
        msg = (
            f"labels file {p.name}: the cell and label columns are both {cell!r} "
            f"(columns: {cols}); name two different columns"
        )
        raise MkcellError(msg)
    out = pd.Series(
        df[label].str.strip().to_numpy(),
        index=pd.Index(df[cell].str.strip(), name=None),
        name="label",
    )
    if out.index.duplicated().any():
        dups = out.index[out.index.duplicated()].unique()[:3].tolist()
        msg = (
            f"labels file {p.name}: cells listed more than once in column {cell!r} "
            f"(e.g. {dups}); give each cell one row"
        )
        raise MkcellError(msg)
    return out


def read_label_map(path: str | os.PathLike) -> dict[str, str]:
    """Read a label map: YAML ``{label: state}`` or a two-column CSV/TSV ``label,state``.

    A header row (``label,state``) is optional in the CSV. The targets are checked
    with :func:`check_label_map`.
    """
    p = _path(path, "label map", "pass an existing CSV (label,state) or YAML ({label: state}) file")
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(p.read_text())
        except Exception as err:  # noqa: BLE001
            reason = " ".join(str(err).split())[:160]
            msg = (
                f"cannot read the label map {p} as YAML ({reason}); "
                "write lines like 'Megakaryocyte progenitors: MkP'"
            )
            raise MkcellError(msg) from None
        if not isinstance(data, Mapping):
            msg = (
                f"label map {p.name} is not a YAML mapping; "
                "write lines like 'Megakaryocyte progenitors: MkP'"
            )
            raise MkcellError(msg)
        mapping = {str(k).strip(): str(v).strip() for k, v in data.items()}
    else:
        df = _read_table(p, "label map", header=None)
        if df.shape[1] < 2:
            msg = f"label map {p.name} has {df.shape[1]} column; write two columns: label,state"
            raise MkcellError(msg)
        if len(df) and str(df.iloc[0, 1]).strip().lower() in _MAP_HEADERS:
            df = df.iloc[1:]
        mapping = dict(zip(df.iloc[:, 0].str.strip(), df.iloc[:, 1].str.strip(), strict=True))
    check_label_map(mapping, where=f"label map {p.name}")
    return mapping


def check_label_map(mapping: Mapping[str, str], *, where: str = "label_map") -> None:
    """Raise unless every target of ``mapping`` is an mkcell state."""
    bad = sorted({str(v) for v in mapping.values()} - set(K.STATES))
    if bad:
        msg = (
            f"{where}: targets {bad[:8]} are not mkcell states; "
            f"map each label onto one of {list(K.STATES)}"
        )
        raise MkcellError(msg)


def as_label_map(label_map: Mapping[str, str] | str | os.PathLike | None) -> dict[str, str] | None:
    """A ``{label: state}`` dict from a mapping or a file path (checked)."""
    if label_map is None:
        return None
    if isinstance(label_map, str | os.PathLike):
        return read_label_map(label_map)
    mapping = {str(k): str(v) for k, v in dict(label_map).items()}
    check_label_map(mapping)
    return mapping


def align_labels(labels: pd.Series, obs_names: pd.Index, *, where: str = "labels") -> pd.Series:
    """Labels of the cells ``obs_names`` (``""`` for cells the labels do not list).

    Cell names that mkcell prefixed with ``mouse:`` / ``human:`` (names shared by both
    species) are matched without the prefix. Raises when no cell matches.
    """
    names = pd.Index(obs_names.astype(str))
    got = labels.reindex(names)
    bare = names.str.replace(r"^(mouse|human):", "", regex=True)
    miss = got.isna().to_numpy()
    if miss.any():
        got[miss] = labels.reindex(bare[miss]).to_numpy()
    n = int(got.notna().sum())
    if n == 0:
        msg = (
            f"{where}: none of its {len(labels)} cell names "
            f"(e.g. {labels.index[:2].tolist()}) is a cell of the data "
            f"(e.g. {names[:2].tolist()}); the cell column must hold the cell names "
            "(obs_names) of the input"
        )
        raise MkcellError(msg)
    return got.fillna("")


def labels_to_states(
    labels: pd.Series, label_map: Mapping[str, str] | None, *, where: str = "labels"
) -> tuple[pd.Series, pd.DataFrame]:
    """Translate labels (``""``: cell without a label) into mkcell states.

    Without ``label_map`` every label must already be a state. With it, labels that are
    neither in the map nor states become ``other``; they are returned as a table
    (label, n_cells). Cells without a label are ``other`` too (label ``""`` in the table).
    """
    labels = labels.astype(str)
    states = set(K.STATES)
    if not label_map:
        bad = sorted(set(labels) - states - {""})
        if bad:
            msg = (
                f"{where}: labels that are not mkcell states: {bad[:8]}; "
                f"map them onto {list(K.STATES)} with "
                "label_map={label: state} (CLI: annotate.label_map_file=MAP.csv with "
                "label,state rows, or a YAML mapping)"
            )
            raise MkcellError(msg)
        mapped = labels.where(labels != "", "other")
        unmapped = labels[labels == ""]
    else:
        mapped = labels.map(lambda x: label_map.get(x, x if x in states else None))
        unmapped = labels[mapped.isna()]
        mapped = mapped.fillna("other")
    table = unmapped.value_counts().rename_axis("label").reset_index(name="n_cells")
    if not (mapped != "other").any():
        msg = (
            f"{where}: no cell maps to an mkcell state "
            f"(labels: {sorted(set(labels) - {''})[:8]}); "
            "check the label map's left column against the labels"
        )
        raise MkcellError(msg)
    return mapped, table
