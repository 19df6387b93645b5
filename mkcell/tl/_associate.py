"""Per-sample readouts against continuous sample covariates (platelet count), samples as replicates.

Each sample (person) is summarised first: its MkP fraction (as :func:`progenitor_pool`
counts it), the mean E2F / G2M / Aurora scores of its MkP cells and the mean maturation
pseudotime of its Mk-lineage cells. Each summary is then regressed on a per-sample
covariate by ordinary least squares (:func:`~mkcell.tl._inference.fit_slope`, the design
layer every contrast uses), with adjustment covariates, a t interval on the residual
degrees of freedom and Benjamini-Hochberg over the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from .. import _keys as K
from .._docs import KEY_ADDED_COPY_DOC, fill_doc
from .._settings import MkcellError, logger
from .._utils import check_adata, check_obs_key, log_write
from ._inference import Design, bh, fit_slope, sample_covariates
from ._pool import DENOMINATOR_CHOICES, choose_denominator, log2_fraction
from ._pool import _per_sample as pool_per_sample

#: The score readouts taken by default (those present in ``adata.obs``).
DEFAULT_SCORES = tuple(K.SCORE_PREFIX + s for s in ("e2f_targets", "g2m_checkpoint", "aurora"))
COLUMNS = [
    "species",
    "covariate",
    "readout",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adj",
    "n_samples",
    "se",
    "df",
    "unit",
    "transform",
    "adjusted_for",
    "method",
    "note",
]
#: Points of each fitted line kept for :func:`mkcell.pl.associations`.
GRID = 40


def _as_list(x: str | Sequence[str] | None) -> list[str]:
    if x is None:
        return []
    return [x] if isinstance(x, str) else [str(v) for v in x]


@fill_doc(key_added_copy=KEY_ADDED_COPY_DOC)
def associate(
    adata: AnnData,
    covariates: str | Sequence[str],
    *,
    readouts: str | Sequence[str] | None = None,
    log2_covariates: bool | Sequence[str] = True,
    adjust: str | Sequence[str] = (),
    sample_key: str | None = K.SAMPLE,
    species_key: str = K.SPECIES,
    state_key: str = K.STATE,
    denominator: str = "auto",
    min_cells: int = 3,
    level: float = 0.95,
    key_added: str = K.ASSOCIATIONS,
    copy: bool = False,
) -> AnnData | None:
    """Relate per-sample readouts to continuous per-sample covariates (e.g. platelet count).

    Samples are the replicates: each readout is one number per sample, regressed on the
    covariate (``log2`` of it by default, so the effect is per doubling) with the
    ``adjust`` covariates, by ordinary least squares with a t interval on the residual
    degrees of freedom. ``p_adj`` is Benjamini-Hochberg over the whole table (species x
    covariates x readouts). Fitted within each species.

    Readouts (cells, one row per cell):

    - ``"mkp_fraction"``: the sample's MkP fraction as :func:`progenitor_pool` counts it
      (``denominator``), as ``log2((n_mkp + 0.5) / (n_denominator + 1))``: the effect is
      the log2 fold change of the fraction per doubling of the covariate;
    - ``"mk_pseudotime"``: the mean pseudotime of the sample's MkP + Mk cells;
    - any other numeric ``adata.obs`` column (``mk_score_e2f_targets``...): its mean over
      the sample's MkP cells.

    With ``sample_key=None`` (or a bulk AnnData of :func:`mkcell.io.read_bulk` without
    that column) each row of ``adata`` is one sample and readouts are its ``obs`` columns
    as they are.

    Parameters
    ----------
    adata
        Cells with ``obs[sample_key]``, ``obs[state_key]`` and the covariates as ``obs``
        columns (constant within each sample: join a samples file with
        :func:`mkcell.io.join_samples`); or samples (``sample_key=None``).
    covariates
        Continuous per-sample column(s), e.g. ``"platelets"``; one row of the table each.
    readouts
        Default: ``mkp_fraction``, the E2F / G2M / Aurora scores and ``mk_pseudotime``
        present (bulk: ``mk_e2f_z`` and the ``mk_score_*`` columns present).
    log2_covariates
        ``True``: log2 every covariate (they must be > 0); ``False``: none; or the names
        of those to log.
    adjust
        Adjustment terms (``obs`` columns constant within samples, categorical or numeric;
        patsy terms such as ``"C(batch)"`` allowed), fitted with each covariate.
    sample_key
        ``obs`` column of samples; ``None``: every row is a sample.
    species_key
        ``obs`` column of species (absent: one species ``"all"``).
    state_key
        ``obs`` column of cell states (cells only).
    denominator
        Denominator of the MkP fraction, as in :func:`progenitor_pool`.
    min_cells
        A sample's mean over fewer cells (MkP, or MkP + Mk for pseudotime) is left out.
    level
        Confidence level of the intervals.
    {key_added_copy}

    Returns
    -------
    ``None`` or a copy (``copy=True``), with ``adata.uns[key_added]``: ``table`` (species,
    covariate, readout, effect, ci_low, ci_high, p_value, p_adj, n_samples, then se, df,
    unit, transform, adjusted_for, method, note), ``per_sample`` (species, sample, the
    covariates and readouts as fitted), ``lines`` (the fitted line and its pointwise band
    at the adjustment covariates' means, for :func:`mkcell.pl.associations`) and
    ``params``.
    """
    check_adata(adata, min_vars=0)
    covs, adj = _as_list(covariates), _as_list(adjust)
    if not covs:
        msg = "covariates=[]; name at least one continuous per-sample column, e.g. 'platelets'"
        raise MkcellError(msg)
    if denominator not in DENOMINATOR_CHOICES:
        msg = f"denominator={denominator!r}; choose one of {list(DENOMINATOR_CHOICES)}"
        raise MkcellError(msg)
    logged = set(covs) if log2_covariates is True else set(_as_list(log2_covariates or None))
    if not logged <= set(covs):
        msg = f"log2_covariates={sorted(logged - set(covs))} are not among covariates={covs}"
        raise MkcellError(msg)
    obs = _sample_obs(adata, sample_key, species_key)
    adjust_design = _adjust_design(adj)
    table_cov = _covariate_table(adata, obs, covs, adjust_design)
    values, units = _readouts(adata, obs, readouts, sample_key, state_key, denominator, min_cells)
    values = values.reindex(table_cov.index)
    rows, lines = [], []
    for (sp_name, cov, name), res in _fits(table_cov, values, covs, logged, adjust_design, level):
        rows.append(_row(sp_name, cov, name, res, units[name], cov in logged, adj))
        if "line" in res:
            lines.append(res["line"].assign(species=sp_name, covariate=cov, readout=name))
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "p_adj"])
    table.insert(table.columns.get_loc("p_value") + 1, "p_adj", bh(table["p_value"]))
    per_sample = pd.concat([table_cov[covs], values], axis=1).reset_index()
    line_cols = ["species", "covariate", "readout", "x", "fit", "ci_low", "ci_high"]
    lines_df = (
        pd.concat(lines, ignore_index=True)[line_cols] if lines else pd.DataFrame(columns=line_cols)
    )
    if copy:
        adata = adata.copy()
    adata.uns[key_added] = {
        "table": table,
        "per_sample": per_sample,
        "lines": lines_df,
        "params": {
            "covariates": covs,
            "readouts": list(values.columns),
            "log2_covariates": sorted(logged),
            "adjust": adj,
            "sample_key": sample_key,
            "species_key": species_key,
            "state_key": state_key,
            "denominator": denominator,
            "min_cells": min_cells,
            "level": level,
            "method": "per-sample summaries; OLS on the covariate (+ adjust), t interval, BH",
        },
    }
    log_write("uns", key_added)
    best = table.sort_values("p_value").head(1)
    logger.info(
        "associations: %d rows over %d samples%s",
        len(table),
        len(per_sample),
        ""
        if best.empty
        else f"; smallest p {best['p_value'].iloc[0]:.3g} "
        f"({best['readout'].iloc[0]} ~ {best['covariate'].iloc[0]})",
    )
    return adata if copy else None


def _sample_obs(adata: AnnData, sample_key: str | None, species_key: str) -> pd.DataFrame:
    """Obs with string ``sample`` and ``species`` columns (one species ``all`` without it)."""
    obs = pd.DataFrame(index=adata.obs_names.rename(None))
    if sample_key is not None and sample_key not in adata.obs and K.BULK in adata.uns:
        sample_key = None  # a bulk table (mk.io.read_bulk): one row per sample
    if sample_key is None:
        if adata.obs_names.has_duplicates:
            msg = "sample_key=None needs unique obs_names (one row per sample)"
            raise MkcellError(msg)
        obs["sample"] = adata.obs_names.astype(str)
    else:
        check_obs_key(adata, sample_key, what="sample column")
        if adata.obs[sample_key].isna().any():
            msg = f"`adata.obs[{sample_key!r}]` has missing values; give every cell a sample"
            raise MkcellError(msg)
        obs["sample"] = adata.obs[sample_key].astype(str).to_numpy()
    obs["species"] = (
        adata.obs[species_key].astype(str).to_numpy() if species_key in adata.obs else "all"
    )
    return obs


def _adjust_design(adjust: list[str]) -> Design:
    from .._formula import formula_columns

    cols = [c for t in adjust for c in formula_columns(t)]
    return Design(
        "~ covariate" + "".join(f" + {t}" for t in adjust), " + ".join(adjust), tuple(cols)
    )


def _covariate_table(
    adata: AnnData, obs: pd.DataFrame, covs: list[str], adjust: Design
) -> pd.DataFrame:
    """One row per (species, sample): the covariates (numeric) and the adjustment columns."""
    for c in covs:
        if c not in adata.obs.columns:
            msg = (
                f"covariate {c!r} is not a column of adata.obs; add the per-sample table with "
                "mk.io.join_samples(adata, 'samples.csv') first"
            )
            raise MkcellError(msg)
        if not pd.api.types.is_numeric_dtype(adata.obs[c]):
            msg = f"covariate {c!r} is not numeric (dtype {adata.obs[c].dtype}); give a number per sample"
            raise MkcellError(msg)
    cols = tuple(dict.fromkeys([*covs, *adjust.columns]))
    tab = sample_covariates(adata, obs, Design("~ condition", "", cols))
    return tab


def _readouts(
    adata: AnnData,
    obs: pd.DataFrame,
    readouts: str | Sequence[str] | None,
    sample_key: str | None,
    state_key: str,
    denominator: str,
    min_cells: int,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per-sample readouts, indexed by (species, sample), and the unit of each."""
    bulk = sample_key is None or (sample_key not in adata.obs and K.BULK in adata.uns)
    if readouts is None:
        present = (
            [c for c in (K.E2F_Z, *DEFAULT_SCORES) if c in adata.obs]
            if bulk
            else [
                K.MKP_FRACTION,
                *[c for c in (*DEFAULT_SCORES, K.PSEUDOTIME) if c in adata.obs],
            ]
        )
        if not present:
            msg = "no readout found in adata.obs (mk_score_* or mk_e2f_z); pass readouts="
            raise MkcellError(msg)
        names = present
    else:
        names = _as_list(readouts)
    for n in names:
        if n == K.MKP_FRACTION and bulk:
            msg = "readout 'mkp_fraction' needs cells (sample_key=); bulk samples have no states"
            raise MkcellError(msg)
        if n != K.MKP_FRACTION and n not in adata.obs.columns:
            msg = f"readout {n!r} is not a column of adata.obs; run the tool that writes it first"
            raise MkcellError(msg)
        if n != K.MKP_FRACTION and not pd.api.types.is_numeric_dtype(adata.obs[n]):
            msg = f"readout {n!r} is not numeric (dtype {adata.obs[n].dtype})"
            raise MkcellError(msg)
    keys = pd.MultiIndex.from_frame(obs[["species", "sample"]])
    out, units = {}, {}
    if not bulk:
        check_obs_key(adata, state_key, what="cell-state column (run mk.tl.annotate first)")
        states = adata.obs[state_key].astype(str).to_numpy()
    for n in names:
        if bulk:
            out[n] = pd.Series(adata.obs[n].to_numpy(float), index=keys)
            units[n] = n
        elif n == K.MKP_FRACTION:
            out[n], units[n] = _mkp_fraction(adata, obs, states, denominator), "log2 MkP fraction"
        else:
            cells = np.isin(states, K.MK_LINEAGE) if n == K.PSEUDOTIME else states == K.MKP
            out[n] = _cell_mean(adata.obs[n].to_numpy(float), cells, keys, min_cells)
            units[n] = f"mean {n} of {'MkP + Mk' if n == K.PSEUDOTIME else 'MkP'} cells"
    return pd.DataFrame(out), units


def _mkp_fraction(
    adata: AnnData, obs: pd.DataFrame, states: np.ndarray, denominator: str
) -> pd.Series:
    mature = (
        adata.obs[K.MK_STAGE].astype(str).to_numpy() == "mature_Mk"
        if K.MK_STAGE in adata.obs
        else states == K.MK
    )
    tab = obs.assign(condition="")
    tab.attrs["condition_order"] = [""]
    choice = choose_denominator(tab, states, mature, denominator)
    parts = []
    for sp_name, den in zip(choice["species"], choice["denominator"], strict=True):
        m = (tab["species"] == sp_name).to_numpy()
        parts.append(pool_per_sample(tab[m], states[m], den))
    per = pd.concat(parts, ignore_index=True)
    y = np.where(
        per["n_denominator"] > 0, log2_fraction(per["n_mkp"], per["n_denominator"]), np.nan
    )
    return pd.Series(y, index=pd.MultiIndex.from_frame(per[["species", "sample"]]))


def _cell_mean(x: np.ndarray, cells: np.ndarray, keys: pd.MultiIndex, min_cells: int) -> pd.Series:
    ok = cells & np.isfinite(x)
    df = pd.DataFrame({"x": np.where(ok, x, np.nan), "n": ok}, index=keys)
    g = df.groupby(level=[0, 1], sort=False)
    mean, n = g["x"].mean(), g["n"].sum()
    return mean.where(n >= min_cells)


def _fits(
    table_cov: pd.DataFrame,
    values: pd.DataFrame,
    covs: list[str],
    logged: set[str],
    adjust: Design,
    level: float,
):  # noqa: ANN202 - a generator of ((species, covariate, readout), fit dict)
    for sp_name in pd.unique(table_cov.index.get_level_values(0)):
        in_sp = table_cov.index.get_level_values(0) == sp_name
        cov_sp, val_sp = table_cov[in_sp], values[in_sp]
        adj = cov_sp[list(adjust.columns)] if adjust.columns else None
        for c in covs:
            x = cov_sp[c].to_numpy(float)
            if c in logged:
                bad = np.flatnonzero(np.isfinite(x) & (x <= 0))
                if bad.size:
                    msg = (
                        f"covariate {c!r} is {x[bad[0]]:g} for sample "
                        f"{cov_sp.index[bad[0]][1]!r}; log2 needs values > 0 — fix it or "
                        f"pass log2_covariates=False"
                    )
                    raise MkcellError(msg)
                x = np.log2(np.where(np.isfinite(x), x, np.nan))
            for name in val_sp.columns:
                where = f"for {name} ~ {c} ({sp_name})"
                res = fit_slope(
                    val_sp[name].to_numpy(float),
                    x,
                    design=adjust,
                    covariates=adj,
                    level=level,
                    where=where,
                    term=c,
                    grid=GRID,
                )
                if not np.isfinite(res["p_value"]):
                    logger.warning("association %s: %s", where, res["note"])
                if "line" in res and c in logged:
                    res["line"]["x"] = np.exp2(res["line"]["x"])
                yield (str(sp_name), c, name), res


def _row(
    sp_name: str, cov: str, name: str, res: dict, unit: str, logged: bool, adjust: list[str]
) -> dict:
    per = f"per doubling of {cov}" if logged else f"per unit of {cov}"
    return {
        "species": sp_name,
        "covariate": cov,
        "readout": name,
        "effect": res["estimate"],
        "ci_low": res["ci_low"],
        "ci_high": res["ci_high"],
        "p_value": res["p_value"],
        "n_samples": res["n"],
        "se": res["se"],
        "df": res["df"],
        "unit": f"{unit} {per}",
        "transform": "log2" if logged else "none",
        "adjusted_for": " + ".join(adjust),
        "method": res["method"],
        "note": res["note"],
    }
