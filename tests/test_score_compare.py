"""compare_scores (samples as replicates), score_trends and their plot; one contrast module."""

from __future__ import annotations

import importlib.util

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import mkcell as mk
from mkcell._settings import MkcellError, MkcellWarning

E2F = "mk_score_e2f_targets"


def _prep(adata):
    mk.tl.score(adata)
    adata.obs["mk_state"] = adata.obs["true_state"]
    adata.obs["mk_pseudotime"] = adata.obs["true_time"]
    return adata


def _compare(adata, *args, **kwargs):
    """Run compare_scores (it returns None) and return the table it wrote."""
    assert mk.tl.compare_scores(adata, *args, **kwargs) is None
    return adata.uns[kwargs.get("key_added", "mk_score_compare")]["table"]


def _trends(adata, **kwargs):
    assert mk.tl.score_trends(adata, **kwargs) is None
    return adata.uns[kwargs.get("key_added", "mk_score_trends")]["table"]


def _row(tab, contrast, score=E2F):
    sel = tab[(tab["contrast"] == contrast) & (tab["score"] == score) & (tab["state"] == "MkP")]
    assert len(sel) == 1
    return sel.iloc[0]


@pytest.mark.parametrize(
    ("species", "contrast"), [("mouse", "MDS vs control"), ("human", "MDS vs healthy")]
)
def test_mkp_e2f_higher_in_mds_and_not_in_null(sim, sim_null, species, contrast):
    tab = _compare(_prep(sim[species]), min_cells=2)
    r = _row(tab, contrast)
    assert r["species"] == species and r["n_a"] == 4 and r["n_b"] == 4  # samples, not cells
    assert r["diff"] > 0 and r["ci_low"] > 0 and r["p_value"] < 0.05
    assert r["diff"] == pytest.approx(r["mean_a"] - r["mean_b"])
    null = _row(_compare(_prep(sim_null[species]), min_cells=2), contrast)
    assert null["p_value"] >= 0.05 and null["ci_low"] < 0 < null["ci_high"]


def test_compare_records_pseudobulk_and_params(sim):
    a = _prep(sim["mouse"])
    tab = _compare(a, contrasts=["MDS vs control", ("MDS_drug", "MDS")], min_cells=2)
    assert set(tab["contrast"]) == {"MDS vs control", "MDS_drug vs MDS"}
    assert {"cycling_fraction", "S_score", E2F} <= set(tab["score"])
    uns = a.uns["mk_score_compare"]
    means = uns["sample_means"]
    assert set(means["sample"]) == set(a.obs["sample"]) and (means["n_cells"] >= 2).all()
    assert uns["params"]["design"] == "~ condition"
    # the within-phase table: gene-set scores only, per phase, its own BH family
    by_phase = uns["by_phase"]
    assert set(by_phase["phase"]) <= {"G1", "S", "G2M"} and len(by_phase)
    assert by_phase["score"].str.startswith("mk_score_").all()
    # the per-sample mean reproduces the cells' mean
    s = means.iloc[0]
    cells = a.obs[(a.obs["sample"] == s["sample"]) & (a.obs["mk_state"] == "MkP")]
    assert s[E2F] == pytest.approx(cells[E2F].mean())
    assert tab["p_adj"].between(0, 1).all()


def _both(sim):
    obs = pd.concat([_prep(sim["mouse"]).obs, _prep(sim["human"]).obs])
    return ad.AnnData(X=np.zeros((len(obs), 1), dtype=np.float32), obs=obs)


def test_default_contrasts_per_species_on_integrated_obs(sim):
    both = _both(sim)
    tab = _compare(both, keys=[E2F])
    got = set(zip(tab["species"], tab["contrast"], strict=True))
    assert got == {
        ("mouse", "MDS vs control"),
        ("mouse", "MDS_drug vs control"),
        ("human", "MDS vs healthy"),
    }
    with pytest.raises(MkcellError, match="no species has both"):
        mk.tl.compare_scores(
            both, contrasts=[("MDS", "control"), ("healthy", "control")], keys=[E2F]
        )


def test_contrast_checks(sim):
    a = _prep(sim["human"])
    with pytest.raises(MkcellError, match="run mk.tl.score"):
        mk.tl.compare_scores(a, keys=["nope"])
    # a contrast absent from a species is skipped; too few samples warns
    b = a[a.obs["sample"].isin(["human_MDS_1", "human_healthy_1", "human_healthy_2"])].copy()
    with pytest.warns(MkcellWarning, match="need 2 per group"):
        tab = _compare(b, keys=[E2F])
    assert tab["p_value"].isna().all()


def test_one_contrast_form_for_every_tool(sim):
    """compare_scores takes the forms progenitor_pool takes, with the same numbers."""
    a = _prep(sim["mouse"])
    as_pair = _compare(a, contrasts=["MDS", "control"], keys=[E2F], key_added="pair")
    for form in ([("MDS", "control")], "MDS vs control", [["MDS", "control"]]):
        pd.testing.assert_frame_equal(_compare(a, contrasts=form, keys=[E2F]), as_pair)
    assert set(as_pair["contrast"]) == {"MDS vs control"}
    mk.tl.progenitor_pool(a, contrasts=["MDS", "control"])
    assert a.uns["mk_pool"]["contrasts"]["contrast"].tolist() == ["MDS vs control"]


@pytest.mark.parametrize(
    "contrasts",
    [[["MDS", "ctrl"]], ["MDS", "MDS"], [["MDS", "control", "MDS_drug"]], "MDS_drug vs healthy"],
)
def test_bad_contrast_same_message_everywhere(sim, contrasts):
    both = _both(sim)
    with pytest.raises(MkcellError) as pool_err:
        mk.tl.progenitor_pool(both, contrasts=contrasts)
    with pytest.raises(MkcellError) as compare_err:
        mk.tl.compare_scores(both, contrasts=contrasts, keys=[E2F])
    assert str(compare_err.value) == str(pool_err.value)
    with pytest.raises(MkcellError) as shift_err:
        mk.tl.maturation_shift(both, contrasts=contrasts)
    assert str(shift_err.value) == str(pool_err.value)


def test_sample_in_two_conditions_same_error_everywhere(sim):
    both = _both(sim)
    cond = both.obs["condition"].astype(str).to_numpy().copy()
    cond[np.flatnonzero(both.obs["sample"] == "mouse_MDS_1")[:5]] = "control"
    both.obs["condition"] = cond
    with pytest.raises(MkcellError, match="mouse_MDS_1.*several conditions") as pool_err:
        mk.tl.progenitor_pool(both)
    with pytest.raises(MkcellError) as compare_err:
        mk.tl.compare_scores(both, keys=[E2F])
    assert str(compare_err.value) == str(pool_err.value)


def test_sample_names_may_recur_across_species(sim):
    """Nesting is checked within species: sample 's4' of mouse and of human may differ."""
    both = _both(sim)
    sample = both.obs["sample"].astype(str)
    for sp_name in ("mouse", "human"):
        m = (both.obs["species"] == sp_name).to_numpy()
        codes = {s: f"s{i}" for i, s in enumerate(sorted(sample[m].unique()))}
        sample[m] = sample[m].map(codes)
    both.obs["sample"] = sample
    s4 = both.obs[both.obs["sample"] == "s4"].groupby("species")["condition"].first()
    assert s4["mouse"] != s4["human"]
    tab = _compare(both, keys=[E2F])
    mk.tl.progenitor_pool(both)
    pool = both.uns["mk_pool"]["contrasts"]
    assert set(zip(tab["species"], tab["contrast"], strict=True)) == set(
        zip(pool["species"], pool["contrast"], strict=True)
    )


def test_score_trends_bands_over_samples(sim):
    a = _prep(sim["human"])
    tab = _trends(a, keys=[E2F, "S_score"], genes=["MCM5"], n_bins=10)
    assert set(tab["key"]) == {E2F, "S_score", "gene:MCM5"}
    assert set(tab["condition"]) == {"healthy", "MDS"} and (tab["n_samples"] <= 4).all()
    ok = tab.dropna(subset=["ci_low"])
    assert len(ok) > 0.8 * len(tab)
    assert (ok["ci_low"] <= ok["mean"] + 1e-9).all() and (ok["mean"] <= ok["ci_high"] + 1e-9).all()
    early = tab[(tab["key"] == E2F) & (tab["pseudotime"] < 0.3)].groupby("condition")["mean"].mean()
    assert early["MDS"] > early["healthy"]
    assert a.uns["mk_score_trends"]["params"]["n_bins"] == 10
    lo = _trends(a, keys=[E2F], smooth="lowess", key_added="lw")
    # smoothing reduces bin-to-bin jitter
    j_raw = np.nanmean(
        np.abs(np.diff(tab[(tab["key"] == E2F) & (tab["condition"] == "healthy")]["binned_mean"]))
    )
    j_lw = np.nanmean(np.abs(np.diff(lo[lo["condition"] == "healthy"]["mean"])))
    assert j_lw < j_raw


def test_score_trends_needs_pseudotime(sim):
    a = sim["human"]
    mk.tl.score(a)
    with pytest.raises(MkcellError, match="mk_pseudotime"):
        mk.tl.score_trends(a)


def test_plot_score_trends(sim, tmp_path):
    a = _prep(sim["mouse"])
    with pytest.raises(MkcellError, match="run mk.tl.score_trends"):
        mk.pl.score_trends(a)
    mk.tl.score_trends(a, keys=[E2F, "G2M_score"])
    fig = mk.pl.score_trends(a, save=tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 0
    assert len(fig.axes) == 2
    plt.close(fig)


@pytest.mark.skipif(importlib.util.find_spec("pydeseq2") is None, reason="pydeseq2 not installed")
@pytest.mark.filterwarnings("ignore:The dispersion trend curve")
def test_pseudobulk_de(sim):
    a = _prep(sim["human"])
    genes = list(a.var_names[:60]) + ["MCM5", "PCNA", "MCM2", "AURKB"]
    a = a[:, list(dict.fromkeys(genes))].copy()
    assert mk.tl.pseudobulk_de(a, min_cells=5) is None
    de = a.uns["mk_score_de"]["table"]
    assert set(de["contrast"]) == {"MDS vs healthy"}
    mcm = de.set_index("gene").loc[["MCM5", "PCNA", "MCM2"], "log2fc"]
    assert (mcm > 0).all()
