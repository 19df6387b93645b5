"""mk.tl.composition (scCODA) and mk.tl.da_neighbourhoods (Milo), both through pertpy."""

from __future__ import annotations

import importlib.util
import sys

import anndata as ad
import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.stats import spearmanr

import mkcell as mk
from mkcell._settings import MkcellError

HAS_PERTPY = all(importlib.util.find_spec(m) is not None for m in ("pertpy", "pydeseq2", "jax"))
needs_pertpy = pytest.mark.skipif(
    not HAS_PERTPY, reason="pertpy/pydeseq2 not installed: pip install 'mkcell[da]'"
)


def with_embedding(obs_adata, adata: ad.AnnData) -> ad.AnnData:
    """Labels as from the obs_adata builder plus a cheap latent space: PCA of log1p counts."""
    import scanpy as sc

    b = adata.copy()
    sc.pp.normalize_total(b, target_sum=1e4)
    sc.pp.log1p(b)
    sc.pp.pca(b, n_comps=15, random_state=0)
    a = obs_adata(adata)
    a.obsm["X_mk_scvi"] = b.obsm["X_pca"]
    return a


def x64() -> bool:
    import jax

    return bool(jax.config.jax_enable_x64)


def test_missing_pertpy_gives_actionable_error(sim, monkeypatch, obs_adata):
    monkeypatch.setitem(sys.modules, "pertpy", None)
    a = obs_adata(sim["mouse"])
    with pytest.raises(ImportError, match=r"pip install 'mkcell\[da\]'"):
        mk.tl.composition(a)
    a.obsm["X_mk_scvi"] = np.zeros((a.n_obs, 2))
    with pytest.raises(ImportError, match=r"pip install 'mkcell\[da\]'"):
        mk.tl.da_neighbourhoods(a)


def test_input_errors_before_pertpy(sim, obs_adata):
    a = obs_adata(sim["mouse"])
    with pytest.raises(MkcellError, match="X_mk_scvi"):
        mk.tl.da_neighbourhoods(a)
    with pytest.raises(MkcellError, match="conditions present per species: mouse"):
        mk.tl.composition(a, reference="baseline")


@needs_pertpy
def test_composition_sccoda(sim, tmp_path, obs_adata):
    a = obs_adata(sim["mouse"])  # one species: one model, keeps the sampler short
    before = x64()
    mk.tl.composition(
        a, num_samples=1000, num_warmup=200, nuts_kwargs={"max_tree_depth": 6}, seed=0
    )
    assert x64() == before  # pertpy's global 64-bit switch is undone
    res = a.uns["mk_composition"]
    eff, counts = res["effects"], res["counts"]
    assert list(eff.columns[:4]) == ["species", "contrast", "cell_type", "effect"]
    assert set(eff["contrast"]) == {"MDS vs control", "MDS_drug vs control"}
    assert set(eff["cell_type"]) == {"HSC/MPP", "MEP", "MkP", "Mk", "erythroid", "myeloid"}
    assert eff["credible"].dtype == bool
    assert np.isfinite(eff[["hdi_low", "hdi_high", "inclusion_probability"]].to_numpy(float)).all()
    assert (eff["hdi_low"] <= eff["hdi_high"]).all()
    # MkP share rises in MDS: its posterior is not centred below 0
    mkp = eff[
        (eff["species"] == "mouse")
        & (eff["contrast"] == "MDS vs control")
        & (eff["cell_type"] == "MkP")
    ].iloc[0]
    assert mkp["hdi_high"] > 0
    np.testing.assert_allclose(counts.groupby(["species", "sample"])["fraction"].sum(), 1)
    assert counts["n_cells"].sum() == a.n_obs
    assert res["params"]["reference"] == {"mouse": "control"}
    a.write_h5ad(tmp_path / "comp.h5ad")
    back = ad.read_h5ad(tmp_path / "comp.h5ad").uns["mk_composition"]
    assert len(back["effects"]) == len(eff)


@needs_pertpy
def test_da_neighbourhoods_milo(sim, tmp_path, obs_adata):
    a = with_embedding(obs_adata, sim["mouse"])
    before = x64()
    mk.tl.da_neighbourhoods(a, contrasts=[["MDS", "control"]], n_neighbors=30, seed=0)
    assert x64() == before
    res = a.uns["mk_milo"]
    nh = res["nhoods"]
    assert list(nh.columns[:8]) == [
        "species",
        "contrast",
        "nhood",
        "index_cell",
        "n_cells",
        "logFC",
        "PValue",
        "SpatialFDR",
    ]
    assert len(nh) > 20 and (nh["contrast"] == "MDS vs control").all()
    assert nh["index_cell"].isin(a.obs_names).all()
    assert np.isfinite(nh["logFC"]).mean() > 0.9
    assert ((nh["SpatialFDR"] >= 0) & (nh["SpatialFDR"] <= 1)).all()
    mpt = nh["mean_pseudotime"].dropna()
    assert len(mpt) > 5 and mpt.between(0, 1).all()
    # MDS piles cells up early on the Mk lineage: logFC falls along pseudotime
    lin = nh[nh["frac_lineage"] > 0.5]
    assert spearmanr(lin["mean_pseudotime"], lin["logFC"]).statistic < 0
    assert len(res["by_pseudotime"]) == 5
    a.write_h5ad(tmp_path / "milo.h5ad")
    assert len(ad.read_h5ad(tmp_path / "milo.h5ad").uns["mk_milo"]["nhoods"]) == len(nh)
    fig = mk.pl.da_neighbourhoods(a, save=tmp_path / "milo.png")
    assert isinstance(fig, Figure) and (tmp_path / "milo.png").stat().st_size > 0


@needs_pertpy
def test_da_neighbourhoods_skips_single_sample_contrast(sim, obs_adata):
    from mkcell._settings import MkcellWarning

    a = with_embedding(obs_adata, sim["mouse"])
    a = a[~a.obs["sample"].isin(["mouse_control_2", "mouse_control_3", "mouse_control_4"])].copy()
    with pytest.warns(MkcellWarning, match="control has fewer than 2 samples"):
        mk.tl.da_neighbourhoods(a, contrasts=[["MDS", "control"]])
    assert len(a.uns["mk_milo"]["nhoods"]) == 0
    assert a.uns["mk_milo"]["params"]["skipped"] == ["mouse: MDS vs control"]
