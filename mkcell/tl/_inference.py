"""Sample-level inference: summarise each sample, then one linear model per contrast.

Every tool that reports a p-value or CI between conditions (:func:`~mkcell.tl.progenitor_pool`,
:func:`~mkcell.tl.maturation_shift`, :func:`~mkcell.tl.compare_scores`) hands this module one
number per sample and feature. Each contrast ``A vs B`` is fitted on the samples of A and B by
ordinary least squares with the design formula (``~ condition`` by default; covariates and
blocking terms such as ``~ condition + batch`` or ``~ condition + patient`` when given); an
interaction ``(A vs B) vs (C vs D)`` on the samples of the four conditions, one mean per
condition plus the covariates (:func:`fit_interaction`). The
interval is t-based on the residual degrees of freedom. With fewer than :data:`SMALL_GROUP`
samples in a group and no covariate, the p-value is the exact permutation p of the sample
labels, and ``p_min`` says the smallest p the test can give (2 vs 2: 1/3). Why this and not a
GLM on cell counts or a bootstrap: ``docs/methods.md`` (Statistics).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from math import comb

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from .._formula import formula_columns
from .._settings import MkcellError

#: The default design: condition only.
DEFAULT_DESIGN = "~ condition"
#: Below this many samples in a group (and without covariates) the p-value is exact.
SMALL_GROUP = 3
#: Largest number of relabelings enumerated for the exact test.
MAX_PERMUTATIONS = 20_000
#: Columns of :func:`fit_contrast`'s table.
COLUMNS = ["estimate", "se", "df", "ci_low", "ci_high", "p_value", "p_min", "method"]

DESIGN_DOC = """\
design
    Model of the per-sample summaries, a formula such as ``"~ condition"`` (default) or
    ``"~ condition + batch + sex"``. ``condition`` is the condition column; other terms are
    ``adata.obs`` columns constant within each sample (batch, litter, sex, age, or the
    patient of paired samples). Each contrast is fitted on the samples of its two
    conditions; a design that cannot be estimated there raises one error naming the
    columns."""


@dataclass(frozen=True)
class Design:
    """A parsed design formula: the covariate part and the columns it reads."""

    formula: str
    covariates: str  # right-hand side without the condition term ("" when none)
    columns: tuple[str, ...]


def parse_design(design: str | None, condition_key: str = "condition") -> Design:
    """Check ``design`` and split it into the condition and the covariate terms.

    The condition term is written ``condition`` or as the condition column's name.
    """
    design = DEFAULT_DESIGN if design is None else str(design)
    rhs = design.strip()
    if not rhs.startswith("~"):
        msg = f"design={design!r} must be a formula starting with '~', e.g. '~ condition + batch'"
        raise MkcellError(msg)
    terms = [t.strip() for t in rhs[1:].split("+")]
    if any(not t for t in terms):
        msg = f"design={design!r} has an empty term; write it like '~ condition + batch'"
        raise MkcellError(msg)
    is_cond = [t in ("condition", condition_key) for t in terms]
    if sum(is_cond) != 1:
        msg = (
            f"design={design!r} must contain the condition term once ('condition'), "
            "e.g. '~ condition + batch'"
        )
        raise MkcellError(msg)
    rest = [t for t, c in zip(terms, is_cond, strict=True) if not c]
    names = [w for t in rest for w in formula_columns(t)]
    return Design(design, " + ".join(rest), tuple(dict.fromkeys(names)))


def sample_covariates(adata: AnnData, obs: pd.DataFrame, design: Design) -> pd.DataFrame | None:
    """One row per (species, sample) with the design's covariate columns; None without any.

    ``obs`` is the table of :func:`~mkcell.tl._design.sample_obs`. A covariate must be an
    ``adata.obs`` column with one value per sample.
    """
    if not design.columns:
        return None
    missing = [c for c in design.columns if c not in adata.obs.columns]
    if missing:
        msg = (
            f"design {design.formula!r}: {missing} not in adata.obs; add the per-sample "
            "column(s) or drop them from design="
        )
        raise MkcellError(msg)
    df = adata.obs[list(design.columns)].copy()
    df.index = obs.index
    df["species"], df["sample"] = obs["species"].to_numpy(), obs["sample"].to_numpy()
    g = df.groupby(["species", "sample"], observed=True, sort=False)
    varies = [c for c in design.columns if (g[c].nunique(dropna=False) > 1).any()]
    if varies:
        msg = (
            f"design {design.formula!r}: column(s) {varies} vary within a sample; a design "
            "term must have one value per sample"
        )
        raise MkcellError(msg)
    out = g[list(design.columns)].first()
    for c in design.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(str)
    return out


def covariate_rows(covariates: pd.DataFrame | None, table: pd.DataFrame) -> pd.DataFrame | None:
    """The rows of :func:`sample_covariates` for ``table``'s ``species`` and ``sample`` columns."""
    if covariates is None:
        return None
    return covariates.loc[list(zip(table["species"], table["sample"], strict=True))]


def _covariate_matrix(
    n: int, design: Design, covariates: pd.DataFrame | None, where: str
) -> tuple[np.ndarray, list[str]]:
    """Covariate columns of the design matrix (no intercept) for the ``n`` samples."""
    if not design.covariates or covariates is None:
        return np.empty((n, 0)), []
    import patsy

    const = [c for c in design.columns if covariates[c].nunique(dropna=False) < 2]
    if const:
        msg = (
            f"design {design.formula!r} cannot be estimated {where}: column(s) {const} are "
            "constant there; drop them from design="
        )
        raise MkcellError(msg)
    try:
        m = patsy.dmatrix(f"~ {design.covariates}", covariates, return_type="dataframe")
    except patsy.PatsyError as err:
        msg = f"design {design.formula!r} cannot be built {where}: {str(err).splitlines()[0]}"
        raise MkcellError(msg) from err
    m = m.drop(columns="Intercept", errors="ignore")
    return m.to_numpy(float), [str(c) for c in m.columns]


def design_matrix(
    is_a: np.ndarray,
    design: Design,
    covariates: pd.DataFrame | None,
    where: str = "",
    term: str = "condition",
) -> np.ndarray:
    """``[1, is_a, covariates]``; raise naming the columns when it cannot be estimated.

    ``is_a`` may also be a continuous covariate (:func:`fit_slope`); ``term`` names it in
    messages.
    """
    cov, names = _covariate_matrix(is_a.size, design, covariates, where)
    X = np.column_stack([np.ones(is_a.size), is_a.astype(float), cov])
    _check_constant(cov, names, design, where)
    _check_rank(X, ["(Intercept)", term, *names], design, where, first=1)
    return X


def _check_constant(cov: np.ndarray, names: list[str], design: Design, where: str) -> None:
    const = [n for n, col in zip(names, cov.T, strict=True) if np.ptp(col) == 0]
    if const:
        msg = (
            f"design {design.formula!r} cannot be estimated {where}: column(s) {const} are "
            "constant there; drop them from design="
        )
        raise MkcellError(msg)


def _check_rank(X: np.ndarray, labels: list[str], design: Design, where: str, first: int) -> None:
    """Raise naming the columns (from ``labels[first:]``) that make ``X`` rank-deficient."""
    rank = np.linalg.matrix_rank(X)
    if rank == X.shape[1]:
        return
    bad = [
        lab
        for j, lab in enumerate(labels)
        if j >= first and np.linalg.matrix_rank(np.delete(X, j, axis=1)) == rank
    ]
    msg = (
        f"design {design.formula!r} cannot be estimated {where}: column(s) {bad} are "
        "confounded (linearly dependent); drop or merge them in design="
    )
    raise MkcellError(msg)


def _ols_full(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Coefficients of ``y ~ X``, their covariance matrix (NaN without residual df) and the df."""
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    df = X.shape[0] - X.shape[1]
    if df < 1:
        return beta, np.full((X.shape[1], X.shape[1]), np.nan), df
    resid = y - X @ beta
    s2 = float(resid @ resid) / df
    return beta, s2 * np.linalg.pinv(X.T @ X), df


def _ols(X: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    """Coefficient 1 of ``y ~ X``, its standard error and the residual df."""
    beta, cov, df = _ols_full(X, y)
    return float(beta[1]), float(np.sqrt(cov[1, 1])), df


def _exact_p(y: np.ndarray, is_a: np.ndarray) -> tuple[float, float]:
    """Exact two-sided permutation p of the two-sample t over all relabelings, and its minimum.

    A relabeling and its mirror (equal groups) give the same |t|, so 2 vs 2 cannot go
    below 2/6.
    """
    n, k = y.size, int(is_a.sum())
    total = comb(n, k)
    stat = []
    for idx in itertools.combinations(range(n), k):
        m = np.zeros(n, bool)
        m[list(idx)] = True
        stat.append(_tstat(y, m))
    stat = np.abs(np.asarray(stat))
    obs = abs(_tstat(y, is_a))
    p = float(np.mean(stat >= obs * (1 - 1e-9) - 1e-12))
    p_min = (2 if 2 * k == n else 1) / total
    return max(p, p_min), p_min


def _tstat(y: np.ndarray, m: np.ndarray) -> float:
    a, b = y[m], y[~m]
    df = y.size - 2
    s2 = (((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()) / df
    se = np.sqrt(s2 * (1 / a.size + 1 / b.size))
    d = a.mean() - b.mean()
    if se == 0:
        return 0.0 if d == 0 else np.sign(d) * np.inf
    return d / se


def fit_contrast(
    y: np.ndarray,
    is_a: np.ndarray,
    *,
    design: Design,
    covariates: pd.DataFrame | None = None,
    level: float = 0.95,
    where: str = "",
    names: tuple[str, str] = ("A", "B"),
) -> dict:
    """Fit ``y ~ design`` on the samples of one contrast; return the condition effect (A − B).

    Parameters
    ----------
    y
        One summary per sample (NaN: the sample is left out).
    is_a
        True for the samples of condition A, False for those of B.
    design
        From :func:`parse_design`.
    covariates
        The samples' covariate columns, rows aligned with ``y`` (see :func:`sample_covariates`).
    level
        Confidence level of the interval.
    where
        Words naming the contrast, for messages.
    names
        The two conditions, for notes.

    Returns
    -------
    A dict with :data:`COLUMNS` plus ``n_a``, ``n_b`` and ``note``. With one sample in a
    group, everything but the point estimate is NaN and ``note`` says why.
    """
    y = np.asarray(y, float)
    is_a = np.asarray(is_a, bool)
    ok = np.isfinite(y)
    y, is_a = y[ok], is_a[ok]
    cov = None if covariates is None else covariates.iloc[np.flatnonzero(ok)]
    n_a, n_b = int(is_a.sum()), int((~is_a).sum())
    out = dict.fromkeys(COLUMNS, np.nan) | {"n_a": n_a, "n_b": n_b, "note": ""}
    if n_a == 0 or n_b == 0:
        out["note"] = f"no sample of {names[0] if n_a == 0 else names[1]}"
        out["method"] = ""
        return out
    out["estimate"] = float(y[is_a].mean() - y[~is_a].mean())
    if min(n_a, n_b) < 2:
        single = [f"{c} has 1 sample" for c, k in zip(names, (n_a, n_b), strict=True) if k == 1]
        out["note"] = "no replicate-aware test possible: " + ", ".join(single)
        out["method"] = "none (one sample)"
        return out
    X = design_matrix(is_a, design, cov, where)
    est, se, df = _ols(X, y)
    out["estimate"], out["se"], out["df"] = est, se, df
    label = f"OLS on sample summaries, {design.formula}, t on {df} df"
    if df < 1:
        out["note"] = f"design {design.formula!r} leaves no residual df with {n_a} vs {n_b}"
        out["method"] = label
        return out
    out |= t_test(est, se, df, level)
    out["p_min"] = 0.0
    exact = comb(n_a + n_b, n_a) <= MAX_PERMUTATIONS
    if min(n_a, n_b) < SMALL_GROUP and X.shape[1] == 2 and exact:
        p, p_min = _exact_p(y, is_a)
        out["p_value"], out["p_min"] = p, p_min
        label = "exact permutation of sample labels (p), t interval on sample summaries"
        out["note"] = f"{n_a} vs {n_b} samples: exact p, smallest attainable p = {p_min:.3g}" + (
            "; cannot reach 0.05" if p_min >= 0.05 else ""
        )
    out["method"] = label
    return out


#: Weights of the four condition means in an interaction (A − B) − (C − D).
INTERACTION_WEIGHTS = np.array([1.0, -1.0, -1.0, 1.0])


def fit_interaction(
    y: np.ndarray,
    condition: Sequence[str] | np.ndarray,
    names: Sequence[str],
    *,
    design: Design,
    covariates: pd.DataFrame | None = None,
    level: float = 0.95,
    where: str = "",
) -> dict:
    """Fit the four conditions' samples together; return the interaction (A − B) − (C − D).

    One OLS of ``y`` on a cell-means design (one indicator per condition, no intercept)
    plus the design's covariates; the estimate is c'β with c = (1, −1, −1, 1), its
    interval t-based on the residual df and p from t. No exact test: with fewer than
    :data:`SMALL_GROUP` samples in an arm the note says the t rests on normality.

    Parameters
    ----------
    y
        One summary per sample (NaN: the sample is left out).
    condition
        The samples' conditions; samples of other conditions are left out.
    names
        The four conditions ``(A, B, C, D)``.
    design, covariates, level, where
        As in :func:`fit_contrast`.

    Returns
    -------
    A dict with :data:`COLUMNS` plus ``n_a`` (samples of A and B), ``n_b`` (of C and D)
    and ``note`` (the samples per arm). With one sample in an arm, everything but the
    point estimate is NaN and ``note`` says why; with none, the estimate too.
    """
    y, condition = np.asarray(y, float), np.asarray(condition, dtype=str)
    ok = np.isfinite(y) & np.isin(condition, list(names))
    y, condition = y[ok], condition[ok]
    cov = None if covariates is None else covariates.iloc[np.flatnonzero(ok)]
    cells = np.column_stack([condition == c for c in names]).astype(float)
    n = cells.sum(0).astype(int)
    arms = "samples per arm: " + ", ".join(f"{c} {k}" for c, k in zip(names, n, strict=True))
    out = dict.fromkeys(COLUMNS, np.nan) | {"n_a": int(n[:2].sum()), "n_b": int(n[2:].sum())}
    out |= {"note": arms, "method": ""}
    if n.min() == 0:
        out["note"] = f"no sample of {[c for c, k in zip(names, n, strict=True) if k == 0]}"
        return out
    out["estimate"] = float(INTERACTION_WEIGHTS @ (cells.T @ y / n))
    if n.min() < 2:
        single = [c for c, k in zip(names, n, strict=True) if k == 1]
        out["note"] = f"no replicate-aware test possible: {single} have 1 sample ({arms})"
        out["method"] = "none (one sample)"
        return out
    cov_m, cov_names = _covariate_matrix(y.size, design, cov, where)
    _check_constant(cov_m, cov_names, design, where)
    X = np.column_stack([cells, cov_m])
    c = np.concatenate([INTERACTION_WEIGHTS, np.zeros(len(cov_names))])
    rank = np.linalg.matrix_rank(X)
    if np.linalg.matrix_rank(np.vstack([X, c])) > rank:  # c'beta not estimable
        _check_rank(X, [f"condition[{x}]" for x in names] + cov_names, design, where, first=0)
    # a covariate nested in the disease arms (litters of MDS mice only) leaves c'beta
    # estimable: the minimum-norm solution gives it uniquely, on n - rank df
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    df = y.size - rank
    s2 = float((y - X @ beta) @ (y - X @ beta)) / df if df > 0 else np.nan
    est, se = float(c @ beta), float(np.sqrt(s2 * (c @ np.linalg.pinv(X.T @ X) @ c)))
    out |= {"estimate": est, "se": se, "df": df, "p_min": 0.0}
    out["method"] = f"OLS on sample summaries, cell means + {design.formula}, t on {df} df"
    if df < 1:
        out["note"] = f"design {design.formula!r} leaves no residual df ({arms})"
        return out
    out |= t_test(est, se, df, level)
    if n.min() < SMALL_GROUP:
        out["note"] = f"few samples ({arms}): t on {df} df, no exact test for interactions"
    return out


def fit_conditions(
    y: np.ndarray,
    condition: Sequence[str] | np.ndarray,
    names: Sequence[str],
    **kwargs: object,
) -> dict:
    """:func:`fit_contrast` for a pair ``(A, B)``, :func:`fit_interaction` for four conditions.

    ``y`` and ``condition`` cover the samples of ``names`` only (rows of ``covariates``
    in ``kwargs`` aligned with them).
    """
    if len(names) == 4:
        return fit_interaction(y, condition, names, **kwargs)
    a, b = names
    return fit_contrast(y, np.asarray(condition, dtype=str) == a, names=(a, b), **kwargs)


def fit_slope(
    y: np.ndarray,
    x: np.ndarray,
    *,
    design: Design,
    covariates: pd.DataFrame | None = None,
    level: float = 0.95,
    where: str = "",
    term: str = "covariate",
    grid: int = 0,
) -> dict:
    """Fit ``y ~ x + design's covariates`` over samples; return the slope of ``x``.

    The continuous counterpart of :func:`fit_contrast`: the same design matrix
    (:func:`design_matrix`, with ``x`` in place of the condition indicator), the same OLS
    and t interval on the residual degrees of freedom.

    Parameters
    ----------
    y, x
        One value per sample (a NaN in either leaves the sample out).
    design
        From :func:`parse_design`; only its covariate part is used.
    covariates
        The samples' covariate columns, rows aligned with ``y``.
    level
        Confidence level of the interval.
    where
        Words naming the fit, for messages.
    term
        Name of ``x``, for messages.
    grid
        With ``grid > 0``, also the fitted line and its pointwise interval at ``grid``
        values of ``x`` over its range, the covariates held at their means (``line``: a
        DataFrame with x, fit, ci_low, ci_high).

    Returns
    -------
    A dict with :data:`COLUMNS` (``estimate`` is the slope), ``intercept``, ``n`` and
    ``note``. Below 3 samples, or without residual df, everything but the point estimate
    is NaN and ``note`` says why.
    """
    y, x = np.asarray(y, float), np.asarray(x, float)
    ok = np.isfinite(y) & np.isfinite(x)
    y, x = y[ok], x[ok]
    cov = None if covariates is None else covariates.iloc[np.flatnonzero(ok)]
    out = dict.fromkeys(COLUMNS, np.nan) | {"intercept": np.nan, "n": int(ok.sum()), "note": ""}
    out["method"] = ""
    if y.size < 3 or np.ptp(x) == 0:
        out["note"] = (
            f"{y.size} samples with a value; a slope needs 3 or more"
            if y.size < 3
            else f"{term} is the same in every sample"
        )
        return out
    X = design_matrix(x, design, cov, where, term=term)
    beta, vcov, df = _ols_full(X, y)
    est, se = float(beta[1]), float(np.sqrt(vcov[1, 1]))
    out |= {"estimate": est, "se": se, "df": df, "intercept": float(beta[0]), "p_min": 0.0}
    out["method"] = f"OLS on sample summaries, ~ {term}" + (
        f" + {design.covariates}" if design.covariates else ""
    )
    out["method"] += f", t on {df} df"
    if df < 1:
        out["note"] = f"no residual df with {y.size} samples and {X.shape[1]} coefficients"
        return out
    out |= t_test(est, se, df, level)
    if grid > 0:
        xs = np.linspace(x.min(), x.max(), grid)
        X0 = np.tile(X.mean(0), (grid, 1))
        X0[:, 0], X0[:, 1] = 1.0, xs
        fit = X0 @ beta
        q = stats.t.ppf(0.5 + level / 2, df)
        half = q * np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X0, vcov, X0), 0))
        out["line"] = pd.DataFrame(
            {"x": xs, "fit": fit, "ci_low": fit - half, "ci_high": fit + half}
        )
    return out


def contrast_table(
    values: pd.DataFrame,
    condition: Sequence[str] | np.ndarray,
    conditions: Sequence[str],
    *,
    design: Design,
    covariates: pd.DataFrame | None = None,
    level: float = 0.95,
    where: str = "",
) -> pd.DataFrame:
    """:func:`fit_conditions` for each column of ``values`` (samples x features).

    Rows of ``values`` (and ``covariates``) are samples; ``condition`` their condition;
    ``conditions`` the contrast, ``(A, B)`` or the interaction ``(A, B, C, D)``.
    Returns one row per feature, indexed by the column names.
    """
    condition = np.asarray(condition, dtype=str)
    sel = np.isin(condition, list(conditions))
    cov = None if covariates is None else covariates.iloc[np.flatnonzero(sel)]
    rows = {
        col: fit_conditions(
            values[col].to_numpy(float)[sel],
            condition[sel],
            tuple(conditions),
            design=design,
            covariates=cov,
            level=level,
            where=where,
        )
        for col in values.columns
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def t_test(est: float, se: float, df: int, level: float) -> dict[str, float]:
    """``ci_low``, ``ci_high`` and the two-sided ``p_value`` of ``est`` with its t on ``df``."""
    if se > 0:
        q = stats.t.ppf(0.5 + level / 2, df)
        p = float(2 * stats.t.sf(abs(est / se), df))
        return {"ci_low": est - q * se, "ci_high": est + q * se, "p_value": p}
    return {"ci_low": est, "ci_high": est, "p_value": 1.0 if est == 0 else 0.0}


def t_interval(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``x`` (NaN ignored) and its t interval over the values; NaN below 2 values."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.nan, np.nan, np.nan
    m = float(x.mean())
    if x.size < 2:
        return m, np.nan, np.nan
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return m, m - half, m + half


def bh(p: np.ndarray | pd.Series) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values over the finite entries (NaN stays NaN)."""
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok])
    return out
