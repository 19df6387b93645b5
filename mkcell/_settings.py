"""Package-wide settings: cache folder, accelerator and the mkcell logger."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("mkcell")
logger.addHandler(logging.NullHandler())


class MkcellWarning(UserWarning):
    """Warnings raised by mkcell itself (tests turn them into errors)."""


class MkcellError(ValueError):
    """Bad input or bad configuration; the message names the problem and the fix."""


class ArgumentError(MkcellError):
    """A bad value of one argument of a tool: ``"<problem>; set <argument> <fix>"``.

    The fields stay apart so that the workflow can say the same with the argument's config
    key instead (:meth:`naming`).
    """

    def __init__(self, problem: str, argument: str, fix: str) -> None:
        self.problem, self.argument, self.fix = problem, argument, fix
        super().__init__(self.naming(argument))

    def naming(self, name: str) -> str:
        """The message with the argument called ``name`` (e.g. its config key)."""
        return f"{self.problem}; set {name} {self.fix}"


def _default_cache() -> Path:
    return Path(os.environ.get("MKCELL_CACHE", Path.home() / ".cache" / "mkcell"))


@dataclass(slots=True)
class Settings:
    """Package-wide settings (``mk.settings``); setting an unknown one raises.

    Random steps take their seed as an argument (``seed=``, default 0): there is no
    package-wide seed.

    Attributes
    ----------
    cache_dir
        Where :func:`mkcell.io.load` keeps downloaded files (``$MKCELL_CACHE``,
        default ``~/.cache/mkcell``).
    accelerator
        What :func:`mkcell.integrate.scvi` and :func:`mkcell.tl.map_to_reference` train on
        when their ``accelerator`` is ``"auto"`` or None: ``"auto"`` (a GPU when torch
        sees one, else the CPU), ``"gpu"`` or ``"cpu"``.
    """

    cache_dir: Path = field(default_factory=_default_cache)
    accelerator: str = "auto"

    @property
    def verbosity(self) -> int:
        """Level of the ``mkcell`` logger."""
        return logger.level

    @verbosity.setter
    def verbosity(self, level: int | str) -> None:
        logger.setLevel(level)


settings = Settings()
