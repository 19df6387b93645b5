"""The report's first section: mkcell's four questions answered in words and numbers.

Read from ``adata.uns`` only (what the tools wrote): where Mk-lineage cells stall
(``uns[K.MATURATION]``), the E2F / cell-cycle / Aurora scores of MkP between conditions
(``uns[K.SCORE_COMPARE]``), the MkP pool per sample and whether a condition changes it
(``uns[K.POOL]``). Samples are the replicates. A difference is called only when its
Benjamini–Hochberg adjusted p (one family per table) is below :data:`ALPHA`; otherwise it is
reported as no clear difference, whatever its unadjusted CI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
from anndata import AnnData

from .. import _keys as K
from ..tl._design import INTERACTION
from ._words import (
    FEW_SAMPLES,
    _adj,
    _call,
    _ci,
    _items,
    _links,
    _none,
    _num,
    _p,
    _samples,
    _table,
    esc,
)

#: Scores of MkP the findings quote: (column, words).
SCORES = (
    (f"{K.SCORE_PREFIX}e2f_targets", "E2F targets"),
    (K.CYCLING_FRACTION, "cycling fraction (S + G2M)"),
    (f"{K.SCORE_PREFIX}aurora", "Aurora kinase"),
)


def _pair(contrast: object) -> tuple[str, str]:
    """``(A, B)`` of ``"A vs B"``; of an interaction, its two pairs ``("A vs B", "C vs D")``."""
    four = _interaction(contrast)
    if four:
        return f"{four[0]} vs {four[1]}", f"{four[2]} vs {four[3]}"
    a, _, b = str(contrast).partition(" vs ")
    return a, b


def _interaction(contrast: object) -> tuple[str, str, str, str] | None:
    """``(A, B, C, D)`` of ``"(A vs B) vs (C vs D)"``; None for a pair."""
    m = INTERACTION.match(str(contrast).strip())
    return tuple(g.strip() for g in m.groups()) if m else None  # type: ignore[return-value]


def _step(four: tuple[str, str, str, str], verb: str, more: bool) -> str:
    """Words like 'drug lowers X more in MDS than in control', else both steps in full."""
    a, b, c, d = four
    more_less = "more" if more else "less"
    if a.startswith(b) and c.startswith(d) and a[len(b) :] == c[len(d) :]:
        treatment = a[len(b) :].strip("_- ") or a
        return f"{treatment} {verb} {more_less} in {b} than in {d}"
    return f"going from {b} to {a} {verb} {more_less} than going from {d} to {c}"


def _interaction_samples(four: tuple[str, ...], na: object, nb: object) -> str:
    try:
        a, b = int(na), int(nb)
    except (TypeError, ValueError):
        return ""
    few = " — few samples, read with caution" if min(a, b) < 2 * FEW_SAMPLES else ""
    return f"{a} samples of {four[0]} and {four[1]}, {b} of {four[2]} and {four[3]}{few}"


def _pool_interaction(adata: AnnData, r: Mapping, four: tuple[str, str, str, str]) -> str:
    """Words for an interaction row of the pool table, with each step's log2 ratio."""
    per = _table(adata, K.POOL, "per_condition")
    steps = None
    if per is not None:
        g = per[per["species"].astype(str) == str(r["species"])].set_index("condition")
        f = pd.to_numeric(g["mkp_fraction"].reindex(list(four)), errors="coerce")
        if f.notna().all() and (f > 0).all():
            steps = (math.log2(f.iloc[0] / f.iloc[1]), math.log2(f.iloc[2] / f.iloc[3]))
    sign = _call(r, "effect_log2")
    if sign == 0:
        words = (
            f"no clear difference between the MkP-fraction change from {four[1]} to {four[0]} "
            f"and from {four[3]} to {four[2]}"
        )
    else:
        first = steps[0] if steps else -sign
        lowers = first < 0
        verb = f"{'lowers' if lowers else 'raises'} the MkP fraction"
        words = _step(four, verb, more=lowers == (sign < 0))
    if steps:
        words += (
            f" (log2 {four[0]}/{four[1]} {_num(steps[0])}, {four[2]}/{four[3]} {_num(steps[1])})"
        )
    return words


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
        four = _interaction(r["contrast"])
        if four:
            items.append(
                f"<b>{esc(r['species'])}</b>, {esc(r['contrast'])}: "
                f"{esc(_stall_interaction(r, four, sign))}; {shift}, "
                f"{_interaction_samples(four, r['n_samples_a'], r['n_samples_b'])}."
            )
            continue
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


def _stall_interaction(r: Mapping, four: tuple[str, str, str, str], sign: int) -> str:
    a, b, c, d = four
    if sign:
        words = (
            f"Mk-lineage cells sit {'earlier' if sign < 0 else 'later'} in {a} against {b} "
            f"than in {c} against {d}"
        )
    else:
        words = f"no clear difference between the maturation shifts {b} → {a} and {d} → {c}"
    try:
        da, dc = float(r["frac_after_a"]), float(r["frac_after_b"])
    except (TypeError, ValueError):
        return words
    return (
        f"{words}: the share past the MkP → Mk transition changes by {da:+.0%} ({b} → {a}) "
        f"and {dc:+.0%} ({d} → {c})"
    )


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
        four = _interaction(contrast)
        parts = []
        for key, words in keys:
            rows = g[g["score"].astype(str) == key]
            if rows.empty:
                continue
            r = rows.iloc[0]
            sign = _call(r, "diff")
            how = "no clear difference"
            if sign and four:
                how = "rises more (or falls less)" if sign > 0 else "falls more (or rises less)"
                how += f" from {four[1]} to {four[0]} than from {four[3]} to {four[2]}"
            elif sign:
                how = f"{'higher' if sign > 0 else 'lower'} in {a}"
            ci = _ci(r["ci_low"], r["ci_high"])
            parts.append(f"{esc(words)} {how}: difference {_num(r['diff'])} {ci}{_adj(r)}")
        within = _within_phase(phases, species, contrast)
        if within:
            parts.append(within)
        if parts:
            r = g.iloc[0]
            items.append(
                f"<b>{esc(species)}</b>, MkP in "
                + (
                    f"{esc(contrast)} ({_interaction_samples(four, r['n_a'], r['n_b'])}): "
                    if four
                    else f"{esc(a)} vs {esc(b)} ({_samples(r['n_a'], r['n_b'])}): "
                )
                + "; ".join(parts)
                + "."
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
        four = _interaction(r["contrast"])
        sign = _call(r, "effect_log2")
        n_words = (
            _interaction_samples(four, r["n_samples_a"], r["n_samples_b"])
            if four
            else _samples(r["n_samples_a"], r["n_samples_b"])
        )
        effect = (
            f"log2 effect {_num(r['effect_log2'])} {_ci(r['ci_low'], r['ci_high'])} "
            f"(×{_num(2.0 ** float(r['effect_log2']))}){_adj(r)}, {n_words}"
        )
        if four:
            words = _pool_interaction(adata, r, four)
        elif sign > 0:
            words = f"MkP fraction higher in {a} than {b}"
        elif sign < 0:
            words = f"MkP fraction lower in {a} than {b}"
        else:
            words = f"no clear difference in the MkP fraction between {a} and {b}"
        note = str(r.get("note", "") or "")
        note = "" if note in ("", "nan") else f" Note: {esc(note)}"
        where = f"<b>{esc(r['species'])}</b>" + (f", {esc(r['contrast'])}" if four else "")
        items.append(f"{where}: {esc(words)}: {effect}.{note}")
    head = (
        "<p>log2 of A over B (geometric means of the samples' fractions; negative: a smaller "
        "pool in A), 95% CI, Benjamini–Hochberg adjusted p; samples as replicates.</p>"
    )
    if df["contrast"].map(_interaction).notna().any():
        head += (
            "<p>An interaction (A vs B) vs (C vs D) is log2(A/B) − log2(C/D), from one model "
            "of the four conditions' samples: negative when A lowers the pool more (or "
            "raises it less) against B than C does against D.</p>"
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
