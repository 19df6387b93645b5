"""Shared figure plumbing."""

from __future__ import annotations

from pathlib import Path

from .._utils import atomic_path


def finish(fig, save: str | Path | None):  # noqa: ANN001, ANN201
    """Tighten ``fig`` and, with ``save``, write it atomically (format from the suffix)."""
    fig.tight_layout()
    if save is not None:
        save = Path(save)
        with atomic_path(save) as tmp:
            fig.savefig(tmp, dpi=110, format=save.suffix.lstrip(".") or "png")
    return fig
