"""The report's patient-level parts (both workflows), and the whole report of ``mode=bulk``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from anndata import AnnData
from omegaconf import DictConfig, OmegaConf

from .. import _keys as K
from .._settings import logger
from .._utils import write_h5ad_atomic, write_text_atomic
from ._html import _kv, image_html, page_html, table_html
from ._runner import Stage, stage_timings
from ._words import ALPHA, _ci, _num, _p, _table, esc

PROLIFERATION = {
    "HALLMARK_E2F_TARGETS": "E2F targets",
    "HALLMARK_G2M_CHECKPOINT": "G2M checkpoint",
    "HALLMARK_MITOTIC_SPINDLE": "mitotic spindle",
}


#: Words for the readouts of :func:`mkcell.tl.associate` (others are named as they are).
READOUTS = {
    K.MKP_FRACTION: "MkP pool",
    K.SCORE_PREFIX + "e2f_targets": "E2F score in MkP",
    K.SCORE_PREFIX + "g2m_checkpoint": "G2M score in MkP",
    K.SCORE_PREFIX + "aurora": "Aurora score in MkP",
    K.PSEUDOTIME: "Mk maturation (pseudotime)",
    K.E2F_Z: "E2F-target expression",
}


def association_lines(adata: AnnData) -> list[str]:
    """One line per association called (adjusted p below 0.05), else what was tested."""
    table = _table(adata, K.ASSOCIATIONS, "table")
    if table is None:
        return []
    lines = []
    for row in table.to_dict("records"):
        if not (row["p_adj"] < ALPHA):
            continue
        cov, logged = str(row["covariate"]), row.get("transform") == "log2"
        per = f"per halving of {cov}" if logged else f"per unit less {cov}"
        change = -float(row["effect"])  # the effect is per doubling (per unit more)
        name = READOUTS.get(str(row["readout"]), str(row["readout"]))
        more, less = (
            ("larger", "smaller") if row["readout"] == K.MKP_FRACTION else ("higher", "lower")
        )
        unit = str(row.get("unit") or "").split(" per ")[0]
        lines.append(
            f"{esc(row['species'])}: lower {esc(cov)}, {more if change > 0 else less} "
            f"{esc(name)}: {change:+.2f} {esc(unit)} {esc(per)} "
            f"(95% CI {_ci(-row['ci_high'], -row['ci_low'])}, adjusted p={_p(row['p_adj'])}, "
            f"{int(row['n_samples'])} samples)"
        )
    if not lines:
        covs = ", ".join(sorted(map(str, table["covariate"].unique())))
        lines.append(
            f"No readout is associated with {esc(covs)} (smallest adjusted p "
            f"{_p(table['p_adj'].min())}, {int(table['n_samples'].max())} samples)."
        )
    return lines


def gsea_lines(adata: AnnData) -> list[str]:
    """E2F / G2M / mitotic spindle in each comparison: direction, NES, FDR and the test."""
    table = _table(adata, K.GSEA, "table")
    if table is None:
        return []
    lines = []
    for (species, groups), df in table.groupby(["species", "groups"], sort=False):
        a, _, b = str(groups).partition(" vs ")
        hits = df[df["term"].isin(list(PROLIFERATION))]
        parts = []
        for row in hits.to_dict("records"):
            where = a if row["nes"] > 0 else b
            call = f"higher in {esc(where)}" if row["fdr"] < ALPHA else "no call"
            parts.append(
                f"{PROLIFERATION[row['term']]}: {call} (NES {_num(row['nes'])}, FDR {_p(row['fdr'])})"
            )
        test = str(df["method"].iloc[0]).split(" (")[0]
        lines.append(f"{esc(species)}, {esc(groups)} ({esc(test)}): " + "; ".join(parts))
    return lines


def cluster_lines(adata: AnnData) -> list[str]:
    """The Fisher test of the E2F-high cluster, per species."""
    res = adata.uns.get(K.E2F_CLUSTERS, {})
    lines = []
    for species, r in (res.get("by_species") or {}).items():
        lines.append(
            f"{esc(species)}: the E2F-high cluster against {esc(r['tested'])}: Fisher p="
            f"{_p(r['fisher_p'])}, odds ratio {float(r['odds_ratio']):.3g}"
        )
    return lines


def patients_findings_html(adata: AnnData) -> str:
    """The Findings entry of the patient analyses ('' when none ran)."""
    items = association_lines(adata) + gsea_lines(adata) + cluster_lines(adata)
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>" if items else ""


def _figure(run_dir: Path, name: str) -> str:
    path = Path(run_dir) / "figures" / f"{name}.png"
    return image_html(path, name) if path.is_file() else ""


def patients_html(adata: AnnData, run_dir: Path) -> str:
    """Associations, GSEA and E2F clusters: figures and tables ('' when none ran)."""
    keys = (K.ASSOCIATIONS, K.GSEA, K.E2F_CLUSTERS)
    if not any(k in adata.uns for k in keys):
        return ""
    assoc = _table(adata, K.ASSOCIATIONS, "table")
    gsea = _table(adata, K.GSEA, "table")
    clusters = _table(adata, K.E2F_CLUSTERS, "table")
    top = None
    if gsea is not None:
        top = gsea[gsea["term"].isin(list(PROLIFERATION)) | (gsea["fdr"] < ALPHA)]
        top = top[["species", "groups", "term", "nes", "p_value", "fdr", "method"]]
    return (
        "<h3 id='associations'>Associations with per-sample covariates</h3>"
        + (
            _figure(run_dir, "associations") + table_html(assoc)
            if assoc is not None
            else "<p class='muted'>no covariates given (associate.covariates=[...])</p>"
        )
        + "<h3 id='gsea'>GSEA (samples as replicates)</h3>"
        + _figure(run_dir, "gsea")
        + table_html(top)
        + "<h3 id='e2f-clusters'>Samples clustered on E2F targets + AURKA/AURKB/PLK1</h3>"
        + "".join(f"<p>{line}</p>" for line in cluster_lines(adata))
        + _figure(run_dir, "e2f_clusters")
        + table_html(clusters)
    )


def report_bulk(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """``report.html`` and ``mkcell.h5ad`` of a bulk cohort (``mode=bulk``)."""
    from ._stages import stages_for

    write_h5ad_atomic(adata, run_dir / "mkcell.h5ad")
    path = run_dir / "report.html"
    write_text_atomic(path, _bulk_html(cfg, adata, run_dir, stages_for(cfg)))
    logger.info("wrote %s", path)
    return adata


def _bulk_html(cfg: DictConfig, adata: AnnData, run_dir: Path, stages: Sequence[Stage]) -> str:
    probes = adata.uns.get(K.BULK, {}).get("probes")
    fates = probes["fate"].value_counts().to_dict() if isinstance(probes, pd.DataFrame) else {}
    inputs = {
        "file": cfg.data.inputs.bulk,
        "samples": adata.n_obs,
        "genes": adata.n_vars,
        "samples file": cfg.data.samples_file,
        **{f"probes {k}": v for k, v in fates.items()},
    }
    sections = [
        (
            "findings",
            "Findings",
            patients_findings_html(adata) or "<p class='muted'>nothing ran</p>",
        ),
        ("inputs", "Inputs", _kv(inputs)),
        ("patients", "Associations, GSEA, E2F clusters", patients_html(adata, run_dir)),
        ("timings", "Stage timings", table_html(pd.DataFrame(stage_timings(run_dir, stages)))),
        ("config", "Configuration", f"<pre>{esc(OmegaConf.to_yaml(cfg, resolve=True))}</pre>"),
    ]
    return page_html(cfg.report.title, run_dir, sections)
