"""Docstring text shared by several public functions, and the decorator that fills it in.

A bottom-layer module (it imports nothing from mkcell), so that tools and plots alike
can use it.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

#: Docstring entries of the ``key_added`` and ``copy`` parameters of the tools.
KEY_ADDED_COPY_DOC = """\
key_added
    Key in ``adata.uns`` for the results.
copy
    Return a copy instead of writing to ``adata``."""


def fill_doc(**parts: str) -> Callable[[F], F]:
    """Decorator: replace each line ``{name}`` of the docstring with ``parts[name]``.

    The text is indented like the placeholder line, so the docstring reads as if it had
    been written out. A missing placeholder raises at import time.
    """

    def decorate(func: F) -> F:
        doc = func.__doc__ or ""
        for name, text in parts.items():
            pattern = re.compile(rf"^([ \t]*)\{{{name}\}}[ \t]*$", re.MULTILINE)
            if not pattern.search(doc):
                msg = f"docstring of {func.__qualname__} has no line {{{name}}}"
                raise ValueError(msg)
            doc = pattern.sub(lambda m, t=text: textwrap.indent(t, m.group(1)), doc)
        func.__doc__ = doc
        return func

    return decorate
