"""The patient-level stage: associations with covariates, GSEA, E2F-target clusters.

The seed study's human evidence, run on cells (per-sample pseudobulk of HSPC) or on a bulk
cohort (``mode=bulk``): per-sample readouts against a continuous covariate such as the
platelet count (:func:`mkcell.tl.associate`), the calibrated gene-set test between two groups
of samples (:func:`mkcell.tl.gsea`) and the samples clustered on E2F targets with a Fisher
test (:func:`mkcell.tl.e2f_clusters`). Every call is a tool's; this module picks the groups.
"""

from __future__ import annotations

import operator
import re
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData
from omegaconf import DictConfig

import mkcell as mk

from .. import _keys as K
from .._settings import MkcellError, logger
from ._load import join_samples_file
from ._outputs import _plain, _seeded, contrasts_of, save_figure, write_table
from ._schema import tool_kwargs

GSEA_COLUMNS = ["species", "groups", "term", "nes", "p_value", "fdr", "method"]
PATIENT_FIGURES = ("associations", "gsea", "e2f_clusters")
SPLIT_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_SPLIT = re.compile(r"^\s*(\w+)\s*(<=|<|>=|>)\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*$")


def parse_split(split: str) -> tuple[str, str, float]:
    """``"platelets < 100"`` as ``("platelets", "<", 100.0)``; one line when it is not one."""
    m = _SPLIT.match(str(split))
    if m is None:
        msg = (
            f"gsea.split={split!r}: write COLUMN OP NUMBER with OP one of <, <=, >, >=, "
            "e.g. gsea.split='platelets < 100'"
        )
        raise MkcellError(msg)
    return m[1], m[2], float(m[3])


def load_bulk(cfg: DictConfig, data: object, run_dir: Path) -> AnnData:  # noqa: ARG001
    """Read the bulk cohort (samples x genes, ``data.inputs.bulk``) and join the samples file."""
    f = mk.io.read_bulk
    adata = f(Path(str(cfg.data.inputs.bulk)).expanduser(), **tool_kwargs(cfg.bulk, f))
    if cfg.data.samples_file is not None:
        join_samples_file(cfg, {"bulk": adata}, sample_key=None)
    logger.info("bulk cohort: %d samples x %d genes", adata.n_obs, adata.n_vars)
    return adata


def patients(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """Associations, GSEA and E2F-target clusters of the samples, with their tables and figures."""
    bulk = K.SAMPLE not in adata.obs.columns
    _clusters(cfg, adata, run_dir, bulk=bulk)  # first: a bulk cohort's E2F z is a readout
    _associate(cfg, adata, run_dir, bulk=bulk)
    _gsea(cfg, adata, run_dir, bulk=bulk)
    return adata


def _associate(cfg: DictConfig, adata: AnnData, run_dir: Path, *, bulk: bool) -> None:
    from ..tl._associate import COLUMNS  # the contract's columns lead the tool's table

    columns = COLUMNS[: COLUMNS.index("n_samples") + 1]
    covariates = _plain(cfg.associate.covariates) or []
    table = pd.DataFrame(columns=columns)
    if covariates:
        f = mk.tl.associate
        kwargs = tool_kwargs(cfg.associate, f) | ({"sample_key": None} if bulk else {})
        f(adata, **kwargs)
        table = adata.uns[K.ASSOCIATIONS]["table"]
        fig = mk.pl.associations(adata)
        save_figure(fig, run_dir, "associations", cfg.report.dpi)
    else:
        logger.info(
            "no associate.covariates given: no associations (e.g. 'associate.covariates=[platelets]')"
        )
    write_table(table, run_dir, "associations", columns=columns)


def _sample_table(adata: AnnData, species: str, states: list[str] | None, *, bulk: bool):
    """Samples x genes (log scale) and the samples' metadata, of one species."""
    if bulk:
        meta = adata.obs.copy()
        layer = K.LOG_EXPRESSION if K.LOG_EXPRESSION in adata.layers else None
        X = adata.layers[layer] if layer else adata.X
        X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
        return pd.DataFrame(X, index=adata.obs_names, columns=adata.var_names), meta
    return mk.tl.pseudobulk(adata, K.SAMPLE, state=states, species=species)


def _groups(cfg: DictConfig, meta: pd.DataFrame, species: str) -> list[tuple[str, str, pd.Series]]:
    """``(A, B, labels)`` of each comparison: the covariate split, else the contrasts present."""
    split = cfg.gsea.split
    if split:
        column, op, value = parse_split(split)
        if column not in meta.columns:
            msg = (
                f"gsea.split={split!r}: no per-sample column {column!r} "
                f"(columns: {sorted(map(str, meta.columns))}); add it with data.samples_file="
            )
            raise MkcellError(msg)
        x = pd.to_numeric(meta[column], errors="coerce")
        inside = SPLIT_OPS[op](x.to_numpy(), value)
        a, b = f"{column} {op} {value:g}", f"not {column} {op} {value:g}"
        return [(a, b, pd.Series(np.where(inside, a, b), index=meta.index).where(x.notna()))]
    if K.CONDITION not in meta.columns:
        return []
    present = set(meta[K.CONDITION].astype(str))
    pairs = [c for c in contrasts_of(cfg) or [] if len(c) == 2]  # GSEA: pairs, no interactions
    labels = meta[K.CONDITION].astype(str)
    return [(str(a), str(b), labels) for a, b in pairs if {str(a), str(b)} <= present]


def _gsea(cfg: DictConfig, adata: AnnData, run_dir: Path, *, bulk: bool) -> None:
    f = mk.tl.gsea
    kwargs = _seeded(f, tool_kwargs(cfg.gsea, f), cfg.seed)
    states = _plain(cfg.gsea.states)
    tables = []
    for species in _species(adata):
        table, meta = _sample_table(adata, species, states, bulk=bulk)
        for a, b, labels in _groups(cfg, meta, species):
            meta = meta.assign(_group=labels.reindex(meta.index))
            n = meta["_group"].value_counts()
            if min(n.get(a, 0), n.get(b, 0)) < 2:
                logger.info(
                    "GSEA %s vs %s (%s): fewer than 2 samples in a group, not run", a, b, species
                )
                continue
            res = f(table, meta, "_group", (a, b), **kwargs)
            tables.append(res.assign(species=species, groups=f"{a} vs {b}"))
    out = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=GSEA_COLUMNS)
    adata.uns[K.GSEA] = {"table": out, "params": {"states": states, "split": cfg.gsea.split}}
    write_table(out, run_dir, "gsea", columns=GSEA_COLUMNS)
    if not out.empty:
        save_figure(mk.pl.gsea(adata), run_dir, "gsea", cfg.report.dpi)


def _clusters(cfg: DictConfig, adata: AnnData, run_dir: Path, *, bulk: bool) -> None:
    f = mk.tl.e2f_clusters
    c = cfg.e2f_clusters
    kwargs = tool_kwargs(c, f) | {"state": _plain(cfg.gsea.states)}
    if bulk:
        kwargs |= {"sample_key": None, "state": None}
    covariates = _plain(cfg.associate.covariates) or []
    if c.covariate is None and covariates:  # tested against the covariate of the associations
        kwargs["covariate"] = covariates[0]
    tables, results, drawn = [], {}, None
    for species in _species(adata):
        part = adata if bulk else adata[adata.obs[K.SPECIES].astype(str) == species].copy()
        if kwargs["covariate"] is None:
            level = _tested_condition(cfg, part)
            if level is None:
                logger.info("E2F clusters (%s): no covariate and no contrast to test", species)
                continue
            kwargs |= {"groupby": K.CONDITION, "level": level}
        try:
            f(part, **kwargs)
        except MkcellError as err:
            logger.warning("E2F clusters (%s) not computed: %s", species, err)
            continue
        res = part.uns[K.E2F_CLUSTERS]
        tables.append(res["table"].assign(species=species, cut_height=res["cut_height"]))
        keep = ("cut_height", "fisher_p", "odds_ratio", "contingency", "genes")
        results[species] = {k: res[k] for k in keep} | {"tested": res["params"]["tested_group"]}
        drawn = drawn or part
    out = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=["sample", "cluster"])
    )
    if drawn is not None:
        save_figure(mk.pl.e2f_heatmap(drawn), run_dir, "e2f_clusters", cfg.report.dpi)
    adata.uns[K.E2F_CLUSTERS] = {"table": out, "by_species": results}
    write_table(out, run_dir, "e2f_clusters", columns=["sample", "cluster"])


def _tested_condition(cfg: DictConfig, adata: AnnData) -> str | None:
    """The first contrast's first condition present with its partner (``MDS`` of MDS vs control)."""
    if K.CONDITION not in adata.obs.columns:
        return None
    present = set(adata.obs[K.CONDITION].astype(str))
    for a, b in (c for c in contrasts_of(cfg) or [] if len(c) == 2):
        if {str(a), str(b)} <= present:
            return str(a)
    return None


def _species(adata: AnnData) -> list[str]:
    if K.SPECIES not in adata.obs.columns:
        return ["all"]
    return sorted(adata.obs[K.SPECIES].astype(str).unique())
