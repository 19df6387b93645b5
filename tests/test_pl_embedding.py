"""mk.pl.embedding draws every panel's points in one seeded random order."""

from __future__ import annotations

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import mkcell as mk


def _adata(n: int = 400) -> ad.AnnData:
    species = np.repeat(["mouse", "human"], n // 2)  # mouse first, as after concat_species
    a = ad.AnnData(obs=pd.DataFrame({"species": pd.Categorical(species)}, index=map(str, range(n))))
    a.obs["mk_pseudotime"] = np.linspace(0, 1, n)
    a.obsm["X_mk_umap"] = np.random.default_rng(0).normal(size=(n, 2))
    return a


def test_points_drawn_in_random_seeded_order():
    a = _adata()
    fig = mk.pl.embedding(a, color=["species", "mk_pseudotime"])
    ax = fig.axes[0]
    assert len(ax.collections) == 1  # one scatter: no category drawn on top of another
    xy = ax.collections[0].get_offsets()
    assert len(xy) == a.n_obs
    is_human = np.isin(np.asarray(xy), a.obsm["X_mk_umap"][a.obs["species"] == "human"]).all(1)
    last = is_human[-a.n_obs // 4 :]
    assert 0.2 < last.mean() < 0.8  # the last points drawn mix both species
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["human", "mouse"]
    again = mk.pl.embedding(a, color="species").axes[0].collections[0].get_offsets()
    np.testing.assert_array_equal(xy, again)  # seeded
    other = mk.pl.embedding(a, color="species", seed=1).axes[0].collections[0].get_offsets()
    assert not np.array_equal(xy, other)
    plt.close("all")
