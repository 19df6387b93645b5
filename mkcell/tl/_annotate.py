"""Marrow states (HSC/MPP, MEP, MkP, Mk, erythroid, myeloid) from marker panels and clusters."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._graph import neighbors
from .._markers import MIN_PANEL_GENES, panel_scores
from .._qcmask import qc_passed
from .._settings import MkcellError, MkcellWarning, logger
from .._utils import check_adata, check_obs_key, log_write
from ..pp._normalize import log_normalize
from ._labels import align_labels, as_label_map, labels_to_states, read_labels


def annotate(
    adata: AnnData,
    *,
    labels: pd.Series | Mapping[str, str] | str | os.PathLike | None = None,
    labels_key: str | None = None,
    label_map: Mapping[str, str] | str | os.PathLike | None = None,
    use_rep: str = K.LATENT,
    n_neighbors: int = 15,
    resolution: float = 1.0,
    smooth_steps: int = 2,
    cluster_weight: float = 0.5,
    min_score: float = 0.0,
    softmax_scale: float = 3.0,
    seed: int = 0,
    layer: str | None = None,
    qc_key: str | None = K.QC,
    key_added: str = K.STATE,
    copy: bool = False,
) -> AnnData | None:
    """Call marrow states in both species: HSC/MPP, MEP, MkP, Mk, erythroid, myeloid, other.

    Evidence, combined per cell: (1) marker-panel scores (mean z-score of each
    panel, shipped with sources in ``mk.datasets.marker_panels()``), smoothed over
    the kNN graph of the integrated space; (2) the same scores averaged per Leiden
    cluster of that space. The combined score is ``(1 - cluster_weight) * cell +
    cluster_weight * cluster``; the state is the panel with the highest combined score
    (``other`` when none scores above ``min_score``); the confidence is the softmax
    probability of that state, over the combined scores times ``softmax_scale``.
    The kNN graph is kept in ``obsp['mk_connectivities']`` (reused by
    :func:`mkcell.tl.umap`) and the log-normalised counts in ``layers['mk_lognorm']``.

    Your own labels replace the marker-based calls (no integrated space needed):
    ``labels`` (a file or a Series of labels by cell name) or ``labels_key`` (an ``obs``
    column), translated with ``label_map``. Without a map every label must be a state;
    with one, labels it does not cover (and cells the labels do not list) become
    ``other``, counted in ``uns['mk_annotate']['unmapped']``.

    Parameters
    ----------
    adata
        Raw counts and ``obsm[use_rep]`` (from :func:`mkcell.integrate.scvi`).
    labels
        A CSV/TSV file with a cell column and a label column (see
        :func:`mkcell.tl.read_labels` for other column names), or labels indexed by cell
        name. Values may contain spaces and punctuation.
    labels_key
        ``obs`` column with labels (instead of ``labels``).
    label_map
        ``{user label: mkcell state}``, or a file: a two-column CSV ``label,state`` or a
        YAML mapping (:func:`mkcell.tl.read_label_map`).
    use_rep
        Embedding for the kNN graph and clusters.
    n_neighbors, resolution
        kNN graph size and Leiden resolution.
    smooth_steps
        Rounds of kNN averaging of the per-cell scores.
    cluster_weight
        Weight of the cluster-mean scores against the cell's own smoothed scores (0-1).
    min_score
        A cell whose best combined score is at most this is ``other``.
    softmax_scale
        Inverse temperature of the confidence: the combined scores are multiplied by it
        before the softmax (higher: confidences nearer 0 or 1).
    seed
        Leiden seed.
    layer
        Layer with raw counts.
    qc_key
        ``obs`` column of :func:`mkcell.pp.qc`'s verdicts: a flagged cell (a doublet, a
        platelet-coated or low-quality cell) gets no MkP or Mk call (it becomes ``other``),
        so the trajectory, scores and pool see only cells that passed. ``None``, or a
        missing column, calls every cell alike.
    key_added
        ``obs`` column written; the confidence goes to ``obs['mk_state_confidence']``
        and the clusters to ``obs['mk_cluster']``.
    copy
        Return a copy instead of writing into ``adata``.
    """
    check_adata(adata)
    if labels is not None and labels_key is not None:
        msg = "pass labels= (a file or Series) or labels_key= (an obs column), not both"
        raise MkcellError(msg)
    _check_rule(cluster_weight, min_score, softmax_scale)
    adata = adata.copy() if copy else adata
    if labels is not None or labels_key is not None:
        _from_labels(adata, labels, labels_key, label_map, key_added)
        _leave_out_flagged(adata, key_added, qc_key)
        return adata if copy else None
    if use_rep not in adata.obsm:
        msg = (
            f"no `adata.obsm[{use_rep!r}]`; run mk.integrate.scvi(adata) first, or pass labels_key="
        )
        raise MkcellError(msg)
    scores, used = _marker_scores(adata, layer)
    calls = _call_states(
        adata,
        scores,
        use_rep=use_rep,
        n_neighbors=n_neighbors,
        resolution=resolution,
        smooth_steps=smooth_steps,
        cluster_weight=cluster_weight,
        min_score=min_score,
        softmax_scale=softmax_scale,
        seed=seed,
    )
    adata.obs[key_added] = pd.Categorical(calls.label, categories=list(K.STATES))
    adata.obs[K.STATE_CONFIDENCE] = calls.confidence.astype(np.float32)
    adata.obs[K.STATE_CLUSTER] = pd.Categorical(calls.clusters)
    counts = adata.obs[key_added].value_counts().to_dict()
    adata.uns[K.ANNOTATE] = {
        "params": {
            "use_rep": use_rep,
            "n_neighbors": n_neighbors,
            "resolution": resolution,
            "smooth_steps": smooth_steps,
            "cluster_weight": cluster_weight,
            "min_score": min_score,
            "softmax_scale": softmax_scale,
            "seed": seed,
            "labels_key": None,
        },
        "method": "markers",
        "panels": pd.DataFrame(
            {"state": list(used), "genes_used": [";".join(v) for v in used.values()]}
        ),
        "counts": _counts_table(adata.obs[key_added]),
    }
    _leave_out_flagged(adata, key_added, qc_key)
    for state in (K.MKP, K.MK):
        if counts.get(state, 0) == 0:
            import warnings

            msg = (
                f"no {state} cells were called; the trajectory needs them — "
                "check the data or pass labels_key="
            )
            warnings.warn(msg, MkcellWarning, stacklevel=2)
    logger.info("states: %s", ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    for key in (key_added, K.STATE_CONFIDENCE, K.STATE_CLUSTER):
        log_write("obs", key)
    return adata if copy else None


def _leave_out_flagged(adata: AnnData, key: str, qc_key: str | None) -> None:
    """MkP / Mk calls of cells flagged by QC become ``other``; the record says how many."""
    flagged = ~qc_passed(adata, qc_key)
    hit = flagged & adata.obs[key].astype(str).isin(K.MK_LINEAGE).to_numpy()
    if hit.any():
        adata.obs.loc[hit, key] = K.OTHER
        adata.uns[K.ANNOTATE]["counts"] = _counts_table(adata.obs[key])
        logger.info(
            "%d QC-flagged cells (`adata.obs[%r]`) left out of the MkP / Mk calls",
            int(hit.sum()),
            qc_key,
        )
    adata.uns[K.ANNOTATE]["params"]["qc_key"] = qc_key
    adata.uns[K.ANNOTATE]["n_flagged_not_called"] = int(hit.sum())


def _marker_scores(adata: AnnData, layer: str | None) -> tuple[pd.DataFrame, dict]:
    """Marker-panel scores per cell and the genes used; refuse data too poor to call MkP."""
    X = log_normalize(adata, layer)
    scores, used = panel_scores(adata, X)
    missing = [s for s in K.STATES if s != "other" and s not in scores]
    if K.MKP in missing:
        msg = (
            f"too few MkP marker genes to call MkP (need {MIN_PANEL_GENES}; "
            f"present: {used[K.MKP]}); "
            "pass your own labels with labels= (a file) or labels_key="
        )
        raise MkcellError(msg)
    if K.MK in missing:
        logger.warning(
            "no mature-Mk markers (fewer than %d Mk panel genes present): "
            "MkP and the other states are still called, "
            "no cell is called Mk; pass labels= to call Mk yourself",
            MIN_PANEL_GENES,
        )
    if missing:
        logger.warning(
            "not scoring %s: fewer than %d panel genes present", missing, MIN_PANEL_GENES
        )
    return scores, used


class _Calls(NamedTuple):
    """Each cell's state, the softmax confidence of that state, and its Leiden cluster."""

    label: np.ndarray
    confidence: np.ndarray
    clusters: np.ndarray


def _call_states(
    adata: AnnData,
    scores: pd.DataFrame,
    *,
    use_rep: str,
    n_neighbors: int,
    resolution: float,
    smooth_steps: int,
    cluster_weight: float,
    min_score: float,
    softmax_scale: float,
    seed: int,
) -> _Calls:
    """Smooth the scores over the kNN graph, mix in their Leiden-cluster means, pick the best."""
    import scanpy as sc

    g = neighbors(adata, use_rep=use_rep, n_neighbors=n_neighbors, seed=seed)
    sc.tl.leiden(
        g, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=2, directed=False
    )
    conn = g.obsp["connectivities"]
    conn = sp.csr_matrix(conn + sp.identity(conn.shape[0]))
    P = sp.diags(1 / np.asarray(conn.sum(1)).ravel()) @ conn
    S = scores.to_numpy()
    for _ in range(smooth_steps):
        S = P @ S
    clusters = g.obs["leiden"].astype(str).to_numpy()
    cl_mean = pd.DataFrame(S, index=adata.obs_names).groupby(clusters).transform("mean").to_numpy()
    combined = (1 - cluster_weight) * S + cluster_weight * cl_mean
    states = np.asarray(scores.columns)
    best = combined.argmax(1)
    label = states[best].astype(object)
    label[combined.max(1) <= min_score] = "other"
    e = np.exp((combined - combined.max(1, keepdims=True)) * softmax_scale)
    conf = (e / e.sum(1, keepdims=True))[np.arange(len(best)), best]
    return _Calls(label=label, confidence=conf, clusters=clusters)


def _check_rule(cluster_weight: float, min_score: float, softmax_scale: float) -> None:
    if not 0 <= cluster_weight <= 1:
        msg = f"cluster_weight={cluster_weight}; choose a weight between 0 (cells) and 1 (clusters)"
        raise MkcellError(msg)
    if not np.isfinite(min_score):
        msg = f"min_score={min_score}; choose a finite score (default 0)"
        raise MkcellError(msg)
    if not (np.isfinite(softmax_scale) and softmax_scale > 0):
        msg = f"softmax_scale={softmax_scale}; choose a positive number (default 3.0)"
        raise MkcellError(msg)


def _counts_table(states: pd.Series) -> pd.DataFrame:
    """Cells per state as a table (state names such as 'HSC/MPP' cannot be h5 keys)."""
    vc = states.value_counts()
    return pd.DataFrame({"state": vc.index.astype(str), "n_cells": vc.to_numpy(dtype=int)})


def _from_labels(
    adata: AnnData,
    labels: pd.Series | Mapping[str, str] | str | os.PathLike | None,
    labels_key: str | None,
    label_map: Mapping[str, str] | str | os.PathLike | None,
    key_added: str,
) -> None:
    mapping = as_label_map(label_map)
    if labels_key is not None:
        check_obs_key(adata, labels_key, what="label column")
        values = adata.obs[labels_key].astype(str)
        where, source = f"`adata.obs[{labels_key!r}]`", f"obs[{labels_key!r}]"
    else:
        if isinstance(labels, str | os.PathLike):
            source = str(labels)
            labels = read_labels(labels)
        else:
            source = "a Series of labels"
            labels = pd.Series(labels) if isinstance(labels, Mapping) else labels
        labels = pd.Series(labels.astype(str).to_numpy(), index=labels.index.astype(str))
        where = f"labels from {Path(source).name if source != 'a Series of labels' else source}"
        values = align_labels(labels, adata.obs_names, where=where)
    states, unmapped = labels_to_states(values, mapping, where=where)
    adata.obs[key_added] = pd.Categorical(states.to_numpy(), categories=list(K.STATES))
    adata.obs[K.STATE_CONFIDENCE] = np.float32(1.0)
    n_unlabelled = int((values == "").sum())
    n_unmapped = int(unmapped["n_cells"].sum()) - n_unlabelled
    adata.uns[K.ANNOTATE] = {
        "params": {"labels_key": labels_key, "labels": source},
        # a table, not a dict: labels such as "MEP / early" cannot be HDF5 keys
        "label_map": pd.DataFrame(
            {"label": list(mapping or {}), "state": list((mapping or {}).values())}
        ),
        "method": "labels",
        "counts": _counts_table(adata.obs[key_added]),
        "unmapped": unmapped,
        "n_unmapped": n_unmapped,
        "n_unlabelled": n_unlabelled,
    }
    if n_unmapped or n_unlabelled:
        logger.warning(
            "%s: %d cells with labels the map does not cover (%s) "
            "and %d cells without a label are 'other'",
            where,
            n_unmapped,
            ", ".join(unmapped.loc[unmapped["label"] != "", "label"].head(5)),
            n_unlabelled,
        )
    logger.info(
        "states from %s: %s",
        where,
        ", ".join(f"{k} {v}" for k, v in adata.obs[key_added].value_counts().items() if v),
    )
    log_write("obs", key_added)
