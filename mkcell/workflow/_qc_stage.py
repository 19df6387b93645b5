"""The ``qc`` stage: mk.pp.qc on the concatenated cells, its per-sample table, no science.

Flagged cells stay in the data with their verdict in ``obs['mk_qc']``; the tools that call
and count MkP and Mk (mk.tl.annotate, mk.tl.progenitor_pool) leave them out unless
``qc.keep_flagged=true``, which the annotate and pool stages pass on as ``qc_key=None``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from anndata import AnnData
from omegaconf import DictConfig

import mkcell as mk

from .. import _keys as K
from .._settings import logger
from ._outputs import _seeded, write_table
from ._schema import tool_kwargs

#: The columns of ``tables/qc_per_sample.csv`` that come first (the output contract).
QC_SAMPLE_COLUMNS = ["sample", "species", "cells_in", *K.QC_REASONS, "cells_kept"]


def qc(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """Flag low-quality cells, doublets and platelet-coated cells (``obs['mk_qc']``)."""
    c = cfg.qc
    if not c.enabled:
        logger.warning(
            "qc: skipped (qc.enabled=false): no cell is checked or flagged, every cell goes on"
        )
        write_table(_unchecked(adata), run_dir, "qc_per_sample", QC_SAMPLE_COLUMNS)
        return adata
    f = mk.pp.qc
    f(adata, sample_key=K.SAMPLE, **_seeded(f, tool_kwargs(c, f), cfg.seed))
    table = adata.uns[K.QC]["per_sample"]
    write_table(_with_species(table, adata), run_dir, "qc_per_sample", QC_SAMPLE_COLUMNS)
    if c.keep_flagged:
        logger.info("qc.keep_flagged=true: flagged cells stay in the MkP / Mk calls and the pool")
    return adata


def qc_key(cfg: DictConfig) -> str | None:
    """The ``qc_key`` the annotate and pool tools get: None keeps flagged cells in."""
    return None if cfg.qc.keep_flagged else K.QC


def _with_species(table: pd.DataFrame, adata: AnnData) -> pd.DataFrame:
    out = table.copy()
    if K.SPECIES in adata.obs:
        species = adata.obs.groupby(K.SAMPLE, observed=True)[K.SPECIES].first().astype(str)
        out.insert(1, "species", out["sample"].astype(str).map(species))
    else:
        out.insert(1, "species", "all")
    return out


def _unchecked(adata: AnnData) -> pd.DataFrame:
    """The per-sample table of a skipped stage: every cell in and kept, none checked."""
    n = adata.obs[K.SAMPLE].astype(str).value_counts(sort=False)
    table = pd.DataFrame({"sample": n.index, "cells_in": n.to_numpy()})
    for reason in K.QC_REASONS:
        table[reason] = 0
    table["cells_kept"] = table["cells_in"]
    table["note"] = "not checked (qc.enabled=false)"
    return _with_species(table, adata)
