"""The two contamination checks of :func:`mkcell.pp.qc`: doublets and platelet coating.

Doublets: ``scanpy.pp.scrublet`` per sample (doublets form within one channel), seeded. In
sparse marrow data its score alone separates heterotypic doublets poorly, so the call adds
the other thing two cells in a droplet bring: about twice the counts. A cell is called when
the robust z of its scrublet score plus the robust z of its log counts (within its sample)
exceeds ``doublet_z``; cells of naturally high RNA content (Mk-marker-high) get no credit
for their counts.

Platelet coating: platelets stuck to a cell add PPBP, PF4, GP9... (:data:`PLATELET_PROFILE`),
the same genes that mark Mk identity. The check is therefore made only on cells whose other
programs say they are not Mk lineage: a lineage panel (HSC/MPP, MEP, erythroid, myeloid)
clearly above the MkP and Mk panels, both scored without the platelet genes. Among those, a
cell is coated when its platelet share of counts is an outlier of its sample and well above
the sample's ambient expectation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._blocks import column_mean_var
from .._markers import marker_panels
from .._platelet import platelet_profile
from .._settings import MkcellWarning
from .._species import species_gene_set

#: Lowest-count barcodes of ``raw`` used as the ambient soup: total counts in 1..this.
AMBIENT_MAX_COUNTS = 100
#: Platelet genes that must be present (one of them) to judge coating at all.
PLATELET_CORE = {"PPBP", "PF4"}


def robust_z(x: np.ndarray) -> np.ndarray:
    """``(x - median) / (1.4826 MAD)``; a zero MAD is floored at 1e-3 of the scale of ``x``."""
    med = np.nanmedian(x)
    mad = 1.4826 * np.nanmedian(np.abs(x - med))
    return (x - med) / max(mad, 1e-3 * (np.nanstd(x) + 1e-9), 1e-9)


def scrublet_scores(
    counts: sp.csr_matrix,
    samples: np.ndarray,
    rates: dict[str, float],
    *,
    min_cells: int,
    n_prin_comps: int,
    seed: int,
) -> tuple[np.ndarray, list[str]]:
    """Scrublet's doublet score per cell, sample by sample; NaN where it could not run.

    Returns the scores and the samples skipped (too small, or scrublet failed).
    """
    import scanpy as sc

    scores, skipped = np.full(counts.shape[0], np.nan), []
    verbosity = sc.settings.verbosity
    sc.settings.verbosity = 0  # scrublet's own progress lines, not ours
    try:
        for sample in pd.unique(samples):
            rows = np.flatnonzero(samples == sample)
            if rows.size < min_cells:
                skipped.append(f"{sample} ({rows.size} cells < {min_cells})")
                continue
            sub = AnnData(X=sp.csr_matrix(counts[rows], dtype=np.float32))
            sub.obs_names = rows.astype(str)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sc.pp.scrublet(
                        sub,
                        expected_doublet_rate=rates[sample],
                        log_transform=True,
                        n_prin_comps=min(n_prin_comps, rows.size // 10),
                        threshold=1.0,  # the call is made here, not by scrublet
                        random_state=seed,
                        verbose=False,
                    )
            except Exception as err:  # noqa: BLE001 - any failure leaves the sample unscored
                skipped.append(f"{sample} (scrublet failed: {str(err).splitlines()[0][:80]})")
                continue
            got = sub.obs["doublet_score"].reindex(rows.astype(str)).to_numpy(float)
            scores[rows] = got
    finally:
        sc.settings.verbosity = verbosity
    return scores, skipped


def call_doublets(
    scores: np.ndarray,
    log_counts: np.ndarray,
    samples: np.ndarray,
    mk_high: np.ndarray,
    *,
    doublet_z: float,
) -> np.ndarray:
    """Doublet calls from scrublet scores and library size, within each sample (bool)."""
    called = np.zeros(scores.size, bool)
    for sample in pd.unique(samples):
        rows = np.flatnonzero((samples == sample) & np.isfinite(scores))
        if rows.size == 0:
            continue
        z_counts = robust_z(log_counts[rows])
        z_counts[mk_high[rows]] = np.minimum(z_counts[mk_high[rows]], 0.0)
        called[rows] = robust_z(scores[rows]) + z_counts > doublet_z
    return called


def lineage_scores(adata: AnnData, lognorm: sp.csr_matrix, exclude: set[str]) -> pd.DataFrame:
    """Mean z-scored expression of each marker panel without the genes in ``exclude``."""
    mean, var = column_mean_var(lognorm)
    sd = np.sqrt(np.maximum(var, 1e-12))
    out = {}
    for state, rows in marker_panels().groupby("state", sort=False):
        genes = species_gene_set(set(rows["human"]), adata.var_names) - exclude
        idx = adata.var_names.get_indexer(sorted(genes))
        idx = idx[idx >= 0]
        if idx.size >= 2:
            out[state] = ((lognorm[:, idx].toarray() - mean[idx]) / sd[idx]).mean(1)
    return pd.DataFrame(out, index=adata.obs_names)


def smooth_scores(
    scores: pd.DataFrame, lognorm: sp.csr_matrix, keep: np.ndarray, *, n_neighbors: int, seed: int
) -> pd.DataFrame:
    """``scores`` averaged over each cell and its kNN (PCA of the ``keep`` genes).

    Panel scores of one sparse cell are noisy; its neighbours share its lineage. The PCA
    leaves the platelet genes out (``keep``), so coating does not move a cell's neighbours.
    """
    import scanpy as sc

    from .._graph import knn_graph

    n_comps = int(min(20, keep.sum() - 1, lognorm.shape[0] - 1))
    if n_comps < 2 or lognorm.shape[0] <= n_neighbors:
        return scores
    light = AnnData(X=lognorm[:, np.flatnonzero(keep)])
    pcs = sc.pp.pca(light.X, n_comps=n_comps, random_state=seed)
    D = knn_graph(np.asarray(pcs), n_neighbors, seed).obsp["distances"]
    A = sp.csr_matrix((D > 0).astype(np.float64)) + sp.identity(D.shape[0], format="csr")
    A = sp.diags(1 / np.asarray(A.sum(1)).ravel()) @ A
    return pd.DataFrame(A @ scores.to_numpy(), index=scores.index, columns=scores.columns)


def platelet_genes(var_names: Sequence[str]) -> list[str]:
    """The platelet-profile genes of ``var_names``; empty when neither PPBP nor PF4 is there."""
    genes = list(platelet_profile(var_names))
    core = {g.upper() for g in genes} & PLATELET_CORE
    return genes if core and len(genes) >= 2 else []


def ambient_share(raw: AnnData | None, genes: list[str], sample_key: str) -> dict[str, float]:
    """Platelet share of the ambient soup per sample (``"*"``: all) from raw droplets' counts."""
    if raw is None:
        return {}
    from .._utils import get_counts

    X = sp.csr_matrix(get_counts(raw))
    lib = np.asarray(X.sum(1)).ravel()
    empty = (lib > 0) & (lib <= AMBIENT_MAX_COUNTS)
    cols = raw.var_names.get_indexer(genes)
    plt = np.asarray(X[:, cols[cols >= 0]].sum(1)).ravel()
    groups = raw.obs[sample_key].astype(str).to_numpy() if sample_key in raw.obs else None
    out = {"*": float(plt[empty].sum() / max(lib[empty].sum(), 1))}
    for sample in pd.unique(groups) if groups is not None else ():
        m = empty & (groups == sample)
        if lib[m].sum() > 0:
            out[str(sample)] = float(plt[m].sum() / lib[m].sum())
    return out


def platelet_calls(
    share: np.ndarray,
    plt_counts: np.ndarray,
    samples: np.ndarray,
    judged: np.ndarray,
    ambient: dict[str, float],
    *,
    platelet_nmads: float,
    platelet_fold: float,
    min_platelet_counts: int,
) -> tuple[np.ndarray, dict[str, float]]:
    """Platelet-coated calls among judged cells, and the ambient expectation used per sample."""
    called, expected = np.zeros(share.size, bool), {}
    for sample in pd.unique(samples):
        rows = np.flatnonzero((samples == sample) & judged)
        if rows.size < 10:
            expected[str(sample)] = np.nan
            continue
        x = np.log1p(1e4 * share[rows])
        med = np.median(x)
        mad = max(np.median(np.abs(x - med)), 0.1)
        exp = ambient.get(str(sample), ambient.get("*", float(np.median(share[rows]))))
        expected[str(sample)] = exp
        called[rows] = (
            (x > med + platelet_nmads * mad)
            & (share[rows] >= platelet_fold * max(exp, 1e-6))
            & (plt_counts[rows] >= min_platelet_counts)
        )
    return called, expected


def judged_not_mk(scores: pd.DataFrame, *, margin: float, max_mk_program: float) -> np.ndarray:
    """Cells whose non-Mk panels clearly beat the MkP and Mk panels (without platelet genes)."""
    mk_cols = [c for c in K.MK_LINEAGE if c in scores]
    other = [c for c in scores if c not in K.MK_LINEAGE]
    if not mk_cols or not other:
        return np.zeros(len(scores), bool)
    mk = scores[mk_cols].max(axis=1).to_numpy()
    best = scores[other].max(axis=1).to_numpy()
    return (best - mk > margin) & (mk < max_mk_program)


def warn_skipped(what: str, skipped: list[str], consequence: str) -> None:
    """One warning line for every sample a check could not judge."""
    if skipped:
        msg = f"{what} skipped for {len(skipped)} sample(s): {'; '.join(skipped)}; {consequence}"
        warnings.warn(msg, MkcellWarning, stacklevel=3)
