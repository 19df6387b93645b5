"""Where along Mk maturation cells sit, per sample, and how conditions shift it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from .. import _keys as K
from .._docs import KEY_ADDED_COPY_DOC, fill_doc
from .._settings import MkcellError, logger
from .._utils import check_adata, check_obs_key, log_write
from ._design import (
    INTERACTION_DOC,
    Contrasts,
    contrast_label,
    resolve_contrasts,
    sample_obs,
    warn_and_log,
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

MATURATION = K.MATURATION
PER_SAMPLE_COLUMNS = [
    "sample",
    "species",
    "condition",
    "n_lineage",
    "n_before",
    "n_after",
    "frac_before",
    "frac_after",
    "median_pseudotime",
    "mean_pseudotime",
]
CONTRAST_COLUMNS = [
    "species",
    "contrast",
    "mean_shift",
    "mean_shift_ci_low",
    "mean_shift_ci_high",
    "p_value",
    "p_adj",
    "p_min",
    "frac_after_a",
    "frac_after_b",
    "frac_after_diff",
    "frac_after_ci_low",
    "frac_after_ci_high",
    "frac_after_p_value",
    "wasserstein",
    "ks_stat",
    "n_samples_a",
    "n_samples_b",
    "method",
    "note",
]


@fill_doc(contrasts=INTERACTION_DOC, design=DESIGN_DOC, key_added_copy=KEY_ADDED_COPY_DOC)
def maturation_shift(
    adata: AnnData,
    condition_key: str = K.CONDITION,
    contrasts: Contrasts = None,
    *,
    sample_key: str = K.SAMPLE,
    species_key: str = K.SPECIES,
    pseudotime_key: str = K.PSEUDOTIME,
    state_key: str = K.STATE,
    transition: float | None = None,
    min_cells: int = 3,
    design: str = DEFAULT_DESIGN,
    key_added: str = MATURATION,
    copy: bool = False,
) -> AnnData | None:
    """Compare the position of Mk-lineage cells along maturation between conditions.

    Mk-lineage cells are those with a finite ``adata.obs[pseudotime_key]``. Each sample is
    summarised first: its mean pseudotime and its share of lineage cells past the MkP→Mk
    ``transition``. Per contrast ``[A, B]`` (within each species holding both conditions)
    these per-sample values are fitted with the ``design`` (least squares, t interval on
    the residual df; exact permutation p below 3 samples a group, see
    :func:`~mkcell.tl._inference.fit_contrast`). ``mean_shift`` is A − B of the mean
    pseudotime (negative: A sits earlier, e.g. a maturation arrest); ``p_value`` is its
    test and ``p_adj`` Benjamini–Hochberg over the table. ``frac_after_diff`` compares the
    shares past the transition the same way. The Wasserstein distance and the
    Kolmogorov–Smirnov statistic of the pooled pseudotimes describe the shapes only (no
    test: cells are not replicates). For an interaction ``(A vs B) vs (C vs D)``
    (:func:`~mkcell.tl._inference.fit_interaction`) the estimates are (A − B) − (C − D),
    ``frac_after_a`` / ``frac_after_b`` hold the differences A − B and C − D of the mean
    shares past the transition, ``n_samples_a`` / ``n_samples_b`` count the samples of
    A and B / C and D, and the shape statistics are NaN.

    Parameters
    ----------
    adata
        Annotated cells; only ``adata.obs`` is read.
    condition_key
        Column of ``adata.obs`` with the condition of each sample.
    {contrasts}
    sample_key
        Column with the sample (the replicate).
    species_key
        Column with the species; contrasts are computed within species.
    pseudotime_key
        Column with the Mk pseudotime in [0, 1] (NaN off the lineage).
    state_key
        Column with the cell states; used to place the transition when
        ``transition`` is None.
    transition
        Pseudotime where MkP turns into Mk. Default: the midpoint between the median
        pseudotime of ``MkP`` and that of ``Mk`` cells.
    min_cells
        Samples with fewer lineage cells are left out of the contrasts.
    {design}
    {key_added_copy}

    Returns
    -------
    ``None`` or a copy of ``adata`` (``copy=True``), with ``adata.uns[key_added]``:
    ``per_sample``, ``contrasts`` and ``params`` (including the ``transition`` used).
    """
    check_adata(adata, min_vars=0)
    check_obs_key(adata, pseudotime_key, what="pseudotime column (run mk.tl.trajectory first)")
    if min_cells < 1:
        msg = f"min_cells={min_cells} must be >= 1"
        raise MkcellError(msg)
    obs = sample_obs(adata, sample_key, condition_key, species_key)
    pt = pd.to_numeric(adata.obs[pseudotime_key], errors="coerce").to_numpy(float)
    on = np.isfinite(pt)
    if not on.any():
        msg = f"`adata.obs[{pseudotime_key!r}]` has no finite value; run mk.tl.trajectory first"
        raise MkcellError(msg)
    transition = _transition(adata, pt, state_key, transition)
    obs = obs.assign(pt=pt)

    per_sample = _per_sample(obs, transition)
    todo = resolve_contrasts(obs, contrasts, interactions=True)
    parsed = parse_design(design, condition_key)
    covariates = sample_covariates(adata, obs, parsed)
    lineage = obs[on]
    rows = [_contrast_row(lineage, per_sample, covariates, t, parsed, min_cells) for t in todo]
    table = pd.DataFrame(rows, columns=[c for c in CONTRAST_COLUMNS if c != "p_adj"])
    table.insert(table.columns.get_loc("p_value") + 1, "p_adj", bh(table["p_value"]))

    if copy:
        adata = adata.copy()
    adata.uns[key_added] = {
        "per_sample": per_sample,
        "contrasts": table,
        "params": {
            "condition_key": condition_key,
            "sample_key": sample_key,
            "species_key": species_key,
            "pseudotime_key": pseudotime_key,
            "state_key": state_key,
            "transition": float(transition),
            "contrasts": [list(c) for c in dict.fromkeys(tuple(t[1:]) for t in todo)],
            "min_cells": int(min_cells),
            "design": parsed.formula,
            "ci": "95% t interval on per-sample summaries (exact p below 3 samples a group)",
        },
    }
    log_write("uns", key_added)
    return adata if copy else None


def _transition(adata: AnnData, pt: np.ndarray, state_key: str, transition: float | None) -> float:
    if transition is not None:
        if not 0 <= float(transition) <= 1:
            msg = (
                f"transition={transition} is outside [0, 1]; "
                "give the pseudotime where MkP turn into Mk"
            )
            raise MkcellError(msg)
        return float(transition)
    if state_key not in adata.obs.columns:
        msg = (
            f"no `adata.obs[{state_key!r}]` to place the MkP→Mk transition; "
            "pass transition=<float> or state_key="
        )
        raise MkcellError(msg)
    states = adata.obs[state_key].astype(str).to_numpy()
    med = {}
    for s in (K.MKP, K.MK):
        vals = pt[(states == s) & np.isfinite(pt)]
        if vals.size == 0:
            msg = (
                f"no {s} cell with a pseudotime in `adata.obs[{state_key!r}]`; "
                "pass transition=<float>"
            )
            raise MkcellError(msg)
        med[s] = float(np.median(vals))
    value = 0.5 * (med[K.MKP] + med[K.MK])
    logger.info("MkP→Mk transition at pseudotime %.3f (midpoint of MkP and Mk medians)", value)
    return value


def _per_sample(obs: pd.DataFrame, transition: float) -> pd.DataFrame:
    rows = []
    for (sp_name, sample), g in obs.groupby(["species", "sample"], sort=False, observed=True):
        t = g["pt"].to_numpy()
        t = t[np.isfinite(t)]
        n = t.size
        before = int((t < transition).sum())
        rows.append(
            {
                "sample": sample,
                "species": sp_name,
                "condition": g["condition"].iat[0],
                "n_lineage": n,
                "n_before": before,
                "n_after": n - before,
                "frac_before": before / n if n else np.nan,
                "frac_after": (n - before) / n if n else np.nan,
                "median_pseudotime": float(np.median(t)) if n else np.nan,
                "mean_pseudotime": float(t.mean()) if n else np.nan,
            }
        )
    order = {c: i for i, c in enumerate(obs.attrs["condition_order"])}
    tab = pd.DataFrame(rows, columns=PER_SAMPLE_COLUMNS)
    tab = tab.assign(_o=tab["condition"].map(order)).sort_values(
        ["species", "_o", "sample"], kind="stable"
    )
    return tab.drop(columns="_o").reset_index(drop=True)


def _ks_stat(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.sort(x), np.sort(y)
    grid = np.concatenate([x, y])
    return float(
        np.max(
            np.abs(
                np.searchsorted(x, grid, "right") / x.size
                - np.searchsorted(y, grid, "right") / y.size
            )
        )
    )


def _contrast_row(
    lineage: pd.DataFrame,
    per_sample: pd.DataFrame,
    covariates: pd.DataFrame | None,
    todo: tuple[str, ...],
    design: Design,
    min_cells: int,
) -> dict:
    from scipy.stats import wasserstein_distance

    sp_name, *conds = todo
    a, b, label = conds[0], conds[1], contrast_label(conds)
    ps = per_sample[
        (per_sample["species"] == sp_name)
        & per_sample["condition"].isin(conds)
        & (per_sample["n_lineage"] >= min_cells)
    ]
    fits = contrast_table(
        ps[["mean_pseudotime", "frac_after"]],
        ps["condition"].to_numpy(),
        conds,
        design=design,
        covariates=covariate_rows(covariates, ps),
        where=f"for {label} ({sp_name})",
    )
    shift, after = fits.loc["mean_pseudotime"], fits.loc["frac_after"]
    if not np.isfinite(shift["p_value"]):
        warn_and_log(f"{sp_name}, {label}: {shift['note']}")
    sub = lineage[(lineage["species"] == sp_name) & lineage["sample"].isin(ps["sample"])]
    xa = sub.loc[sub["condition"] == a, "pt"].to_numpy()
    xb = sub.loc[sub["condition"] == b, "pt"].to_numpy()
    both = xa.size > 0 and xb.size > 0 and len(conds) == 2
    frac = ps.groupby("condition")["frac_after"].mean().reindex(conds).to_numpy(float)
    sides = frac if len(conds) == 2 else frac[[0, 2]] - frac[[1, 3]]
    return {
        "species": sp_name,
        "contrast": label,
        "mean_shift": shift["estimate"],
        "mean_shift_ci_low": shift["ci_low"],
        "mean_shift_ci_high": shift["ci_high"],
        "p_value": shift["p_value"],
        "p_min": shift["p_min"],
        "frac_after_a": sides[0],
        "frac_after_b": sides[1],
        "frac_after_diff": after["estimate"],
        "frac_after_ci_low": after["ci_low"],
        "frac_after_ci_high": after["ci_high"],
        "frac_after_p_value": after["p_value"],
        "wasserstein": float(wasserstein_distance(xa, xb)) if both else np.nan,
        "ks_stat": _ks_stat(xa, xb) if both else np.nan,
        "n_samples_a": int(shift["n_a"]),
        "n_samples_b": int(shift["n_b"]),
        "method": shift["method"],
        "note": shift["note"],
    }
