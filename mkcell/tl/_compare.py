"""Scores compared between conditions with samples as replicates (pseudobulk of cells)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._docs import fill_doc
from .._settings import MkcellError, MkcellWarning, logger
from .._utils import check_adata, check_obs_key, get_counts, log_write
from ._design import (
    CONTRASTS_DOC,
    INTERACTION_DOC,
    Contrasts,
    contrast_label,
    resolve_contrasts,
    sample_obs,
)
from ._inference import (
    DEFAULT_DESIGN,
    DESIGN_DOC,
    Design,
    bh,
    contrast_table,
    covariate_rows,
    parse_design,
    sample_covariates,
)

#: ``adata.uns`` key of :func:`compare_scores`.
COMPARE_KEY = K.SCORE_COMPARE
#: ``adata.uns`` key of :func:`pseudobulk_de`.
DE_KEY = K.SCORE_DE
#: Pseudo-score: share of cells not in G1 (added when ``obs['phase']`` exists).
CYCLING = K.CYCLING_FRACTION

COLUMNS = [
    "species",
    "contrast",
    "state",
    "score",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adj",
    "p_min",
    "n_a",
    "n_b",
    "method",
]
#: Identifier columns of the per-sample means.
ID_COLUMNS = ("species", "sample", "condition", "state")
#: Phases the gene-set scores are also compared within.
PHASES = ("G1", "S", "G2M")
#: Columns of the :func:`pseudobulk_de` table.
DE_COLUMNS = [
    "species",
    "contrast",
    "gene",
    "base_mean",
    "log2fc",
    "lfc_se",
    "stat",
    "p_value",
    "p_adj",
]


def _default_keys(adata: AnnData) -> list[str]:
    keys = [k for k in (K.S_SCORE, K.G2M_SCORE) if k in adata.obs.columns]
    keys += [k for k in adata.obs.columns if str(k).startswith(K.SCORE_PREFIX)]
    if K.PHASE in adata.obs.columns:
        keys.append(CYCLING)
    if not keys:
        msg = (
            "no scores in adata.obs (S_score, mk_score_*); "
            "run mk.tl.score(adata) first or pass keys="
        )
        raise MkcellError(msg)
    return keys


def _states(adata: AnnData, state_key: str, states: Sequence[str] | None) -> pd.Series:
    """The state of each cell among ``states`` (NaN elsewhere); ``"all"`` if ``states=None``."""
    obs = adata.obs
    if states is None:
        return pd.Series("all", index=obs.index)
    check_obs_key(
        adata, state_key, what="state annotation (run mk.tl.annotate first or pass state_key=)"
    )
    state = obs[state_key].astype(str)
    absent = [s for s in states if s not in set(state)]
    if len(absent) == len(states):
        msg = (
            f"none of states {list(states)} occur in `adata.obs[{state_key!r}]`; "
            f"present: {sorted(set(state))}"
        )
        raise MkcellError(msg)
    return state.where(state.isin(list(states)))


def _sample_means(
    adata: AnnData,
    obs: pd.DataFrame,
    state: pd.Series,
    keys: Sequence[str] | None,
    min_cells: int,
) -> pd.DataFrame:
    """Mean score per sample x state (one row each; samples below ``min_cells`` dropped).

    ``obs`` is the design table of :func:`~mkcell.tl._design.sample_obs`, ``state`` the
    state of each cell (NaN: not pseudobulked). Returns the columns species, sample,
    condition, state, n_cells and one per key.
    """
    keys = list(keys) if keys is not None else _default_keys(adata)
    missing = [
        k
        for k in keys
        if k not in adata.obs.columns and not (k == CYCLING and K.PHASE in adata.obs)
    ]
    if missing:
        msg = (
            f"scores {missing} are not in adata.obs; run mk.tl.score(adata) first or choose "
            "keys from adata.obs"
        )
        raise MkcellError(msg)
    df = pd.DataFrame(
        {
            "species": obs["species"].to_numpy(),
            "sample": obs["sample"].to_numpy(),
            "condition": obs["condition"].to_numpy(),
            "state": state.to_numpy(),
        }
    )
    for k in keys:
        df[k] = (
            (adata.obs[K.PHASE].astype(str) != "G1").to_numpy(float)
            if k == CYCLING
            else adata.obs[k].to_numpy(float)
        )
    df = df[df["state"].notna()]
    g = df.groupby(["species", "sample", "condition", "state"], observed=True)
    out = g[keys].mean()
    out.insert(0, "n_cells", g.size())
    out = out.reset_index()
    small = out["n_cells"] < min_cells
    if small.any():
        logger.info(
            "dropped %d sample x state groups with fewer than %d cells: %s",
            int(small.sum()),
            min_cells,
            ", ".join(out.loc[small, "sample"] + "/" + out.loc[small, "state"]),
        )
    return out[~small].reset_index(drop=True)


def _contrast_rows(
    means: pd.DataFrame,
    keys: Sequence[str],
    todo: Sequence[tuple[str, ...]],
    states: Sequence[str],
    *,
    design: Design,
    covariates: pd.DataFrame | None,
    ci: float,
    min_cells: int,
) -> pd.DataFrame:
    """One row per species x contrast x state x key, fitted on the per-sample means."""
    rows = []
    for sp_name, *conds in todo:
        label = contrast_label(conds)
        for st in states:
            tab = means[
                (means["species"] == sp_name)
                & (means["state"] == st)
                & means["condition"].isin(conds)
            ]
            n = [int((tab["condition"] == c).sum()) for c in conds]
            if min(n) < 2:
                warnings.warn(
                    f"{sp_name}: '{label}' in {st} has {' and '.join(map(str, n))} "
                    f"samples with >= {min_cells} cells; need 2 per group, so no p-value or CI",
                    MkcellWarning,
                    stacklevel=3,
                )
            fits = contrast_table(
                tab[list(keys)],
                tab["condition"].to_numpy(),
                conds,
                design=design,
                covariates=covariate_rows(covariates, tab),
                level=ci,
                where=f"for {label} ({sp_name}, {st})",
            )
            group = tab.groupby("condition")[list(keys)].mean().reindex(conds)
            for k, r in fits.iterrows():
                m = group[k].to_numpy(float)
                sides = m if len(conds) == 2 else m[[0, 2]] - m[[1, 3]]
                rows.append(
                    {
                        "species": sp_name,
                        "contrast": label,
                        "state": st,
                        "score": k,
                        "mean_a": sides[0],
                        "mean_b": sides[1],
                        "diff": r["estimate"],
                        "ci_low": r["ci_low"],
                        "ci_high": r["ci_high"],
                        "p_value": r["p_value"],
                        "p_min": r["p_min"],
                        "n_a": int(r["n_a"]),
                        "n_b": int(r["n_b"]),
                        "method": r["method"],
                    }
                )
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "p_adj"])
    table.insert(table.columns.get_loc("p_value") + 1, "p_adj", bh(table["p_value"]))
    return table


@fill_doc(contrasts=INTERACTION_DOC, design=DESIGN_DOC)
def compare_scores(
    adata: AnnData,
    sample_key: str = K.SAMPLE,
    condition_key: str = K.CONDITION,
    contrasts: Contrasts = None,
    *,
    species_key: str = K.SPECIES,
    state_key: str = K.STATE,
    states: Sequence[str] | None = (K.MKP,),
    keys: Sequence[str] | None = None,
    min_cells: int = 5,
    design: str = DEFAULT_DESIGN,
    ci: float = 0.95,
    key_added: str = COMPARE_KEY,
    copy: bool = False,
) -> AnnData | None:
    """Compare mean scores between conditions per state, samples as replicates.

    Cells are averaged per sample x state (pseudobulk); each contrast is fitted within
    each species that has both conditions on the per-sample means (never on cells) with
    the ``design`` (least squares, t interval; exact permutation p below 3 samples a
    group, see :func:`~mkcell.tl._inference.fit_contrast`). The gene-set scores are also
    compared within each cell-cycle phase (``by_phase``), so that a larger cycling share
    and a higher score per cycling cell are told apart. An interaction
    ``(A vs B) vs (C vs D)`` gives ``diff`` = (A − B) − (C − D) from one model of the
    four conditions (:func:`~mkcell.tl._inference.fit_interaction`); its ``mean_a`` /
    ``mean_b`` are the differences A − B and C − D, ``n_a`` / ``n_b`` the samples of
    A and B / C and D.

    Parameters
    ----------
    adata
        Scored cells (:func:`mkcell.tl.score`) with sample, condition and state columns.
    sample_key, condition_key
        ``adata.obs`` columns of samples and conditions.
    {contrasts}
    species_key
        ``adata.obs`` column of species (all cells one species if absent).
    state_key, states
        Cells of these states are pseudobulked, each state separately (``None``: all cells).
    keys
        Score columns; default S/G2M, every ``mk_score_*`` and ``cycling_fraction``
        (share of cells not in G1).
    min_cells
        Fewest cells of a sample x state for the sample to count.
    {design}
    ci
        Confidence level of ``ci_low`` / ``ci_high``.
    key_added
        ``adata.uns`` key for the table, the per-sample means and parameters.
    copy
        Return a copy instead of writing to ``adata``.

    Returns
    -------
    ``None`` or a copy of ``adata`` (``copy=True``), with ``adata.uns[key_added]``:
    ``table``, one row per species x contrast x state x score: species, contrast
    (``"A vs B"``), state, score, mean_a, mean_b, diff (A - B, adjusted for the design's
    covariates), ci_low, ci_high, p_value, p_adj (Benjamini-Hochberg over the table), p_min
    (smallest attainable p), n_a, n_b (samples), method; ``by_phase`` (the same for the
    ``mk_score_*`` scores within each phase G1, S, G2M, with its own BH family);
    ``sample_means`` (the per-sample means tested) and ``params``.
    """
    check_adata(adata)
    if not 0 < ci < 1:
        msg = f"ci={ci}; give a level between 0 and 1 (e.g. 0.95)"
        raise MkcellError(msg)
    obs = sample_obs(adata, sample_key, condition_key, species_key)
    todo = resolve_contrasts(obs, contrasts, interactions=True)
    parsed = parse_design(design, condition_key)
    covariates = sample_covariates(adata, obs, parsed)
    state = _states(adata, state_key, states)
    means = _sample_means(adata, obs, state, keys, min_cells)
    keys = [c for c in means.columns if c not in (*ID_COLUMNS, "n_cells")]
    state_list = ["all"] if states is None else [str(x) for x in states]
    fit = {"design": parsed, "covariates": covariates, "ci": ci, "min_cells": min_cells}
    table = _contrast_rows(means, keys, todo, state_list, **fit)
    if table.empty:
        logger.warning("no contrast could be computed: %s", todo)
    by_phase = _by_phase(adata, obs, state, keys, todo, state_list, fit)
    if copy:
        adata = adata.copy()
    adata.uns[key_added] = {
        "table": table,
        "by_phase": by_phase,
        "sample_means": means,
        "params": {
            "sample_key": sample_key,
            "condition_key": condition_key,
            "species_key": species_key,
            "state_key": state_key,
            "states": "all" if states is None else list(states),
            "keys": keys,
            "contrasts": list(dict.fromkeys(contrast_label(t[1:]) for t in todo)),
            "min_cells": min_cells,
            "design": parsed.formula,
            "ci": ci,
        },
    }
    log_write("uns", key_added)
    return adata if copy else None


def _by_phase(
    adata: AnnData,
    obs: pd.DataFrame,
    state: pd.Series,
    keys: Sequence[str],
    todo: Sequence[tuple[str, str, str]],
    state_list: Sequence[str],
    fit: dict,
) -> pd.DataFrame:
    """The gene-set scores compared within each cell-cycle phase (one BH family).

    Tells "more MkP cycle" (the cycling fraction) from "higher E2F per cycling cell".
    """
    set_keys = [k for k in keys if str(k).startswith(K.SCORE_PREFIX)]
    if K.PHASE not in adata.obs.columns or not set_keys or not todo:
        return pd.DataFrame(columns=["phase", *COLUMNS])
    phase = adata.obs[K.PHASE].astype(str).to_numpy()
    frames = []
    for ph in PHASES:
        in_phase = state.where(phase == ph)
        if in_phase.isna().all():
            continue
        means = _sample_means(adata, obs, in_phase, set_keys, fit["min_cells"])
        with warnings.catch_warnings():  # few samples per phase: the rows say so (NaN)
            warnings.simplefilter("ignore", MkcellWarning)
            tab = _contrast_rows(means, set_keys, todo, state_list, **fit)
        frames.append(tab.drop(columns="p_adj").assign(phase=ph))
    if not frames:
        return pd.DataFrame(columns=["phase", *COLUMNS])
    out = pd.concat(frames, ignore_index=True)
    out.insert(out.columns.get_loc("p_value") + 1, "p_adj", bh(out["p_value"]))
    return out[["phase", *COLUMNS]]


@fill_doc(contrasts=CONTRASTS_DOC)
def pseudobulk_de(
    adata: AnnData,
    sample_key: str = K.SAMPLE,
    condition_key: str = K.CONDITION,
    contrasts: Contrasts = None,
    *,
    species_key: str = K.SPECIES,
    state_key: str = K.STATE,
    states: Sequence[str] | None = (K.MKP,),
    layer: str | None = None,
    min_cells: int = 10,
    min_counts: int = 10,
    key_added: str = DE_KEY,
    copy: bool = False,
) -> AnnData | None:
    """Pseudobulk differential expression (summed counts per sample) with PyDESeq2.

    Needs the optional ``pydeseq2`` package.

    Parameters
    ----------
    adata
        Cells with raw counts (``layer``, ``layers['counts']`` or ``X``).
    sample_key, condition_key
        ``adata.obs`` columns of samples and conditions.
    {contrasts}
    species_key, state_key, states
        As in :func:`compare_scores`; the cells of all ``states`` are summed together.
    layer
        Layer of raw counts.
    min_cells
        Fewest cells for a sample to count.
    min_counts
        Genes with fewer summed counts over the samples of a contrast are dropped.
    key_added
        ``adata.uns`` key for the table and parameters.
    copy
        Return a copy instead of writing to ``adata``.

    Returns
    -------
    ``None`` or a copy of ``adata`` (``copy=True``), with ``adata.uns[key_added]``:
    ``table`` (species, contrast, gene, base_mean, log2fc (A over B), lfc_se, stat,
    p_value, p_adj) and ``params``.
    """
    try:
        from pydeseq2.dds import DeseqDataSet
        from pydeseq2.ds import DeseqStats
    except ImportError as err:
        msg = "pseudobulk_de needs pydeseq2: `pip install pydeseq2` (or use mk.tl.compare_scores)"
        raise ImportError(msg) from err
    check_adata(adata)
    obs = sample_obs(adata, sample_key, condition_key, species_key)
    todo = resolve_contrasts(obs, contrasts)
    counts = get_counts(adata, layer)
    keep = _states(adata, state_key, states).notna().to_numpy()
    species = obs["species"].to_numpy()
    sample = obs["sample"].to_numpy()
    cond = obs["condition"].to_numpy()
    out = []
    for sp_name in sorted(set(species[keep])):
        m = keep & (species == sp_name)
        samples, codes = np.unique(sample[m], return_inverse=True)
        n_cells = np.bincount(codes, minlength=samples.size)
        agg = sp.csr_matrix(
            (np.ones(codes.size), (codes, np.arange(codes.size))), shape=(samples.size, codes.size)
        )
        summed = np.asarray((agg @ counts[m]).todense() if sp.issparse(counts) else agg @ counts[m])
        tab = pd.DataFrame(
            np.rint(summed).astype(np.int64), index=samples, columns=adata.var_names.astype(str)
        )
        s_cond = pd.Series(cond[m], index=sample[m]).groupby(level=0).first().reindex(samples)
        ok = n_cells >= min_cells
        for a_name, b_name in [(a_, b_) for s_, a_, b_ in todo if s_ == sp_name]:
            sel = ok & s_cond.isin([a_name, b_name]).to_numpy()
            na, nb = int((s_cond[sel] == a_name).sum()), int((s_cond[sel] == b_name).sum())
            if na < 2 or nb < 2:
                if {a_name, b_name} <= set(s_cond):
                    logger.warning(
                        "%s %s vs %s: %d and %d samples; need 2 per group",
                        sp_name,
                        a_name,
                        b_name,
                        na,
                        nb,
                    )
                continue
            c = tab[sel]
            c = c.loc[:, c.sum(axis=0) >= min_counts]
            meta = pd.DataFrame({"group": np.where(s_cond[sel] == a_name, "A", "B")}, index=c.index)
            dds = DeseqDataSet(counts=c, metadata=meta, design="~group", quiet=True, n_cpus=1)
            dds.deseq2()
            res = DeseqStats(dds, contrast=["group", "A", "B"], quiet=True, n_cpus=1)
            res.summary()
            r = res.results_df.rename(
                columns={
                    "baseMean": "base_mean",
                    "log2FoldChange": "log2fc",
                    "lfcSE": "lfc_se",
                    "pvalue": "p_value",
                    "padj": "p_adj",
                }
            )
            r = r.rename_axis("gene").reset_index()
            r.insert(0, "contrast", f"{a_name} vs {b_name}")
            r.insert(0, "species", sp_name)
            out.append(r[DE_COLUMNS])
    table = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=DE_COLUMNS)
    if copy:
        adata = adata.copy()
    adata.uns[key_added] = {
        "table": table,
        "params": {
            "sample_key": sample_key,
            "condition_key": condition_key,
            "species_key": species_key,
            "state_key": state_key,
            "states": "all" if states is None else list(states),
            "contrasts": list(dict.fromkeys(f"{a} vs {b}" for _, a, b in todo)),
            "min_cells": min_cells,
            "min_counts": min_counts,
            "layer": str(layer),
        },
    }
    log_write("uns", key_added)
    return adata if copy else None
