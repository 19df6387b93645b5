"""``mkcell``: the Hydra command line of the mkcell workflow (no science here).

``mkcell [overrides]`` runs load -> orthologs -> integrate -> annotate -> trajectory -> score
-> pool -> report into one output folder and prints that folder as the last line of
stdout; ``mkcell --cfg job`` prints the composed config; ``mkcell -m ...`` runs a sweep
(``hydra/launcher=submitit_local`` or ``slurm_gpu``).

Before Hydra starts, the overrides are composed against the schemas once, so a typo, a
wrong type or a missing input file ends the command with one line on stderr and a
non-zero exit status (the traceback only with ``MKCELL_DEBUG=1``). Without
``hydra.run.dir`` (``hydra.sweep.dir`` for ``-m``) the folder is
``outputs/<data>[-<experiment>][-<debug>]-<hash of the overrides>``: the same command
reuses the same folder, and finished stages are skipped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from omegaconf import DictConfig

DEBUG_ENV = "MKCELL_DEBUG"
HINT_KEYS = "run `mkcell --cfg job` to list every key and its value"
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--info", "-i"}
_FLAGS = {"-m", "--multirun", "--resolve", "--help", "-h", "--hydra-help", "--version"}
_INFO_ONLY = {"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--version"}
_FINISHED: list[Path] = []
_FAILED: list[BaseException] = []


class UsageError(Exception):
    """A bad command line: the message is the one line shown to the user."""


class _JobErrorFilter:
    """Stderr proxy keeping Hydra's "Error executing job with overrides: [...]" out of the console.

    The overrides of the failed job are kept and added to mkcell's one-line message. sbatch's
    refusal, which submitit echoes to stderr, is dropped too: mkcell says it in its one line.
    """

    PREFIX = "Error executing job with overrides: "

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.failed_jobs: list[str] = []
        self._dropped = False

    def write(self, text: str) -> int:
        dropped, self._dropped = self._dropped, False
        if text.startswith(self.PREFIX):
            self.failed_jobs.append(text[len(self.PREFIX) :].strip())
            return len(text)
        if text.startswith("sbatch: ") or (dropped and text == "\n"):
            self._dropped = text != "\n"
            return len(text)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


# --------------------------------------------------------------------------- arguments


def split_args(argv: Sequence[str]) -> tuple[list[str], list[str], bool, bool]:
    """Split the command line into Hydra flags and overrides.

    Parameters
    ----------
    argv
        Arguments without the program name.

    Returns
    -------
    ``(flags, overrides, multirun, info_only)``; ``info_only`` for ``--cfg``, ``--help``...
    """
    flags: list[str] = []
    overrides: list[str] = []
    multirun = info_only = False
    it = iter(argv)
    for arg in it:
        name = arg.split("=", 1)[0]
        if name in _FLAGS_WITH_VALUE:
            flags.append(arg)
            if "=" not in arg and name != "--info" and name != "-i":
                value = next(it, None)
                if value is None:
                    msg = f"{arg} needs a value, e.g. `mkcell --cfg job`"
                    raise UsageError(msg)
                flags.append(value)
        elif arg in _FLAGS:
            flags.append(arg)
        elif arg.startswith("-"):
            msg = (
                f"unknown option {arg!r};"
                " usage: mkcell [-m] [--cfg job] [key=value ...] (see mkcell --help)"
            )
            raise UsageError(msg)
        else:
            overrides.append(arg)
            continue
        multirun |= name in ("-m", "--multirun")
        info_only |= name in _INFO_ONLY
    return flags, overrides, multirun, info_only


def first_of_sweeps(overrides: Sequence[str], *, multirun: bool) -> list[str]:
    """Return the overrides of a sweep's first job (``seed=1,2`` -> ``seed=1``), to check them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    out = []
    for o in parsed:
        if not o.is_sweep_override():
            out.append(o.input_line)
            continue
        if not multirun:
            msg = f"{o.input_line!r} is a sweep (several values): add -m to run one job per value"
            raise UsageError(msg)
        try:
            first = next(iter(o.sweep_string_iterator()))
        except Exception:  # noqa: BLE001 - glob/interval sweeps: let Hydra check them
            continue
        out.append(f"{o.get_key_element()}={first}")
    return out


def compose(overrides: Sequence[str]) -> DictConfig:
    """Compose the config (with the ``hydra`` node) the way ``mkcell`` will run it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from mkcell.workflow import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="mkcell"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=True)


def default_dir(cfg: DictConfig, overrides: Sequence[str], *, multirun: bool) -> str:
    """``outputs/<data>[-<experiment>][-<debug>][-<hash>]`` (``multirun/...`` for ``-m``)."""
    choices = cfg.hydra.runtime.choices
    parts = [str(choices.get("data") or "run")]
    parts += [str(choices[g]) for g in ("experiment", "debug") if choices.get(g)]
    user = [o for o in overrides if not re.match(r"^[+~]*hydra[./]", o)]
    if user:
        parts.append(hashlib.sha1("\n".join(user).encode()).hexdigest()[:8])
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))
    return f"{'multirun' if multirun else 'outputs'}/{name}"


def has_override(overrides: Sequence[str], key: str) -> bool:
    """Whether ``key=...`` is among the overrides."""
    return any(re.match(rf"^[+]*{re.escape(key)}=", o) for o in overrides)


def check_writable(folder: Path) -> None:
    """Raise UsageError unless ``folder`` exists writable or can be created."""
    folder = folder.expanduser().absolute()
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        msg = (
            f"cannot create the output folder {folder}: {probe} is a file;"
            " choose another with hydra.run.dir=DIR"
        )
        raise UsageError(msg)
    if not os.access(probe, os.W_OK | os.X_OK):
        msg = (
            f"cannot write to the output folder {folder} ({probe} is not writable);"
            " choose another with hydra.run.dir=DIR"
        )
        raise UsageError(msg)


# --------------------------------------------------------------------------- errors


_NOISE = (
    "full_key:",
    "object_type=",
    "reference_type=",
    "set the environment variable hydra_full_error",
    "to append to your config",
)


def _chain(exc: BaseException) -> list[BaseException]:
    out = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _lines(text: str) -> list[str]:
    out = []
    for raw in text.split("Config search path:")[0].splitlines():
        line = raw.strip()
        if line and not line.lower().startswith(_NOISE) and "$VALUE" not in line:
            out.append(line)
    return out


def _hydra_message(exc: BaseException) -> str:
    """One line from Hydra's / OmegaConf's multi-line composition errors."""
    from hydra.errors import OverrideParseException

    if isinstance(exc, OverrideParseException):
        first = _lines(exc.message)[0] if _lines(exc.message) else "syntax error"
        return (
            f"cannot parse override {exc.override!r}: {first}; write key=value, quote lists "
            "('pool.contrasts=[[MDS,control]]'), see https://hydra.cc/docs/advanced/override_grammar/basic/"
        )
    texts = [str(e) for e in _chain(exc)]
    top = _lines(texts[0])
    causes = [line for t in texts[1:] for line in _lines(t)]
    cause = causes[0] if causes else ""
    head = top[0] if top else type(exc).__name__
    if m := re.match(r"Could not override '([^']+)'", head):
        return (
            f"unknown config key '{m[1]}' ({cause.rstrip('.')}); check the spelling ({HINT_KEYS})"
        )
    if m := re.match(r"Key '([^']+)' not in '(\w+)'", head):
        return (
            f"unknown config key '{m[1]}' (not in the {m[2]} schema);"
            f" check the spelling ({HINT_KEYS})"
        )
    if m := re.match(r"Error merging override (.+)", head):
        return f"bad value in override '{m[1]}': {cause.rstrip('.')}; {HINT_KEYS}"
    if "Could not find" in head or "Could not load" in head:
        options = [
            x
            for x in top[1:]
            if not x.startswith("Available options") and not x.startswith("base_")
        ]
        group = next((x for x in top if x.startswith("Available options")), "")
        listed = f"; {group.rstrip(':').lower()}: {', '.join(options)}" if options else ""
        head = re.sub(r"^In '[^']*': ", "", head)
        return f"{head}{listed}"
    seen: list[str] = []
    for line in top + causes:
        if line not in seen:
            seen.append(line)
    return f"{'; '.join(seen)}; {HINT_KEYS}"


def _job_failure(text: str) -> str:
    """Return the last ``SomeError: message`` line of a failed job's traceback."""
    hits = re.findall(
        r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Interrupt)): (.+)$", text, flags=re.MULTILINE
    )
    if not hits:
        return " ".join(text.split())[:300]
    kind, msg = hits[-1]
    return (
        msg
        if kind in {"MkcellError", "MkcellFileNotFoundError", "UsageError"}
        else f"{kind}: {msg}"
    )


def one_line(exc: BaseException) -> tuple[str, int]:
    """Return the one-line message and exit status for an exception."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from mkcell._settings import MkcellError

    if isinstance(exc, UsageError):
        return str(exc), 2
    if isinstance(exc, HydraException | OmegaConfBaseException):
        return _hydra_message(exc), 2
    name = type(exc).__name__
    if name == "FailedJobError" or "submitit" in type(exc).__module__:
        return f"a job failed: {_job_failure(str(exc))}", 1
    msg = " ".join(str(exc).split()) or name
    notes = getattr(exc, "__notes__", None)
    if notes:
        msg = f"{msg} ({'; '.join(notes)})"
    if isinstance(exc, MkcellError):
        return msg, 1
    if isinstance(
        exc, FileNotFoundError | PermissionError | NotImplementedError | ValueError | ImportError
    ):
        return f"{name}: {msg}", 1
    return f"{name}: {msg} (set {DEBUG_ENV}=1 for the traceback)", 1


# --------------------------------------------------------------------------- run


def task(cfg: DictConfig) -> str:
    """Hydra task: run (or resume) the workflow in Hydra's output folder."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from mkcell._settings import MkcellError
    from mkcell.workflow import check_config, input_signature, run_workflow, stages_for
    from workflows._slurm import GiveUpWatch, time_up_message

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir).resolve()
    watch = GiveUpWatch()  # a Slurm job whose time is up fails with that, not with a side effect
    logging.getLogger("submitit").addHandler(watch)
    try:
        check_config(cfg)
        run_workflow(cfg, run_dir, stages_for(cfg), inputs=input_signature(cfg))
    except Exception as exc:
        failure: Exception = exc
        if watch.reason is not None:
            failure = MkcellError(time_up_message(watch.reason, hc.launcher))
            failure.__cause__ = exc
        _log_to_files(failure)
        if hc.mode == RunMode.MULTIRUN:
            raise failure from failure.__cause__
        _FAILED.append(failure)  # re-raised by `run` once Hydra is done: no extra lines from Hydra
        return str(run_dir)
    finally:
        logging.getLogger("submitit").removeHandler(watch)
    _FINISHED.append(run_dir)
    return str(run_dir)


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


def run(argv: Sequence[str]) -> Path | None:
    """Check the command line, run Hydra; return the folder to print (None for --cfg, --help)."""
    import hydra
    from omegaconf import OmegaConf

    from mkcell._settings import MkcellError
    from mkcell.workflow import check_config, config_dir
    from workflows._slurm import launcher_problem, refusal_message, sbatch_refusal

    flags, overrides, multirun, info_only = split_args(argv)
    cfg = compose(first_of_sweeps(overrides, multirun=multirun))
    extra: list[str] = []
    out: Path | None = None
    if not info_only:
        try:
            check_config(cfg)
        except MkcellError as err:
            raise UsageError(str(err)) from err
        if problem := launcher_problem(cfg, multirun=multirun):
            raise UsageError(problem)
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        if has_override(overrides, key):
            out = Path(str(OmegaConf.select(cfg, key)))
        else:
            out = Path(default_dir(cfg, overrides, multirun=multirun))
            extra.append(f"{key}={out}")
        check_writable(out)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # exceptions reach `main`, which prints one line
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.argv = [sys.argv[0], *flags, *overrides, *extra]
    entry = hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")(
        task
    )
    stderr = sys.stderr
    sys.stderr = filtered = _JobErrorFilter(stderr)
    try:
        entry()
    except Exception as exc:
        if (reason := sbatch_refusal(exc)) is not None:
            raise UsageError(refusal_message(reason, cfg.hydra.launcher)) from exc
        if filtered.failed_jobs:
            exc.add_note(f"job {filtered.failed_jobs[0]}")
        raise
    finally:
        sys.stderr = stderr
    if _FAILED:
        raise _FAILED[-1]
    if out is None:
        return None
    return _FINISHED[-1] if (_FINISHED and not multirun) else out.expanduser().resolve()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mkcell`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        folder = run(argv)
    except BrokenPipeError:  # e.g. `mkcell --help | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write(
            "mkcell: interrupted; run the same command again"
            " to resume from the last finished stage\n"
        )
        sys.exit(130)
    except Exception as exc:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        msg, status = one_line(exc)
        sys.stderr.write(f"mkcell: error: {msg}\n")
        sys.exit(status)
    if folder is not None:
        sys.stdout.write(f"{folder}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
