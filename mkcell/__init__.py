"""mkcell: megakaryopoiesis in mouse and human marrow single-cell data."""

from __future__ import annotations

import importlib.metadata as _metadata

from . import datasets, integrate, io, pl, pp, tl
from ._settings import settings

try:  # pyproject.toml's version is the one source
    __version__ = _metadata.version("mkcell")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["datasets", "integrate", "io", "pl", "pp", "settings", "tl", "__version__"]
