"""mkcell: megakaryopoiesis in mouse and human marrow single-cell data."""

from __future__ import annotations

from . import datasets, integrate, io, pl, pp, tl
from ._settings import settings

__version__ = "0.1.0"
__all__ = ["datasets", "integrate", "io", "pl", "pp", "settings", "tl", "__version__"]
