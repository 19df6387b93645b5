"""``mkcell``: the workflow's command line, which is Hydra's own (``hydra.main``).

``mkcell [overrides]`` runs the stages into one folder and prints that folder as the last line
of stdout; ``mkcell --cfg job`` prints the composed config; ``mkcell -m ...`` runs a sweep
(``hydra/launcher=submitit_local``, ``slurm_cpu`` or ``slurm_gpu``).

What mkcell adds to Hydra, each through a Hydra hook:

- :class:`Preflight`, a callback (``hydra.callbacks`` in ``configs/config.yaml``), checks the
  composed config, the launcher and the output folder before Hydra creates a folder or submits
  a job, and prints the folder when the run is done;
- the ``mkcell_run_name`` resolver gives the default folder
  ``outputs/<data>[-<experiment>][-<debug>]-<hash of the overrides>``, so the same command
  resumes in the same folder;
- :func:`main` turns whatever stopped the command into one line on stderr (:func:`one_line`);
  ``MKCELL_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .._settings import MkcellError

DEBUG_ENV = "MKCELL_DEBUG"
HINT_KEYS = "run `mkcell --cfg job` to list every key and its value"


class UsageError(MkcellError):
    """A bad command line or config, found before any work (exit status 2)."""


class Stop(BaseException):  # noqa: N818 - not an error itself: it carries one
    """Carries an error (its ``__cause__``) past Hydra's wrappers to :func:`main`.

    A BaseException, because Hydra turns an Exception raised in a callback into a warning and
    goes on, and adds its own "Error executing job" line to one raised in a run.
    """


def run_name(prefix: str, choices: DictConfig, overrides: Sequence[str]) -> str:
    """Default run folder: ``<prefix>/<data>[-<experiment>][-<debug>][-<hash>]``.

    ``choices`` are Hydra's group choices; the hash is of ``overrides``, those that are not
    Hydra's own (``hydra.overrides.task``), so ``hydra.verbose=true`` keeps the folder and
    ``seed=3`` changes it.
    """
    parts = [str(choices.get("data") or "run")]
    parts += [str(choices[g]) for g in ("experiment", "debug") if choices.get(g)]
    if overrides:
        parts.append(hashlib.sha1("\n".join(map(str, overrides)).encode()).hexdigest()[:8])
    return f"{prefix}/{re.sub(r'[^A-Za-z0-9_.-]+', '_', '-'.join(parts))}"


# cached by its unresolved arguments: a sweep's jobs get the folder their launcher resolved
# (Hydra copies the cache into each job's config), not one named by their own overrides
OmegaConf.register_new_resolver("mkcell_run_name", run_name, use_cache=True, replace=True)


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config (with its ``hydra`` node) that ``mkcell`` composes from ``overrides``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from ._config import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="mkcell"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=True)


def check_writable(folder: Path) -> None:
    """Raise UsageError unless ``folder`` exists writable or can be created."""
    folder = folder.expanduser().absolute()
    probe = folder
    while not probe.exists():
        probe = probe.parent
    problem = None
    if not probe.is_dir():
        problem = f"{probe} is a file"
    elif not os.access(probe, os.W_OK | os.X_OK):
        problem = f"{probe} is not writable"
    if problem:
        msg = f"cannot create the output folder {folder} ({problem}); choose another with hydra.run.dir=DIR"
        raise UsageError(msg)


class Preflight(Callback):
    """Checks before Hydra creates a folder or submits a job; names the folder when done."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:  # noqa: D102
        _preflight(config, "hydra.run.dir", multirun=False)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:  # noqa: D102
        _preflight(config, "hydra.sweep.dir", multirun=True)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:  # noqa: D102
        _say_folder(config.hydra.run.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:  # noqa: D102
        _say_folder(config.hydra.sweep.dir)


def _preflight(cfg: DictConfig, dir_key: str, *, multirun: bool) -> None:
    from ._config import check_config
    from ._slurm import launcher_problem

    try:
        check_config(cfg)  # a sweep's own values are checked again in each job
        if problem := launcher_problem(cfg, multirun=multirun):
            raise UsageError(problem)
        check_writable(Path(str(OmegaConf.select(cfg, dir_key))))
    except Exception as err:  # noqa: BLE001 - Hydra would only warn of it
        usage = isinstance(err, MkcellError) and not isinstance(err, UsageError)
        raise Stop from (UsageError(str(err)) if usage else err)


def _say_folder(folder: str) -> None:
    sys.stdout.write(f"{Path(folder).expanduser().resolve()}\n")
    sys.stdout.flush()


def task(cfg: DictConfig) -> None:
    """Hydra task: run (or resume) the workflow in Hydra's output folder."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from ._config import check_config
    from ._load import input_signature
    from ._runner import run_workflow
    from ._slurm import GiveUpWatch, time_up_message
    from ._stages import stages_for

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    watch = GiveUpWatch()  # a Slurm job whose time is up fails with that, not with a side effect
    logging.getLogger("submitit").addHandler(watch)
    try:
        if multirun:
            check_config(cfg)
        run_dir = Path(hc.runtime.output_dir).resolve()
        run_workflow(cfg, run_dir, stages_for(cfg), inputs=input_signature(cfg))
    except Exception as exc:
        failure = exc
        if watch.reason is not None:
            failure = MkcellError(time_up_message(watch.reason, hc.launcher))
            failure.__cause__ = exc
        _log_to_files(failure)
        if multirun:  # the launcher reports it (a BaseException would not reach it from a job)
            raise failure from failure.__cause__
        raise Stop from failure
    finally:
        logging.getLogger("submitit").removeHandler(watch)


def _log_to_files(exc: BaseException) -> None:
    """Record a failure with its traceback in the run's log file only; the console gets one line."""
    record = logging.getLogger("mkcell").makeRecord(
        "mkcell",
        logging.ERROR,
        __file__,
        0,
        "run failed: %s",
        (one_line(exc)[0],),
        (type(exc), exc, exc.__traceback__),
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mkcell`` console script (``python -m mkcell``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra's errors reach the hook below, not its printer
    os.environ.setdefault("MPLBACKEND", "Agg")
    with _logging_restored():
        _main(argv)


@contextmanager
def _logging_restored() -> Iterator[None]:
    """Give back ``sys.argv`` and the logging set-up Hydra replaced, to callers in Python."""
    names = ("", "hydra", "mkcell")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level) for n in names}
    argv = sys.argv[:]
    try:
        yield
    finally:
        sys.argv[:] = argv
        for name, (handlers, level) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)


def _main(argv: list[str]) -> None:
    import hydra

    from ._config import config_dir

    try:
        _check_flags(argv)
        sys.argv = [sys.argv[0], *argv]
        hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")(task)()
    except BrokenPipeError:  # e.g. `mkcell --help | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except KeyboardInterrupt:
        _stop("interrupted; run the same command again to resume from the last finished stage", 130)
    except Stop as stop:
        _exit(stop.__cause__)
    except Exception as exc:  # noqa: BLE001 - every error leaves as one line
        _exit(exc)


def _check_flags(argv: list[str]) -> None:
    """Hydra's own argument parser, whose complaint becomes one line instead of a usage text."""
    from hydra._internal.utils import get_args_parser

    def refuse(message: str) -> None:
        msg = f"{message}; usage: mkcell [-m] [--cfg job] [key=value ...] (see mkcell --help)"
        raise UsageError(msg)

    parser = get_args_parser()
    parser.error = refuse  # type: ignore[method-assign]
    parser.parse_args(argv)


def _exit(exc: BaseException | None) -> None:
    if exc is None:
        _stop("the run failed", 1)
    if os.environ.get(DEBUG_ENV) == "1":
        raise exc
    _stop(*one_line(exc))


def _stop(message: str, status: int) -> None:
    sys.stderr.write(f"mkcell: error: {message}\n")
    sys.exit(status)


# --------------------------------------------------------------------------- one line


def one_line(exc: BaseException) -> tuple[str, int]:
    """The one-line message and the exit status for what stopped the command."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ._slurm import refusal

    if isinstance(exc, UsageError):
        return _flat(str(exc)), 2
    if (refused := refusal(exc)) is not None:
        return refused, 2
    if isinstance(exc, HydraException | OmegaConfBaseException):
        return _config_message(exc), 2
    name = type(exc).__name__
    if "submitit" in type(exc).__module__:  # a sweep's job failed; its traceback is the text
        lines = [line for line in str(exc).splitlines() if line.strip()]
        return f"a job failed: {lines[-1].strip() if lines else name}", 1
    msg = _flat(str(exc)) or name
    if isinstance(exc, MkcellError):
        return msg, 1
    if isinstance(
        exc, FileNotFoundError | PermissionError | NotImplementedError | ValueError | ImportError
    ):
        return f"{name}: {msg}", 1
    return f"{name}: {msg} (set {DEBUG_ENV}=1 for the traceback)", 1


def _config_message(exc: BaseException) -> str:
    """One line from Hydra's and OmegaConf's exceptions, read from their fields."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

    if isinstance(exc, OverrideParseException):
        return (
            f"cannot parse override {exc.override!r}: {exc.message.splitlines()[0]}; write "
            "key=value, quote lists ('pool.contrasts=[[MDS,control]]'), see "
            "https://hydra.cc/docs/advanced/override_grammar/basic/"
        )
    if isinstance(exc, MissingConfigException):
        group = str(exc.missing_cfg_file).rsplit("/", 1)[0]
        options = ", ".join(o for o in exc.options or [] if not o.startswith("base_"))
        return f"{str(exc).splitlines()[0]}; available options in '{group}': {options}"
    chain, cause = [], exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    known = [e for e in chain if isinstance(e, OmegaConfBaseException) and e.full_key]
    if known and isinstance(known[0], ConfigKeyError | AttributeError):
        return f"unknown config key '{known[0].full_key}'; check the spelling ({HINT_KEYS})"
    if known and isinstance(known[0], ValidationError):
        first = str(known[0].msg).splitlines()[0]
        return f"bad value '{known[0].full_key}={known[0].value}': {first}; {HINT_KEYS}"
    return f"{_flat(str(exc), sep='; ')}; {HINT_KEYS}"


def _flat(text: str, sep: str = " ") -> str:
    return sep.join(line.strip() for line in text.splitlines() if line.strip())
