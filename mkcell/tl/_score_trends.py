"""Score (and gene) trends along Mk pseudotime per species x condition, t bands over samples."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from .. import _keys as K
from .._settings import MkcellError, logger
from .._utils import check_adata, check_obs_key, log_write
from ..pp._normalize import log_normalize
from ._compare import _default_keys

#: ``adata.uns`` key of :func:`score_trends`.
TRENDS_KEY = K.SCORE_TRENDS
COLUMNS = [
    "species",
    "condition",
    "key",
    "bin",
    "pseudotime",
    "mean",
    "ci_low",
    "ci_high",
    "binned_mean",
    "n_cells",
    "n_samples",
]


def _local_linear(x: np.ndarray, y: np.ndarray, w: np.ndarray, frac: float) -> np.ndarray:
    """LOWESS-style local linear fit of binned curves (one pass, tricube, nearest-bin span).

    ``y`` and ``w`` are (..., bins); bins with zero weight are ignored. Returns (..., bins).
    """
    n = x.size
    k = int(np.clip(np.ceil(frac * n), 3, n))
    d = np.abs(x[:, None] - x[None, :])  # target x source
    h = np.sort(d, axis=1)[:, k - 1] * 1.0001 + 1e-12
    kern = np.clip(1 - (d / h[:, None]) ** 3, 0, None) ** 3
    y = np.nan_to_num(y)
    W = kern * w[..., None, :]  # (..., target, source)
    s0 = W.sum(-1)
    s1 = (W * x).sum(-1)
    s2 = (W * x**2).sum(-1)
    t0 = (W * y[..., None, :]).sum(-1)
    t1 = (W * (x * y)[..., None, :]).sum(-1)
    det = s0 * s2 - s1**2
    with np.errstate(invalid="ignore", divide="ignore"):
        lin = (s2 * t0 - s1 * t1 + x * (s0 * t1 - s1 * t0)) / det
        const = t0 / s0
    out = np.where(np.abs(det) > 1e-12 * np.maximum(s0**2, 1e-300), lin, const)
    return np.where(s0 > 0, out, np.nan)


def _expression(adata: AnnData, genes: Sequence[str], layer: str | None) -> pd.DataFrame:
    missing = [g for g in genes if g not in adata.var_names]
    if missing:
        msg = (
            f"genes {missing} are not in adata.var_names; "
            "check the species' symbols (e.g. 'Mcm5' vs 'MCM5')"
        )
        raise MkcellError(msg)
    X = log_normalize(adata, layer)
    idx = adata.var_names.get_indexer(list(genes))
    sub = X[:, idx]
    sub = sub.toarray() if hasattr(sub, "toarray") else np.asarray(sub)
    return pd.DataFrame(sub, index=adata.obs_names, columns=[f"gene:{g}" for g in genes])


def score_trends(
    adata: AnnData,
    *,
    keys: Sequence[str] | None = None,
    genes: Sequence[str] | None = None,
    pseudotime_key: str = K.PSEUDOTIME,
    condition_key: str = K.CONDITION,
    species_key: str = K.SPECIES,
    sample_key: str = K.SAMPLE,
    n_bins: int = 20,
    smooth: Literal["bins", "lowess"] = "bins",
    frac: float = 0.3,
    ci: float = 0.95,
    min_cells: int = 3,
    layer: str | None = None,
    key_added: str = TRENDS_KEY,
    copy: bool = False,
) -> AnnData | None:
    """Score trends along pseudotime per species x condition, with CIs over samples.

    Pseudotime is cut into ``n_bins`` equal bins over [0, 1]. Each sample gives one curve,
    the mean of its cells in each bin (optionally LOWESS-smoothed across bins); the trend
    is the mean of the samples' curves and the band a t interval over the samples with
    cells in the bin (the replicates, never cells; no band below 2 samples).

    Parameters
    ----------
    adata
        Scored cells (:func:`mkcell.tl.score`) with pseudotime (:func:`mkcell.tl.trajectory`).
    keys
        ``obs`` columns to trend; default S/G2M, every ``mk_score_*`` and ``cycling_fraction``.
    genes
        Genes whose log-normalised expression (from raw counts) is trended too, as
        ``gene:<symbol>``.
    pseudotime_key, condition_key, species_key, sample_key
        ``adata.obs`` columns (no species column: one group ``"all"``).
    n_bins
        Pseudotime bins.
    smooth
        ``"bins"`` (binned means) or ``"lowess"`` (local linear, tricube weights by cells).
    frac
        LOWESS span, as a share of the bins.
    ci
        Level of the band.
    min_cells
        Bins with fewer cells in a group are NaN.
    layer
        Raw counts for ``genes``.
    key_added
        ``adata.uns`` key: ``{"table": ..., "params": ...}``.
    copy
        Return a copy instead of writing to ``adata``.

    Returns
    -------
    ``None`` or a copy of ``adata`` (``copy=True``), with ``adata.uns[key_added]``:
    ``table`` (species, condition, key, bin, pseudotime (bin centre), mean, ci_low,
    ci_high, binned_mean, n_cells, n_samples (samples with cells in the bin)) and
    ``params``.
    """
    check_adata(adata)
    _check_params(adata, (pseudotime_key, condition_key, sample_key), smooth, n_bins, ci)
    values = _values(adata, keys, genes, layer)
    names = list(values.columns)
    pt = pd.to_numeric(adata.obs[pseudotime_key], errors="coerce").to_numpy(float)
    on = np.isfinite(pt) & np.isfinite(values.to_numpy()).all(axis=1)
    if not on.any():
        msg = f"no cell has a finite `adata.obs[{pseudotime_key!r}]`; run mk.tl.trajectory first"
        raise MkcellError(msg)
    bins = np.minimum((np.clip(pt[on], 0, 1) * n_bins).astype(int), n_bins - 1)
    obs = adata.obs.loc[on]
    species = (
        obs[species_key].astype(str).to_numpy()
        if species_key in obs.columns
        else np.full(on.sum(), "all")
    )
    cond = obs[condition_key].astype(str).to_numpy()
    sample = obs[sample_key].astype(str).to_numpy()
    vals = values.to_numpy(float)[on]
    frames = []
    for sp_name in pd.unique(species):
        for c in pd.unique(cond[species == sp_name]):
            m = (species == sp_name) & (cond == c)
            trend = _group_trend(vals[m], bins[m], sample[m], n_bins, smooth, frac, ci, min_cells)
            frames.append(_trend_table(trend, sp_name, c, names))
    table = pd.concat(frames, ignore_index=True)[COLUMNS]
    if copy:
        adata = adata.copy()
    adata.uns[key_added] = {
        "table": table,
        "params": {
            "keys": names,
            "pseudotime_key": pseudotime_key,
            "condition_key": condition_key,
            "species_key": species_key,
            "sample_key": sample_key,
            "n_bins": n_bins,
            "smooth": smooth,
            "frac": frac,
            "ci": ci,
            "min_cells": min_cells,
            "band": "t interval over the samples' curves",
        },
    }
    log_write("uns", key_added)
    logger.info("score trends: %d keys x %d groups x %d bins", len(names), len(frames), n_bins)
    return adata if copy else None


def _check_params(
    adata: AnnData, columns: Sequence[str], smooth: str, n_bins: int, ci: float
) -> None:
    """Raise on a missing obs column or a setting out of range."""
    pseudotime_key = columns[0]
    for k in columns:
        what = "column (run mk.tl.trajectory for pseudotime)" if k == pseudotime_key else "column"
        check_obs_key(adata, k, what=what)
    if smooth not in ("bins", "lowess"):
        msg = f"smooth={smooth!r}; choose 'bins' or 'lowess'"
        raise MkcellError(msg)
    if n_bins < 2 or not 0 < ci < 1:
        msg = f"n_bins={n_bins}, ci={ci}: need n_bins >= 2 and 0 < ci < 1"
        raise MkcellError(msg)


def _values(
    adata: AnnData, keys: Sequence[str] | None, genes: Sequence[str] | None, layer: str | None
) -> pd.DataFrame:
    """The per-cell values to trend: ``obs`` scores (and ``cycling_fraction``), then genes."""
    keys = list(keys) if keys is not None else _default_keys(adata)
    values = pd.DataFrame(index=adata.obs_names)
    for k in keys:
        if k == K.CYCLING_FRACTION and k not in adata.obs.columns and K.PHASE in adata.obs.columns:
            values[k] = (adata.obs[K.PHASE].astype(str) != "G1").to_numpy(float)
        elif k in adata.obs.columns:
            values[k] = pd.to_numeric(adata.obs[k], errors="raise").to_numpy(float)
        else:
            msg = (
                f"no `adata.obs[{k!r}]`; run mk.tl.score(adata) first or choose keys from adata.obs"
            )
            raise MkcellError(msg)
    if genes:
        values = pd.concat([values, _expression(adata, genes, layer)], axis=1)
    return values


def _group_trend(
    vals: np.ndarray,
    bins: np.ndarray,
    sample: np.ndarray,
    n_bins: int,
    smooth: str,
    frac: float,
    ci: float,
    min_cells: int,
) -> dict[str, np.ndarray]:
    """Trend and t band over the samples of one species x condition (cells x keys ``vals``).

    Each sample's curve (bin means, optionally smoothed) is one replicate; the trend is
    their mean and the band a t interval over the samples with cells in the bin.
    """
    n_keys = vals.shape[1]
    s_codes, s_idx = np.unique(sample, return_inverse=True)
    n_s = s_codes.size
    flat = s_idx * n_bins + bins
    cnt = np.bincount(flat, minlength=n_s * n_bins).reshape(n_s, n_bins).astype(float)
    sums = np.stack(
        [
            np.bincount(flat, weights=vals[:, j], minlength=n_s * n_bins).reshape(n_s, n_bins)
            for j in range(n_keys)
        ],
        axis=-1,
    )  # samples x bins x keys
    n_all = cnt.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        binned = sums.sum(0) / n_all[:, None]  # cells pooled: bins x keys
        curves = sums / cnt[..., None]  # samples x bins x keys, NaN where a sample has no cell
    small = n_all < min_cells
    binned[small] = np.nan
    if smooth == "lowess":
        centres = (np.arange(n_bins) + 0.5) / n_bins
        smoothed = np.stack(
            [_local_linear(centres, curves[..., j], cnt, frac) for j in range(n_keys)], -1
        )
        curves = np.where(cnt[..., None] > 0, smoothed, np.nan)
    curves[:, small] = np.nan
    n_samp = np.isfinite(curves).sum(0)  # bins x keys
    with warnings.catch_warnings():  # bins without cells
        warnings.simplefilter("ignore", RuntimeWarning)
        est = np.nanmean(curves, axis=0)
        sd = np.nanstd(curves, axis=0, ddof=1)
    few = n_samp < 2
    q = stats.t.ppf(0.5 + ci / 2, np.where(few, 1, n_samp - 1))
    half = np.where(few, np.nan, q * sd / np.sqrt(np.maximum(n_samp, 1)))
    return {
        "est": est,
        "lo": est - half,
        "hi": est + half,
        "binned": binned,
        "n_cells": n_all,
        "n_samples": (cnt > 0).sum(0),
    }


def _trend_table(
    trend: dict[str, np.ndarray], species: str, condition: str, names: Sequence[str]
) -> pd.DataFrame:
    """Rows of the trends table for one species x condition (keys stacked)."""
    n_bins = trend["est"].shape[0]
    centres = (np.arange(n_bins) + 0.5) / n_bins
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "species": species,
                    "condition": condition,
                    "key": k,
                    "bin": np.arange(n_bins),
                    "pseudotime": centres,
                    "mean": trend["est"][:, j],
                    "ci_low": trend["lo"][:, j],
                    "ci_high": trend["hi"][:, j],
                    "binned_mean": trend["binned"][:, j],
                    "n_cells": trend["n_cells"].astype(int),
                    "n_samples": trend["n_samples"],
                }
            )
            for j, k in enumerate(names)
        ],
        ignore_index=True,
    )
