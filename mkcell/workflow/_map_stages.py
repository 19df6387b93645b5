"""``mode=map``: the stages that map new samples onto a finished run (the reference)."""

from __future__ import annotations

from pathlib import Path

from anndata import AnnData
from omegaconf import DictConfig, open_dict

import mkcell as mk

from .. import _keys as K
from .._settings import logger
from ._load import load
from ._outputs import write_table
from ._runner import Stage, single_lightning_log
from ._schema import tool_kwargs
from ._stages import FIGURES, MAP_FIGURES, REPORT_OUTPUTS, SCORE_STAGE, orthologs, pool, report

MAP_SAMPLE_COLUMNS = [
    "species",
    "sample",
    "n_cells",
    "n_unknown",
    "share_unknown",
    "share_confident",
]


def _reference(cfg: DictConfig) -> object:
    from ..tl._reference import load_reference

    return load_reference(str(cfg.reference.dir))


def orthologs_query(cfg: DictConfig, data: dict[str, AnnData], run_dir: Path) -> AnnData:
    """``mode=map``: orthologs as the reference mapped them.

    The query must hold enough of the reference's features.
    """
    from ..tl._map import check_features

    ref = _reference(cfg)
    # references written before the section was named "orthologs" call it "map"
    section = ref.config.get("orthologs") or ref.config.get("map") or {}
    keep = bool(section.get("keep_species_specific", cfg.orthologs.keep_species_specific))
    if keep != cfg.orthologs.keep_species_specific:
        logger.info("orthologs.keep_species_specific=%s, as in the reference", keep)
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.orthologs.keep_species_specific = keep
    adata = orthologs(cfg, data, run_dir)
    check_features(adata, ref)
    return adata


def map_reference(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """``mode=map``: place the query in the reference's space; transfer states, pseudotime, fate."""
    r, comp = cfg.reference, cfg.compute
    single_lightning_log()
    f = mk.tl.map_to_reference
    f(adata, _reference(cfg), accelerator=comp.accelerator, seed=cfg.seed, **tool_kwargs(r, f))
    write_table(adata.uns[K.MAP]["per_sample"], run_dir, "map_per_sample", MAP_SAMPLE_COLUMNS)
    missing = adata.uns[K.MAP]["missing_features"]
    if len(missing):
        write_table(missing, run_dir, "map_missing_features")
    return adata


def pool_map(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """``mode=map``: the query's pool and its place among the reference's samples.

    The pool uses the reference's denominator.
    """
    ref = _reference(cfg)
    dens = sorted(set(ref.pool["denominator"].astype(str)))
    den = None
    if cfg.pool.denominator == "auto" and len(dens) == 1:
        den = dens[0]
        logger.info("pool denominator %s, as in the reference", den)
    adata = pool(cfg, adata, run_dir, den)
    vs = mk.tl.pool_vs_reference
    vs(adata, ref)
    from ..tl._map import POOL_VS_REFERENCE_COLUMNS

    write_table(
        adata.uns[K.POOL_VS_REFERENCE], run_dir, "pool_vs_reference", POOL_VS_REFERENCE_COLUMNS
    )
    return adata


MAP_STAGES: tuple[Stage, ...] = (
    Stage("load", load, ("data", "seed", "mode")),
    Stage(
        "orthologs",
        orthologs_query,
        ("orthologs", "reference.dir"),
        ("tables/ortholog_report.csv",),
    ),
    Stage(
        "reference",
        map_reference,
        ("reference", "seed"),
        ("tables/map_per_sample.csv",),
    ),
    SCORE_STAGE,
    Stage(
        "pool",
        pool_map,
        ("pool", "design", "seed"),
        ("tables/pool_per_sample.csv", "tables/pool_contrasts.csv", "tables/pool_vs_reference.csv"),
    ),
    Stage(
        "report",
        report,
        ("report",),
        (*REPORT_OUTPUTS, *(f"figures/{f}.png" for f in (*FIGURES, *MAP_FIGURES))),
        save_data=False,
    ),
)
"""``mode=map``: new samples onto a reference run, in order."""
