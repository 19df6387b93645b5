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
#: A coated cell's platelet counts hold at least this share of the profile's PPBP + PF4 share.
PROFILE_CORE_SHARE = 0.5
#: Simulated doublets per cell for scrublet.
SIM_DOUBLET_RATIO = 2.0
#: The scrublet score's robust z is divided by this before the count evidence is added.
SCORE_Z_SCALE = 4.0
#: Clusters with fewer cells get no offset of their own (their sample's is used).
MIN_GROUP = 15
#: The most a cluster's own level may lower its count / gene bounds: log(8), an eighth.
MAX_GROUP_SHIFT = float(np.log(8))
#: The most a cluster's own level may raise its mitochondrial bound (percentage points); the
#: hard cap ``max_pct_mito`` of mk.pp.qc holds for every cell.
MAX_GROUP_SHIFT_MITO = 5.0
#: Leiden resolution of the clusters that the rules are applied within.
CLUSTER_RESOLUTION = 1.0


def robust_z(x: np.ndarray) -> np.ndarray:
    """``(x - median) / (1.4826 MAD)``; a zero MAD is floored at 1e-3 of the scale of ``x``."""
    med = np.nanmedian(x)
    mad = 1.4826 * np.nanmedian(np.abs(x - med))
    return (x - med) / max(mad, 1e-3 * (np.nanstd(x) + 1e-9), 1e-9)


def scrublet_scores(
    counts: sp.csr_matrix,
    samples: np.ndarray,
    groups: np.ndarray,
    rates: dict[str, float],
    *,
    min_cells: int,
    n_prin_comps: int,
    seed: int,
) -> tuple[np.ndarray, list[str]]:
    """Scrublet's doublet score per cell, sample by sample; NaN where it could not run.

    The simulated doublets are heterotypic: pairs of cells of two different ``groups``
    (clusters), as in scDblFinder. Scrublet's own simulation pairs any two cells, most of
    them of one state, whose sums look like the real cells and blur the score; its default
    gene filter also keeps few genes of a small panel. Both sets are log-normalised alike
    and handed to ``scanpy.pp.scrublet`` (``adata_sim``), which embeds and scores them.

    Returns the scores and the samples skipped (too small, or scrublet failed).
    """
    import scanpy as sc

    scores, skipped = np.full(counts.shape[0], np.nan), []
    rng = np.random.default_rng(seed)
    verbosity = sc.settings.verbosity
    sc.settings.verbosity = 0  # scrublet's own progress lines, not ours
    try:
        for sample in pd.unique(samples):
            rows = np.flatnonzero(samples == sample)
            if rows.size < min_cells:
                skipped.append(f"{sample} ({rows.size} cells < {min_cells})")
                continue
            obs, sim = _scrublet_inputs(counts[rows], groups[rows], rng)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sc.pp.scrublet(
                        obs,
                        adata_sim=sim,
                        expected_doublet_rate=rates[sample],
                        n_prin_comps=max(2, min(n_prin_comps, rows.size // 10)),
                        threshold=1.0,  # the call is made here, not by scrublet
                        random_state=seed,
                        verbose=False,
                    )
            except Exception as err:  # noqa: BLE001 - any failure leaves the sample unscored
                skipped.append(f"{sample} (scrublet failed: {str(err).splitlines()[0][:80]})")
                continue
            scores[rows] = obs.obs["doublet_score"].to_numpy(float)
    finally:
        sc.settings.verbosity = verbosity
    return scores, skipped


def _scrublet_inputs(
    counts: sp.csr_matrix, groups: np.ndarray, rng: np.random.Generator
) -> tuple[AnnData, AnnData]:
    """Log-normalised cells and ``SIM_DOUBLET_RATIO`` x as many heterotypic simulated doublets."""
    from ._normalize import log_normalize_matrix

    X = sp.csr_matrix(counts, dtype=np.float32)
    X = X[:, np.asarray((X > 0).sum(0)).ravel() >= 3]
    n, m = X.shape[0], int(SIM_DOUBLET_RATIO * X.shape[0])
    a, b = rng.integers(0, n, 4 * m), rng.integers(0, n, 4 * m)
    pick = groups[a] != groups[b]
    if pick.sum() < m:  # one group only: any two cells
        pick = a != b
    a, b = a[pick][:m], b[pick][:m]
    obs = AnnData(X=log_normalize_matrix(X))
    sim = AnnData(X=log_normalize_matrix(sp.csr_matrix(X[a] + X[b])))
    sim.obsm["doublet_parents"] = np.column_stack([a, b])
    return obs, sim


def group_residual(
    x: np.ndarray,
    samples: np.ndarray,
    groups: np.ndarray,
    *,
    sign: int = 0,
    max_shift: float = np.inf,
) -> np.ndarray:
    """``x`` minus its sample's median and its group's offset (``groups``: clusters).

    The offset of a group is the median of ``x - sample median`` over its cells of every
    sample; groups under :data:`MIN_GROUP` cells get none. ``sign=-1`` keeps only negative
    offsets, ``sign=1`` only positive ones (a state is given room only towards its natural
    side: fewer counts, a higher mitochondrial share), at most ``max_shift``.
    """
    r = x - pd.Series(x).groupby(samples).transform("median").to_numpy()
    off = pd.Series(r).groupby(groups).transform("median").to_numpy()
    size = pd.Series(groups).map(pd.Series(groups).value_counts()).to_numpy()
    off[size < MIN_GROUP] = 0.0
    if sign < 0:
        off = np.clip(off, -max_shift, 0.0)
    elif sign > 0:
        off = np.clip(off, 0.0, max_shift)
    return r - off


def call_doublets(
    scores: np.ndarray,
    log_counts: np.ndarray,
    samples: np.ndarray,
    groups: np.ndarray,
    *,
    doublet_z: float,
) -> np.ndarray:
    """Doublet calls from scrublet scores and library size, within each sample (bool).

    The evidence is the robust z of the score divided by :data:`SCORE_Z_SCALE` (the score is
    heavy-tailed: most singlets sit near 0) plus the robust z of the log counts against the
    cell's cluster (two cells bring about twice the counts of their state; states of
    naturally high RNA content, such as Mk, are judged against themselves).
    """
    called = np.zeros(scores.size, bool)
    resid = group_residual(log_counts, samples, groups)
    for sample in pd.unique(samples):
        rows = np.flatnonzero((samples == sample) & np.isfinite(scores))
        if rows.size == 0:
            continue
        evidence = robust_z(scores[rows]) / SCORE_Z_SCALE + robust_z(resid[rows])
        called[rows] = evidence > doublet_z
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


def neighbourhood(
    lognorm: sp.csr_matrix, keep: np.ndarray, *, n_neighbors: int, seed: int
) -> tuple[sp.csr_matrix | None, np.ndarray]:
    """The kNN averaging matrix and Leiden clusters of the cells (PCA of the ``keep`` genes).

    The PCA leaves the platelet genes out (``keep``), so coating moves neither a cell's
    neighbours nor its cluster. Too few cells or genes: ``(None, one cluster)``.
    """
    import scanpy as sc

    from .._graph import knn_graph

    n = lognorm.shape[0]
    n_comps = int(min(20, keep.sum() - 1, n - 1))
    if n_comps < 2 or n <= n_neighbors:
        return None, np.zeros(n, dtype=int)
    pcs = sc.pp.pca(lognorm[:, np.flatnonzero(keep)], n_comps=n_comps, random_state=seed)
    g = knn_graph(np.asarray(pcs), n_neighbors, seed)
    sc.tl.leiden(
        g,
        resolution=CLUSTER_RESOLUTION,
        random_state=seed,
        flavor="igraph",
        n_iterations=2,
        directed=False,
    )
    D = g.obsp["distances"]
    A = sp.csr_matrix((D > 0).astype(np.float64)) + sp.identity(n, format="csr")
    A = sp.csr_matrix(sp.diags(1 / np.asarray(A.sum(1)).ravel()) @ A)
    return A, g.obs["leiden"].astype(int).to_numpy()


def smooth_scores(scores: pd.DataFrame, A: sp.csr_matrix | None) -> pd.DataFrame:
    """``scores`` averaged over each cell and its kNN (``A`` from :func:`neighbourhood`).

    Panel scores of one sparse cell are noisy; its neighbours share its lineage.
    """
    if A is None:
        return scores
    return pd.DataFrame(A @ scores.to_numpy(), index=scores.index, columns=scores.columns)


def platelet_genes(var_names: Sequence[str]) -> list[str]:
    """The platelet-profile genes of ``var_names``; empty when neither PPBP nor PF4 is there."""
    genes = list(platelet_profile(var_names))
    core = {g.upper() for g in genes} & PLATELET_CORE
    return genes if core and len(genes) >= 2 else []


def platelet_like(counts: sp.csr_matrix, var_names: pd.Index, genes: list[str]) -> np.ndarray:
    """Cells whose platelet-gene counts have the platelet profile's make-up (bool).

    Platelet RNA is mostly PPBP and PF4 (:data:`~mkcell._platelet.PLATELET_PROFILE`);
    MkP, and many Mk, express the other platelet genes (ITGA2B, GP9, GP1BB...) with little
    PPBP / PF4. A coated cell's platelet counts hold at least :data:`PROFILE_CORE_SHARE` of
    the profile's PPBP + PF4 share.
    """
    profile = platelet_profile(var_names)
    core = [g for g in genes if g.upper() in PLATELET_CORE]
    expected = sum(profile.get(g, 0.0) for g in core)
    plt = np.asarray(counts[:, var_names.get_indexer(genes)].sum(1)).ravel()
    got = np.asarray(counts[:, var_names.get_indexer(core)].sum(1)).ravel()
    frac = np.divide(got, plt, out=np.zeros(plt.size), where=plt > 0)
    return frac >= PROFILE_CORE_SHARE * expected


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
    groups: np.ndarray,
    judged: np.ndarray,
    ambient: dict[str, float],
    *,
    platelet_nmads: float,
    platelet_fold: float,
    min_platelet_counts: int,
) -> tuple[np.ndarray, dict[str, float]]:
    """Platelet-coated calls among judged cells, and the ambient expectation used per sample.

    A judged cell is coated when its log platelet share is above its cluster's median by
    ``platelet_nmads`` MADs, its share is ``platelet_fold`` times the larger of the cluster's
    median share and the sample's ambient share, and it has ``min_platelet_counts`` platelet
    counts. The cluster is the yardstick because the platelet share differs between states
    (some platelet genes are expressed by MEP and erythroid cells); clusters under
    :data:`MIN_GROUP` cells use their sample's cells instead.
    """
    x = np.log1p(1e4 * share)
    size = pd.Series(groups).map(pd.Series(groups).value_counts()).to_numpy()
    key = np.where(size >= MIN_GROUP, groups.astype(str), "sample:" + samples.astype(str))
    med = pd.Series(x).groupby(key).transform("median").to_numpy()
    mad = pd.Series(np.abs(x - med)).groupby(key).transform("median").to_numpy()
    base = pd.Series(share).groupby(key).transform("median").to_numpy()
    amb = np.array([ambient.get(str(s), ambient.get("*", 0.0)) for s in samples])
    expected_share = np.maximum(base, amb)
    called = (
        judged
        & (x > med + platelet_nmads * np.maximum(mad, 0.1))
        & (share >= platelet_fold * np.maximum(expected_share, 1e-6))
        & (plt_counts >= min_platelet_counts)
    )
    expected = {
        str(s): (float(np.median(expected_share[m])) if m.any() else np.nan)
        for s in pd.unique(samples)
        for m in [(samples == s) & judged]
    }
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
