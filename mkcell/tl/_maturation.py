"""Where along Mk maturation cells sit, per sample, and how conditions shift it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from .. import _keys as K
from .._docs import KEY_ADDED_COPY_DOC, fill_doc
from .._settings import MkcellError, logger
from .._utils import check_adata, check_obs_key, log_write, rng
from ._design import CONTRASTS_DOC, Contrasts, resolve_contrasts, sample_obs, warn_and_log

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
    "wasserstein",
    "wasserstein_ci_low",
    "wasserstein_ci_high",
    "ks_stat",
    "ks_ci_low",
    "ks_ci_high",
    "mean_shift",
    "mean_shift_ci_low",
    "mean_shift_ci_high",
    "frac_after_a",
    "frac_after_b",
    "n_samples_a",
    "n_samples_b",
    "n_boot",
    "note",
]


@fill_doc(contrasts=CONTRASTS_DOC, key_added_copy=KEY_ADDED_COPY_DOC)
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
    n_boot: int = 200,
    seed: int | None = 0,
    key_added: str = MATURATION,
    copy: bool = False,
) -> AnnData | None:
    """Compare the position of Mk-lineage cells along maturation between conditions.

    Mk-lineage cells are those with a finite ``adata.obs[pseudotime_key]``. Per sample,
    the share of them before and after the MkP→Mk ``transition`` is counted. Per
    contrast ``[A, B]`` (within each species holding both conditions) the pooled
    pseudotimes of A and B are compared by the Wasserstein distance, the
    Kolmogorov–Smirnov statistic and the signed shift of the mean (A − B; negative:
    A sits earlier, e.g. maturation arrest). 95% percentile bootstrap CIs resample
    **samples** within each condition (never cells). Distances are non-negative, so
    their bootstrap intervals never reach 0; read ``mean_shift`` for the direction.

    Parameters
    ----------
    adata
        Annotated cells; only ``adata.obs`` is read.
    condition_key
        Column of ``adata.obs`` with the condition of each sample.
    {contrasts}
    sample_key
        Column with the sample (the unit resampled by the bootstrap).
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
    n_boot
        Bootstrap replicates (0 disables the CIs).
    seed
        Seed of the bootstrap.
    {key_added_copy}

    Returns
    -------
    ``None`` or a copy of ``adata`` (``copy=True``), with ``adata.uns[key_added]``:
    ``per_sample``, ``contrasts`` and ``params`` (including the ``transition`` used).
    """
    check_adata(adata, min_vars=0)
    check_obs_key(adata, pseudotime_key, what="pseudotime column (run mk.tl.trajectory first)")
    if n_boot < 0:
        msg = f"n_boot={n_boot} must be >= 0"
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
    todo = resolve_contrasts(obs, contrasts)
    gen = rng(seed)
    lineage = obs[on]
    rows = [_contrast_row(lineage, per_sample, s, a, b, n_boot, gen) for s, a, b in todo]
    table = pd.DataFrame(rows, columns=CONTRAST_COLUMNS)

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
            "contrasts": [list(c) for c in dict.fromkeys((a, b) for _, a, b in todo)],
            "n_boot": int(n_boot),
            "seed": seed,
            "ci": "95% percentile bootstrap, samples resampled within condition",
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


def _stats(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    from scipy.stats import wasserstein_distance

    if x.size == 0 or y.size == 0:
        return np.nan, np.nan, np.nan
    return float(wasserstein_distance(x, y)), _ks_stat(x, y), float(x.mean() - y.mean())


def _contrast_row(
    lineage: pd.DataFrame,
    per_sample: pd.DataFrame,
    sp_name: str,
    a: str,
    b: str,
    n_boot: int,
    gen: np.random.Generator,
) -> dict:
    sub = lineage[lineage["species"] == sp_name]
    groups = {}
    for c in (a, b):
        s = sub[sub["condition"] == c]
        groups[c] = [g["pt"].to_numpy() for _, g in s.groupby("sample", sort=True, observed=True)]
    xa, xb = (np.concatenate(groups[c]) if groups[c] else np.array([]) for c in (a, b))
    w, ks, shift = _stats(xa, xb)
    ps = per_sample[per_sample["species"] == sp_name]
    frac = {
        c: ps.loc[ps["condition"] == c, "n_after"].sum()
        / max(ps.loc[ps["condition"] == c, "n_lineage"].sum(), 1)
        for c in (a, b)
    }
    n_a, n_b = len(groups[a]), len(groups[b])
    row = {
        "species": sp_name,
        "contrast": f"{a} vs {b}",
        "wasserstein": w,
        "ks_stat": ks,
        "mean_shift": shift,
        "frac_after_a": frac[a],
        "frac_after_b": frac[b],
        "n_samples_a": n_a,
        "n_samples_b": n_b,
        "n_boot": n_boot,
    }
    ci = dict.fromkeys(["wasserstein", "ks", "mean_shift"], (np.nan, np.nan))
    single = [
        f"{c} has {k} sample{'s' if k != 1 else ''} on the lineage"
        for c, k in ((a, n_a), (b, n_b))
        if k < 2
    ]
    note = ""
    if single:
        note = "no sample bootstrap possible: " + ", ".join(single)
        warn_and_log(f"{sp_name}, {a} vs {b}: {note}")
    elif n_boot > 0:
        boots = np.empty((n_boot, 3))
        for i in range(n_boot):
            ra = [groups[a][j] for j in gen.integers(0, n_a, n_a)]
            rb = [groups[b][j] for j in gen.integers(0, n_b, n_b)]
            boots[i] = _stats(np.concatenate(ra), np.concatenate(rb))
        lo, hi = np.nanpercentile(boots, [2.5, 97.5], axis=0)
        ci = {
            k: (float(lo[i]), float(hi[i]))
            for i, k in enumerate(["wasserstein", "ks", "mean_shift"])
        }
    return row | {
        "wasserstein_ci_low": ci["wasserstein"][0],
        "wasserstein_ci_high": ci["wasserstein"][1],
        "ks_ci_low": ci["ks"][0],
        "ks_ci_high": ci["ks"][1],
        "mean_shift_ci_low": ci["mean_shift"][0],
        "mean_shift_ci_high": ci["mean_shift"][1],
        "note": note,
    }
