"""Resumable stage runner: skip/resume, atomic outputs (fingerprints: :mod:`._fingerprints`).

Each stage leaves its data in ``<run>/stages/<stage>.h5ad`` (or one file per species,
``<stage>.<species>.h5ad``) and, last of all, a marker ``<stage>.done.json`` holding the
stage's fingerprint, so a change anywhere upstream (config, inputs, code) re-runs every
stage downstream.

A stage counts as done only when its marker exists, its fingerprint matches and every
output it lists exists. The runner starts at the first stage that is not done, reading
the data of the stage before it, and re-runs every stage after it. Every file is
written under a temporary name and renamed, and a stage's marker is removed before it
runs, so a killed run never leaves a marker next to half-written outputs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anndata import AnnData
from omegaconf import DictConfig

from .._settings import MkcellError, logger
from .._utils import read_h5ad_stage, write_h5ad_atomic, write_text_atomic
from ._fingerprints import (
    _json_default,
    _payloads,
    _version,
    section,
)

StageData = AnnData | dict[str, AnnData]
StageFunc = Callable[[DictConfig, "StageData | None", Path], "StageData"]

STAGES_DIR = "stages"
#: Environment variable naming the run folder, read by Lightning's DDP worker processes.
RUN_DIR_ENV = "MKCELL_RUN_DIR"


@dataclass(frozen=True)
class Stage:
    """One step of the workflow.

    Attributes
    ----------
    name
        Stage name (``load``, ``orthologs``...).
    func
        ``func(cfg, data_or_None, run_dir) -> data``; ``data`` is an AnnData or a dict
        ``{species: AnnData}``.
    sections
        Top-level config keys that enter the fingerprint.
    outputs
        Files (relative to the run folder) the stage must leave behind.
    save_data
        Write the returned data to ``stages/`` (the last stage writes its own output).
    ddp
        Run this stage also in Lightning's DDP worker processes (see :func:`run_workflow`).

    The package files the stage's results depend on are read from ``func``'s imports
    (:func:`stage_code`); their bytes enter the fingerprint.
    """

    name: str
    func: StageFunc
    sections: tuple[str, ...]
    outputs: tuple[str, ...] = ()
    save_data: bool = True
    ddp: bool = False


def _why_rerun(run_dir: Path, stage: Stage, payload: Mapping[str, Any]) -> str:
    """Why the first stage that is not done has to run (for the log)."""
    marker = read_marker(run_dir, stage.name)
    if marker is None:
        return "no finished run of it in this folder"
    if marker.get("fingerprint") == payload["fingerprint"]:
        return "some of its outputs are missing"
    old, new = marker.get("code") or {}, payload["code"]
    changed = sorted(f for f in set(old) | set(new) if old.get(f) != new.get(f))
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        return f"its code changed ({', '.join(changed[:3])}{more})"
    config = json.loads(json.dumps(payload["config"], default=_json_default))
    if marker.get("config") != config:
        return "its config changed"
    return "its inputs, an earlier stage or the mkcell version changed"


def marker_path(run_dir: Path, name: str) -> Path:
    """Path of a stage's ``done`` marker."""
    return run_dir / STAGES_DIR / f"{name}.done.json"


def read_marker(run_dir: Path, name: str) -> dict[str, Any] | None:
    """Read the marker of a stage (None when absent or unreadable)."""
    path = marker_path(run_dir, name)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_done(run_dir: Path, stage: Stage, fingerprint: str) -> bool:
    """Whether ``stage`` finished with this fingerprint and all its files are present."""
    marker = read_marker(run_dir, stage.name)
    if marker is None or marker.get("fingerprint") != fingerprint:
        return False
    files = list(marker.get("outputs", [])) + list(_data_files(marker))
    return all((run_dir / f).exists() for f in files)


def _data_files(marker: Mapping[str, Any]) -> list[str]:
    data = marker.get("data")
    if data is None:
        return []
    if isinstance(data, str):
        return [data]
    return list(data.values())


def save_data(run_dir: Path, name: str, data: StageData) -> str | dict[str, str]:
    """Write a stage's data atomically under ``stages/``; return the relative path(s)."""
    if isinstance(data, AnnData):
        rel = f"{STAGES_DIR}/{name}.h5ad"
        write_h5ad_atomic(data, run_dir / rel, counts_once=True)
        return rel
    if isinstance(data, dict) and data and all(isinstance(v, AnnData) for v in data.values()):
        rels = {}
        for key, adata in data.items():
            rel = f"{STAGES_DIR}/{name}.{key}.h5ad"
            write_h5ad_atomic(adata, run_dir / rel, counts_once=True)
            rels[key] = rel
        return rels
    msg = (
        f"stage {name!r} returned {type(data).__name__};"
        " a stage returns an AnnData or a dict of AnnData"
    )
    raise TypeError(msg)


def load_data(run_dir: Path, name: str) -> StageData:
    """Read the data a finished stage left in ``stages/``."""
    marker = read_marker(run_dir, name)
    if marker is None or marker.get("data") is None:
        msg = (
            f"stage {name!r} left no data in {run_dir / STAGES_DIR};"
            " delete that folder and run again"
        )
        raise MkcellError(msg)
    data = marker["data"]
    if isinstance(data, str):
        return read_h5ad_stage(run_dir / data)
    return {k: read_h5ad_stage(run_dir / v) for k, v in data.items()}


def write_marker(
    run_dir: Path,
    stage: Stage,
    fingerprint: str,
    data_rel: object,
    started: float,
    cfg: DictConfig,
    code: Mapping[str, str] | None = None,
) -> None:
    """Write the ``done`` marker of a stage (after all its outputs); ``code``: file digests."""
    missing = [f for f in stage.outputs if not (run_dir / f).exists()]
    if missing:
        msg = (
            f"stage {stage.name!r} did not write {missing};"
            " this is a bug in mkcell, please report it"
        )
        raise RuntimeError(msg)
    now = time.time()
    marker = {
        "stage": stage.name,
        "fingerprint": fingerprint,
        "mkcell_version": _version(),
        "data": data_rel,
        "outputs": list(stage.outputs),
        "started": datetime.fromtimestamp(started, UTC).isoformat(),
        "finished": datetime.fromtimestamp(now, UTC).isoformat(),
        "seconds": round(now - started, 3),
        "process_peak_rss_gb": round(_peak_rss_gb(), 3),
        "config": {k: section(cfg, k) for k in stage.sections},
        "code": dict(code or {}),
    }
    write_text_atomic(
        marker_path(run_dir, stage.name), json.dumps(marker, indent=2, default=_json_default)
    )


def release_memory() -> None:
    """Free what a finished stage left unreachable and hand freed heap memory back to the OS.

    All stages run in one process. What a stage freed may sit in reference cycles (the
    trained model's) until a collection, and glibc keeps freed heap pages for reuse
    rather than returning them, so the next stage would start higher. ``malloc_trim`` is
    glibc's; elsewhere only the collection runs.
    """
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _peak_rss_gb() -> float:
    """Peak resident memory of this process so far (GB; Linux reports kB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def stage_timings(run_dir: Path, stages: Sequence[Stage]) -> list[dict[str, Any]]:
    """Seconds and finish time of each stage, from the markers."""
    rows = []
    for st in stages:
        marker = read_marker(run_dir, st.name)
        if marker is not None:
            rows.append(
                {
                    "stage": st.name,
                    "seconds": marker.get("seconds"),
                    "process_peak_rss_gb": marker.get("process_peak_rss_gb"),
                    "finished": marker.get("finished"),
                }
            )
    return rows


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder (released when the process ends, even on kill)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / ".mkcell.lock").open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            msg = (
                f"another mkcell run is using {run_dir}; wait for it to finish"
                " or choose another folder with hydra.run.dir=DIR"
            )
            raise MkcellError(msg) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


#: Loggers Lightning gives a console handler of its own when it is imported.
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


def single_lightning_log() -> None:
    """Print each Lightning (scvi-tools training) log line once.

    ``import lightning`` puts its own console handler (``INFO: ...``) on the ``lightning``
    logger, whose records also propagate to the root logger. Where the root logger has
    handlers (the ``mkcell`` command: console with time stamps, and ``mkcell.log``), each
    line came out twice. Lightning's console handlers are removed then, so its lines go
    through the root handlers only; without root handlers nothing changes. Call it before
    training (it imports Lightning, which scvi-tools imports anyway).
    """
    if not logging.getLogger().handlers:
        return
    try:
        import lightning  # noqa: F401 - its import adds the handlers removed here
    except ImportError:
        return
    for name in LIGHTNING_LOGGERS:
        lg = logging.getLogger(name)
        for handler in list(lg.handlers):
            if type(handler) is logging.StreamHandler:
                lg.removeHandler(handler)
        lg.propagate = True


def ddp_worker_rank() -> int:
    """Rank of a DDP worker process started by Lightning (0 in the main process)."""
    for var in ("LOCAL_RANK", "NODE_RANK"):
        with contextlib.suppress(ValueError):
            if int(os.environ.get(var, "0")) > 0:
                return int(os.environ[var])
    return 0


def run_workflow(
    cfg: DictConfig,
    run_dir: str | os.PathLike,
    stages: Sequence[Stage],
    *,
    inputs: object = None,
) -> dict[str, str]:
    """Run the stages that are not done yet, in order.

    Parameters
    ----------
    cfg
        The job config.
    run_dir
        The run folder.
    stages
        The stages in order.
    inputs
        Signature of the input files (see :func:`file_signature`), part of the first fingerprint.

    Returns
    -------
    ``{stage: "skipped" | "ran"}``.

    Notes
    -----
    In a DDP worker re-started by Lightning (``LOCAL_RANK > 0``), only the stages with
    ``ddp=True`` run, from the data of the stage before them, in a scratch folder, and
    nothing is marked done: the main process owns the run folder.
    """
    run_dir = Path(run_dir).resolve()
    rank = ddp_worker_rank()
    if rank > 0:
        _run_ddp_worker(cfg, Path(os.environ.get(RUN_DIR_ENV, run_dir)), stages, rank)
        return {}
    os.environ[RUN_DIR_ENV] = str(run_dir)
    with run_lock(run_dir):
        return _run(cfg, run_dir, stages, inputs)


def _run(cfg: DictConfig, run_dir: Path, stages: Sequence[Stage], inputs: object) -> dict[str, str]:
    payloads = _payloads(cfg, stages, inputs, None)
    fps = {name: p["fingerprint"] for name, p in payloads.items()}
    first = next((i for i, st in enumerate(stages) if not is_done(run_dir, st, fps[st.name])), None)
    status: dict[str, str] = {}
    t_all = time.perf_counter()
    todo = stages if first is None else stages[:first]
    for st in todo:
        marker = read_marker(run_dir, st.name) or {}
        logger.info(
            "stage %-10s skipped: up to date (ran in %.1f s)",
            st.name,
            marker.get("seconds", float("nan")),
        )
        status[st.name] = "skipped"
    if first is None:
        logger.info("all %d stages up to date in %s", len(stages), run_dir)
        return status
    if first > 0 or read_marker(run_dir, stages[first].name) is not None:
        logger.info(
            "stage %-10s re-runs, and every stage after it: %s",
            stages[first].name,
            _why_rerun(run_dir, stages[first], payloads[stages[first].name]),
        )
    # stages from `first` on will be redone: drop their markers before touching any file
    for st in stages[first:]:
        marker_path(run_dir, st.name).unlink(missing_ok=True)
    data: StageData | None = None
    if first > 0:
        t0 = time.perf_counter()
        data = load_data(run_dir, stages[first - 1].name)
        logger.info(
            "resuming after stage %r (read its data in %.1f s)",
            stages[first - 1].name,
            time.perf_counter() - t0,
        )
    for st in stages[first:]:
        logger.info("stage %-10s running", st.name)
        started = time.time()
        t0 = time.perf_counter()
        data = st.func(cfg, data, run_dir)
        data_rel = save_data(run_dir, st.name, data) if st.save_data else None
        write_marker(run_dir, st, fps[st.name], data_rel, started, cfg, payloads[st.name]["code"])
        logger.info("stage %-10s done in %.1f s", st.name, time.perf_counter() - t0)
        status[st.name] = "ran"
        # after the log line: the log must not lag the marker (a requeue may land in between)
        release_memory()
    logger.info("workflow finished in %.1f s: %s", time.perf_counter() - t_all, run_dir)
    return status


def _run_ddp_worker(cfg: DictConfig, run_dir: Path, stages: Sequence[Stage], rank: int) -> None:
    idx = next((i for i, st in enumerate(stages) if st.ddp), None)
    if idx is None or idx == 0:
        return
    data = load_data(run_dir, stages[idx - 1].name)
    scratch = run_dir / STAGES_DIR / f".ddp_rank{rank}"
    scratch.mkdir(parents=True, exist_ok=True)
    logger.info("DDP worker %d: stage %s", rank, stages[idx].name)
    stages[idx].func(cfg, data, scratch)
