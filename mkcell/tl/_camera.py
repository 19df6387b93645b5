"""CAMERA-style competitive gene-set test that accounts for inter-gene correlation.

Wu & Smyth (2012), *Nucleic Acids Res.* 40:e133 (limma ``camera``). Genes of a set that
move together across samples (E2F or G2M targets following each sample's share of
cycling cells) make the set's mean statistic far more variable than a mean of
independent genes; gene-permutation tests ignore this and call such sets significant
on null cohorts. CAMERA estimates the correlation from the residuals of the per-gene
model and inflates the variance of the set mean by it.

Camera compares the set with the other genes as if those were independent. When a large
block of the other genes moves together (here: proliferation genes, often a fifth of a
pseudobulk's varying genes), every unrelated set then looks "down" against them on null
cohorts. By default the variance of the contrast therefore also uses the correlation
within the other genes and between the set and them, from the same residuals
(``rest_correlation=True``); ``False`` gives Wu & Smyth's formula.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from .._settings import MkcellError

CAMERA_COLUMNS = [
    "term",
    "statistic",
    "p_value",
    "direction",
    "correlation",
    "vif",
    "contrast_vif",
    "n_genes",
]


def _trigamma_inverse(x: np.ndarray) -> np.ndarray:
    """Solve trigamma(y) = x for y > 0 (Newton iteration on 1 / trigamma)."""
    x = np.asarray(x, dtype=float)
    y = np.where(x > 1e7, 1.0 / np.sqrt(np.maximum(x, 1e-300)), 0.5 + 1.0 / x)
    y = np.where(x < 1e-6, 1.0 / x, y)
    for _ in range(50):
        tri = special.polygamma(1, y)
        step = tri * (1.0 - tri / x) / special.polygamma(2, y)
        y = y + step
        if np.all(-step / y < 1e-8):
            break
    return y


def squeeze_var(s2: np.ndarray, df: float) -> tuple[np.ndarray, float, float]:
    """Empirical-Bayes shrinkage of gene variances towards a scaled inverse-chi2 prior.

    Parameters
    ----------
    s2
        Residual variances of the genes.
    df
        Their residual degrees of freedom.

    Returns
    -------
    ``(posterior variances, prior df d0, prior variance s0^2)``; ``d0`` is ``inf`` when
    the variances are no more spread than sampling alone explains.
    """
    s2 = np.asarray(s2, dtype=float)
    med = float(np.median(s2[s2 > 0])) if (s2 > 0).any() else 1.0
    s2c = np.maximum(s2, 1e-5 * med)
    half = df / 2.0
    e = np.log(s2c) - special.digamma(half) + np.log(half)
    emean = float(e.mean())
    evar = float(e.var(ddof=1)) - float(special.polygamma(1, half)) if e.size > 1 else 0.0
    if evar > 0:
        d0 = float(2.0 * _trigamma_inverse(np.array([evar]))[0])
        s0 = float(np.exp(emean + special.digamma(d0 / 2.0) - np.log(d0 / 2.0)))
        post = (d0 * s0 + df * s2) / (d0 + df)
    else:
        d0, s0 = np.inf, float(np.exp(emean))
        post = np.full_like(s2, s0)
    return post, d0, s0


def _zscore_t(t: np.ndarray, df: float) -> np.ndarray:
    """Normal quantiles with the same tail probability as ``t`` on ``df`` degrees of freedom."""
    if not np.isfinite(df):
        return t
    tail = stats.t.sf(np.abs(t), df)
    z = stats.norm.isf(tail)
    z = np.where(tail > 0, z, np.abs(t))
    return np.sign(t) * z


def camera(
    X: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    sets: Mapping[str, Sequence[int]],
    *,
    moderated: bool = True,
    rest_correlation: bool = True,
    allow_negative_correlation: bool = False,
) -> pd.DataFrame:
    """Competitive test of gene sets between two groups of samples (CAMERA).

    Each gene gets a two-group linear model (mean of A minus mean of B), a moderated
    t statistic (limma-style empirical-Bayes variance shrinkage) turned into a z-score
    through the t distribution. For a set of ``m`` genes, the mean pairwise correlation
    ``rho`` of the genes' residuals (the model's residuals, within groups) gives the
    variance inflation factor ``VIF = 1 + (m - 1) rho`` of the set's mean z. The set's
    mean z is compared with the other genes' in a two-sample t statistic with the set's
    variance multiplied by the VIF, on ``min(n - 2, G - 2)`` degrees of freedom (camera's
    choice when the correlation is estimated, as it is here for each set).

    With ``rest_correlation=True`` (default) the variance of the contrast, mean z of the
    set minus mean z of the other genes, is ``var(z) * |u_set - u_rest|^2``, where
    ``u_set`` and ``u_rest`` are the means of the genes' unit-length residual vectors
    (their inner products are the residual correlations). It holds the set's VIF
    (``|u_set|^2 = VIF / m``), the other genes' own correlation and the set-rest
    correlation; camera's ``VIF / m + 1 / m_rest`` is the case where the other genes are
    independent of each other and of the set, and is the floor used here.

    Parameters
    ----------
    X
        Samples x genes log-scale expression (genes constant across samples removed).
    a, b
        Boolean masks of the samples of groups A and B.
    sets
        ``{name: column indices of X}``, each with at least 2 genes.
    moderated
        Shrink gene variances (empirical Bayes); ``False`` uses plain t statistics.
    rest_correlation
        Account for the correlation among the other genes and with the set (see above);
        ``False``: Wu & Smyth's variance, which treats the other genes as independent.
    allow_negative_correlation
        Keep negative correlation estimates (floored at ``-1 / (m - 1)``); by default
        they are set to 0, as in limma, so that a set is never tested as if its genes
        were anti-correlated.

    Returns
    -------
    term, statistic (signed: positive means the set is higher in A than the other
    genes), p_value (two-sided), direction (``"Up"`` / ``"Down"``), correlation (mean
    pairwise residual correlation in the set), vif, contrast_vif (variance of the
    contrast over that of independent genes, ``(1/m + 1/m_rest)``), n_genes; one row per
    set in the order given.
    """
    X = np.asarray(X, dtype=float)
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    X = X[a | b]
    a, b = a[a | b], b[a | b]
    n, G = X.shape
    na, nb = int(a.sum()), int(b.sum())
    if na < 2 or nb < 2 or n - 2 < 1:
        msg = f"camera needs >= 2 samples per group; got {na} and {nb}"
        raise MkcellError(msg)
    if G < 3:
        msg = f"camera needs at least 3 genes; got {G}"
        raise MkcellError(msg)
    ma, mb = X[a].mean(0), X[b].mean(0)
    resid = np.where(a[:, None], X - ma, X - mb)
    d = n - 2
    s2 = (resid**2).sum(0) / d
    if moderated:
        s2_post, d0, _ = squeeze_var(s2, d)
        df_total = d + d0
    else:
        s2_post, df_total = s2, float(d)
    se = np.sqrt(np.maximum(s2_post, np.finfo(float).tiny) * (1.0 / na + 1.0 / nb))
    t = (ma - mb) / se
    z = _zscore_t(t, df_total)
    z[(s2_post <= 0) & (ma == mb)] = 0.0
    norm = np.sqrt((resid**2).sum(0))
    U = np.divide(resid, norm, out=np.zeros_like(resid), where=norm > 0)
    U_total = U.sum(1)
    mean_z, var_z = float(z.mean()), float(z.var(ddof=1))
    df_camera = min(d, G - 2)
    rows = []
    for name, idx in sets.items():
        idx = np.unique(np.asarray(idx, dtype=int))
        m = idx.size
        if m < 2 or m >= G:
            msg = f"gene set {name!r} has {m} genes of {G}; camera needs 2 <= m < G"
            raise MkcellError(msg)
        m2 = G - m
        ok = idx[norm[idx] > 0]
        if ok.size >= 2:
            k = ok.size
            vif_raw = k * float((U[:, ok].mean(1) ** 2).sum())
            rho = (vif_raw - 1.0) / (k - 1)
        else:
            rho = 0.0
        rho = max(rho, -1.0 / (m - 1)) if allow_negative_correlation else max(rho, 0.0)
        vif = 1.0 + (m - 1) * rho
        factor = vif / m + 1.0 / m2
        if rest_correlation:
            u_set = U[:, idx].sum(1)
            u_rest = (U_total - u_set) / m2
            factor = max(float(((u_set / m - u_rest) ** 2).sum()), 1.0 / m + 1.0 / m2)
        delta = G / m2 * (float(z[idx].mean()) - mean_z)
        var_pooled = ((G - 1) * var_z - delta**2 * m * m2 / G) / (G - 2)
        stat = delta / np.sqrt(max(var_pooled, np.finfo(float).tiny) * factor)
        p = 2.0 * min(stats.t.sf(stat, df_camera), stats.t.cdf(stat, df_camera))
        rows.append(
            {
                "term": str(name),
                "statistic": float(stat),
                "p_value": float(min(p, 1.0)),
                "direction": "Up" if stat > 0 else "Down",
                "correlation": float(rho),
                "vif": float(vif),
                "contrast_vif": float(factor / (1.0 / m + 1.0 / m2)),
                "n_genes": int(m),
            }
        )
    return pd.DataFrame(rows, columns=CAMERA_COLUMNS)
