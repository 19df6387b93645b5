"""A self-contained HTML report of a run (figures embedded as base64 PNG)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from omegaconf import DictConfig, OmegaConf

from .. import _keys as K
from .._settings import logger
from .._utils import write_text_atomic
from ._config import DataSource
from ._findings import findings_html
from ._html import _kv, image_html, page_html, table_html
from ._qc_report import qc_findings_html, qc_html
from ._report_patients import patients_findings_html, patients_html
from ._runner import Stage, stage_timings
from ._words import esc as _esc
from ._words import uns_table as _uns_table

PACKAGES = (
    "mkcell",
    "anndata",
    "scanpy",
    "scvi-tools",
    "torch",
    "lightning",
    "cellrank",
    "numpy",
    "scipy",
    "pandas",
    "statsmodels",
    "hydra-core",
    "omegaconf",
    "matplotlib",
)


def versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages the workflow uses."""
    out = {}
    for p in packages:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def _inputs(cfg: DictConfig, adata: AnnData) -> str:
    d = cfg.data
    source = DataSource(d.source).value
    info: dict[str, Any] = {"source": source, "species": list(d.species)}
    if source == "files":
        info.update(
            {f"input ({s})": d.inputs[s] for s in ("mouse", "human") if d.inputs[s] is not None}
        )
    elif source == "registry":
        info["dataset id"] = d.id
    else:
        info.update(
            {
                "simulated cells": d.n_cells,
                "genes": d.n_genes,
                "samples per condition": d.n_samples,
                "null": d.null_effect,
            }
        )
    info.update(
        {
            "sample column": d.sample_key,
            "condition column": d.condition_key,
            "max_cells": d.max_cells,
            "seed": cfg.seed,
        }
    )
    info["cells x genes (integrated)"] = f"{adata.n_obs} x {adata.n_vars}"
    obs = adata.obs
    cols = [c for c in (K.SPECIES, K.CONDITION) if c in obs.columns]
    per = None
    if cols and K.SAMPLE in obs.columns:
        per = (
            obs.groupby(cols, observed=True)
            .agg(n_samples=(K.SAMPLE, "nunique"), n_cells=(K.SAMPLE, "size"))
            .reset_index()
        )
    return _kv(info) + table_html(per)


def _orthologs(adata: AnnData) -> str:
    rep = adata.uns.get(K.ORTHOLOGS, {})
    scalars = (
        {k: v for k, v in rep.items() if not isinstance(v, pd.DataFrame | dict)}
        if isinstance(rep, Mapping)
        else {}
    )
    nested = (
        {f"{k}: {kk}": vv for k, v in rep.items() if isinstance(v, Mapping) for kk, vv in v.items()}
        if isinstance(rep, Mapping)
        else {}
    )
    genes = rep.get("genes") if isinstance(rep, Mapping) else None
    genes = genes if isinstance(genes, pd.DataFrame) else None
    status = None
    if genes is not None and "status" in genes.columns:
        status = genes["status"].value_counts().rename_axis("status").reset_index(name="n_genes")
    return (
        _kv({**scalars, **nested})
        + table_html(status)
        + "<p class='muted'>per gene: tables/ortholog_report.csv</p>"
    )


def _states(adata: AnnData) -> str:
    obs = adata.obs
    if K.STATE not in obs.columns:
        return "<p class='muted'>no cell states</p>"
    by = (
        obs[K.SPECIES]
        if K.SPECIES in obs.columns
        else pd.Series("all", index=obs.index, name=K.SPECIES)
    )
    tab = pd.crosstab(obs[K.STATE], by).rename_axis(columns=None).reset_index()
    ann = adata.uns.get(K.ANNOTATE, {})
    ann = ann if isinstance(ann, Mapping) else {}
    info = ""
    if ann.get("method") == "labels":
        params = ann.get("params", {})
        src = params.get("labels") or f"obs[{params.get('labels_key')!r}]"
        info = _kv(
            {
                "states from": f"your labels ({src}); marker-based annotation skipped",
                "cells whose label the map does not cover (state 'other')": ann.get(
                    "n_unmapped", 0
                ),
                "cells without a label (state 'other')": ann.get("n_unlabelled", 0),
            }
        )
        unmapped = ann.get("unmapped")
        if isinstance(unmapped, pd.DataFrame) and not unmapped.empty:
            info += "<h3>Labels mapped to no state</h3>" + table_html(unmapped)
    elif ann.get("method") == "markers":
        info = _kv({"states from": "marker panels (mk.datasets.marker_panels()) + clusters"})
    return info + table_html(tab)


def _gene_ids(adata: AnnData) -> str:
    rep = adata.uns.get(K.GENE_IDS)
    if not isinstance(rep, Mapping):
        return ""
    keys = ("n_mapped", "n_summed", "n_unmapped")
    return (
        "<h3>Gene identifiers</h3>"
        + _kv({f"gene IDs: {k[2:]}": rep.get(k) for k in keys})
        + _kv({"symbols from": rep.get("params", {}).get("source", "")})
    )


def _trajectory(adata: AnnData) -> str:
    obs = adata.obs
    traj = adata.uns.get(K.TRAJECTORY, {})
    if isinstance(traj, Mapping) and traj.get("skipped"):
        return f"<p><b>Trajectory skipped:</b> {_esc(traj.get('reason', ''))}</p>"
    if K.PSEUDOTIME not in obs.columns:
        return "<p class='muted'>no pseudotime</p>"
    pt = pd.to_numeric(obs[K.PSEUDOTIME], errors="coerce")
    info: dict[str, Any] = {"cells on the Mk lineage (finite pseudotime)": int(pt.notna().sum())}
    if K.FATE in obs.columns:
        info["mean Mk fate probability"] = (
            f"{pd.to_numeric(obs[K.FATE], errors='coerce').mean():.3f}"
        )
    if isinstance(traj, Mapping) and traj.get("axis"):
        info["trajectory axis"] = f"{traj['axis']}: {traj.get('why', '')}"
    if isinstance(traj, Mapping):
        info["cell-cycle correction of the lineage embedding"] = traj.get("cycle_regression", "off")
        stages = traj.get("maturation_stages", {})
        if isinstance(stages, Mapping) and stages.get("refined"):
            info["MkP / immature Mk / mature Mk boundaries (pseudotime)"] = (
                f"{stages['onset_pseudotime']:.2f} / {stages['plateau_pseudotime']:.2f} "
                f"(MkP -> Mk {stages['n_mkp_to_mk']}, Mk -> MkP {stages['n_mk_to_mkp']}"
                " cells re-called)"
            )
        else:
            info["MkP / Mk boundary"] = "as annotated (not refined on pseudotime)"
    return _kv(info)


def _mapping(adata: AnnData, figures: Mapping[str, Path]) -> str:
    """mode=map: how much of the query mapped, and where its samples sit in the reference."""
    res = adata.uns.get(K.MAP)
    if not isinstance(res, Mapping):
        return ""
    params = res.get("params", {})
    n = int(res.get("n_cells", adata.n_obs))
    info = {
        "reference": params.get("reference"),
        "reference mkcell version": res.get("reference_version"),
        "reference cells": res.get("n_reference_cells"),
        "query cells": n,
        "features used / zero-filled (missing in the query)": (
            f"{res.get('n_features', 0) - res.get('n_missing_features', 0)}"
            f" / {res.get('n_missing_features', 0)}"
        ),
        f"mapped confidently (state confidence >= {params.get('confident', 0.7)})": (
            f"{res.get('share_confident', float('nan')):.1%}"
        ),
        "unknown (far from every reference cell, or unlike every reference state)": (
            f"{res.get('n_unknown', 0)} cells ({res.get('share_unknown', 0.0):.1%})"
        ),
        "fine-tuning (query batch parameters only; reference weights frozen)": (
            f"{params.get('max_epochs')} epochs, {res.get('train_seconds', float('nan')):.1f} s"
        ),
        "mapping seconds": f"{res.get('seconds', float('nan')):.1f}",
    }
    note = ""
    if res.get("share_unknown", 0.0) > 0.1:
        note = (
            "<p><b>Warning:</b> more than 10% of the query's cells are unlike the reference:"
            " the query holds cells the reference lacks (another cell type or tissue?)."
            " Their states and pseudotime are not transferred (state <code>unknown</code>);"
            " they are counted in the pool tables.</p>"
        )
    return (
        note
        + _kv(info)
        + _figure(figures, "reference_map")
        + "<h3>Per query sample</h3>"
        + table_html(_uns_table(adata, K.MAP, "per_sample"))
        + "<h3>Query MkP pool against the reference's samples</h3>"
        + (
            "<p class='muted'>logit_z: distance from the reference condition's samples"
            " (logit scale, in their SD); "
        )
        + (
            "in_range: within the condition's 95% prediction interval for a new sample"
            " (range_low, range_high; wide with few reference samples);"
            " the reference's denominator is used.</p>"
        )
        + table_html(_pool_vs_reference(adata))
    )


def _pool_vs_reference(adata: AnnData) -> pd.DataFrame | None:
    df = adata.uns.get(K.POOL_VS_REFERENCE)
    return df if isinstance(df, pd.DataFrame) else None


def _pool_denominator(adata: AnnData) -> pd.DataFrame | None:
    pool = adata.uns.get(K.POOL, {})
    choice = pool.get("denominator_choice") if isinstance(pool, Mapping) else None
    return choice if isinstance(choice, pd.DataFrame) else None


def _patient_findings(adata: AnnData) -> str:
    body = patients_findings_html(adata)
    if not body:
        return ""
    link = "<span class='muted'>(<a href='#patients'>tables and figures</a>)</span>"
    return f"<div class='findings'><h3>Samples by covariate: associations, GSEA, E2F clusters {link}</h3>{body}</div>"


def _figure(figures: Mapping[str, Path], name: str) -> str:
    path = figures.get(name)
    return image_html(path, name) if path is not None and Path(path).exists() else ""


def build_report(
    cfg: DictConfig,
    adata: AnnData,
    run_dir: Path,
    figures: Mapping[str, Path],
    stages: Sequence[Stage],
) -> str:
    """Build the HTML text of the report.

    Parameters
    ----------
    cfg
        The job config.
    adata
        The final AnnData (read only).
    run_dir
        The run folder (stage timings are read from its markers; every table comes
        from ``adata.uns``).
    figures
        ``{name: png path}``.
    stages
        The workflow's stages (for the timings).
    """
    run_dir = Path(run_dir)
    timings = pd.DataFrame(stage_timings(run_dir, stages))
    integ = adata.uns.get(K.INTEGRATE, {})
    integ_info = (
        {
            k: v
            for k, v in integ.items()
            if not isinstance(v, Mapping | pd.DataFrame | list | tuple | np.ndarray)
        }
        if isinstance(integ, Mapping)
        else {}
    )
    mapping = _mapping(adata, figures)
    patients = patients_html(adata, run_dir)
    sections = [
        (
            "findings",
            "Findings",
            findings_html(adata) + qc_findings_html(adata) + _patient_findings(adata),
        ),
        ("inputs", "Inputs", _inputs(cfg, adata) + _gene_ids(adata)),
        *([("mapping", "Mapping onto the reference", mapping)] if mapping else []),
        ("orthologs", "Ortholog mapping", _orthologs(adata)),
        ("qc", "Quality control", qc_html(adata, figures)),
        (
            "integration",
            "Integration",
            _kv(integ_info)
            + table_html(_uns_table(adata, K.METRICS, "table"))
            + _figure(figures, "embedding"),
        ),
        ("states", "Cell states", _states(adata)),
        ("trajectory", "Trajectory", _trajectory(adata) + _figure(figures, "pseudotime_density")),
        (
            "scores",
            "Cell-cycle and gene-set scores",
            _figure(figures, "score_trends")
            + "<h3 id='score-contrasts'>Contrasts (samples as replicates)</h3>"
            + table_html(_uns_table(adata, K.SCORE_COMPARE, "table")),
        ),
        (
            "pool",
            "MkP pool",
            _figure(figures, "pool")
            + "<h3>Denominator</h3>"
            + table_html(_pool_denominator(adata))
            + "<h3 id='pool-contrasts'>Contrasts</h3>"
            + table_html(_uns_table(adata, K.POOL, "contrasts"))
            + "<h3 id='pool-per-sample'>Per sample</h3>"
            + table_html(_uns_table(adata, K.POOL, "per_sample"))
            + "<h3 id='maturation-shift'>Maturation shift</h3>"
            + table_html(_uns_table(adata, K.MATURATION, "contrasts")),
        ),
        *([("patients", "Patients: covariates, GSEA, E2F clusters", patients)] if patients else []),
        ("timings", "Stage timings", table_html(timings)),
        ("config", "Configuration", f"<pre>{_esc(OmegaConf.to_yaml(cfg, resolve=True))}</pre>"),
        ("versions", "Package versions", _kv(versions())),
    ]
    return page_html(cfg.report.title, run_dir, sections)


def write_report(
    cfg: DictConfig,
    adata: AnnData,
    run_dir: Path,
    figures: Mapping[str, Path],
    stages: Sequence[Stage],
) -> Path:
    """Write ``report.html`` atomically (see :func:`build_report`)."""
    path = Path(run_dir) / "report.html"
    write_text_atomic(path, build_report(cfg, adata, run_dir, figures, stages))
    logger.info("wrote %s", path)
    return path
