"""Marrow states (HSC/MPP, MEP, MkP, Mk, erythroid, myeloid) from marker panels and clusters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._graph import knn_graph
from .._settings import MkcellError, MkcellWarning, logger
from .._utils import check_adata, check_obs_key, get_counts, log_write
from ..datasets._markers import marker_panels
from ..pp._hvg import species_gene_set

#: Panels with fewer genes present than this are not scored (their state is never called).
MIN_PANEL_GENES = 2


def lognorm(adata: AnnData, layer: str | None = None) -> sp.csr_matrix:
    """log1p of counts normalised to 10,000 per cell (a new sparse matrix)."""
    X = sp.csr_matrix(get_counts(adata, layer), dtype=np.float32)
    size = np.asarray(X.sum(1)).ravel()
    size[size == 0] = 1
    X = sp.csr_matrix(sp.diags(1e4 / size) @ X, dtype=np.float32)
    X.data = np.log1p(X.data)
    return X


def panel_scores(adata: AnnData, X: sp.csr_matrix) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Mean z-scored expression of each state's panel genes (cells x states)."""
    panels = marker_panels()
    scores, used = {}, {}
    mean = np.asarray(X.mean(0)).ravel()
    sq = np.asarray(X.multiply(X).mean(0)).ravel()
    sd = np.sqrt(np.maximum(sq - mean**2, 1e-12))
    for state, rows in panels.groupby("state", sort=False):
        genes = species_gene_set(set(rows["human"]), adata.var_names)
        idx = adata.var_names.get_indexer(sorted(genes))
        idx = idx[idx >= 0]
        used[state] = list(adata.var_names[idx])
        if idx.size < MIN_PANEL_GENES:
            continue
        z = (X[:, idx].toarray() - mean[idx]) / sd[idx]
        scores[state] = z.mean(1)
    return pd.DataFrame(scores, index=adata.obs_names), used


def annotate(
    adata: AnnData,
    *,
    labels_key: str | None = None,
    label_map: dict[str, str] | None = None,
    use_rep: str = K.LATENT,
    n_neighbors: int = 15,
    resolution: float = 1.0,
    smooth_steps: int = 2,
    seed: int = 0,
    layer: str | None = None,
    key_added: str = K.STATE,
    copy: bool = False,
) -> AnnData | None:
    """Call marrow states in both species: HSC/MPP, MEP, MkP, Mk, erythroid, myeloid, other.

    Evidence, combined per cell: (1) marker-panel scores (mean z-score of each
    panel, shipped with sources in ``mk.datasets.marker_panels()``), smoothed over
    the kNN graph of the integrated space; (2) the same scores averaged per Leiden
    cluster of that space. The state is the panel with the highest combined score
    (``other`` when no panel scores above 0); the confidence is the softmax
    probability of that state.

    Parameters
    ----------
    adata
        Raw counts and ``obsm[use_rep]`` (from :func:`mkcell.integrate.scvi`).
    labels_key
        Use these labels instead (optionally translated with ``label_map``); every
        resulting label must be one of the mkcell states.
    label_map
        ``{user label: mkcell state}``.
    use_rep
        Embedding for the kNN graph and clusters.
    n_neighbors, resolution
        kNN graph size and Leiden resolution.
    smooth_steps
        Rounds of kNN averaging of the per-cell scores.
    seed
        Leiden seed.
    layer
        Layer with raw counts.
    key_added
        ``obs`` column written; the confidence goes to ``obs['mk_state_confidence']``
        and the clusters to ``obs['mk_cluster']``.
    copy
        Return a copy instead of writing into ``adata``.
    """
    check_adata(adata)
    adata = adata.copy() if copy else adata
    if labels_key is not None:
        _from_labels(adata, labels_key, label_map, key_added)
        return adata if copy else None
    if use_rep not in adata.obsm:
        msg = f"no `adata.obsm[{use_rep!r}]`; run mk.integrate.scvi(adata) first, or pass labels_key="
        raise MkcellError(msg)
    import scanpy as sc

    X = lognorm(adata, layer)
    scores, used = panel_scores(adata, X)
    missing = [s for s in K.STATES if s != "other" and s not in scores]
    if K.MKP in missing or K.MK in missing:
        msg = (
            f"too few marker genes to score {missing} (need {MIN_PANEL_GENES}; present: "
            f"{ {s: used[s] for s in missing} }); pass labels_key= with your own labels"
        )
        raise MkcellError(msg)
    if missing:
        logger.warning("not scoring %s: fewer than %d panel genes present", missing, MIN_PANEL_GENES)

    g = knn_graph(np.asarray(adata.obsm[use_rep]), n_neighbors, seed)
    sc.tl.leiden(g, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=2, directed=False)
    conn = g.obsp["connectivities"]
    conn = sp.csr_matrix(conn + sp.identity(conn.shape[0]))
    P = sp.diags(1 / np.asarray(conn.sum(1)).ravel()) @ conn
    S = scores.to_numpy()
    for _ in range(smooth_steps):
        S = P @ S
    clusters = g.obs["leiden"].astype(str).to_numpy()
    cl_mean = pd.DataFrame(S, index=adata.obs_names).groupby(clusters).transform("mean").to_numpy()
    combined = 0.5 * S + 0.5 * cl_mean
    states = np.asarray(scores.columns)
    best = combined.argmax(1)
    label = states[best].astype(object)
    label[combined.max(1) <= 0] = "other"
    e = np.exp((combined - combined.max(1, keepdims=True)) * 3.0)
    conf = (e / e.sum(1, keepdims=True))[np.arange(len(best)), best]

    adata.obs[key_added] = pd.Categorical(label, categories=list(K.STATES))
    adata.obs[K.STATE_CONFIDENCE] = conf.astype(np.float32)
    adata.obs[K.STATE_CLUSTER] = pd.Categorical(clusters)
    counts = adata.obs[key_added].value_counts().to_dict()
    adata.uns[K.ANNOTATE] = {
        "params": {"use_rep": use_rep, "n_neighbors": n_neighbors, "resolution": resolution, "smooth_steps": smooth_steps, "seed": seed, "labels_key": None},
        "panels": pd.DataFrame({"state": list(used), "genes_used": [";".join(v) for v in used.values()]}),
        "counts": _counts_table(adata.obs[key_added]),
    }
    for state in (K.MKP, K.MK):
        if counts.get(state, 0) == 0:
            import warnings

            msg = f"no {state} cells were called; the trajectory needs them — check the data or pass labels_key="
            warnings.warn(msg, MkcellWarning, stacklevel=2)
    logger.info("states: %s", ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    for key in (key_added, K.STATE_CONFIDENCE, K.STATE_CLUSTER):
        log_write("obs", key)
    return adata if copy else None


def _counts_table(states: pd.Series) -> pd.DataFrame:
    """Cells per state as a table (state names such as 'HSC/MPP' cannot be h5 keys)."""
    vc = states.value_counts()
    return pd.DataFrame({"state": vc.index.astype(str), "n_cells": vc.to_numpy(dtype=int)})


def _from_labels(adata: AnnData, labels_key: str, label_map: dict[str, str] | None, key_added: str) -> None:
    check_obs_key(adata, labels_key, what="label column")
    labels = adata.obs[labels_key].astype(str)
    if label_map:
        labels = labels.map(lambda x: label_map.get(x, x))
    bad = sorted(set(labels) - set(K.STATES))
    if bad:
        msg = (
            f"labels in `adata.obs[{labels_key!r}]` that are not mkcell states: {bad[:8]}; "
            f"map them with label_map={{label: state}} onto {list(K.STATES)}"
        )
        raise MkcellError(msg)
    adata.obs[key_added] = pd.Categorical(labels, categories=list(K.STATES))
    adata.obs[K.STATE_CONFIDENCE] = np.float32(1.0)
    adata.uns[K.ANNOTATE] = {
        "params": {"labels_key": labels_key, "label_map": dict(label_map or {})},
        "counts": _counts_table(adata.obs[key_added]),
    }
    log_write("obs", key_added)
