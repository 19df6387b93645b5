"""What every stage shares: tables and figures written atomically, config values as plain data."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from .._settings import logger
from .._utils import atomic_path, write_csv_atomic


def _seeded(func: Callable[..., Any], kwargs: dict[str, Any], seed: int) -> dict[str, Any]:
    """Add ``seed=seed`` to ``kwargs`` when ``func`` takes a seed."""
    if "seed" in inspect.signature(func).parameters:
        kwargs = {**kwargs, "seed": seed}
    return kwargs


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def contrasts_of(cfg: DictConfig) -> list[list[str]] | None:
    """``pool.contrasts`` as plain lists (None: the API's default)."""
    return _plain(cfg.pool.contrasts)


def write_table(
    df: pd.DataFrame, run_dir: Path, name: str, columns: list[str] | None = None
) -> Path:
    """Write ``tables/<name>.csv`` atomically; ``columns`` (required) come first.

    Parameters
    ----------
    df
        The table.
    run_dir
        The run folder.
    name
        File stem.
    columns
        Columns the file must hold (the output contract); missing ones raise.
    """
    if not isinstance(df, pd.DataFrame):
        msg = f"expected a DataFrame for tables/{name}.csv, got {type(df).__name__}"
        raise TypeError(msg)
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            msg = (
                f"tables/{name}.csv lacks columns {missing} (has {list(df.columns)});"
                " this is a bug in mkcell"
            )
            raise RuntimeError(msg)
        df = df[columns + [c for c in df.columns if c not in columns]]
    path = run_dir / "tables" / f"{name}.csv"
    write_csv_atomic(df, path)
    logger.info("wrote %s (%d rows)", path, len(df))
    return path


def save_figure(fig: object, run_dir: Path, name: str, dpi: int) -> Path:
    """Save a matplotlib figure (or Axes) as ``figures/<name>.png`` atomically and close it."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.gcf()
    fig = getattr(fig, "figure", fig) if not hasattr(fig, "savefig") else fig
    path = run_dir / "figures" / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    logger.info("wrote %s", path)
    return path
