"""Quality control of marrow cells: low quality, doublets and platelet coating, per sample.

Cells are never removed: each gets a verdict in ``obs['mk_qc']`` (``pass`` or the first
reason that applies, in the order of ``mkcell._keys.QC_REASONS``), and the per-sample counts
go to ``uns['mk_qc']['per_sample']``. Downstream steps leave flagged cells out of their
tables when asked to.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._settings import MkcellError, logger
from .._utils import check_adata, check_obs_key, get_counts, log_write
from . import _contamination as C

#: Gene families whose share of counts is measured (mouse and human spellings).
GENE_FAMILIES = {
    "mt": re.compile(r"^(?:MT-|mt-)"),
    "ribo": re.compile(r"^(?:RP[SL]|Rp[sl])(?:\d|A$|a$|P\d|p\d)"),
    "hb": re.compile(r"^(?:HB[AB]|Hb[ab])"),
}
#: 10x Chromium: about 0.8% doublets per 1,000 cells recovered.
DOUBLETS_PER_1000 = 0.008
#: A sample's flagged share stands out above median + this many MADs (and 2x the median) ...
OUTLIER_NMADS = 3.0
#: ... and at least this far above the median (one or two flagged cells are not a finding).
OUTLIER_MIN_EXCESS = 0.05


def qc(
    adata: AnnData,
    *,
    sample_key: str = K.SAMPLE,
    layer: str | None = None,
    nmads: float = 5.0,
    mito_nmads: float = 3.0,
    max_pct_mito: float = 20.0,
    exempt_z: float = 1.0,
    expected_doublet_rate: float | None = None,
    doublet_z: float = 5.0,
    doublet_min_cells: int = 100,
    n_prin_comps: int = 10,
    raw: AnnData | None = None,
    lineage_margin: float = 0.0,
    max_mk_program: float = 0.5,
    platelet_nmads: float = 2.0,
    platelet_fold: float = 3.0,
    min_platelet_counts: int = 3,
    seed: int = 0,
    key_added: str = K.QC,
    copy: bool = False,
) -> AnnData | None:
    """Flag low-quality cells, doublets and platelet-coated cells, sample by sample.

    Metrics (``scanpy.pp.calculate_qc_metrics`` on the raw counts): total counts, genes,
    mitochondrial (``MT-``/``mt-``), ribosomal (RPS/RPL) and haemoglobin (HBA/HBB) shares.
    The rules are applied within each sample and, where states differ naturally, against the
    cell's Leiden cluster (a PCA of the log-normalised counts without the platelet genes):

    * ``low_quality``: log counts or log genes below the median by more than ``nmads`` MADs,
      or a mitochondrial share above it by ``mito_nmads`` MADs or above ``max_pct_mito``. A
      cluster that sits below its sample (MEP, with little RNA) or above it in mitochondrial
      share is judged against its own level, so a natural low-RNA state is not cut.
    * ``doublet``: ``scanpy.pp.scrublet`` per sample, its simulated doublets heterotypic
      (two cells of different clusters), plus the library size against the cell's cluster;
      ``doublet_high_counts``: above the sample's upper count / gene bounds (``nmads``),
      Mk-marker-high cells (naturally RNA-rich, z above ``exempt_z``) exempt. See
      :mod:`mkcell.pp._contamination`.
    * ``platelet_coated``: platelet transcripts (PPBP, PF4, GP9, ...) with the platelet
      profile's make-up (mostly PPBP + PF4), on cells that are not Mk lineage, well above
      their cluster's share and the sample's ambient share (from ``raw`` droplets when
      given).

    X is never changed and no cell is removed.

    Parameters
    ----------
    adata
        Raw counts (``layer``, else ``layers['counts']``, else ``X``); symbols as var_names.
    sample_key
        ``obs`` column with the sample (channel); every rule is applied within a sample.
    layer
        Layer with raw counts.
    nmads, mito_nmads, max_pct_mito
        Outlier bounds: MADs of log counts / log genes, MADs and a cap (%) of the mito share.
    exempt_z
        Mk-panel z-score above which a cell is exempt from the upper bounds.
    expected_doublet_rate
        Expected doublet share per sample (default 0.8% per 1,000 cells, as 10x).
    doublet_z, doublet_min_cells, n_prin_comps
        Call threshold on the doublet evidence (robust z of the scrublet score / 4 + robust z
        of the log counts against the cluster); samples with fewer cells are not scored for
        doublets (with a warning); scrublet's PCs.
    raw
        Unfiltered barcodes (raw counts, ``obs[sample_key]`` optional): the lowest-count
        droplets give the ambient platelet share.
    lineage_margin, max_mk_program
        A cell is judged for platelets when its best non-Mk panel beats the MkP / Mk panels
        (without platelet genes, smoothed over its kNN) by more than ``lineage_margin`` and
        those stay below ``max_mk_program``.
    platelet_nmads, platelet_fold, min_platelet_counts
        A judged cell is coated when its log platelet share exceeds its cluster's median by
        ``platelet_nmads`` MADs, is ``platelet_fold`` times the larger of the cluster's median
        share and the ambient share, and has at least ``min_platelet_counts`` platelet counts.
    seed
        Seed of scrublet.
    key_added
        ``obs`` / ``uns`` key of the verdicts and the record.
    copy
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    None, or the copy. Writes ``obs[key_added]`` (categorical), ``obs['mk_doublet_score']``,
    ``obs['mk_doublet']``, ``obs['mk_platelet_share']``, one boolean ``obs['mk_qc_<reason>']``
    per reason, the metrics ``obs['mk_qc_total_counts']``..., and ``uns[key_added]``
    (``params``; ``per_sample``: cells in, flagged by each reason, kept, expected and
    called doublet rates, the ambient platelet share, ``flagged_share`` and ``stands_out``,
    see :func:`stands_out`).
    """
    params = {k: v for k, v in locals().items() if k not in ("adata", "raw", "copy")}
    _check_args(adata, sample_key, nmads, mito_nmads, expected_doublet_rate, doublet_min_cells)
    adata = adata.copy() if copy else adata
    counts = sp.csr_matrix(get_counts(adata, layer))
    samples = adata.obs[sample_key].astype(str).to_numpy()
    metrics = _metrics(adata, counts)
    from ._normalize import log_normalize_matrix

    lognorm = log_normalize_matrix(counts)
    plt_genes = C.platelet_genes(adata.var_names)
    A, clusters = C.neighbourhood(
        lognorm, ~adata.var_names.isin(plt_genes), n_neighbors=15, seed=seed
    )
    lineage = C.smooth_scores(C.lineage_scores(adata, lognorm, set(plt_genes)), A)
    full_mk = C.lineage_scores(adata, lognorm, set())
    mk_high = (
        (full_mk[K.MK] > exempt_z).to_numpy() if K.MK in full_mk else np.zeros(len(samples), bool)
    )
    low, high = _outliers(metrics, samples, clusters, mk_high, nmads, mito_nmads, max_pct_mito)
    rates = _expected_rates(samples, expected_doublet_rate)
    scores, skipped = C.scrublet_scores(
        counts,
        samples,
        clusters,
        rates,
        min_cells=doublet_min_cells,
        n_prin_comps=n_prin_comps,
        seed=seed,
    )
    C.warn_skipped("doublet detection", skipped, "their cells are not flagged as doublets")
    log_counts = np.log1p(metrics["total_counts"].to_numpy(float))
    doublet = C.call_doublets(scores, log_counts, samples, clusters, doublet_z=doublet_z)
    groups = (samples, clusters)
    share, coated, expected = _platelets(adata, counts, groups, lineage, plt_genes, raw, params)
    flags = {K.QC_LOW_QUALITY: low, K.QC_DOUBLET: doublet, K.QC_DOUBLET_HIGH_COUNTS: high}
    flags[K.QC_PLATELET] = coated
    verdict = _verdict(flags)
    table = _per_sample(samples, flags, verdict, doublet, rates, scores, expected)
    _write(adata, key_added, metrics, verdict, flags, scores, doublet, share)
    adata.uns[key_added] = {"params": params, "per_sample": table}
    log_write("uns", key_added)
    n_flag = int((verdict != K.QC_PASS).sum())
    logger.info("qc: %d of %d cells flagged (%s)", n_flag, len(verdict), _summary(verdict))
    return adata if copy else None


def _check_args(
    adata: AnnData,
    sample_key: str,
    nmads: float,
    mito_nmads: float,
    rate: float | None,
    min_cells: int,
) -> None:
    check_adata(adata)
    check_obs_key(adata, sample_key, what="sample column (pass sample_key=)")
    if nmads <= 0 or mito_nmads <= 0:
        msg = f"nmads={nmads}, mito_nmads={mito_nmads}; both must be above 0 (e.g. 5 and 3)"
        raise MkcellError(msg)
    if rate is not None and not 0 < rate < 1:
        msg = f"expected_doublet_rate={rate}; use a share in (0, 1), or None for the 10x rule"
        raise MkcellError(msg)
    if min_cells < 20:
        msg = f"doublet_min_cells={min_cells}; scrublet needs at least 20 cells per sample"
        raise MkcellError(msg)


def _metrics(adata: AnnData, counts: sp.csr_matrix) -> pd.DataFrame:
    """Per-cell QC metrics of scanpy, computed on a light copy (the input's var is untouched)."""
    import scanpy as sc

    names = pd.Index(adata.var_names.astype(str))
    var = pd.DataFrame({k: names.str.match(p) for k, p in GENE_FAMILIES.items()}, index=names)
    light = AnnData(X=counts, var=var, obs=pd.DataFrame(index=adata.obs_names.astype(str)))
    obs, _ = sc.pp.calculate_qc_metrics(
        light, qc_vars=list(GENE_FAMILIES), percent_top=None, log1p=False, inplace=False
    )
    obs.index = adata.obs_names
    return obs[list(K.QC_METRICS)].fillna(0.0)


def _mad_bounds(x: np.ndarray, n: float, floor: float) -> tuple[float, float]:
    med = float(np.median(x))
    mad = max(float(np.median(np.abs(x - med))), floor)
    return med - n * mad, med + n * mad


def _outliers(
    metrics: pd.DataFrame,
    samples: np.ndarray,
    clusters: np.ndarray,
    mk_high: np.ndarray,
    nmads: float,
    mito_nmads: float,
    max_pct_mito: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample MAD outliers: (low quality, above the upper bounds and not Mk-high).

    The lower bounds on log counts and log genes, and the mitochondrial bound, are taken
    against the cell's cluster when its cluster sits on that side of the sample (a state
    with naturally little RNA, such as MEP, is not cut;
    :func:`~mkcell.pp._contamination.group_residual`); the upper count bounds against the
    sample, with Mk-marker-high cells exempt.
    """
    lc = np.log1p(metrics["total_counts"].to_numpy(float))
    lg = np.log1p(metrics["n_genes_by_counts"].to_numpy(float))
    mt = metrics["pct_counts_mt"].to_numpy(float)
    rc = C.group_residual(lc, samples, clusters, sign=-1, max_shift=C.MAX_GROUP_SHIFT)
    rg = C.group_residual(lg, samples, clusters, sign=-1, max_shift=C.MAX_GROUP_SHIFT)
    rm = C.group_residual(mt, samples, clusters, sign=1, max_shift=C.MAX_GROUP_SHIFT_MITO)
    low, high = np.zeros(lc.size, bool), np.zeros(lc.size, bool)
    for sample in pd.unique(samples):
        m = samples == sample
        lo_c, lo_g = _mad_bounds(rc[m], nmads, 0.05)[0], _mad_bounds(rg[m], nmads, 0.05)[0]
        hi_c, hi_g = _mad_bounds(lc[m], nmads, 0.05)[1], _mad_bounds(lg[m], nmads, 0.05)[1]
        hi_mt = _mad_bounds(rm[m], mito_nmads, 0.5)[1]
        low[m] = (rc[m] < lo_c) | (rg[m] < lo_g) | (rm[m] > hi_mt) | (mt[m] > max_pct_mito)
        high[m] = ((lc[m] > hi_c) | (lg[m] > hi_g)) & ~mk_high[m]
    return low, high


def _expected_rates(samples: np.ndarray, rate: float | None) -> dict[str, float]:
    sizes = pd.Series(samples).value_counts()
    if rate is not None:
        return {str(s): float(rate) for s in sizes.index}
    return {
        str(s): float(np.clip(DOUBLETS_PER_1000 * n / 1000, 1e-3, 0.5)) for s, n in sizes.items()
    }


def _platelets(
    adata: AnnData,
    counts: sp.csr_matrix,
    groups: tuple[np.ndarray, np.ndarray],
    lineage: pd.DataFrame,
    genes: list[str],
    raw: AnnData | None,
    params: dict,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Platelet share per cell, the coated calls and the ambient expectation per sample."""
    samples, clusters = groups
    lib = np.asarray(counts.sum(1)).ravel()
    if not genes:
        C.warn_skipped(
            "the platelet check", ["all (neither PPBP nor PF4 in var_names)"], "no cell is flagged"
        )
        return np.full(lib.size, np.nan), np.zeros(lib.size, bool), {}
    cols = adata.var_names.get_indexer(genes)
    plt = np.asarray(counts[:, cols].sum(1)).ravel()
    share = np.divide(plt, lib, out=np.zeros_like(lib, dtype=float), where=lib > 0)
    judged = C.judged_not_mk(
        lineage, margin=params["lineage_margin"], max_mk_program=params["max_mk_program"]
    ) & C.platelet_like(counts, adata.var_names, genes)
    ambient = C.ambient_share(raw, genes, params["sample_key"])
    coated, expected = C.platelet_calls(
        share,
        plt,
        samples,
        clusters,
        judged,
        ambient,
        platelet_nmads=params["platelet_nmads"],
        platelet_fold=params["platelet_fold"],
        min_platelet_counts=params["min_platelet_counts"],
    )
    return share, coated, expected


def _verdict(flags: dict[str, np.ndarray]) -> np.ndarray:
    """One reason per cell: the first of ``QC_REASONS`` that applies, else ``pass``."""
    n = len(next(iter(flags.values())))
    out = np.full(n, K.QC_PASS, dtype=object)
    for reason in reversed(K.QC_REASONS):
        out[flags[reason]] = reason
    return out


def _per_sample(
    samples: np.ndarray,
    flags: dict[str, np.ndarray],
    verdict: np.ndarray,
    doublet: np.ndarray,
    rates: dict[str, float],
    scores: np.ndarray,
    expected: dict[str, float],
) -> pd.DataFrame:
    rows = []
    for sample in pd.unique(samples):
        m = samples == sample
        row = {"sample": str(sample), "cells_in": int(m.sum())}
        row |= {r: int((verdict[m] == r).sum()) for r in K.QC_REASONS}
        row["cells_kept"] = int((verdict[m] == K.QC_PASS).sum())
        row["expected_doublet_rate"] = rates[str(sample)]
        scored = bool(np.isfinite(scores[m]).any())
        row["called_doublet_rate"] = float(doublet[m].mean()) if scored else np.nan
        row["doublets_scored"] = scored
        row["ambient_platelet_share"] = expected.get(str(sample), np.nan)
        row["flagged_share"] = 1 - row["cells_kept"] / row["cells_in"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table["stands_out"] = stands_out(table["flagged_share"].to_numpy(float))
    return table


def stands_out(share: np.ndarray) -> np.ndarray:
    """Samples whose flagged share stands out from the others (bool per sample).

    Above the median share by more than :data:`OUTLIER_NMADS` scaled MADs, more than twice the
    median and at least :data:`OUTLIER_MIN_EXCESS` above it; needs 3 samples.
    """
    if share.size < 3:
        return np.zeros(share.size, bool)
    med = float(np.median(share))
    mad = 1.4826 * float(np.median(np.abs(share - med)))
    return (
        (share > med + OUTLIER_NMADS * mad)
        & (share > 2 * med)
        & (share - med >= OUTLIER_MIN_EXCESS)
    )


def _write(
    adata: AnnData,
    key: str,
    metrics: pd.DataFrame,
    verdict: np.ndarray,
    flags: dict[str, np.ndarray],
    scores: np.ndarray,
    doublet: np.ndarray,
    share: np.ndarray,
) -> None:
    cols = {K.QC_METRICS[c]: metrics[c].to_numpy() for c in K.QC_METRICS}
    cols |= {K.DOUBLET_SCORE: scores, K.DOUBLET: doublet, K.PLATELET_SHARE: share}
    cols |= {K.QC_FLAG[r]: flags[r] for r in K.QC_REASONS}
    cols[key] = pd.Categorical(verdict, categories=[K.QC_PASS, *K.QC_REASONS])
    for name, values in cols.items():
        adata.obs[name] = values
        log_write("obs", name)


def _summary(verdict: np.ndarray) -> str:
    counts = pd.Series(verdict).value_counts()
    return ", ".join(f"{r}: {int(counts.get(r, 0))}" for r in K.QC_REASONS)
