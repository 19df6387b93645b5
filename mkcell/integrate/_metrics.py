"""Integration quality: scVI space vs an unintegrated PCA baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._graph import stored_distances
from .._jax import jax_x64
from .._settings import MkcellError, logger
from .._utils import check_obs_key, get_counts, log_write
from ..pp._normalize import log_normalize, log_normalize_matrix

N_NEIGHBORS = 30


def pca_baseline(
    adata: AnnData,
    *,
    n_comps: int = 30,
    features_key: str | None = K.HVG,
    key_added: str = K.PCA_BASELINE,
) -> None:
    """Unintegrated baseline: PCA of log-normalised counts of the integration features."""
    import scanpy as sc

    feats = (
        adata.var[features_key].to_numpy(bool)
        if features_key and features_key in adata.var
        else np.ones(adata.n_vars, bool)
    )
    if feats.all():  # the cached log-normalised counts (read, not modified, by the PCA)
        X = log_normalize(adata)
    else:  # scaled by each cell's total over the features (not over all genes, as the cache is)
        X = log_normalize_matrix(
            sp.csr_matrix(get_counts(adata), dtype=np.float32)[:, feats], copy=False
        )
    tmp = AnnData(X=X)
    n = int(min(n_comps, tmp.n_vars - 1, tmp.n_obs - 1))
    sc.pp.pca(tmp, n_comps=n, random_state=0)
    adata.obsm[key_added] = tmp.obsm["X_pca"].astype(np.float32)
    log_write("obsm", key_added)


def knn(X: np.ndarray, k: int = N_NEIGHBORS) -> np.ndarray:
    """Indices of the ``k`` nearest neighbours of each row (self excluded)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, X.shape[0] - 1)
    idx = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X, return_distance=False)
    return idx[:, 1:]


def _stored_knn(adata: AnnData, key: str, n_cells: int) -> np.ndarray | None:
    """:func:`knn` of all cells, from the stored graph when it agrees (else None).

    It agrees when it was built on ``obsm[key]`` with ``N_NEIGHBORS`` neighbours besides
    the cell itself, and all cells are used (no subsampling).
    """
    if n_cells != adata.n_obs:
        logger.debug("integration metrics on %d subsampled cells: their own kNN graph", n_cells)
        return None
    dist = stored_distances(adata, key, N_NEIGHBORS + 1, what="integration metrics")
    k = min(N_NEIGHBORS, adata.n_obs - 1)
    if dist is None or (np.diff(dist.indptr) != k).any():
        return None
    rows = np.repeat(np.arange(adata.n_obs), k)
    order = np.lexsort((dist.data, rows))  # by cell, then nearest first
    return dist.indices[order].reshape(adata.n_obs, k)


def cross_species_mixing(
    idx: np.ndarray, species: np.ndarray, labels: np.ndarray | None = None
) -> float:
    """Share of kNN neighbours from the other species, over what perfect mixing would give.

    With ``labels``, only neighbours of the same label count and the expectation is
    the other species' share among cells of that label (1 = perfect mixing, 0 = none).
    """
    labels = np.zeros(len(species), dtype=int) if labels is None else np.asarray(labels)
    same = labels[idx] == labels[:, None] if labels is not None else np.ones_like(idx, bool)
    other = species[idx] != species[:, None]
    n_same = same.sum(1)
    ok = n_same > 0
    observed = (other & same).sum(1)[ok] / n_same[ok]
    tab = pd.crosstab(labels, species)
    share = tab.div(tab.sum(1), axis=0)
    exp = np.array([1 - share.loc[lab, sp_] for lab, sp_ in zip(labels, species, strict=True)])[ok]
    keep = exp > 0
    if not keep.any():
        return float("nan")
    return float(observed[keep].mean() / exp[keep].mean())


def knn_purity(idx: np.ndarray, labels: np.ndarray) -> float:
    """Mean share of kNN neighbours with the cell's own label."""
    labels = np.asarray(labels)
    return float((labels[idx] == labels[:, None]).mean())


def _scib(
    X: np.ndarray, species: np.ndarray, samples: np.ndarray, labels: np.ndarray | None
) -> dict[str, float]:
    import scib_metrics
    from scib_metrics.nearest_neighbors import NeighborsResults
    from sklearn.neighbors import NearestNeighbors

    k = min(90, X.shape[0] - 1)
    dist, ind = NearestNeighbors(n_neighbors=k).fit(X).kneighbors(X)
    nn = NeighborsResults(indices=ind, distances=dist)
    out = {}
    with jax_x64(False):
        out["ilisi_species"] = float(scib_metrics.ilisi_knn(nn, species))
        out["ilisi_sample"] = float(scib_metrics.ilisi_knn(nn, samples))
        if labels is not None:
            out["clisi_label"] = float(scib_metrics.clisi_knn(nn, labels))
            out["silhouette_label"] = float(scib_metrics.silhouette_label(X, labels))
            out["silhouette_species"] = float(scib_metrics.silhouette_batch(X, labels, species))
            out["graph_connectivity"] = float(scib_metrics.graph_connectivity(nn, labels))
    return out


def metrics(
    adata: AnnData,
    *,
    batch_key: str = K.SAMPLE,
    species_key: str = K.SPECIES,
    label_key: str | None = None,
    embedding_key: str = K.LATENT,
    baseline_key: str = K.PCA_BASELINE,
    max_cells: int = 20_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Integration metrics for the scVI space against the unintegrated PCA baseline.

    Mixing: scib-metrics iLISI over species and samples, and the kNN share of
    other-species neighbours among cells of the same label relative to perfect mixing
    (``cross_species_mixing``). Conservation (when ``label_key`` is given): cLISI,
    label silhouette, species silhouette per label, graph connectivity and kNN label
    purity. Cells are subsampled to ``max_cells`` (stratified by nothing, seeded).

    Returns
    -------
    DataFrame with columns ``metric``, ``value``, ``baseline_value``; also stored in
    ``uns['mk_integration_metrics']``.
    """
    if embedding_key not in adata.obsm:
        msg = f"no `adata.obsm[{embedding_key!r}]`; run mk.integrate.scvi(adata) first"
        raise MkcellError(msg)
    for key in (batch_key, species_key) + ((label_key,) if label_key else ()):
        check_obs_key(adata, key)
    if baseline_key not in adata.obsm:
        pca_baseline(adata, key_added=baseline_key)
    rng = np.random.default_rng(seed)
    cells = np.arange(adata.n_obs)
    if adata.n_obs > max_cells:
        cells = np.sort(rng.choice(adata.n_obs, max_cells, replace=False))
    obs = adata.obs.iloc[cells]
    species = obs[species_key].astype(str).to_numpy()
    samples = obs[batch_key].astype(str).to_numpy()
    labels = obs[label_key].astype(str).to_numpy() if label_key else None
    rows = {}
    for name, key in (("value", embedding_key), ("baseline_value", baseline_key)):
        X = np.asarray(adata.obsm[key])[cells]
        idx = _stored_knn(adata, key, cells.size)
        idx = knn(X) if idx is None else idx
        vals = {}
        if len(set(species)) > 1:
            vals["cross_species_mixing"] = cross_species_mixing(idx, species, labels)
        if labels is not None:
            vals["knn_label_purity"] = knn_purity(idx, labels)
        vals.update(_scib(X, species, samples, labels))
        rows[name] = vals
    table = pd.DataFrame(rows).rename_axis("metric").reset_index()
    adata.uns[K.METRICS] = {
        "table": table,
        "params": {
            "batch_key": batch_key,
            "species_key": species_key,
            "label_key": label_key,
            "n_cells": int(len(cells)),
            "n_neighbors": N_NEIGHBORS,
        },
    }
    logger.info("integration metrics:\n%s", table.to_string(index=False))
    log_write("uns", K.METRICS)
    return table
