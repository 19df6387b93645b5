"""Reshape a simulated marrow into the samples labs actually have: CD34+-sorted, targeted panels."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from .. import _keys as K
from .._genesets import builtin_sets
from .._markers import marker_panels
from .._settings import MkcellError, logger
from .._species import species_gene_set

#: Cells a CD34+ sort keeps: progenitors, MkP, the earliest immature Mk and the earliest
#: erythroid / myeloid progenitors (position along their branch below these values).
CD34_KEEP_MK_TIME = 0.5
CD34_KEEP_BRANCH_PROGRESS = 0.3
#: Share of the cells a sort should exclude that it lets through (impurity).
CD34_IMPURITY = 0.02
#: Mature-Mk markers a targeted panel misses, as in the user report behind issue 14.
PANEL_MISSING = ("PF4", "PPBP", "GP9", "GATA1")


def cd34_sorted(
    adata: AnnData,
    *,
    panel_genes: int | None = None,
    missing_genes: tuple[str, ...] = PANEL_MISSING,
    impurity: float = CD34_IMPURITY,
    seed: int = 0,
) -> AnnData:
    """A simulated marrow as a CD34+ sort would give it, optionally on a targeted gene panel.

    The sort keeps HSC/MPP, MEP, MkP, immature Mk early in maturation (true time <
    ``CD34_KEEP_MK_TIME``) and the earliest erythroid and myeloid progenitors (branch
    progress < ``CD34_KEEP_BRANCH_PROGRESS``); of the other cells (mature Mk, late
    erythroid and myeloid) a share ``impurity`` gets through. With ``panel_genes``, only
    that many genes are kept: the marker-panel genes except ``missing_genes``, half of
    the Tirosh cycle genes, and random others.

    Parameters
    ----------
    adata
        One species from :func:`mkcell.datasets.simulate_marrow` (truth in ``obs``).
    panel_genes
        Genes on the targeted panel (``None`` keeps every gene).
    missing_genes
        Human symbols the panel lacks (mapped to mouse symbols for mouse data).
    impurity
        Share of excluded cells that the sort lets through.
    seed
        Random seed for the impurity and the panel's random genes.

    Returns
    -------
    A new AnnData; ``uns['mk_truth']['samples']`` is recomputed per sample (``n_hspc``,
    ``mkp_fraction_of_hspc``, ``mkp_fraction_of_all`` after the sort) and
    ``uns['mk_truth']['scenario']`` records what was done.
    """
    need = {"true_state", "true_branch", "true_progress", K.SAMPLE}
    if not need <= set(adata.obs.columns):
        msg = (
            "cd34_sorted needs a simulate_marrow AnnData (obs "
            f"{sorted(need - set(adata.obs.columns))} missing)"
        )
        raise MkcellError(msg)
    if not 0 <= impurity < 1:
        msg = f"impurity={impurity}; use a share in [0, 1)"
        raise MkcellError(msg)
    rng = np.random.default_rng(seed)
    o = adata.obs
    branch, prog = o["true_branch"].astype(str).to_numpy(), o["true_progress"].to_numpy(float)
    keep = np.isin(branch, ["hsc", "mep"])
    keep |= (branch == "mk") & (prog < CD34_KEEP_MK_TIME)
    keep |= np.isin(branch, ["ery", "my"]) & (prog < CD34_KEEP_BRANCH_PROGRESS)
    keep |= rng.uniform(size=keep.size) < impurity
    out = adata[keep].copy()
    scenario = {
        "sort": "CD34+",
        "impurity": impurity,
        "n_cells_before": adata.n_obs,
        "n_cells_after": out.n_obs,
    }
    if panel_genes is not None:
        out = _targeted_panel(out, panel_genes, missing_genes, rng)
        scenario.update({"panel_genes": out.n_vars, "missing_genes": list(missing_genes)})
    truth = dict(out.uns.get(K.TRUTH, {}))
    truth["samples"] = sample_truth(out.obs)
    truth["scenario"] = scenario
    out.uns[K.TRUTH] = truth
    logger.info("CD34+ sort: %d of %d cells kept, %d genes", out.n_obs, adata.n_obs, out.n_vars)
    return out


def _targeted_panel(
    adata: AnnData, n: int, missing: tuple[str, ...], rng: np.random.Generator
) -> AnnData:
    names = adata.var_names
    drop = species_gene_set(set(missing), names)
    panel = species_gene_set(set(marker_panels()["human"]), names) - drop
    sets = builtin_sets()
    cycle = sorted(
        species_gene_set(set(sets["TIROSH2016_S_PHASE"] + sets["TIROSH2016_G2M_PHASE"]), names)
        - drop
    )
    cycle = list(rng.choice(cycle, size=len(cycle) // 2, replace=False)) if cycle else []
    chosen = [g for g in names if g in panel] + [g for g in cycle if g in names and g not in panel]
    if n < len(chosen):
        msg = (
            f"panel_genes={n} is fewer than the {len(chosen)} panel and cycle genes kept; "
            f"use at least {len(chosen)}"
        )
        raise MkcellError(msg)
    taken = set(chosen) | drop
    rest = np.asarray([g for g in names if g not in taken])
    chosen += list(rng.choice(rest, size=min(n - len(chosen), rest.size), replace=False))
    return adata[:, names.isin(chosen)].copy()


def sample_truth(obs: pd.DataFrame) -> pd.DataFrame:
    """Per-sample true MkP counts and fractions from the truth in ``obs``.

    Fractions of the Mk lineage, of HSPC and of all cells.
    """
    st = obs["true_state"].astype(str)
    g = pd.DataFrame(
        {
            K.SAMPLE: obs[K.SAMPLE].astype(str),
            K.SPECIES: obs[K.SPECIES].astype(str),
            K.CONDITION: obs[K.CONDITION].astype(str),
            "mkp": st == K.MKP,
            "lin": st.isin(K.MK_LINEAGE),
            "hspc": st.isin(K.HSPC),
        }
    ).groupby([K.SAMPLE, K.SPECIES, K.CONDITION], observed=True)
    t = g.agg(
        n_cells=("mkp", "size"),
        n_mkp=("mkp", "sum"),
        n_mk_lineage=("lin", "sum"),
        n_hspc=("hspc", "sum"),
    ).reset_index()
    t["mkp_fraction"] = t["n_mkp"] / t["n_mk_lineage"].clip(lower=1)
    t["mkp_fraction_of_hspc"] = t["n_mkp"] / t["n_hspc"].clip(lower=1)
    t["mkp_fraction_of_all"] = t["n_mkp"] / t["n_cells"]
    return t.rename(columns={K.SAMPLE: "sample", K.SPECIES: "species", K.CONDITION: "condition"})
