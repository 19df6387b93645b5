"""Package-wide settings: cache folder, seed, accelerator and the mkcell logger."""

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


def _default_cache() -> Path:
    return Path(os.environ.get("MKCELL_CACHE", Path.home() / ".cache" / "mkcell"))


@dataclass
class Settings:
    """Settings read by every mkcell function.

    Attributes
    ----------
    cache_dir
        Where :func:`mkcell.io.load` keeps downloaded files (``$MKCELL_CACHE``,
        default ``~/.cache/mkcell``).
    seed
        Default seed for random steps.
    accelerator
        ``"auto"`` (GPU when present), ``"gpu"`` or ``"cpu"``.
    """

    cache_dir: Path = field(default_factory=_default_cache)
    seed: int = 0
    accelerator: str = "auto"

    @property
    def verbosity(self) -> int:
        """Level of the ``mkcell`` logger."""
        return logger.level

    @verbosity.setter
    def verbosity(self, level: int | str) -> None:
        logger.setLevel(level)


settings = Settings()
