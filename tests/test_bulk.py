"""mk.io.read_bulk / read_geo_series_matrix / read_samples / join_samples on tiny files."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

import mkcell as mk
from mkcell._settings import MkcellError


@pytest.fixture(scope="module")
def cohort():
    return mk.datasets.simulate_cohort(8, n_genes=400, n_cells=40, seed=1)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_error(fn, path, match):
    before = _digest(path)
    with pytest.raises(MkcellError, match=match) as err:
        fn(path)
    assert "\n" not in str(err.value)
    assert _digest(path) == before  # the input file is never modified


def test_table_both_orientations_and_counts(cohort, tmp_path):
    bulk = cohort["bulk"]
    counts = pd.DataFrame(bulk.X, index=bulk.obs_names, columns=bulk.var_names).astype(int)
    counts.to_csv(tmp_path / "sxg.csv")
    counts.T.to_csv(tmp_path / "gxs.tsv", sep="\t")
    a = mk.io.read_bulk(tmp_path / "sxg.csv")
    b = mk.io.read_bulk(tmp_path / "gxs.tsv")
    assert a.shape == b.shape == bulk.shape
    assert "transposed" in b.uns["mk_bulk"]["orientation"]
    assert a.uns["mk_bulk"]["kind"] == "counts"
    np.testing.assert_allclose(a.X, b.X)
    np.testing.assert_allclose(a.layers["log_expression"], bulk.layers["log_expression"], atol=1e-4)


def test_samples_file_orients_and_joins(cohort, tmp_path):
    bulk = cohort["bulk"]
    # fewer genes than samples: the shape rule alone would take genes for samples
    small = pd.DataFrame(
        bulk.layers["log_expression"][:, :5], index=bulk.obs_names, columns=bulk.var_names[:5]
    )
    small.T.to_csv(tmp_path / "g.csv")
    cohort["samples"].to_csv(tmp_path / "samples.csv")
    a = mk.io.read_bulk(tmp_path / "g.csv", samples=tmp_path / "samples.csv")
    assert a.n_obs == 8 and a.n_vars == 5 and "platelets" in a.obs
    assert a.uns["mk_bulk"]["kind"] == "log"


def test_series_matrix_with_probe_collapse(cohort, tmp_path):
    bulk = cohort["bulk"]
    for name in ("GSE1_series_matrix.txt", "GSE1_series_matrix.txt.gz"):
        path = tmp_path / name
        ann = mk.datasets.write_geo_series_matrix(bulk, path, duplicate_share=0.2, seed=0)
        ann.loc[0, "Gene Symbol"] = "AAA /// BBB"  # a multi-gene probe is dropped
        ann.loc[1, "Gene Symbol"] = ""  # so is a probe without symbol
        raw = mk.io.read_geo_series_matrix(path)
        assert raw.n_obs == 8 and raw.n_vars == len(ann)
        assert {"platelets", "condition", "title"} <= set(raw.obs.columns)
        before = _digest(path)
        a = mk.io.read_bulk(path, probe_annotation=ann)
        assert _digest(path) == before
        probes = a.uns["mk_bulk"]["probes"]
        assert set(probes["fate"]) >= {"kept", "lower_mean", "multiple_symbols", "no_symbol"}
        assert a.n_vars == bulk.n_vars - 2 and a.uns["mk_bulk"]["kind"] == "log"
        g = bulk.var_names[5]
        np.testing.assert_allclose(
            a[:, g].X.ravel(), bulk[:, g].layers["log_expression"].ravel(), atol=1e-3
        )
        m = mk.io.read_bulk(path, probe_annotation=ann, collapse="mean")
        dup = probes.loc[probes["fate"] == "lower_mean", "symbol"].iloc[0]
        assert m.uns["mk_bulk"]["probes"].query("symbol == @dup")["fate"].eq("averaged").all()
        np.testing.assert_allclose(m[:, dup].X.ravel(), a[:, dup].X.ravel() - 0.5, atol=1e-3)


def test_bad_inputs_one_line_and_untouched(cohort, tmp_path):
    bulk = cohort["bulk"]
    df = (
        pd.DataFrame(
            bulk.layers["log_expression"][:, :30], index=bulk.obs_names, columns=bulk.var_names[:30]
        )
        .round(3)
        .astype(object)
    )
    df.iloc[2, 4] = "n/a?"
    df.to_csv(tmp_path / "text.csv")
    _one_line_error(mk.io.read_bulk, tmp_path / "text.csv", "not a number")
    dup = pd.DataFrame(np.ones((3, 4)), index=["s1", "s1", "s2"], columns=list("ABCD"))
    dup.to_csv(tmp_path / "dup.csv")
    _one_line_error(mk.io.read_bulk, tmp_path / "dup.csv", "more than once")
    neg = pd.DataFrame([[1, -2, 300], [4, 5, 6]], index=["a", "b"], columns=["G1", "G2", "G3"])
    neg.to_csv(tmp_path / "neg.csv")
    _one_line_error(lambda p: mk.io.read_bulk(p, kind="counts"), tmp_path / "neg.csv", "negative")
    lin = pd.DataFrame(
        [[1.5, 2000.2, 3.1], [4.0, 5.0, 6.0]], index=["a", "b"], columns=["G1", "G2", "G3"]
    )
    lin.to_csv(tmp_path / "lin.csv")
    _one_line_error(mk.io.read_bulk, tmp_path / "lin.csv", "log2-transform")
    sm = tmp_path / "cut_series_matrix.txt"
    mk.datasets.write_geo_series_matrix(bulk[:, :20], sm)
    sm.write_text(sm.read_text().replace("!series_matrix_table_end\n", ""))
    _one_line_error(mk.io.read_bulk, sm, "series matrix")
    (tmp_path / "empty.csv").write_text("")
    _one_line_error(mk.io.read_bulk, tmp_path / "empty.csv", "not a CSV/TSV table")
    with pytest.raises(FileNotFoundError, match="no such"):
        mk.io.read_bulk(tmp_path / "absent.csv")
    with pytest.raises(MkcellError, match="collapse="):
        mk.io.read_bulk(tmp_path / "lin.csv", collapse="median")


def test_read_samples_and_its_errors(tmp_path):
    good = tmp_path / "s.tsv"
    good.write_text("sample\tplatelets\tsex\n007\t120\tF\nS2\tNA\tM\n")
    tab = mk.io.read_samples(good)
    assert list(tab.index) == ["007", "S2"] and tab["platelets"].dtype == float
    assert np.isnan(tab.loc["S2", "platelets"])
    cases = {
        "dup.csv": ("sample,platelets\nA,1\nA,2\n", "several rows"),
        "text.csv": ("sample,platelets\nA,10\nB,12\nC,low\n", r"column 'platelets'.*line 4.*'low'"),
        "noid.csv": ("sample,platelets\n,1\nB,2\n", "no sample name"),
        "empty.csv": ("sample,platelets\n", "no sample rows"),
    }
    for name, (text, match) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        _one_line_error(mk.io.read_samples, path, match)


def test_join_samples_checks_names(cohort, tmp_path):
    cells = cohort["cells"].copy()
    samples = cohort["samples"]
    out = mk.io.join_samples(cells, samples, copy=True)
    assert out is not None and "platelets" in out.obs and "platelets" not in cells.obs
    assert out.obs.groupby("sample", observed=True)["platelets"].nunique().eq(1).all()
    with pytest.raises(MkcellError, match=r"not in the samples table: \['P001'\]"):
        mk.io.join_samples(cells, samples.drop(index="P001"))
    extra = pd.concat([samples, samples.iloc[:1].set_axis(["P999"])])
    with pytest.raises(MkcellError, match="not in the data: \\['P999'\\]"):
        mk.io.join_samples(cells, extra)
    mk.io.join_samples(cells, extra, allow_extra=True)
    path = tmp_path / "s.csv"
    samples.drop(index=["P002", "P003"]).to_csv(path)
    _one_line_error(lambda p: mk.io.join_samples(cells, p), path, "2 sample")
    clash = samples.assign(condition="other")
    with pytest.raises(MkcellError, match="overwrite=True"):
        mk.io.join_samples(cells, clash)


def test_check_design_columns():
    mk.io.check_design_columns("~ condition + age + C(batch)", ["condition", "age", "batch"])
    with pytest.raises(MkcellError, match=r"\['batch'\]"):
        mk.io.check_design_columns("~ condition + age + C(batch)", ["condition", "age"])
    with pytest.raises(MkcellError, match=r"\['status'\]"):
        mk.io.check_design_columns("~ condition", ["age"], condition_key="status")
