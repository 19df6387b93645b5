"""Map new samples onto a trained mkcell reference (scArches surgery + kNN transfer)."""

from __future__ import annotations

import os
import time
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._graph import knn_query
from .._settings import MkcellError, logger
from .._utils import check_adata, check_obs_key, get_counts, log_write
from ._reference import Reference, load_reference, log_profiles, profile_corr

#: A query needs at least this share of the reference's features (the rest is zero-filled).
MIN_FEATURE_SHARE = 0.5
#: A cell is ``unknown`` when its mean distance to its nearest reference cells exceeds
#: this many times the reference's own spacing there (see :func:`map_to_reference`).
UNKNOWN_DISTANCE = 3.0
#: Cells whose state got at least this share of the neighbours' weight mapped confidently.
CONFIDENT = 0.7
#: Prefix of the query's batch categories, so a query sample never reuses a reference batch.
QUERY_BATCH_PREFIX = "query:"


def query_epochs(n_cells: int) -> int:
    """Fine-tuning epochs: enough updates for a small query, few for a large one."""
    return int(np.clip(round(1e5 / max(n_cells, 1)), 20, 50))


def check_features(adata: AnnData, reference: Reference) -> list[str]:
    """The reference features the query lacks; refuse one with under :data:`MIN_FEATURE_SHARE`."""
    feats = reference.features
    have = feats.isin(adata.var_names)
    share = float(have.mean())
    if share < MIN_FEATURE_SHARE:
        msg = (
            f"the query holds only {int(have.sum())} of the reference's {len(feats)} features "
            f"({share:.0%}; need {MIN_FEATURE_SHARE:.0%}, e.g. {', '.join(map(str, feats[:3]))}); "
            "name the query's genes like the reference's (human symbols; mouse genes are mapped "
            "through orthologs), or use another reference"
        )
        raise MkcellError(msg)
    return [str(g) for g in feats[~have]]


def _query_matrix(
    adata: AnnData, ref: Reference, layer: str | None
) -> tuple[sp.csr_matrix, list[str]]:
    """Counts of the reference's features in the reference's order, missing ones zero-filled."""
    missing = check_features(adata, ref)
    feats = ref.features
    counts = sp.csr_matrix(get_counts(adata, layer), dtype=np.float32)
    pos = adata.var_names.get_indexer(feats)
    have = pos >= 0
    sel = sp.csr_matrix(counts[:, pos[have]])
    cols = np.flatnonzero(have)
    X = sp.csr_matrix(
        (sel.data, cols[sel.indices], sel.indptr), shape=(adata.n_obs, len(feats)), dtype=np.float32
    )
    return X, missing


def _thin(X: sp.csr_matrix, species: np.ndarray, setup: dict, seed: int) -> sp.csr_matrix:
    """Apply the reference's species equalisation (binomial thinning) to the query's counts."""
    ratio = setup.get("equalize_ratio")
    names = setup.get("equalize_species")
    if ratio is None or not names:
        return X
    from ..integrate._scvi import thin_to_ratio

    return thin_to_ratio(X, species == names[0], ratio, seed)


def _weights(dist: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Gaussian kernel weights of each row's neighbours, on the reference's local spacing."""
    w = np.exp(-((dist / np.maximum(scale[:, None], 1e-12)) ** 2))
    w = np.where(w.sum(1, keepdims=True) > 0, w, 1.0)
    return w / w.sum(1, keepdims=True)


def _spacing(Z: np.ndarray, k: int) -> np.ndarray:
    """Each reference cell's mean distance to its ``k`` nearest other reference cells."""
    d, _ = knn_query(Z, Z, k, exclude_self=True)
    return d.mean(1)


def map_to_reference(
    adata: AnnData,
    reference: str | os.PathLike | Reference,
    *,
    sample_key: str = K.SAMPLE,
    species_key: str = K.SPECIES,
    max_epochs: int | None = None,
    batch_size: int | None = None,
    n_neighbors: int = 15,
    unknown_distance: float = UNKNOWN_DISTANCE,
    accelerator: str = "auto",
    seed: int = 0,
    layer: str | None = None,
    key_added: str = K.STATE,
    copy: bool = False,
) -> AnnData | None:
    """Place new cells in a reference's latent space and transfer its states and pseudotime.

    1. **Features**: the query's genes are put in the reference's feature order; features
       the query lacks are zero-filled and listed (``uns['mk_map']['missing_features']``);
       below :data:`MIN_FEATURE_SHARE` of them the query is refused. The reference's
       species equalisation is applied to the query's counts.
    2. **Surgery** (scArches, scvi-tools ``SCVI.prepare_query_anndata`` /
       ``SCVI.load_query_data``): the query's samples become new batches; only their
       parameters are trained, the reference's weights stay frozen, so
       ``obsm['X_mk_scvi']`` is in the reference's latent space.
    3. **States**: a distance-weighted kNN vote among the ``n_neighbors`` nearest reference
       cells gives ``obs[key_added]`` and ``obs['mk_state_confidence']`` (the winning
       state's share of the weight). A cell whose mean distance to those neighbours is
       more than ``unknown_distance`` times the reference's own spacing there
       (``obs['mk_map_distance']``, about 1 for a cell like the reference's) is
       ``unknown``: an unseen cell type or tissue is flagged, not forced onto a state.
    4. **Pseudotime**: on cells called MkP or Mk, the weighted mean of the nearest
       reference Mk-lineage cells' pseudotime (``obs['mk_pseudotime']``) and its weighted
       SD (``obs['mk_pseudotime_spread']``); ``obs['mk_stage']`` from the reference's
       MkP / immature / mature boundaries; ``obs['mk_fate']`` and the UMAP position
       (``obsm['X_mk_umap']``) are carried over the same way.

    Parameters
    ----------
    adata
        Query cells with raw counts (``layers['counts']`` or ``X``), genes named as the
        reference's features (after :func:`mkcell.pp.concat_species`), and ``obs``
        columns ``sample_key`` and ``species_key``.
    reference
        A finished run folder (:func:`mkcell.tl.load_reference`), or a loaded reference.
    sample_key, species_key
        ``obs`` columns with the query's samples (new batches) and species.
    max_epochs
        Fine-tuning epochs (default :func:`query_epochs`: 20 at 5,000 cells, 50 at 2,000 or fewer).
    batch_size
        Minibatch size (default: the reference's training default, 512 on CPU).
    n_neighbors
        Reference neighbours per query cell.
    unknown_distance
        Distance (in units of the reference's local spacing) beyond which a cell is ``unknown``.
    accelerator
        ``"auto"``, ``"cpu"`` or ``"gpu"``.
    seed
        Seeds the thinning and the fine-tuning.
    layer
        Layer with raw counts.
    key_added
        ``obs`` column of the transferred states.
    copy
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    None, or a copy, with the keys above and ``uns['mk_map']`` (parameters, reference,
    features used and missing, share mapped confidently, per-sample summary, seconds).
    """
    import scvi

    t0 = time.perf_counter()
    check_adata(adata, min_obs=2)
    for key in (sample_key, species_key):
        check_obs_key(adata, key)
    ref = load_reference(reference)
    adata = adata.copy() if copy else adata
    species = adata.obs[species_key].astype(str).to_numpy()
    _check_query_species(species, ref)
    X, missing = _query_matrix(adata, ref, layer)
    if missing:
        logger.warning(
            "the query lacks %d of the reference's %d features (zero-filled; e.g. %s)",
            len(missing),
            len(ref.features),
            ", ".join(missing[:5]),
        )
    match = _profile_match(X, species, ref, missing)
    X = _thin(X, species, ref.setup, seed)
    samples = adata.obs[sample_key].astype(str).to_numpy()
    sub = _query_anndata(adata, X, species, samples, ref, layer, seed)
    fit = _fine_tune(sub, ref, max_epochs, batch_size, accelerator, seed)
    adata.obsm[K.LATENT] = fit.latent

    transfer = _transfer(fit.latent, ref, n_neighbors, unknown_distance, match)
    for key, values in transfer["obs"].items():
        adata.obs[key_added if key == K.STATE else key] = values
    if transfer["umap"] is not None:
        adata.obsm[K.UMAP] = transfer["umap"]
    states = adata.obs[key_added].astype(str).to_numpy()
    unknown = states == K.UNKNOWN
    conf = adata.obs[K.STATE_CONFIDENCE].to_numpy(float)
    confident = (~unknown) & (conf >= CONFIDENT)
    ref_umap = ref.cells.obsm.get(K.UMAP)
    adata.uns[K.MAP] = {
        "params": {
            "reference": str(ref.path),
            "sample_key": sample_key,
            "species_key": species_key,
            "max_epochs": fit.epochs,
            "n_neighbors": n_neighbors,
            "unknown_distance": unknown_distance,
            "confident": CONFIDENT,
            "accelerator": fit.accelerator,
            "seed": seed,
        },
        **_reference_summary(ref, missing),
        "n_cells": int(adata.n_obs),
        "n_unknown": int(unknown.sum()),
        "share_unknown": float(unknown.mean()),
        "share_confident": float(confident.mean()),
        "per_sample": _per_sample_summary(species, samples, unknown, confident, conf),
        "train_seconds": fit.train_seconds,
        "seconds": time.perf_counter() - t0,
        "scvi_tools_version": scvi.__version__,
    }
    if ref_umap is not None:
        adata.uns[K.MAP]["reference_umap"] = np.asarray(ref_umap, dtype=np.float32)[:, :2]
        adata.uns[K.MAP]["reference_state"] = ref.cells.obs[K.STATE].astype(str).to_numpy()
    _log_mapping(adata.n_obs, ref, time.perf_counter() - t0, fit, confident, unknown)
    log_write("obsm", K.LATENT)
    for key in (key_added, *[k for k in transfer["obs"] if k != K.STATE]):
        log_write("obs", key)
    log_write("uns", K.MAP)
    return adata if copy else None


def _check_query_species(species: np.ndarray, ref: Reference) -> None:
    """Refuse a query with cells of a species the reference lacks."""
    lacking = sorted(set(species) - set(ref.species))
    if lacking:
        msg = (
            f"the query holds {lacking[0]} cells but the reference {ref.path} "
            f"has only {ref.species} cells; "
            f"map them onto a reference that has {lacking[0]} cells, or leave them out"
        )
        raise MkcellError(msg)


def _query_anndata(
    adata: AnnData,
    X: sp.csr_matrix,
    species: np.ndarray,
    samples: np.ndarray,
    ref: Reference,
    layer: str | None,
    seed: int,
) -> AnnData:
    """The query as the reference model reads it: its samples as new batches, its covariates."""
    s = ref.setup
    batch_key, sp_key = s["batch_key"], s["species_key"]
    obs = pd.DataFrame(
        {
            batch_key: pd.Categorical([QUERY_BATCH_PREFIX + x for x in samples]),
            sp_key: pd.Categorical(species),
        },
        index=adata.obs_names,
    )
    sub = AnnData(X=X, obs=obs, var=pd.DataFrame(index=ref.features))
    if s.get("continuous_covariates"):
        from ..pp._cycle import cycle_scores

        cc = cycle_scores(adata, layer=layer, seed=seed).to_numpy(np.float32)
        for i, name in enumerate(s["continuous_covariates"]):
            sub.obs[name] = cc[:, i]
    return sub


class _FineTuned(NamedTuple):
    """The query's place in the reference's latent space, and how the surgery was trained."""

    latent: np.ndarray
    epochs: int
    accelerator: str
    train_seconds: float


def _fine_tune(
    sub: AnnData,
    ref: Reference,
    max_epochs: int | None,
    batch_size: int | None,
    accelerator: str,
    seed: int,
) -> _FineTuned:
    """Surgery (scArches): train the query's batch parameters on the frozen reference model."""
    import scvi

    from ..integrate._scvi import CPU_BATCH_SIZE, GPU_BATCH_SIZE, resolve_accelerator

    scvi.settings.seed = seed
    ref_model = ref.model()
    scvi.model.SCVI.prepare_query_anndata(sub, ref_model)
    acc = resolve_accelerator(accelerator)
    query = scvi.model.SCVI.load_query_data(sub, ref_model, accelerator=acc)
    epochs = max_epochs or query_epochs(sub.n_obs)
    t_train = time.perf_counter()
    query.train(
        max_epochs=epochs,
        accelerator=acc,
        devices=1,
        batch_size=batch_size or (GPU_BATCH_SIZE if acc == "gpu" else CPU_BATCH_SIZE),
        early_stopping=False,
        train_size=1.0,
        plan_kwargs={"weight_decay": 0.0},
    )
    train_seconds = time.perf_counter() - t_train
    Z = np.asarray(query.get_latent_representation(sub), dtype=np.float32)
    return _FineTuned(latent=Z, epochs=epochs, accelerator=acc, train_seconds=train_seconds)


def _reference_summary(ref: Reference, missing: list[str]) -> dict:
    """What ``uns['mk_map']`` records of the reference and of the features the query lacks."""
    return {
        "reference_version": str(ref.manifest.get("mkcell_version")),
        "reference_species": list(ref.species),
        "n_reference_cells": int(ref.cells.n_obs),
        "n_features": len(ref.features),
        "n_missing_features": len(missing),
        "missing_features": pd.DataFrame({"gene": missing}, dtype=str),
    }


def _per_sample_summary(
    species: np.ndarray,
    samples: np.ndarray,
    unknown: np.ndarray,
    confident: np.ndarray,
    conf: np.ndarray,
) -> pd.DataFrame:
    """Per query sample: cells, unknown cells and their share, share confident, mean confidence."""
    per_sample = (
        pd.DataFrame(
            {
                "species": species,
                "sample": samples,
                "unknown": unknown,
                "confident": confident,
                "conf": conf,
            }
        )
        .groupby(["species", "sample"], observed=True, sort=False)
        .agg(
            n_cells=("unknown", "size"),
            n_unknown=("unknown", "sum"),
            share_confident=("confident", "mean"),
            mean_confidence=("conf", "mean"),
        )
        .reset_index()
    )
    per_sample["share_unknown"] = per_sample["n_unknown"] / per_sample["n_cells"]
    return per_sample


def _log_mapping(
    n_obs: int,
    ref: Reference,
    seconds: float,
    fit: _FineTuned,
    confident: np.ndarray,
    unknown: np.ndarray,
) -> None:
    """Log how the mapping went; warn when many cells are far from every reference cell."""
    logger.info(
        "mapped %d cells onto %s in %.1f s (fine-tuning %d epochs: %.1f s): "
        "%.1f%% confidently, %d unknown (%.1f%%)",
        n_obs,
        ref.path,
        seconds,
        fit.epochs,
        fit.train_seconds,
        100 * confident.mean(),
        unknown.sum(),
        100 * unknown.mean(),
    )
    if unknown.mean() > 0.1:
        logger.warning(
            "%.0f%% of the query's cells are far from every reference cell (state 'unknown'): "
            "the query holds cells the reference lacks (another cell type or tissue?); "
            "their states and pseudotime are not transferred",
            100 * unknown.mean(),
        )


def _profile_match(
    X: sp.csr_matrix, species: np.ndarray, ref: Reference, missing: list[str]
) -> np.ndarray | None:
    """Each cell's best expression match to a same-species reference profile, over its calibration.

    For every (species, state) profile of the reference
    (:func:`mkcell.tl._reference.state_profiles`), the Pearson correlation of the cell's log
    expression with the profile, over the
    features the query has, is divided by the correlation that only
    ``PROFILE_QUANTILE`` of the profile's own reference cells fall below. The best ratio
    over the profiles is returned: below 1, the cell is less like any reference state
    than almost every reference cell is like its own.
    """
    prof = ref.profiles
    if prof is None or prof.n_obs == 0:
        return None
    present = np.flatnonzero(~ref.features.isin(missing))
    E = log_profiles(X, present)
    P = np.asarray(prof.X, dtype=np.float64)[:, present]
    groups = prof.obs
    best = np.full(X.shape[0], -np.inf)
    for sp_name in np.unique(species):
        rows = np.flatnonzero(groups["species"].astype(str).isin([sp_name]).to_numpy())
        if rows.size == 0:
            rows = np.flatnonzero((groups["species"].astype(str) == "all").to_numpy())
        m = species == sp_name
        cells = np.flatnonzero(m)
        for r in rows:
            corr = profile_corr(E, P[r], cells)
            low = max(float(groups["corr_low"].iloc[r]), 1e-6)
            best[m] = np.maximum(best[m], corr / low)
    return best


def _transfer(
    Z: np.ndarray, ref: Reference, k: int, unknown_distance: float, match: np.ndarray | None = None
) -> dict:
    """Transfer (kNN) states, pseudotime, stage, fate and UMAP position from the reference."""
    cells = ref.cells
    Zr = np.asarray(cells.obsm[K.LATENT], dtype=np.float32)
    k = int(min(k, Zr.shape[0] - 1))
    spacing = _spacing(Zr, k)
    dist, idx = knn_query(Zr, Z, k)
    local = np.median(spacing[idx], axis=1)
    distance = dist.mean(1) / np.maximum(local, 1e-12)
    w = _weights(dist, local)
    ref_states = cells.obs[K.STATE].astype(str).to_numpy()
    cats = [c for c in K.STATES if c in set(ref_states)] + sorted(set(ref_states) - set(K.STATES))
    code = pd.Categorical(ref_states, categories=cats).codes
    votes = np.zeros((Z.shape[0], len(cats)))
    for j in range(idx.shape[1]):
        np.add.at(votes, (np.arange(Z.shape[0]), code[idx[:, j]]), w[:, j])
    best = votes.argmax(1)
    conf = votes[np.arange(len(best)), best]
    state = np.asarray(cats, dtype=object)[best]
    unknown = distance > unknown_distance
    if match is not None:
        unknown |= match < 1
    state[unknown] = K.UNKNOWN
    out: dict[str, object] = {
        K.STATE: pd.Categorical(state, categories=list(K.MAPPED_STATES)),
        K.STATE_CONFIDENCE: conf.astype(np.float32),
        K.MAP_DISTANCE: distance.astype(np.float32),
    }
    if match is not None:
        out[K.MAP_PROFILE] = match.astype(np.float32)
    # pseudotime: weighted mean over the nearest reference cells with a pseudotime
    pt_ref = (
        cells.obs[K.PSEUDOTIME].to_numpy(float)
        if K.PSEUDOTIME in cells.obs
        else np.full(cells.n_obs, np.nan)
    )
    on_lin = np.isin(state, K.MK_LINEAGE)
    pt = np.full(Z.shape[0], np.nan)
    spread = np.full(Z.shape[0], np.nan)
    has_pt = np.flatnonzero(np.isfinite(pt_ref))
    if has_pt.size > 1 and on_lin.any():
        kk = int(min(k, has_pt.size - 1))
        d_l, i_l = knn_query(Zr[has_pt], Z[on_lin], kk)
        w_l = _weights(d_l, np.median(spacing[has_pt][i_l], axis=1))
        vals = pt_ref[has_pt][i_l]
        mean = (w_l * vals).sum(1)
        pt[on_lin] = mean
        spread[on_lin] = np.sqrt((w_l * (vals - mean[:, None]) ** 2).sum(1))
    out[K.PSEUDOTIME] = pt
    out[K.PSEUDOTIME_SPREAD] = spread
    bounds = cells.uns.get("maturation_stages", cells.uns.get("stages"))  # older references
    if isinstance(bounds, dict) and "plateau_pseudotime" in bounds:
        stage = np.full(Z.shape[0], None, dtype=object)
        stage[state == K.MKP] = K.MKP
        is_mk = (state == K.MK) & np.isfinite(pt)
        stage[is_mk] = np.where(
            pt[is_mk] >= float(bounds["plateau_pseudotime"]), "mature_Mk", "immature_Mk"
        )
        out[K.MK_STAGE] = pd.Categorical(stage, categories=[K.MKP, "immature_Mk", "mature_Mk"])
    if K.FATE in cells.obs:
        fate = cells.obs[K.FATE].to_numpy(float)
        f = (w * np.nan_to_num(fate[idx])).sum(1)
        f[unknown] = np.nan
        out[K.FATE] = f
    umap = None
    if K.UMAP in cells.obsm:
        U = np.asarray(cells.obsm[K.UMAP], dtype=np.float32)[:, :2]
        umap = np.einsum("ij,ijk->ik", w, U[idx]).astype(np.float32)
    return {"obs": out, "umap": umap}


#: Columns of :func:`pool_vs_reference`'s table.
POOL_VS_REFERENCE_COLUMNS = [
    "species",
    "sample",
    "condition",
    "n_cells",
    "n_mkp",
    "n_unknown",
    "n_denominator",
    "denominator",
    "mkp_fraction",
    "reference_condition",
    "n_reference_samples",
    "reference_min",
    "reference_median",
    "reference_max",
    "percentile",
    "logit_z",
    "range_low",
    "range_high",
    "in_range",
    "own_condition",
]


def _logit(n_mkp: np.ndarray, n_den: np.ndarray) -> np.ndarray:
    """Logit of an MkP fraction with half a cell added either side (finite at 0 and 1)."""
    p = (np.asarray(n_mkp, float) + 0.5) / (np.asarray(n_den, float) + 1.0)
    return np.log(p / (1 - p))


def pool_vs_reference(
    adata: AnnData,
    reference: str | os.PathLike | Reference,
    *,
    sample_key: str = K.SAMPLE,
    condition_key: str = K.CONDITION,
    species_key: str = K.SPECIES,
    state_key: str = K.STATE,
    key_added: str = K.POOL_VS_REFERENCE,
    copy: bool = False,
) -> AnnData | None:
    """Place each query sample's MkP fraction in the reference's per-condition distribution.

    Per species, the query's MkP fraction is computed with the denominator the reference
    used for that species (``uns['mk_pool']['denominator_choice']`` of the reference), so
    both sides count the same cells; ``unknown`` cells are counted (``n_unknown``) and,
    like ``other``, are in no denominator but ``all``. For each reference condition of
    the same species: ``percentile`` (share of reference samples below, ties half),
    ``logit_z`` (distance from the reference samples' mean in their SD, on the logit
    scale), the reference's min / median / max, and ``range_low`` / ``range_high``: the
    95% prediction interval of one new sample of that condition (logit scale, t with
    ``n - 1`` df, ``mean +- t * SD * sqrt(1 + 1/n)``, back-transformed; wide when the
    reference has few samples). ``in_range`` when the query lies within it.
    ``own_condition`` marks the reference condition named like the query's.

    Parameters
    ----------
    adata
        Mapped query cells (:func:`map_to_reference`).
    reference
        The reference run folder (or a loaded reference).
    sample_key, condition_key, species_key, state_key
        ``obs`` columns.
    key_added
        ``uns`` key of the table.
    copy
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    None or a copy, with ``uns[key_added]``: a table with the columns
    :data:`POOL_VS_REFERENCE_COLUMNS`, one row per query sample and reference condition.
    """
    from scipy import stats

    from ._pool import DENOMINATORS

    check_adata(adata, min_vars=0)
    for key in (sample_key, condition_key, species_key, state_key):
        check_obs_key(adata, key)
    ref = load_reference(reference, check=not isinstance(reference, Reference))
    adata = adata.copy() if copy else adata
    den_tab = ref.pool.groupby("species")["denominator"].first().to_dict()
    obs = pd.DataFrame(
        {
            "species": adata.obs[species_key].astype(str).to_numpy(),
            "sample": adata.obs[sample_key].astype(str).to_numpy(),
            "condition": adata.obs[condition_key].astype(str).to_numpy(),
            "state": adata.obs[state_key].astype(str).to_numpy(),
        }
    )
    rows = []
    for (sp_name, sample), g in obs.groupby(["species", "sample"], sort=False):
        den = den_tab.get(sp_name)
        if den is None:
            msg = (
                f"the reference has no pool table for {sp_name}; "
                f"map {sp_name} cells onto a reference with them"
            )
            raise MkcellError(msg)
        allowed = DENOMINATORS[den]
        n_den = int(len(g) if allowed is None else np.isin(g["state"], allowed).sum())
        n_mkp = int((g["state"] == K.MKP).sum())
        frac = n_mkp / n_den if n_den else np.nan
        base = {
            "species": sp_name,
            "sample": sample,
            "condition": g["condition"].iloc[0],
            "n_cells": len(g),
            "n_mkp": n_mkp,
            "n_unknown": int((g["state"] == K.UNKNOWN).sum()),
            "n_denominator": n_den,
            "denominator": den,
            "mkp_fraction": frac,
        }
        q = float(_logit(n_mkp, n_den)) if n_den else np.nan
        rs = ref.pool[(ref.pool["species"] == sp_name) & (ref.pool["n_denominator"] > 0)]
        for cond, r in rs.groupby("condition", sort=False):
            lr = _logit(r["n_mkp"].to_numpy(), r["n_denominator"].to_numpy())
            fr = r["mkp_fraction"].to_numpy(float)
            mu = float(lr.mean())
            sd = float(lr.std(ddof=1)) if lr.size > 1 else np.nan
            z = (q - mu) / sd if sd and np.isfinite(sd) and sd > 0 else np.nan
            half = (
                stats.t.ppf(0.975, lr.size - 1) * sd * np.sqrt(1 + 1 / lr.size)
                if np.isfinite(sd)
                else np.nan
            )
            lo, hi = 1 / (1 + np.exp(-(mu - half))), 1 / (1 + np.exp(-(mu + half)))
            pct = (
                float(((lr < q).sum() + 0.5 * (lr == q).sum()) / lr.size)
                if np.isfinite(q)
                else np.nan
            )
            rows.append(
                base
                | {
                    "reference_condition": cond,
                    "n_reference_samples": int(lr.size),
                    "reference_min": float(fr.min()),
                    "reference_median": float(np.median(fr)),
                    "reference_max": float(fr.max()),
                    "percentile": pct,
                    "logit_z": z,
                    "range_low": lo,
                    "range_high": hi,
                    "in_range": bool(np.isfinite(q) and np.isfinite(half) and abs(q - mu) <= half),
                    "own_condition": cond == base["condition"],
                }
            )
    table = pd.DataFrame(rows, columns=POOL_VS_REFERENCE_COLUMNS)
    adata.uns[key_added] = table
    log_write("uns", key_added)
    return adata if copy else None
