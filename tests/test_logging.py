"""The `mkcell` command prints each Lightning (scvi-tools training) line once."""

from __future__ import annotations

import logging

import pytest

from mkcell.workflow._runner import LIGHTNING_LOGGERS, single_lightning_log


def _console_handlers(name: str) -> list[logging.Handler]:
    """The handlers a record of logger ``name`` reaches (following propagation)."""
    out: list[logging.Handler] = []
    lg: logging.Logger | None = logging.getLogger(name)
    while lg is not None:
        out += lg.handlers
        lg = lg.parent if lg.propagate else None
    return out


@pytest.fixture
def saved_loggers():
    """Restore Lightning's loggers and the root handlers after the test."""
    pytest.importorskip("lightning")
    names = ("", *LIGHTNING_LOGGERS)
    loggers = {n: logging.getLogger(n) for n in names}
    state = {n: (list(lg.handlers), lg.propagate) for n, lg in loggers.items()}
    yield
    for n, (handlers, propagate) in state.items():
        lg = logging.getLogger(n)
        lg.handlers[:] = handlers
        lg.propagate = propagate


def test_lightning_lines_reach_the_root_handlers_only(saved_loggers):  # noqa: ARG001
    import lightning  # noqa: F401

    root = logging.getLogger()
    ours = logging.StreamHandler()
    root.addHandler(ours)  # the `mkcell` command's console handler (Hydra's job logging)
    name = "lightning.pytorch.utilities.rank_zero"  # "GPU available: ..." comes from here
    assert len([h for h in _console_handlers(name) if type(h) is logging.StreamHandler]) == 2
    single_lightning_log()
    handlers = _console_handlers(name)
    assert [h for h in handlers if type(h) is logging.StreamHandler] == [ours]
    assert all(h in root.handlers for h in handlers)


def test_without_root_handlers_nothing_changes(saved_loggers):  # noqa: ARG001
    import lightning  # noqa: F401

    root = logging.getLogger()
    root.handlers[:] = []
    before = {n: list(logging.getLogger(n).handlers) for n in LIGHTNING_LOGGERS}
    single_lightning_log()
    assert {n: list(logging.getLogger(n).handlers) for n in LIGHTNING_LOGGERS} == before
