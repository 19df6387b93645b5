"""Cytokinesis versus endomitosis in the Mk lineage, and a ploidy proxy, samples as replicates.

Two per-cell readouts, neither of them the G2M score again:

* **cytokinesis contrast** (G2M cells of the Mk lineage): mean z of the cytokinesis /
  abscission genes (:data:`~mkcell._genesets.ABSCISSION`) minus mean z of the rest of the
  mitotic program (Hallmark G2M checkpoint + mitotic spindle without those genes). Each
  gene is centred on the G2M cells outside the Mk lineage of the same sample (which removes
  the sample's batch and depth) and scaled by its SD over the G2M cells of the species. A
  cell that runs the mitotic program but skips cytokinesis (endomitosis) scores low.
* **ploidy proxy** (Mk-lineage cells, any phase): polyploid Mk carry more RNA and more
  genes; the mean of log total counts and log detected genes, each minus its median over
  the cells outside the Mk lineage of the same sample and phase (depth correction).

Each sample is summarised (mean over its cells), conditions are compared on those
summaries with the sample-level layer of :mod:`mkcell.tl._compare`, and, when
``obs['mk_pseudotime']`` exists, both follow pseudotime per condition.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._docs import fill_doc
from .._genesets import ABSCISSION, builtin_sets
from .._settings import MkcellError, logger
from .._utils import check_adata, check_obs_key, get_counts, log_write
from ._compare import COLUMNS, _contrast_rows, _sample_means
from ._design import INTERACTION_DOC, Contrasts, contrast_label, resolve_contrasts, sample_obs
from ._inference import DEFAULT_DESIGN, DESIGN_DOC, bh, parse_design, sample_covariates
from ._score import _species_of_adata, translate_genes
from ._score_trends import COLUMNS as TREND_COLUMNS
from ._score_trends import _group_trend, _trend_table

#: ``adata.uns`` key of :func:`endomitosis`.
ENDOMITOSIS_KEY = K.ENDOMITOSIS
#: The sets whose genes, minus the cytokinesis genes, are "the rest of the mitotic program".
MITOTIC_SETS = ("HALLMARK_G2M_CHECKPOINT", "HALLMARK_MITOTIC_SPINDLE")
#: The ``state`` label of the pooled Mk lineage (MkP + Mk) in the tables.
LINEAGE = "+".join(K.MK_LINEAGE)
#: Fewest reference cells (outside the Mk lineage) of a sample to centre or depth-correct on;
#: with fewer, the species' reference cells are used.
MIN_REFERENCE = 10
#: Floor of a gene's SD (log-normalised units), so that rare genes do not dominate the z.
SD_FLOOR = 0.1


def _genes(adata: AnnData, genes: Sequence[str] | None, gene_symbols: str, min_genes: int):
    """Cytokinesis genes and the rest of the mitotic program present in ``adata`` (columns)."""
    species = _species_of_adata(adata.var_names, gene_symbols)
    sets = builtin_sets()
    cyto, _ = translate_genes(list(ABSCISSION if genes is None else genes), "human", species)
    rest, _ = translate_genes([g for s in MITOTIC_SETS for g in sets[s]], "human", species)
    index = adata.var_names
    cyto = [g for g in cyto if g in index]
    rest = [g for g in rest if g in index and g not in set(cyto)]
    if len(cyto) < min_genes or len(rest) < min_genes:
        msg = (
            f"only {len(cyto)} cytokinesis and {len(rest)} other mitotic genes are in "
            f"adata.var_names (need {min_genes} each); pass genes= or gene_symbols="
        )
        raise MkcellError(msg)
    return cyto, rest


def _reference_centre(values: np.ndarray, ref: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per-group centre (cells x columns) from the group's reference cells, else all of them.

    ``values`` are cells x columns; the centre of a group is the median over its ``ref``
    cells when it has :data:`MIN_REFERENCE` of them, else over every ``ref`` cell.
    """
    fallback = np.median(values[ref], axis=0) if ref.any() else np.median(values, axis=0)
    out = np.empty_like(values)
    for g in pd.unique(groups):
        m = groups == g
        r = m & ref
        out[m] = np.median(values[r], axis=0) if r.sum() >= MIN_REFERENCE else fallback
    return out


def _cytokinesis(
    lognorm: np.ndarray, n_cyto: int, g2m: np.ndarray, lineage: np.ndarray, groups: np.ndarray
) -> np.ndarray:
    """Cytokinesis contrast of the G2M Mk-lineage cells (NaN elsewhere)."""
    out = np.full(g2m.size, np.nan)
    cells = g2m & lineage
    if not cells.any():
        return out
    x = lognorm[g2m]
    ref = ~lineage[g2m]
    centre = np.empty_like(x)
    for g in pd.unique(groups[g2m]):  # mean of the sample's non-lineage G2M cells
        m = groups[g2m] == g
        r = m & ref
        centre[m] = x[r].mean(0) if r.sum() >= MIN_REFERENCE else x[ref if ref.any() else m].mean(0)
    z = (x - centre) / np.maximum(x.std(0), SD_FLOOR)
    score = z[:, :n_cyto].mean(1) - z[:, n_cyto:].mean(1)
    out[g2m] = np.where(lineage[g2m], score, np.nan)
    return out


def _ploidy(
    counts: sp.spmatrix | np.ndarray, lineage: np.ndarray, sample: np.ndarray, phase: np.ndarray
) -> np.ndarray:
    """Ploidy proxy of the Mk-lineage cells (NaN elsewhere), depth-corrected per sample x phase."""
    total = np.asarray(counts.sum(axis=1)).ravel()
    detected = np.asarray((counts > 0).sum(axis=1)).ravel()
    logs = np.column_stack([np.log1p(total), np.log1p(detected)])
    groups = np.char.add(np.char.add(sample.astype(str), "|"), phase.astype(str))
    centre = np.empty_like(logs)
    for s in pd.unique(sample):  # phase-matched reference in the sample, else the whole sample
        m = sample == s
        centre[m] = _reference_centre(logs[m], ~lineage[m], groups[m])
    return np.where(lineage, (logs - centre).mean(1), np.nan)


def _trends(adata: AnnData, obs: pd.DataFrame, names: Sequence[str], n_bins: int, ci: float):
    """Per species x condition trends of the per-cell readouts along Mk pseudotime."""
    if K.PSEUDOTIME not in adata.obs.columns:
        return pd.DataFrame(columns=TREND_COLUMNS)
    pt = pd.to_numeric(adata.obs[K.PSEUDOTIME], errors="coerce").to_numpy(float)
    bins = np.minimum((np.clip(np.nan_to_num(pt), 0, 1) * n_bins).astype(int), n_bins - 1)
    frames = []
    for name in names:
        val = adata.obs[name].to_numpy(float)
        on = np.isfinite(pt) & np.isfinite(val)
        for (sp_name, cond), idx in obs[on].groupby(["species", "condition"]).indices.items():
            rows = np.flatnonzero(on)[idx]
            args = (bins[rows], obs["sample"].to_numpy()[rows], n_bins, "bins", 0.3, ci, 1)
            trend = _group_trend(val[rows, None], *args)
            frames.append(_trend_table(trend, sp_name, cond, [name]))
    if not frames:
        return pd.DataFrame(columns=TREND_COLUMNS)
    return pd.concat(frames, ignore_index=True)[TREND_COLUMNS]


def _check(adata: AnnData, state_key: str, phase_key: str, numbers: dict[str, float]) -> None:
    check_adata(adata)
    check_obs_key(adata, state_key, what="state annotation (run mk.tl.annotate or pass state_key=)")
    check_obs_key(adata, phase_key, what="cell-cycle phase (run mk.tl.score or pass phase_key=)")
    if not 0 < numbers["ci"] < 1 or numbers["min_genes"] < 1 or numbers["n_bins"] < 2:
        msg = f"{numbers}: need 0 < ci < 1, min_genes >= 1 and n_bins >= 2"
        raise MkcellError(msg)
    if numbers["min_cells"] < 1:
        msg = f"min_cells={numbers['min_cells']}; use 1 or more"
        raise MkcellError(msg)


@fill_doc(contrasts=INTERACTION_DOC, design=DESIGN_DOC)
def endomitosis(
    adata: AnnData,
    sample_key: str = K.SAMPLE,
    condition_key: str = K.CONDITION,
    contrasts: Contrasts = None,
    *,
    species_key: str = K.SPECIES,
    state_key: str = K.STATE,
    phase_key: str = K.PHASE,
    layer: str | None = None,
    genes: Sequence[str] | None = None,
    gene_symbols: str = "auto",
    min_genes: int = 3,
    min_cells: int = 5,
    design: str = DEFAULT_DESIGN,
    ci: float = 0.95,
    n_bins: int = 10,
    key_added: str = ENDOMITOSIS_KEY,
    copy: bool = False,
) -> AnnData | None:
    """Cytokinesis versus endomitosis, and ploidy, of the Mk lineage between conditions.

    Per cell: the cytokinesis contrast of G2M Mk-lineage cells (abscission genes against
    the rest of the mitotic program, so not the G2M score again; low = endomitotic) and a
    ploidy proxy of Mk-lineage cells (log RNA and genes against the sample's other cells
    of the same phase). Per sample: their means (contrast over G2M MkP + Mk, ploidy over
    Mk). Conditions are compared on the sample means (OLS on ``design``, exact p below 3
    samples a group, Benjamini-Hochberg over the table), as in :func:`mkcell.tl.compare_scores`.

    Parameters
    ----------
    adata
        Raw counts, ``obs`` with sample, condition, state (:func:`mkcell.tl.annotate`) and
        phase (:func:`mkcell.tl.score`).
    sample_key, condition_key
        ``adata.obs`` columns of samples and conditions.
    {contrasts}
    species_key, state_key, phase_key
        ``adata.obs`` columns of species, cell state and cell-cycle phase (G1 / S / G2M).
    layer
        Layer of raw counts (default ``layers['counts']``, else ``X``).
    genes
        Cytokinesis / abscission genes (human symbols; default RHOA, ECT2, RACGAP1, MYH10,
        KIF23, ANLN, CIT, PRC1, SPAG5); mapped to mouse orthologs for mouse symbols.
    gene_symbols
        ``"auto"``, ``"human"`` or ``"mouse"``.
    min_genes
        Fewest cytokinesis genes, and other mitotic genes, that must be present.
    min_cells
        Fewest cells of a sample for it to count in a contrast.
    {design}
    ci
        Confidence level of the intervals and trend bands.
    n_bins
        Pseudotime bins of the trends (when ``obs['mk_pseudotime']`` exists).
    key_added
        ``adata.uns`` key of the results.
    copy
        Return a copy instead of writing to ``adata``.

    Returns
    -------
    ``None`` or a copy (``copy=True``). Writes ``obs['mk_cytokinesis_contrast']``,
    ``obs['mk_ploidy_proxy']`` and ``uns[key_added]``: ``table`` (the columns of
    :func:`mkcell.tl.compare_scores`; ``score`` is one of the two obs columns, ``state``
    ``MkP+Mk`` (G2M cells) or ``Mk``), ``sample_means``, ``trends`` (the columns of
    :func:`mkcell.tl.score_trends`), ``genes`` and ``params``.
    """
    numbers = {"ci": ci, "min_genes": min_genes, "n_bins": n_bins, "min_cells": min_cells}
    _check(adata, state_key, phase_key, numbers)
    obs = sample_obs(adata, sample_key, condition_key, species_key)
    todo = resolve_contrasts(obs, contrasts, interactions=True)
    parsed = parse_design(design, condition_key)
    covariates = sample_covariates(adata, obs, parsed)
    cyto, rest = _genes(adata, genes, gene_symbols, min_genes)
    counts = get_counts(adata, layer)
    if copy:
        adata = adata.copy()
    state = adata.obs[state_key].astype(str).to_numpy()
    phase = adata.obs[phase_key].astype(str).to_numpy()
    lineage = np.isin(state, K.MK_LINEAGE)
    group = (obs["species"] + "|" + obs["sample"]).to_numpy()
    lib = np.asarray(counts.sum(axis=1)).ravel()
    sub = counts[:, adata.var_names.get_indexer(cyto + rest)]
    sub = sub.toarray() if sp.issparse(sub) else np.asarray(sub)
    lognorm = np.log1p(sub * (1e4 / np.maximum(lib, 1))[:, None])
    score = np.full(adata.n_obs, np.nan)
    for sp_name in pd.unique(obs["species"]):  # the SD is taken within each species
        m = (obs["species"] == sp_name).to_numpy()
        g2m = (phase == "G2M") & m
        score[m] = _cytokinesis(lognorm[m], len(cyto), g2m[m], lineage[m], group[m])
    adata.obs[K.CYTOKINESIS_CONTRAST] = score
    adata.obs[K.PLOIDY_PROXY] = _ploidy(counts, lineage, group, phase)
    for col in (K.CYTOKINESIS_CONTRAST, K.PLOIDY_PROXY):
        log_write("obs", col)
    in_g2m = pd.Series(np.where(lineage & (phase == "G2M"), LINEAGE, None), index=obs.index)
    in_mk = pd.Series(np.where(state == K.MK, K.MK, None), index=obs.index)
    fit = {"design": parsed, "covariates": covariates, "ci": ci, "min_cells": min_cells}
    means, tables = [], []
    for key, st, label in (
        (K.CYTOKINESIS_CONTRAST, in_g2m, LINEAGE),
        (K.PLOIDY_PROXY, in_mk, K.MK),
    ):
        mm = _sample_means(adata, obs, st, [key], min_cells)
        means.append(mm)
        tables.append(_contrast_rows(mm, [key], todo, [label], **fit))
    table = pd.concat(tables, ignore_index=True)[COLUMNS] if todo else pd.DataFrame(columns=COLUMNS)
    table["p_adj"] = bh(table["p_value"])
    readouts = [K.CYTOKINESIS_CONTRAST, K.PLOIDY_PROXY]
    adata.uns[key_added] = {
        "table": table,
        "sample_means": pd.concat(means, ignore_index=True),
        "trends": _trends(adata, obs, readouts, n_bins, ci),
        "genes": {"cytokinesis": cyto, "rest_of_mitosis": rest},
        "params": {
            "sample_key": sample_key,
            "condition_key": condition_key,
            "species_key": species_key,
            "state_key": state_key,
            "phase_key": phase_key,
            "contrasts": list(dict.fromkeys(contrast_label(t[1:]) for t in todo)),
            "min_cells": min_cells,
            "design": parsed.formula,
            "ci": ci,
            "n_bins": n_bins,
        },
    }
    log_write("uns", key_added)
    logger.info("endomitosis: %d cytokinesis, %d other mitotic genes", len(cyto), len(rest))
    return adata if copy else None
