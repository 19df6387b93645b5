"""The report's first section: mkcell's four questions answered in words and numbers.

Read from ``adata.uns`` only (what the tools wrote): where Mk-lineage cells stall
(``uns[K.MATURATION]``), the E2F / cell-cycle / Aurora scores of MkP between conditions
(``uns[K.SCORE_COMPARE]``), the MkP pool per sample and whether a condition changes it
(``uns[K.POOL]``). Samples are the replicates. A difference is called only when its
Benjamini–Hochberg adjusted p (one family per table) is below :data:`ALPHA`; otherwise it is
reported as no clear difference, whatever its unadjusted CI.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping

import pandas as pd
from anndata import AnnData

from .. import _keys as K

#: Scores of MkP the findings quote: (column, words).
SCORES = (
    (f"{K.SCORE_PREFIX}e2f_targets", "E2F targets"),
    (K.CYCLING_FRACTION, "cycling fraction (S + G2M)"),
    (f"{K.SCORE_PREFIX}aurora", "Aurora kinase"),
)
#: A difference is called when its adjusted p is below this.
ALPHA = 0.05
#: Fewer samples than this on a side of a contrast get a caution.
FEW_SAMPLES = 3


def esc(x: object) -> str:
    """``x`` as HTML-escaped text."""
    return html.escape(str(x))


def uns_table(adata: AnnData, key: str, field: str) -> pd.DataFrame | None:
    """``adata.uns[key][field]`` when it is a table (the same table the stage wrote to CSV)."""
    res = adata.uns.get(key)
    df = res.get(field) if isinstance(res, Mapping) else None
    return df.reset_index(drop=True) if isinstance(df, pd.DataFrame) else None


def _finite(x: object) -> float | None:
    """``x`` as a finite float, or None (missing, NaN, not a number)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _num(x: object) -> str:
    """Two decimals, or two significant digits for small numbers."""
    v = _finite(x)
    if v is None:
        return "NA"
    return f"{v:.2g}" if 0 < abs(v) < 0.1 else f"{v:.2f}"


def _p(x: object) -> str:
    """A p-value: scientific below 0.001."""
    v = _finite(x)
    if v is None:
        return "NA"
    return f"{v:.1e}" if v < 0.001 else f"{v:.2g}"


def _ci(lo: object, hi: object) -> str:
    return f"[{_num(lo)}, {_num(hi)}]"


def _call(row: Mapping, estimate: str) -> int:
    """+1 / -1: ``row[estimate]``'s sign when its adjusted p is below :data:`ALPHA`; else 0."""
    p = _finite(row.get("p_adj", row.get("p_value")))
    est = _finite(row.get(estimate))
    if p is None or est is None or p >= ALPHA or est == 0:
        return 0
    return 1 if est > 0 else -1


def _adj(row: Mapping) -> str:
    """The adjusted p as text, and the smallest attainable p when it is 0.05 or more."""
    text = f", adjusted p={_p(row.get('p_adj', row.get('p_value')))}"
    p_min = _finite(row.get("p_min"))
    if p_min is not None and p_min >= ALPHA:
        text += f" (with these samples no p can go below {_num(p_min)})"
    return text


def _samples(na: object, nb: object) -> str:
    try:
        a, b = int(na), int(nb)
    except (TypeError, ValueError):
        return ""
    few = " — few samples, read with caution" if min(a, b) < FEW_SAMPLES else ""
    return f"{a} vs {b} samples{few}"


def _pair(contrast: object) -> tuple[str, str]:
    a, _, b = str(contrast).partition(" vs ")
    return a, b


def _table(adata: AnnData, key: str, field: str) -> pd.DataFrame | None:
    """:func:`uns_table`, None when empty."""
    df = uns_table(adata, key, field)
    return None if df is None or df.empty else df


def _links(*targets: tuple[str, str]) -> str:
    links = ", ".join(f"<a href='#{t}'>{esc(w)}</a>" for t, w in targets)
    return f" <span class='muted'>({links})</span>"


def _items(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _none(text: str) -> str:
    return f"<p class='muted'>{esc(text)}</p>"


def stall_html(adata: AnnData) -> str:
    """(a) Where Mk-lineage cells stall: the maturation shift between conditions."""
    df = _table(adata, K.MATURATION, "contrasts")
    if df is None:
        traj = adata.uns.get(K.TRAJECTORY, {})
        why = traj.get("reason") if isinstance(traj, Mapping) else None
        return _none(
            "Not computed: "
            + (why or "no mature Mk cells with a pseudotime, so no MkP -> Mk transition to place")
        )
    params = adata.uns[K.MATURATION].get("params", {})
    t = params.get("transition")
    head = (
        "<p>Pseudotime runs from MkP (0) to mature Mk (1); the MkP → Mk transition is at "
        f"{_num(t)}. The mean shift is A − B (negative: A's Mk-lineage cells sit earlier).</p>"
    )
    items = []
    for _, r in df.iterrows():
        a, b = _pair(r["contrast"])
        after = f"{float(r['frac_after_a']):.0%} vs {float(r['frac_after_b']):.0%}"
        lo, hi = r["mean_shift_ci_low"], r["mean_shift_ci_high"]
        shift = f"mean pseudotime shift {_num(r['mean_shift'])} {_ci(lo, hi)}{_adj(r)}"
        sign = _call(r, "mean_shift")
        if sign < 0:
            words = (
                f"{a}'s Mk-lineage cells stall before the MkP → Mk transition, compared with {b}: "
                f"{after} of them are past it"
            )
        elif sign > 0:
            words = (
                f"{a}'s Mk-lineage cells sit further along maturation than {b}'s: "
                f"{after} are past the MkP → Mk transition"
            )
        else:
            words = (
                f"no clear shift in maturation between {a} and {b}: "
                f"{after} past the MkP → Mk transition"
            )
        items.append(
            f"<b>{esc(r['species'])}</b>, {esc(r['contrast'])}: {esc(words)}; {shift}, "
            f"{_samples(r['n_samples_a'], r['n_samples_b'])}."
        )
    return head + _items(items)


def scores_html(adata: AnnData) -> str:
    """(b) E2F / cell-cycle / Aurora scores of MkP between conditions."""
    df = _table(adata, K.SCORE_COMPARE, "table")
    if df is None or "state" not in df.columns:
        return _none("Not computed: no score contrasts (one condition per species?)")
    df = df[df["state"].astype(str) == K.MKP]
    if df.empty:
        return _none("Not computed: too few MkP cells per sample to compare scores")
    keys = [(k, w) for k, w in SCORES if k in set(df["score"].astype(str))]
    phases = _table(adata, K.SCORE_COMPARE, "by_phase")
    items = []
    for (species, contrast), g in df.groupby(["species", "contrast"], sort=False, observed=True):
        a, b = _pair(contrast)
        parts = []
        for key, words in keys:
            rows = g[g["score"].astype(str) == key]
            if rows.empty:
                continue
            r = rows.iloc[0]
            sign = _call(r, "diff")
            how = "no clear difference"
            if sign:
                how = f"{'higher' if sign > 0 else 'lower'} in {a}"
            ci = _ci(r["ci_low"], r["ci_high"])
            parts.append(f"{esc(words)} {how}: difference {_num(r['diff'])} {ci}{_adj(r)}")
        within = _within_phase(phases, species, contrast)
        if within:
            parts.append(within)
        if parts:
            r = g.iloc[0]
            items.append(
                f"<b>{esc(species)}</b>, MkP in {esc(a)} vs {esc(b)} "
                f"({_samples(r['n_a'], r['n_b'])}): " + "; ".join(parts) + "."
            )
    head = "<p>Mean of per-sample MkP means, A − B, 95% CI (samples as replicates).</p>"
    return head + _items(items) if items else _none("No E2F, cycle or Aurora score was compared")


def _within_phase(phases: pd.DataFrame | None, species: object, contrast: object) -> str:
    """E2F in MkP compared within each phase: higher per cycling cell, or only more cycling."""
    if phases is None:
        return ""
    key = f"{K.SCORE_PREFIX}e2f_targets"
    sel = phases[
        (phases["species"] == species)
        & (phases["contrast"] == contrast)
        & (phases["state"].astype(str) == K.MKP)
        & (phases["score"].astype(str) == key)
    ]
    if sel.empty:
        return ""
    parts = [
        f"{esc(r['phase'])} {_num(r['diff'])} (adjusted p={_p(r['p_adj'])})"
        for _, r in sel.iterrows()
    ]
    return "E2F targets within phase, A − B: " + ", ".join(parts)


def pool_per_sample_html(adata: AnnData) -> str:
    """(c) The MkP pool per sample: mean and range per species and condition."""
    df = _table(adata, K.POOL, "per_sample")
    if df is None:
        return _none("Not computed: no MkP pool")
    items = []
    for species, g in df.groupby("species", sort=False, observed=True):
        den = sorted(set(g["denominator"].astype(str))) if "denominator" in g.columns else []
        den_words = ", ".join(K.DENOMINATOR_WORDS.get(d, d) for d in den) or "MkP fraction"
        parts = []
        for cond, c in g.groupby("condition", sort=False, observed=True):
            f = c["mkp_fraction"].astype(float)
            parts.append(
                f"{esc(cond)} mean {_num(f.mean())}, range {_num(f.min())}–{_num(f.max())} "
                f"({len(c)} samples)"
            )
        head = f"<b>{esc(species)}</b>, MkP fraction = {esc(den_words)}: "
        items.append(head + "; ".join(parts) + ".")
    return _items(items)


def pool_contrasts_html(adata: AnnData) -> str:
    """(d) Whether a condition (a treatment) changes the pool: log2 effect, CI, p, samples."""
    df = _table(adata, K.POOL, "contrasts")
    if df is None:
        return _none("Not computed: each species holds one condition only")
    items = []
    for _, r in df.iterrows():
        a, b = _pair(r["contrast"])
        sign = _call(r, "effect_log2")
        effect = (
            f"log2 effect {_num(r['effect_log2'])} {_ci(r['ci_low'], r['ci_high'])} "
            f"(×{_num(2.0 ** float(r['effect_log2']))}){_adj(r)}, "
            f"{_samples(r['n_samples_a'], r['n_samples_b'])}"
        )
        if sign > 0:
            words = f"MkP fraction higher in {a} than {b}"
        elif sign < 0:
            words = f"MkP fraction lower in {a} than {b}"
        else:
            words = f"no clear difference in the MkP fraction between {a} and {b}"
        note = str(r.get("note", "") or "")
        note = "" if note in ("", "nan") else f" Note: {esc(note)}"
        items.append(f"<b>{esc(r['species'])}</b>: {esc(words)}: {effect}.{note}")
    head = (
        "<p>log2 of A over B (geometric means of the samples' fractions; negative: a smaller "
        "pool in A), 95% CI, Benjamini–Hochberg adjusted p; samples as replicates.</p>"
    )
    return head + _items(items)


def findings_html(adata: AnnData) -> str:
    """The Findings section: four questions, each linked to its figure and table."""
    parts = [
        (
            "Where do Mk-lineage cells stall?",
            stall_html(adata),
            (("trajectory", "pseudotime figure"), ("maturation-shift", "table")),
        ),
        (
            "E2F, cell-cycle and Aurora scores in MkP",
            scores_html(adata),
            (("scores", "score trends"), ("score-contrasts", "table")),
        ),
        (
            "MkP pool per sample",
            pool_per_sample_html(adata),
            (("pool", "pool figure"), ("pool-per-sample", "table")),
        ),
        (
            "Does a condition (a treatment) change the MkP pool?",
            pool_contrasts_html(adata),
            (("pool", "pool figure"), ("pool-contrasts", "table")),
        ),
    ]
    return (
        "<div class='findings'>"
        + "".join(f"<h3>{esc(q)}{_links(*links)}</h3>{body}" for q, body, links in parts)
        + "</div>"
    )
