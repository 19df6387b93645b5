"""Lazy attribute loading for subpackages (heavy dependencies load on first use)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` importing ``names[attr]`` (a submodule) on first access."""

    def __getattr__(attr: str) -> Any:
        if attr not in names:
            msg = f"module {package!r} has no attribute {attr!r}"
            raise AttributeError(msg)
        module = importlib.import_module(names[attr], package)
        return getattr(module, attr)

    return __getattr__
