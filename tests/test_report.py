"""report.html: Findings first, in words and numbers, from adata.uns.

No table is read back from CSV.
"""

from __future__ import annotations

import html as htmllib
import re

import anndata as ad
import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from mkcell.workflow import STAGES, config_dir
from mkcell.workflow._findings import findings_html
from mkcell.workflow._report import build_report


def _adata() -> ad.AnnData:
    samples = [f"{c}_{i}" for c in ("control", "MDS", "MDS_drug") for i in (1, 2, 3)]
    obs = pd.DataFrame(
        {
            "species": "mouse",
            "sample": np.repeat(samples, 4),
            "condition": np.repeat([s.rsplit("_", 1)[0] for s in samples], 4),
        },
        index=[f"c{i}" for i in range(36)],
    )
    a = ad.AnnData(obs=obs)
    frac = {"control": [0.30, 0.35, 0.40], "MDS": [0.6, 0.7, 0.8], "MDS_drug": [0.5, 0.7, 0.9]}
    per_sample = pd.DataFrame(
        {
            "sample": samples,
            "species": "mouse",
            "condition": [s.rsplit("_", 1)[0] for s in samples],
            "n_cells": 100,
            "n_mkp": 10,
            "mkp_fraction": [f for c in frac.values() for f in c],
            "n_denominator": 20,
            "denominator": "mk_lineage",
        }
    )
    contrasts = pd.DataFrame(
        {
            "species": "mouse",
            "contrast": ["MDS vs control", "MDS_drug vs MDS"],
            "effect_log2": [0.8, -0.1],
            "ci_low": [0.4, -0.6],
            "ci_high": [1.2, 0.4],
            "p_value": [0.01, 0.7],
            "p_adj": [0.02, 0.7],
            "n_samples_a": 3,
            "n_samples_b": 3,
            "note": "",
        }
    )
    a.uns["mk_pool"] = {"per_sample": per_sample, "contrasts": contrasts, "params": {}}
    a.uns["mk_score_compare"] = {
        "table": pd.DataFrame(
            {
                "species": "mouse",
                "contrast": "MDS vs control",
                "state": "MkP",
                "score": ["mk_score_e2f_targets", "cycling_fraction", "mk_score_aurora"],
                "mean_a": 0.0,
                "mean_b": 0.0,
                "diff": [0.5, 0.2, 0.05],
                "ci_low": [0.3, 0.1, -0.2],
                "ci_high": [0.7, 0.3, 0.3],
                "p_value": [0.001, 0.01, 0.6],
                "p_adj": [0.003, 0.02, 0.6],
                "n_a": 3,
                "n_b": 3,
            }
        ),
        "params": {},
    }
    a.uns["mk_maturation"] = {
        "contrasts": pd.DataFrame(
            {
                "species": "mouse",
                "contrast": ["MDS vs control"],
                "mean_shift": [-0.25],
                "mean_shift_ci_low": [-0.3],
                "mean_shift_ci_high": [-0.2],
                "p_value": [0.001],
                "p_adj": [0.002],
                "frac_after_a": [0.1],
                "frac_after_b": [0.5],
                "n_samples_a": 3,
                "n_samples_b": 3,
            }
        ),
        "params": {"transition": 0.5},
    }
    return a


def _text(html: str) -> str:
    return htmllib.unescape(" ".join(re.sub(r"<[^>]+>", " ", html).split()))


def test_findings_in_words_and_numbers():
    text = _text(findings_html(_adata()))
    assert (
        "MkP fraction higher in MDS than control: log2 effect 0.80 [0.40, 1.20] (×1.74), "
        "adjusted p=0.02, 3 vs 3 samples" in text
    )
    assert "no clear difference in the MkP fraction between MDS_drug and MDS" in text
    assert "E2F targets higher in MDS: difference 0.50 [0.30, 0.70], adjusted p=0.003" in text
    assert "Aurora kinase no clear difference" in text
    assert "control mean 0.35, range 0.30–0.40 (3 samples)" in text
    assert "MkP fraction = MkP / (MkP + Mk)" in text
    assert "MDS's Mk-lineage cells stall before the MkP → Mk transition" in text
    assert "10% vs 50%" in text and "[-0.30, -0.20]" in text


def test_findings_follow_the_adjusted_p_not_the_ci():
    """A CI that excludes 0 makes no call when the adjusted p is 0.05 or more."""
    a = _adata()
    a.uns["mk_pool"]["contrasts"]["p_adj"] = [0.08, 0.7]
    a.uns["mk_maturation"]["contrasts"]["p_adj"] = [0.06]
    a.uns["mk_maturation"]["contrasts"]["p_min"] = [1 / 3]
    text = _text(findings_html(a))
    assert "no clear difference in the MkP fraction between MDS and control" in text
    assert "no clear shift in maturation between MDS and control" in text
    assert "no p can go below 0.33" in text


def test_findings_without_results_say_so():
    a = _adata()
    a.uns.clear()
    text = _text(findings_html(a))
    assert text.count("Not computed") == 4


def test_report_opens_with_findings_and_reads_uns(tmp_path):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="t"):
        cfg = compose("config", overrides=["debug=tiny"])
    html = build_report(cfg, _adata(), tmp_path, {}, STAGES)  # no tables/ folder at all
    heads = re.findall(r"<h2 id='([\w-]+)'", html)
    assert heads[0] == "findings"
    for anchor in re.findall(r"href='#([\w-]+)'", html):
        assert f"id='{anchor}'" in html, anchor
    assert "<div class='scroll'><table" in html
    assert "0.7" in _text(html.split("id='pool-contrasts'")[1])  # the contrasts table, from uns
