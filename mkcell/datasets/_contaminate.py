"""Planted truth for quality control: heterotypic doublets and platelet-coated cells.

Both take simulated marrow (:func:`mkcell.datasets.simulate_marrow`, raw counts in ``X``,
``obs['true_state']``) and return a new AnnData whose truth columns say which cells were
touched, so that :func:`mkcell.pp.qc` can be scored against them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._platelet import platelet_profile
from .._settings import MkcellError, logger
from .._utils import check_adata, check_obs_key, get_counts

#: Truth columns written to ``obs``.
TRUE_DOUBLET = "true_doublet"
TRUE_DOUBLET_PARTNER = "true_doublet_partner_state"
TRUE_PLATELET = "true_platelet_coated"


def plant_doublets(
    adata: AnnData,
    *,
    rate: float = 0.05,
    mk_myeloid_share: float = 0.3,
    sample_key: str = K.SAMPLE,
    state_key: str = "true_state",
    seed: int = 0,
) -> AnnData:
    """Merge pairs of cells of different states within each sample into heterotypic doublets.

    A doublet holds the summed counts of its two cells and keeps the first cell's name and
    ``obs``; the second cell is removed (both were in one droplet), so ``rate`` is the share
    of doublets among the returned cells. ``mk_myeloid_share`` of the doublets pair an
    Mk-lineage cell (MkP or Mk) with a myeloid cell (monocyte-like), the pairs most easily
    mistaken for platelet-primed myeloid cells; the rest pair cells of any two states.

    Parameters
    ----------
    adata
        Raw counts (``layers['counts']`` or ``X``) and the true state in ``obs[state_key]``.
    rate
        Share of doublets among the returned cells, per sample (0 to 0.5).
    mk_myeloid_share
        Share of doublets that are Mk-lineage x myeloid (0 to 1).
    sample_key, state_key
        ``obs`` columns with the sample (doublets form within one sample) and the true state.
    seed
        Random seed.

    Returns
    -------
    A new AnnData (counts in ``X``) with ``obs['true_doublet']`` (bool) and
    ``obs['true_doublet_partner_state']`` (the second cell's state; empty for singlets).
    """
    _check(adata, sample_key, state_key)
    if not 0 <= rate <= 0.5 or not 0 <= mk_myeloid_share <= 1:
        msg = f"rate={rate}, mk_myeloid_share={mk_myeloid_share}; use 0-0.5 and 0-1"
        raise MkcellError(msg)
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(get_counts(adata))
    states = adata.obs[state_key].astype(str).to_numpy()
    first, second = [], []
    for idx in adata.obs.groupby(sample_key, observed=True).indices.values():
        a, b = _pairs(rng, np.asarray(idx), states, rate, mk_myeloid_share)
        first += a
        second += b
    first, second = np.asarray(first, int), np.asarray(second, int)
    add = sp.csr_matrix(
        (np.ones(first.size), (first, second)), shape=(adata.n_obs, adata.n_obs)
    )  # row i of add @ X is the partner's counts of doublet i
    summed = X + add @ X
    keep = np.setdiff1d(np.arange(adata.n_obs), second)
    obs = adata.obs.copy()
    obs[TRUE_DOUBLET] = False
    obs.loc[obs.index[first], TRUE_DOUBLET] = True
    partner = np.full(adata.n_obs, "", dtype=object)
    partner[first] = states[second]
    obs[TRUE_DOUBLET_PARTNER] = partner
    out = AnnData(
        X=sp.csr_matrix(summed[keep], dtype=np.float32), obs=obs.iloc[keep], var=adata.var.copy()
    )
    out.uns = {k: v for k, v in adata.uns.items() if k == K.TRUTH}
    logger.info("planted %d heterotypic doublets in %d cells", first.size, out.n_obs)
    return out


def _pairs(
    rng: np.random.Generator, idx: np.ndarray, states: np.ndarray, rate: float, mk_share: float
) -> tuple[list[int], list[int]]:
    """Disjoint (first, second) cell pairs of one sample, of different states."""
    n_pairs = round(rate * idx.size / (1 + rate))
    free = set(idx.tolist())
    first, second = [], []
    st = states[idx]
    lineage, myeloid = idx[np.isin(st, K.MK_LINEAGE)], idx[st == K.MYELOID]
    n_mk = min(round(mk_share * n_pairs), lineage.size, myeloid.size)
    for a, b in zip(
        rng.choice(lineage, n_mk, replace=False),
        rng.choice(myeloid, n_mk, replace=False),
        strict=True,
    ):
        first.append(int(b) if rng.uniform() < 0.5 else int(a))
        second.append(int(a) if first[-1] == b else int(b))
        free -= {int(a), int(b)}
    tries = 0
    while len(first) < n_pairs and tries < 50 * n_pairs:
        tries += 1
        a, b = rng.choice(np.fromiter(free, int, len(free)), 2, replace=False)
        if states[a] != states[b]:
            first.append(int(a))
            second.append(int(b))
            free -= {int(a), int(b)}
    return first, second


def coat_with_platelets(
    adata: AnnData,
    *,
    fraction: float = 0.15,
    samples: Sequence[str] | None = None,
    load: float = 0.05,
    sample_key: str = K.SAMPLE,
    state_key: str = "true_state",
    seed: int = 0,
) -> AnnData:
    """Add platelet transcripts to a share of the non-Mk cells, as platelets stuck to them would.

    Each coated cell gains a Poisson number of counts with mean ``load`` x its own total
    (the load varies between cells, log-normal with SD 0.5), spread over the platelet
    profile (PPBP, PF4, NRGN, GNG11, TUBB1, GP9, ITGA2B, GP1BB, ...: the genes of it in
    ``var_names``). MkP and Mk are never coated.

    Parameters
    ----------
    adata
        Raw counts (``layers['counts']`` or ``X``) and the true state in ``obs[state_key]``.
    fraction
        Share of the non-Mk-lineage cells coated in each chosen sample (0 to 1).
    samples
        Samples to coat (default all).
    load
        Median platelet counts added, as a share of the cell's own counts.
    sample_key, state_key
        ``obs`` columns with the sample and the true state.
    seed
        Random seed.

    Returns
    -------
    A new AnnData (counts in ``X``) with ``obs['true_platelet_coated']`` (bool).
    """
    _check(adata, sample_key, state_key)
    if not 0 <= fraction <= 1 or load <= 0:
        msg = f"fraction={fraction}, load={load}; use a fraction in 0-1 and a load above 0"
        raise MkcellError(msg)
    profile = platelet_profile(adata.var_names)
    if not profile:
        msg = "no platelet gene (PPBP, PF4, ...) in `adata.var_names`; pass gene symbols"
        raise MkcellError(msg)
    chosen = _chosen_samples(adata, samples, sample_key)
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(get_counts(adata), dtype=np.float32)
    lib = np.asarray(X.sum(1)).ravel()
    non_mk = ~adata.obs[state_key].astype(str).isin(K.MK_LINEAGE).to_numpy()
    eligible = non_mk & adata.obs[sample_key].astype(str).isin(chosen).to_numpy()
    coated = np.zeros(adata.n_obs, bool)
    for idx in adata.obs[eligible].groupby(sample_key, observed=True).indices.values():
        cells = np.flatnonzero(eligible)[idx]
        coated[rng.choice(cells, round(fraction * cells.size), replace=False)] = True
    rows = np.flatnonzero(coated)
    mean = load * lib[rows] * rng.lognormal(0, 0.5, rows.size)
    genes = adata.var_names.get_indexer(list(profile))
    added = rng.multinomial(rng.poisson(mean), np.fromiter(profile.values(), float))
    extra = sp.csr_matrix(
        (added.ravel(), (np.repeat(rows, genes.size), np.tile(genes, rows.size))),
        shape=X.shape,
        dtype=np.float32,
    )
    obs = adata.obs.copy()
    obs[TRUE_PLATELET] = coated
    out = AnnData(X=sp.csr_matrix(X + extra), obs=obs, var=adata.var.copy())
    out.uns = {k: v for k, v in adata.uns.items() if k == K.TRUTH}
    logger.info("coated %d cells with platelet transcripts in %d samples", rows.size, len(chosen))
    return out


def _check(adata: AnnData, sample_key: str, state_key: str) -> None:
    check_adata(adata)
    check_obs_key(adata, sample_key, what="sample column")
    check_obs_key(adata, state_key, what="true-state column (from mk.datasets.simulate_marrow)")


def _chosen_samples(adata: AnnData, samples: Sequence[str] | None, key: str) -> list[str]:
    have = pd.unique(adata.obs[key].astype(str))
    if samples is None:
        return list(have)
    if isinstance(samples, str):
        samples = [samples]
    missing = [s for s in samples if s not in set(have)]
    if missing:
        msg = f"samples {missing} are not in `adata.obs[{key!r}]`; choose from {list(have)[:10]}"
        raise MkcellError(msg)
    return list(samples)
