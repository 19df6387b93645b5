"""Stage functions: thin calls of the public API, file writes and figure saving, no science.

Each stage takes ``(cfg, data_or_None, run_dir)`` and returns its data (an AnnData, or
``{species: AnnData}`` after ``load``). Tables and figures are written atomically.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from anndata import AnnData
from omegaconf import DictConfig, OmegaConf

import mkcell as mk

from .. import _keys as K
from .._settings import logger
from ._checks import user_label_map, user_labels
from ._config import Mode
from ._load import load
from ._outputs import _plain, _seeded, contrasts_of, save_figure, write_table
from ._qc_stage import qc, qc_key
from ._runner import Stage, single_lightning_log
from ._schema import tool_kwargs

POOL_SAMPLE_COLUMNS = ["sample", "species", "condition", "n_cells", "n_mkp", "mkp_fraction"]
POOL_CONTRAST_COLUMNS = ["species", "contrast", "effect_log2", "ci_low", "ci_high", "p_value"]
METRIC_COLUMNS = ["metric", "value", "baseline_value"]
#: Extra figure of ``mode=map``: the query on the reference's embedding.
MAP_FIGURES = ("reference_map",)
FIGURES = ("embedding", "pseudotime_density", "score_trends", "pool", "qc")


# --------------------------------------------------------------------------- stages


def orthologs(cfg: DictConfig, data: dict[str, AnnData], run_dir: Path) -> AnnData:
    """Map mouse genes to human orthologs and concatenate the species."""
    id_reports = {
        s: a.uns[K.GENE_IDS] for s, a in data.items() if isinstance(a.uns.get(K.GENE_IDS), dict)
    }
    concat = mk.pp.concat_species
    adata = concat(dict(data), **tool_kwargs(cfg.orthologs, concat))
    if id_reports:  # gene IDs mapped to symbols on reading: one report for the run
        genes = pd.concat(
            [r["genes"].assign(species=s) for s, r in id_reports.items()], ignore_index=True
        )
        first = next(iter(id_reports.values()))
        adata.uns[K.GENE_IDS] = {
            "genes": genes,
            "params": {
                "source": "; ".join(f"{s}: {r['params']['source']}" for s, r in id_reports.items())
            },
            **{
                k: int(sum(r[k] for r in id_reports.values()))
                for k in ("n_mapped", "n_summed", "n_unmapped")
                if k in first
            },
        }
        write_table(genes, run_dir, "gene_id_report")
    report = adata.uns.get(K.ORTHOLOGS, {})
    genes = report.get("genes") if isinstance(report, dict) else None
    if not isinstance(genes, pd.DataFrame):
        genes = pd.DataFrame({"note": ["no mouse input: no ortholog mapping was needed"]})
    write_table(genes, run_dir, "ortholog_report")
    return adata


def integrate(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """Select features, train scVI / SysVI, compute integration metrics and a UMAP.

    The UMAP is of the latent space.
    """
    c, comp = cfg.integrate, cfg.compute
    single_lightning_log()
    hvg = mk.pp.highly_variable_genes
    hvg(adata, batch_key=K.SAMPLE, seed=cfg.seed, **tool_kwargs(c, hvg))
    scvi = mk.integrate.scvi
    scvi(
        adata,
        batch_key=K.SAMPLE,
        species_key=K.SPECIES,
        accelerator=comp.accelerator,
        devices=_plain(comp.devices),
        strategy=comp.strategy,
        seed=cfg.seed,
        save_dir=run_dir / "model",
        **tool_kwargs(c, scvi),
    )
    measure = mk.integrate.metrics
    table = measure(adata, batch_key=K.SAMPLE, species_key=K.SPECIES, **tool_kwargs(c, measure))
    write_table(table, run_dir, "integration_metrics", METRIC_COLUMNS)
    umap = mk.tl.umap
    umap(adata, use_rep=K.LATENT, seed=cfg.seed)
    return adata


def annotate(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:  # noqa: ARG001
    """Cell states (``obs['mk_state']``)."""
    f = mk.tl.annotate
    c = cfg.annotate
    labels = user_labels(cfg)
    if labels is not None or c.labels_key is not None:
        logger.info(
            "annotate: cell states from your labels; the marker-based annotation is skipped"
        )
    kwargs = tool_kwargs(c, f) | {"labels": labels, "label_map": user_label_map(cfg)}
    kwargs["qc_key"] = qc_key(cfg)
    kwargs = _seeded(f, kwargs, cfg.seed)
    f(adata, **kwargs)
    return adata


def trajectory(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:  # noqa: ARG001
    """Mk pseudotime and fate (``obs['mk_pseudotime']``, ``obs['mk_fate']``)."""
    f = mk.tl.trajectory
    f(adata, **_seeded(f, tool_kwargs(cfg.trajectory, f), cfg.seed))
    return adata


def score(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """Cell-cycle and gene-set scores, their trends in pseudotime, contrasts between conditions."""
    c = cfg.score
    f = mk.tl.score
    f(adata, **_seeded(f, tool_kwargs(c, f), cfg.seed))
    if K.PSEUDOTIME in adata.obs.columns and adata.obs[K.PSEUDOTIME].notna().any():
        trends = mk.tl.score_trends
        trends(adata, **_seeded(trends, {}, cfg.seed))
        write_table(adata.uns[K.SCORE_TRENDS]["table"], run_dir, "score_trends")
    else:
        logger.info("no pseudotime (the trajectory was skipped): no score trends along it")
    compare = mk.tl.compare_scores
    compare(adata, K.SAMPLE, K.CONDITION, contrasts_of(cfg), design=cfg.design)
    write_table(adata.uns[K.SCORE_COMPARE]["table"], run_dir, "score_contrasts")
    write_table(adata.uns[K.SCORE_COMPARE]["by_phase"], run_dir, "score_contrasts_by_phase")
    return adata


def pool(cfg: DictConfig, adata: AnnData, run_dir: Path, denominator: str | None = None) -> AnnData:
    """MkP pool per sample and its contrasts; maturation shift along pseudotime."""
    contrasts = contrasts_of(cfg)
    f = mk.tl.progenitor_pool
    den = denominator or cfg.pool.denominator
    f(
        adata,
        K.SAMPLE,
        K.CONDITION,
        contrasts,
        denominator=den,
        design=cfg.design,
        qc_key=qc_key(cfg),
    )
    res = adata.uns[K.POOL]
    write_table(res["per_sample"], run_dir, "pool_per_sample", POOL_SAMPLE_COLUMNS)
    write_table(res["contrasts"], run_dir, "pool_contrasts", POOL_CONTRAST_COLUMNS)
    has_mk = (adata.obs[K.STATE].astype(str) == K.MK).any() and adata.obs[
        K.PSEUDOTIME
    ].notna().any()
    if not has_mk:
        logger.info("no Mk cells with a pseudotime: the maturation shift is skipped")
        return adata
    shift = mk.tl.maturation_shift
    shift(adata, K.CONDITION, contrasts, design=cfg.design)
    write_table(adata.uns[K.MATURATION]["contrasts"], run_dir, "maturation_shift")
    return adata


# --------------------------------------------------------------------------- mode=map


def _note_figure(text: str) -> object:
    """A small figure that says why a plot could not be drawn.

    The stage's outputs stay complete.
    """
    import textwrap

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.0, 0.5, textwrap.fill(text, 90), va="center", fontsize=8)
    return fig


def report(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """Figures, ``report.html`` and the final ``mkcell.h5ad``."""
    from .._utils import write_h5ad_atomic
    from ._report import write_report

    dpi = cfg.report.dpi
    mapped = Mode(cfg.mode) is Mode.map
    figures = {}
    colors = [k for k in (K.SPECIES, K.SAMPLE, K.STATE) if k in adata.obs.columns]
    figures["embedding"] = save_figure(
        mk.pl.embedding(adata, color=colors), run_dir, "embedding", dpi
    )
    has_pt = K.PSEUDOTIME in adata.obs.columns and adata.obs[K.PSEUDOTIME].notna().any()
    for name in FIGURES[1:]:
        if name == "qc" and K.QC not in adata.uns:
            fig = _note_figure("qc: no quality control in this run (qc.enabled=false, or mode=map)")
        elif name in ("pseudotime_density", "score_trends") and not has_pt:
            fig = _note_figure(
                f"{name}: no pseudotime"
                f" ({adata.uns.get(K.TRAJECTORY, {}).get('reason', 'trajectory skipped')})"
            )
        else:
            fig = getattr(mk.pl, name)(adata)
        figures[name] = save_figure(fig, run_dir, name, dpi)
    if mapped:
        for name in MAP_FIGURES:
            figures[name] = save_figure(getattr(mk.pl, name)(adata), run_dir, name, dpi)
    write_h5ad_atomic(adata, run_dir / "mkcell.h5ad")
    logger.info("wrote %s", run_dir / "mkcell.h5ad")
    if not mapped:
        write = mk.tl.write_reference
        write(adata, run_dir, config=OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    write_report(cfg, adata, run_dir, figures, stages_for(cfg))
    return adata


# A stage's fingerprint holds the package files its function reaches through its imports
# and the tools it calls (mkcell.workflow._imports): no list of files is kept here.

REPORT_OUTPUTS = ("report.html", "mkcell.h5ad")
#: The score stage, the same in both modes.
SCORE_STAGE = Stage(
    "score",
    score,
    ("score", "pool.contrasts", "design", "seed"),
    ("tables/score_contrasts.csv", "tables/score_contrasts_by_phase.csv"),
)


def load_bulk(cfg: DictConfig, data: object, run_dir: Path) -> AnnData:
    """``mode=bulk``: the cohort's samples x genes table with the samples file joined."""
    from ._patients import load_bulk as read

    return read(cfg, data, run_dir)


def patients(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """Associations with covariates, GSEA and E2F-target clusters of the samples."""
    from ._patients import patients as analyse

    return analyse(cfg, adata, run_dir)


def report_bulk(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """``mode=bulk``: ``report.html`` and ``mkcell.h5ad`` of the cohort."""
    from ._report_patients import report_bulk as write

    return write(cfg, adata, run_dir)


#: Associations with covariates, GSEA and E2F clusters of the samples (both workflows).
PATIENTS_STAGE = Stage(
    "patients",
    patients,
    ("associate", "gsea", "e2f_clusters", "pool.contrasts", "design", "seed"),
    ("tables/associations.csv", "tables/gsea.csv", "tables/e2f_clusters.csv"),
)

STAGES: tuple[Stage, ...] = (
    Stage("load", load, ("data", "seed")),
    Stage("orthologs", orthologs, ("orthologs",), ("tables/ortholog_report.csv",)),
    Stage("qc", qc, ("qc", "seed"), ("tables/qc_per_sample.csv",)),
    Stage(
        "integrate",
        integrate,
        ("integrate", "seed"),
        ("tables/integration_metrics.csv",),
        ddp=True,
    ),
    Stage("annotate", annotate, ("annotate", "qc.keep_flagged", "seed")),
    Stage("trajectory", trajectory, ("trajectory", "seed")),
    SCORE_STAGE,
    Stage(
        "pool",
        pool,
        ("pool", "qc.keep_flagged", "design", "seed"),
        ("tables/pool_per_sample.csv", "tables/pool_contrasts.csv"),
    ),
    PATIENTS_STAGE,
    Stage(
        "report",
        report,
        ("report",),
        (*REPORT_OUTPUTS, "reference/manifest.json", *(f"figures/{f}.png" for f in FIGURES)),
        save_data=False,
    ),
)
"""The workflow, in order."""

BULK_STAGES: tuple[Stage, ...] = (
    Stage("load", load_bulk, ("data", "bulk")),
    PATIENTS_STAGE,
    Stage("report", report_bulk, ("report",), REPORT_OUTPUTS, save_data=False),
)
"""``mode=bulk``: the patient-level analyses of a samples x genes cohort."""


def stages_for(cfg: DictConfig) -> tuple[Stage, ...]:
    """The stages of ``cfg.mode``: :data:`STAGES`, :data:`MAP_STAGES` or :data:`BULK_STAGES`."""
    from ._map_stages import MAP_STAGES

    return {Mode.map: MAP_STAGES, Mode.bulk: BULK_STAGES}.get(Mode(cfg.mode), STAGES)
