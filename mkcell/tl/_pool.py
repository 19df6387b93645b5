"""MkP pool size per sample and its change between conditions, samples as replicates."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from .. import _keys as K
from .._docs import KEY_ADDED_COPY_DOC, fill_doc
from .._qcmask import qc_passed
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
    covariate_rows,
    fit_conditions,
    parse_design,
    sample_covariates,
    t_interval,
)

#: Pseudo-count of the per-sample log fraction (:func:`log2_fraction`): finite at 0 MkP.
PSEUDO_COUNT = 0.5
DENOMINATORS = {K.DENOM_MK_LINEAGE: K.MK_LINEAGE, K.DENOM_HSPC: K.HSPC, K.DENOM_ALL: None}
#: ``denominator`` values the API and the config accept ("auto" picks one of DENOMINATORS).
DENOMINATOR_CHOICES = ("auto", *DENOMINATORS)
#: ``denominator="auto"`` keeps MkP / (MkP + Mk) only when every sample of a species has at
#: least this many mature Mk cells ...
AUTO_MIN_MK = 5
#: ... and its MkP fraction of MkP + Mk at most this (above it the ratio saturates near 1).
SATURATED = 0.95
PER_SAMPLE_COLUMNS = [
    "sample",
    "species",
    "condition",
    "n_cells",
    "n_mkp",
    "mkp_fraction",
    "n_denominator",
    "denominator",
]
CONTRAST_COLUMNS = [
    "species",
    "contrast",
    "effect_log2",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adj",
    "p_min",
    "n_samples_a",
    "n_samples_b",
    "method",
    "note",
]
PER_CONDITION_COLUMNS = [
    "species",
    "condition",
    "n_samples",
    "n_mkp",
    "n_denominator",
    "mkp_fraction",
    "ci_low",
    "ci_high",
]
#: The per-sample summary each contrast is fitted on.
TRANSFORM = "per-sample log2((n_mkp + 0.5) / (n_denominator + 1))"


@fill_doc(contrasts=INTERACTION_DOC, design=DESIGN_DOC, key_added_copy=KEY_ADDED_COPY_DOC)
def progenitor_pool(
    adata: AnnData,
    sample_key: str = K.SAMPLE,
    condition_key: str = K.CONDITION,
    contrasts: Contrasts = None,
    *,
    species_key: str = K.SPECIES,
    state_key: str = K.STATE,
    denominator: str = "auto",
    design: str = DEFAULT_DESIGN,
    qc_key: str | None = K.QC,
    key_added: str = K.POOL,
    copy: bool = False,
) -> AnnData | None:
    """Quantify the MkP pool per sample and compare it between conditions.

    Each sample is one replicate. Per sample the MkP cells (``adata.obs[state_key] ==
    'MkP'``) are counted against a denominator and summarised as ``log2((n_mkp + 0.5) /
    (n_denominator + 1))``. Each contrast ``[A, B]`` is then fitted within every species
    that holds both conditions by least squares on those per-sample values with the
    ``design`` (``~ condition`` by default), with a t interval on the residual degrees of
    freedom. People differ in their MkP share whatever their cell number, so every sample
    weighs the same: no single large sample decides the effect, and cells are never the
    replicates. With fewer than 3 samples in a group the p-value is the exact permutation
    p of the sample labels (2 vs 2: never below 1/3, ``p_min``). ``p_adj`` is
    Benjamini–Hochberg over the table (every species and contrast).

    ``effect_log2`` is the mean per-sample ``log2`` MkP fraction of ``A`` minus that of
    ``B``: log2 of the ratio of their geometric-mean fractions (adjusted for the
    design's covariates). An interaction ``(A vs B) vs (C vs D)`` is fitted on the samples
    of its four conditions, one mean per condition plus the covariates: ``effect_log2`` is
    log2(A / B) − log2(C / D), ``n_samples_a`` counts A and B, ``n_samples_b`` C and D
    (:func:`~mkcell.tl._inference.fit_interaction`). Samples with an empty denominator
    are listed in the per-sample table (``mkp_fraction`` NaN) and left out of the test. A
    condition with a single sample gets its per-sample numbers and a point estimate, but ``ci_low``,
    ``ci_high`` and ``p_value`` are NaN, with a note and a
    :class:`~mkcell._settings.MkcellWarning`.

    Parameters
    ----------
    adata
        Annotated cells; only ``adata.obs`` is read.
    sample_key
        Column of ``adata.obs`` with the sample (replicate) of each cell.
    condition_key
        Column of ``adata.obs`` with the condition of each sample.
    {contrasts}
    species_key
        Column with the species; contrasts are computed within each species that has
        both conditions. If the column is missing, all cells form one group ``"all"``.
    state_key
        Column with the cell states (must contain ``MkP``).
    denominator
        ``"auto"`` (default): per species, ``"mk_lineage"`` when every sample has at
        least :data:`AUTO_MIN_MK` mature Mk cells (staged ``mature_Mk`` in ``obs['mk_stage']``
        when the trajectory ran, else called Mk) and an MkP share of MkP + Mk of at most
        :data:`SATURATED`, else ``"hspc"`` (mature Mk absent or scarce, as in CD34+-sorted
        or droplet marrow, where MkP / (MkP + Mk) saturates near 1 or counts only the
        immature Mk a sort lets through, and hides changes);
        the choice and its reason are in ``uns[key_added]['denominator_choice']``.
        ``"mk_lineage"`` (MkP + Mk), ``"hspc"`` (HSC/MPP, MEP, MkP) or ``"all"`` (all
        cells of the sample) force one. A warning is logged whenever a sample's fraction
        exceeds :data:`SATURATED`.
    {design}
    qc_key
        ``obs`` column of :func:`mkcell.pp.qc`'s verdicts: cells flagged there are left out
        of every count (numerator and denominator). ``None``, or a missing column, keeps
        every cell.
    {key_added_copy}

    Returns
    -------
    ``None`` or a copy of ``adata`` (``copy=True``), with ``adata.uns[key_added]``:
    ``per_sample`` (sample, species, condition, n_cells, n_mkp, mkp_fraction,
    n_denominator, denominator), ``contrasts`` (species, contrast, effect_log2,
    ci_low, ci_high, p_value, p_adj, p_min, n_samples_a, n_samples_b, method, note),
    ``per_condition`` (geometric-mean fraction of each condition and its 95% t
    interval over samples) and ``params``.
    """
    check_adata(adata, min_vars=0)
    if denominator not in DENOMINATOR_CHOICES:
        msg = f"denominator={denominator!r} is not known; choose one of {list(DENOMINATOR_CHOICES)}"
        raise MkcellError(msg)
    for key, what in (
        (sample_key, "sample column"),
        (condition_key, "condition column"),
        (state_key, "cell-state column"),
    ):
        check_obs_key(adata, key, what=what)
    passed = qc_passed(adata, qc_key)
    all_obs = sample_obs(adata, sample_key, condition_key, species_key)
    obs = all_obs[passed]
    states = adata.obs[state_key].astype(str).to_numpy()[passed]
    if not (states == K.MKP).any():
        logger.warning(
            "no cell of `adata.obs[%r]` is %r: every MkP count is zero", state_key, K.MKP
        )

    # mature Mk are the cells the trajectory staged mature (obs['mk_stage']) when it ran: in a
    # CD34+ sort the Mk that remain are immature, and MkP / (MkP + immature Mk) does not measure
    # the pool
    mature = (
        adata.obs[K.MK_STAGE].astype(str).to_numpy()[passed] == "mature_Mk"
        if K.MK_STAGE in adata.obs
        else states == K.MK
    )
    choice = choose_denominator(obs, states, mature, denominator)
    per_sample = pd.concat(
        [
            _per_sample(
                obs[obs["species"] == sp_name], states[(obs["species"] == sp_name).to_numpy()], den
            )
            for sp_name, den in zip(choice["species"], choice["denominator"], strict=True)
        ],
        ignore_index=True,
    ).sort_values("species", kind="stable", ignore_index=True)
    _warn_saturated(per_sample)
    todo = resolve_contrasts(obs, contrasts, interactions=True)
    parsed = parse_design(design, condition_key)
    covariates = sample_covariates(adata, all_obs, parsed)
    rows = [_contrast_row(per_sample, covariates, s, tuple(c), parsed) for s, *c in todo]
    table = pd.DataFrame(rows, columns=[c for c in CONTRAST_COLUMNS if c != "p_adj"])
    table.insert(table.columns.get_loc("p_value") + 1, "p_adj", bh(table["p_value"]))
    per_condition = _per_condition(per_sample)

    if copy:
        adata = adata.copy()
    adata.uns[key_added] = {
        "per_sample": per_sample,
        "contrasts": table,
        "per_condition": per_condition,
        "denominator_choice": choice,
        "params": {
            "sample_key": sample_key,
            "condition_key": condition_key,
            "species_key": species_key,
            "state_key": state_key,
            "denominator": denominator,
            "denominator_used": ";".join(
                f"{a}: {b}" for a, b in zip(choice["species"], choice["denominator"], strict=True)
            ),
            "contrasts": [list(c) for c in dict.fromkeys(tuple(t[1:]) for t in todo)],
            "design": parsed.formula,
            "method": TRANSFORM + "; OLS with the design, t interval (exact p below 3 samples)",
            "pseudo_count": PSEUDO_COUNT,
            "qc_key": qc_key,
            "n_flagged_left_out": int((~passed).sum()),
        },
    }
    log_write("uns", key_added)
    logger.info(
        "MkP pool: %d samples, %d contrast rows (`adata.uns[%r]['per_sample']`, ['contrasts'])",
        len(per_sample),
        len(table),
        key_added,
    )
    return adata if copy else None


def choose_denominator(
    obs: pd.DataFrame, states: np.ndarray, mature: np.ndarray, denominator: str
) -> pd.DataFrame:
    """The denominator of each species (species, denominator, reason); ``"auto"`` reads the data.

    ``mature`` marks mature Mk: cells staged ``mature_Mk`` by the trajectory when it ran, else
    every Mk call.
    """
    rows = []
    for sp_name in pd.unique(obs["species"]):
        in_sp = (obs["species"] == sp_name).to_numpy()
        if denominator != "auto":
            rows.append(
                {"species": sp_name, "denominator": denominator, "reason": "set by the user"}
            )
            continue
        tab = pd.DataFrame(
            {"sample": obs["sample"].to_numpy()[in_sp], "s": states[in_sp], "mature": mature[in_sp]}
        )
        n_mk = tab.groupby("sample", observed=True)["mature"].sum()
        n_mkp = tab.assign(x=tab["s"] == K.MKP).groupby("sample", observed=True)["x"].sum()
        n_mk_all = tab.assign(x=tab["s"] == K.MK).groupby("sample", observed=True)["x"].sum()
        share = n_mkp / (n_mkp + n_mk_all).replace(0, np.nan)
        low = n_mk[n_mk < AUTO_MIN_MK]
        sat = share[share > SATURATED]
        if low.empty and sat.empty:
            den, reason = (
                K.DENOM_MK_LINEAGE,
                f"every sample has >= {AUTO_MIN_MK} mature Mk cells (min {int(n_mk.min())}) "
                f"and MkP/(MkP+Mk) <= {SATURATED}",
            )
        elif not low.empty:
            den = "hspc"
            reason = (
                f"mature Mk absent or scarce: {len(low)} of {len(n_mk)} samples "
                f"with < {AUTO_MIN_MK} mature Mk cells (e.g. {low.index[0]}: {int(low.iloc[0])}); "
                "MkP/(MkP+Mk) would saturate near 1, so MkP/HSPC is used"
            )
        else:
            den = "hspc"
            reason = (
                f"MkP/(MkP+Mk) saturates (> {SATURATED}) in {len(sat)} samples "
                f"(e.g. {sat.index[0]}: {sat.iloc[0]:.3f}), so MkP/HSPC is used"
            )
        rows.append({"species": sp_name, "denominator": den, "reason": reason})
        logger.info("pool denominator for %s: %s (%s)", sp_name, den, reason)
    return pd.DataFrame(rows, columns=["species", "denominator", "reason"])


def _warn_saturated(per_sample: pd.DataFrame) -> None:
    sat = per_sample[per_sample["mkp_fraction"] > SATURATED]
    if not sat.empty:
        logger.warning(
            "the MkP fraction saturates (> %s) in %d samples (e.g. %s: %.3f of its %s cells): "
            "a change in MkP "
            "can hardly show; choose a wider denominator (denominator='hspc' or 'all')",
            SATURATED,
            len(sat),
            sat["sample"].iloc[0],
            sat["mkp_fraction"].iloc[0],
            sat["denominator"].iloc[0],
        )


def _per_sample(obs: pd.DataFrame, states: np.ndarray, denominator: str) -> pd.DataFrame:
    is_mkp = states == K.MKP
    allowed = DENOMINATORS[denominator]
    in_den = np.ones(states.size, bool) if allowed is None else np.isin(states, allowed)
    df = obs.assign(_mkp=is_mkp.astype(int), _den=in_den.astype(int), _one=1)
    g = df.groupby(["species", "sample"], observed=True, sort=False)
    tab = g.agg(
        condition=("condition", "first"),
        n_cells=("_one", "sum"),
        n_mkp=("_mkp", "sum"),
        n_denominator=("_den", "sum"),
    )
    tab = tab.reset_index()
    n_mkp, n_den = tab["n_mkp"].to_numpy(float), tab["n_denominator"].to_numpy(float)
    tab["mkp_fraction"] = np.divide(n_mkp, n_den, out=np.full(n_mkp.size, np.nan), where=n_den > 0)
    tab["denominator"] = denominator
    for col in ("n_cells", "n_mkp", "n_denominator"):
        tab[col] = tab[col].astype(int)
    order = {c: i for i, c in enumerate(obs.attrs["condition_order"])}
    tab = tab.assign(_o=tab["condition"].map(order)).sort_values(
        ["species", "_o", "sample"], kind="stable"
    )
    tab = tab.drop(columns="_o").reset_index(drop=True)
    empty = tab.loc[tab["n_denominator"] == 0, "sample"].tolist()
    if empty:
        logger.warning(
            "samples with no %s cells (mkp_fraction NaN, left out of tests): %s", denominator, empty
        )
    return tab[PER_SAMPLE_COLUMNS]


def _contrast_row(
    per_sample: pd.DataFrame,
    covariates: pd.DataFrame | None,
    sp_name: str,
    conditions: tuple[str, ...],
    design: Design,
) -> dict:
    """One row of the table: a pair A vs B, or the interaction (A vs B) vs (C vs D)."""
    label = contrast_label(conditions)
    tab = per_sample[(per_sample["species"] == sp_name) & per_sample["condition"].isin(conditions)]
    tab = tab[tab["n_denominator"] > 0]
    res = fit_conditions(
        log2_fraction(tab["n_mkp"], tab["n_denominator"]),
        tab["condition"].to_numpy(),
        conditions,
        design=design,
        covariates=covariate_rows(covariates, tab),
        where=f"for {label} ({sp_name})",
    )
    if not np.isfinite(res["p_value"]):
        warn_and_log(f"{sp_name}, {label}: {res['note']}")
    return {
        "species": sp_name,
        "contrast": label,
        "effect_log2": res["estimate"],
        "ci_low": res["ci_low"],
        "ci_high": res["ci_high"],
        "p_value": res["p_value"],
        "p_min": res["p_min"],
        "n_samples_a": res["n_a"],
        "n_samples_b": res["n_b"],
        "method": f"{TRANSFORM}; {res['method']}" if res["method"] else TRANSFORM,
        "note": res["note"],
    }


def log2_fraction(n_mkp: object, n_denominator: object) -> np.ndarray:
    """Per-sample ``log2((n_mkp + 0.5) / (n_denominator + 1))``: finite at 0 and at 1."""
    y, n = np.asarray(n_mkp, float), np.asarray(n_denominator, float)
    return np.log2((y + PSEUDO_COUNT) / (n + 2 * PSEUDO_COUNT))


def _per_condition(per_sample: pd.DataFrame) -> pd.DataFrame:
    """Geometric-mean MkP fraction of each condition, t interval over its samples."""
    rows = []
    for (sp_name, cond), g in per_sample.groupby(["species", "condition"], sort=False):
        g = g[g["n_denominator"] > 0]
        m, lo, hi = t_interval(log2_fraction(g["n_mkp"], g["n_denominator"]))
        rows.append(
            {
                "species": sp_name,
                "condition": cond,
                "n_samples": len(g),
                "n_mkp": int(g["n_mkp"].sum()),
                "n_denominator": int(g["n_denominator"].sum()),
                "mkp_fraction": 2.0**m,
                "ci_low": 2.0**lo,
                "ci_high": 2.0**hi,
            }
        )
    return pd.DataFrame(rows, columns=PER_CONDITION_COLUMNS)
