"""Stage fingerprints: what a stage's result depends on, hashed.

A fingerprint hashes the config sections the stage reads, the source of the package files
its computation depends on (:func:`stage_code`, found from its function's imports by
:mod:`._imports`), the fingerprint of the stage before, the input files (path, size, mtime)
and the mkcell version. The first stage also holds :data:`BASE_CODE` and the workflow
machinery, so editing those re-runs everything.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from ._imports import depends_on, machinery

if TYPE_CHECKING:
    from ._runner import Stage

#: Globs (relative to the package) every run depends on besides the imports found: the
#: shipped data, the package ``__init__`` files and the lazy loader that routes their names.
BASE_CODE = ("data/**/*", "__init__.py", "*/__init__.py", "_lazy.py")


def _version() -> str:
    from .. import __version__

    return __version__


def package_root() -> Path:
    """The folder of the ``mkcell`` package that is running (code files are relative to it)."""
    return Path(__file__).resolve().parents[1]


def code_files(patterns: Sequence[str], root: Path | None = None) -> list[str]:
    """Files of the package matched by ``patterns`` (relative POSIX paths, sorted, no caches).

    Parameters
    ----------
    patterns
        Globs relative to ``root`` (``tl/_pool.py``, ``data/**/*``).
    root
        The package folder; default :func:`package_root`.

    Returns
    -------
    The matched files; a pattern that matches no file raises (a typo in a stage list).
    """
    root = package_root() if root is None else Path(root)
    found: set[str] = set()
    for pattern in patterns:
        hits = {
            p.relative_to(root).as_posix()
            for p in root.glob(pattern)
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        }
        if not hits:
            msg = (
                f"stage code pattern {pattern!r} matches no file in {root}; this is a bug in mkcell"
            )
            raise RuntimeError(msg)
        found |= hits
    return sorted(found)


def stage_code(stage: Stage, root: Path | None = None, *, first: bool = False) -> list[str]:
    """Package files a stage's results depend on, found from its function's imports.

    Parameters
    ----------
    stage
        The stage; its ``func`` is read (see :mod:`mkcell.workflow._imports`).
    root
        The package folder; default :func:`package_root`.
    first
        Add what every run depends on: :data:`BASE_CODE` and the workflow machinery with
        what it imports. The first stage holds them, and the later ones through its
        fingerprint.

    Returns
    -------
    Relative POSIX paths, sorted; computed once per process for a stage function.
    """
    root = (package_root() if root is None else Path(root)).resolve()
    files = set(depends_on(stage.func, root))
    if first:
        files |= set(code_files(BASE_CODE, root)) | machinery(root)
    return sorted(files)


def code_digest(files: Sequence[str], root: Path | None = None) -> dict[str, str]:
    """``{file: sha256 of its bytes}`` for package files (relative to ``root``)."""
    root = package_root() if root is None else Path(root)
    return {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in sorted(files)}


def _json_default(obj: object) -> str:
    return str(obj)


def _digest(payload: object) -> str:
    text = json.dumps(payload, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def file_signature(path: str | os.PathLike) -> list[Any]:
    """Path, size and modification time of a file, or of every file in a folder (sorted).

    Parameters
    ----------
    path
        A file or folder.

    Returns
    -------
    A JSON-able list; it changes when a file is replaced or edited.
    """
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return [
            str(path),
            [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns] for p in files],
        ]
    if not path.exists():
        msg = f"input {path} does not exist; check the path"
        raise FileNotFoundError(msg)
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def section(cfg: DictConfig, key: str) -> Any:
    """Return the resolved plain-Python value of ``cfg[key]`` (a dict, list or scalar)."""
    value = OmegaConf.select(cfg, key)
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True, enum_to_str=True)
    return value


def fingerprints(
    cfg: DictConfig,
    stages: Sequence[Stage],
    inputs: object = None,
    *,
    root: str | os.PathLike | None = None,
) -> dict[str, str]:
    """Fingerprint of every stage, chained from the first.

    Parameters
    ----------
    cfg
        The job config.
    stages
        The stages in order.
    inputs
        JSON-able signature of the input files (enters the first stage).
    root
        The package folder the stages' code is read from; default :func:`package_root`.

    Returns
    -------
    ``{stage name: sha256 hex digest}``.
    """
    return {k: v["fingerprint"] for k, v in _payloads(cfg, stages, inputs, root).items()}


def _payloads(
    cfg: DictConfig, stages: Sequence[Stage], inputs: object, root: str | os.PathLike | None
) -> dict[str, dict[str, Any]]:
    """What enters each stage's fingerprint, and the fingerprint (key ``fingerprint``)."""
    root = package_root() if root is None else Path(root)
    out: dict[str, dict[str, Any]] = {}
    prev = None
    version = _version()
    for i, st in enumerate(stages):
        payload = {
            "stage": st.name,
            "config": {k: section(cfg, k) for k in st.sections},
            "code": code_digest(stage_code(st, root, first=i == 0), root),
            "previous": prev,
            "inputs": inputs if i == 0 else None,
            "mkcell": version,
        }
        prev = _digest(payload)
        out[st.name] = {**payload, "fingerprint": prev}
    return out
