"""The annotation rule's numbers are parameters; annotate and umap share one graph and lognorm."""

from __future__ import annotations

import numpy as np
import pytest
import scanpy as sc

import mkcell as mk
from mkcell import _keys as K
from mkcell._settings import MkcellError, MkcellWarning


@pytest.fixture
def marrow(sim):
    """Human cells with a cheap latent space (PCA of log counts) standing in for scVI."""
    a = sim["human"]
    b = a.copy()
    sc.pp.normalize_total(b, target_sum=1e4)
    sc.pp.log1p(b)
    sc.pp.pca(b, n_comps=10, random_state=0)
    a.obsm[K.LATENT] = b.obsm["X_pca"].astype(np.float32)
    return a


def test_defaults_recorded_and_explicit_defaults_agree(marrow):
    a = marrow.copy()
    mk.tl.annotate(a)
    p = a.uns[K.ANNOTATE]["params"]
    assert (p["cluster_weight"], p["min_score"], p["softmax_scale"]) == (0.5, 0.0, 3.0)
    b = mk.tl.annotate(marrow, cluster_weight=0.5, min_score=0.0, softmax_scale=3.0, copy=True)
    assert (a.obs[K.STATE] == b.obs[K.STATE]).all()
    assert (a.obs[K.STATE_CONFIDENCE] == b.obs[K.STATE_CONFIDENCE]).all()
    assert K.LOGNORM in a.layers and K.CONNECTIVITIES in a.obsp


def test_rule_parameters_act(marrow):
    a = marrow
    mk.tl.annotate(a)
    conf = a.obs[K.STATE_CONFIDENCE].mean()
    mk.tl.annotate(a, softmax_scale=10.0)
    assert a.obs[K.STATE_CONFIDENCE].mean() > conf
    mk.tl.annotate(a, cluster_weight=1.0)  # the cluster mean alone: one state per cluster
    per_cluster = a.obs.groupby(K.STATE_CLUSTER, observed=True)[K.STATE].nunique()
    assert (per_cluster == 1).all()
    with pytest.warns(MkcellWarning, match="no Mk(P)? cells were called"):
        mk.tl.annotate(a, min_score=1e6)
    assert (a.obs[K.STATE] == "other").all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cluster_weight": 1.5}, "cluster_weight=1.5"),
        ({"softmax_scale": 0.0}, "softmax_scale=0.0"),
        ({"min_score": float("nan")}, "min_score=nan"),
    ],
)
def test_bad_rule_parameters(marrow, kwargs, match):
    with pytest.raises(MkcellError, match=match):
        mk.tl.annotate(marrow, **kwargs)


def test_umap_reuses_the_annotation_graph(marrow, builds):
    mk.tl.annotate(marrow)
    mk.tl.umap(marrow)
    assert builds[0] == 1 and K.UMAP in marrow.obsm
