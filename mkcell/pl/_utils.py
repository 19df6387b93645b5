"""Shared figure plumbing."""

from __future__ import annotations

from pathlib import Path

from .._docs import fill_doc
from .._settings import logger
from .._utils import atomic_path

#: Docstring end shared by the per-panel plots: ``panel_size``, ``save`` and Returns.
PANEL_SAVE_RETURNS_DOC = """\
panel_size
    Width and height of one panel in inches.
save
    Path to save the figure to.

Returns
-------
The matplotlib Figure."""

#: Decorator: put :data:`PANEL_SAVE_RETURNS_DOC` at the ``{panel_save_returns}`` docstring line.
panel_save_returns_doc = fill_doc(panel_save_returns=PANEL_SAVE_RETURNS_DOC)


def finish(fig, save: str | Path | None):  # noqa: ANN001, ANN201
    """Return ``fig``; with ``save``, first write it atomically (150 dpi, format by suffix)."""
    if save is not None:
        path = Path(save)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
        logger.info("saved figure %s", path)
    return fig
