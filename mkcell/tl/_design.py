"""Conditions compared with samples as replicates: the one place contrasts are decided.

Every tool that compares conditions (:func:`~mkcell.tl.compare_scores`,
:func:`~mkcell.tl.pseudobulk_de`, :func:`~mkcell.tl.progenitor_pool`,
:func:`~mkcell.tl.maturation_shift`, :func:`~mkcell.tl.composition`,
:func:`~mkcell.tl.da_neighbourhoods`) and the workflow's checks use this module: the
sample / condition / species table of the cells and its nesting check (within a
species, each sample belongs to one condition), contrast parsing, the default
reference condition, and the expansion of contrasts per species.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence

import pandas as pd
from anndata import AnnData

from .._settings import MkcellError, MkcellWarning, logger
from .._utils import check_obs_key

#: Conditions taken as the reference when none is given (the first one present per
#: species; without any of them, the species' first condition).
DEFAULT_REFERENCES = ("control", "healthy")

#: What the ``contrasts`` parameter of the tools accepts (see :data:`CONTRASTS_DOC`).
Contrasts = str | Sequence[str | Sequence[str]] | None

#: Docstring entry of the ``contrasts`` parameter of the tools that compare conditions.
CONTRASTS_DOC = f"""\
contrasts
    Conditions to compare: a pair ``["A", "B"]`` (A over B), a string ``"A vs B"``, or a
    list of either. Each contrast is computed within every species that holds both
    conditions. ``None`` (default): every condition against the reference of its
    species, the first of {" / ".join(f"``{r}``" for r in DEFAULT_REFERENCES)} present
    (else its first condition); ``[]``: no contrast."""

#: The ``contrasts`` entry of the tools that also fit disease x drug interactions.
INTERACTION_DOC = (
    CONTRASTS_DOC
    + """ Four conditions ``["A", "B", "C", "D"]``, or the
    string ``"(A vs B) vs (C vs D)"``, are an interaction: (A − B) − (C − D), e.g.
    ``["MDS_drug", "MDS", "control_drug", "control"]`` asks whether the drug changes the
    readout more in MDS than in controls (one model on the four conditions' samples)."""
)

#: An interaction written as a string, ``"(A vs B) vs (C vs D)"``.
INTERACTION = re.compile(r"^\(\s*(.+?)\s+vs\s+(.+?)\s*\)\s+vs\s+\(\s*(.+?)\s+vs\s+(.+?)\s*\)$")
_FORMS = "[A, B] (A over B), 'A vs B', or an interaction [A, B, C, D] / '(A vs B) vs (C vs D)'"


def contrast_label(conditions: Sequence[str]) -> str:
    """``"A vs B"`` for a pair, ``"(A vs B) vs (C vs D)"`` for an interaction."""
    if len(conditions) == 4:
        a, b, c, d = conditions
        return f"({a} vs {b}) vs ({c} vs {d})"
    a, b = conditions
    return f"{a} vs {b}"


def _split_contrast(c: object) -> list[str]:
    """The conditions of one contrast entry, as written (not yet checked)."""
    if isinstance(c, str):
        m = INTERACTION.match(c.strip())
        if m:
            return [p.strip() for p in m.groups()]
        return [p.strip() for p in c.split(" vs ")]
    if isinstance(c, Sequence):
        return [str(p) for p in c]
    return [str(c)]


def warn_and_log(message: str) -> None:
    """Log ``message`` and raise it as a :class:`MkcellWarning` at the caller of the tool."""
    logger.warning(message)
    warnings.warn(message, MkcellWarning, stacklevel=4)


def sample_obs(
    adata: AnnData, sample_key: str, condition_key: str, species_key: str
) -> pd.DataFrame:
    """Return obs with string columns ``sample``, ``condition``, ``species``; check nesting.

    Without ``adata.obs[species_key]`` all cells are one species ``"all"``. The order of
    the conditions (the categories of a categorical column, else their order of
    appearance) is kept in ``.attrs["condition_order"]``. Raises :class:`MkcellError` on
    missing values and when a sample spans several conditions within its species
    (:func:`check_nesting`).
    """
    check_obs_key(adata, sample_key, what="sample column")
    check_obs_key(adata, condition_key, what="condition column")
    for col, key in (("sample", sample_key), ("condition", condition_key)):
        if adata.obs[key].isna().any():
            msg = (
                f"`adata.obs[{key!r}]` has missing values; give every cell a {col} "
                "(or subset the cells)"
            )
            raise MkcellError(msg)
    obs = pd.DataFrame(index=adata.obs_names)
    obs["sample"] = adata.obs[sample_key].astype(str).to_numpy()
    obs["condition"] = adata.obs[condition_key].astype(str).to_numpy()
    cond = adata.obs[condition_key]
    if isinstance(cond.dtype, pd.CategoricalDtype):  # keep the user's order of conditions
        order = [str(c) for c in cond.cat.categories]
    else:
        order = list(pd.unique(obs["condition"]))
    if species_key in adata.obs.columns:
        obs["species"] = adata.obs[species_key].astype(str).to_numpy()
    else:
        logger.info("no `adata.obs[%r]`: all cells are analysed as one species 'all'", species_key)
        obs["species"] = "all"
    check_nesting(obs, sample_key=sample_key, condition_key=condition_key)
    obs.attrs["condition_order"] = order
    return obs


def check_nesting(
    table: pd.DataFrame, *, sample_key: str = "sample", condition_key: str = "condition"
) -> None:
    """Raise :class:`MkcellError` when a sample has several conditions within its species.

    ``table`` has the columns ``species``, ``sample`` and ``condition``; ``sample_key``
    and ``condition_key`` name the user's columns in the message. The same sample name
    may recur in another species (each species is its own experiment).
    """
    n_cond = table.groupby(["species", "sample"], observed=True)["condition"].nunique()
    bad = n_cond[n_cond > 1]
    if len(bad):
        sp_name, sample = bad.index[0]
        in_sample = (table["species"] == sp_name) & (table["sample"] == sample)
        conds = sorted(table.loc[in_sample, "condition"].unique())
        msg = (
            f"sample {sample!r} ({sp_name}) has cells of several conditions {conds}; each "
            f"sample must belong to one condition — check `sample_key={sample_key!r}` and "
            f"`condition_key={condition_key!r}`"
        )
        raise MkcellError(msg)


def conditions_by_species(table: pd.DataFrame) -> dict[str, list[str]]:
    """Conditions present per species (species sorted), in the order of the conditions.

    The order is ``table.attrs["condition_order"]`` (set by :func:`sample_obs`) where
    present, else the order of appearance in ``table``.
    """
    order = list(table.attrs.get("condition_order", []))
    out = {}
    for sp_name, g in table.groupby("species", sort=True):
        present = list(dict.fromkeys(map(str, g["condition"])))
        known = [c for c in order if c in present]
        out[str(sp_name)] = known + [c for c in present if c not in known]
    return out


def parse_contrasts(contrasts: object) -> list[tuple[str, ...]]:
    """Normalise contrasts to tuples: ``("A", "B")`` for a pair, ``("A", "B", "C", "D")``.

    Accepts ``["A", "B"]``, ``"A vs B"``, an interaction ``["A", "B", "C", "D"]`` or
    ``"(A vs B) vs (C vs D)"`` ((A − B) − (C − D)), or a list of these. Raises
    :class:`MkcellError` for anything else: a pair of two different conditions, or four
    different conditions.
    """
    if isinstance(contrasts, str):
        contrasts = [contrasts]
    try:
        items = list(contrasts)  # type: ignore[call-overload]
    except TypeError:
        items = [contrasts]
    if items and all(isinstance(c, str) and " vs " not in c for c in items):
        items = [items]  # a single pair ["A", "B"] or interaction ["A", "B", "C", "D"]
    out = []
    for c in items:
        parts = _split_contrast(c)
        written = not isinstance(c, str) or INTERACTION.match(c.strip())
        clean = not any(" vs " in p or "(" in p or ")" in p for p in parts)
        if len(parts) == 4 and len(set(parts)) == 4 and written and clean:
            out.append(tuple(parts))
            continue
        if len(parts) == 4 or (isinstance(c, str) and c.count(" vs ") == 3):
            msg = (
                f"contrast {c!r} is not an interaction of four different conditions; write it "
                "as [A, B, C, D] or '(A vs B) vs (C vs D)' ((A - B) - (C - D))"
            )
            raise MkcellError(msg)
        if len(parts) != 2 or parts[0] == parts[1]:
            msg = f"contrast {c!r} is not a pair of two different conditions; write it as {_FORMS}"
            raise MkcellError(msg)
        out.append((parts[0], parts[1]))
    return out


def default_reference(conditions: Sequence[str]) -> str:
    """The reference among ``conditions``.

    The first of :data:`DEFAULT_REFERENCES` present, else the first condition.
    """
    return next((r for r in DEFAULT_REFERENCES if r in conditions), conditions[0])


def _where(present: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{s}: {sorted(c)}" for s, c in present.items())


def references(
    table: pd.DataFrame, reference: str | Sequence[str] | Mapping[str, str] | None = None
) -> dict[str, str]:
    """The reference condition of each species that has another condition to compare with.

    Parameters
    ----------
    table
        Columns ``species`` and ``condition`` (e.g. from :func:`sample_obs`).
    reference
        ``None``: :func:`default_reference` of each species. A name, several names (the
        first present in a species is used) or ``{species: name}``: species without one
        are skipped (logged).

    Raises
    ------
    MkcellError
        When no species has its reference and another condition.
    """
    present = conditions_by_species(table)
    out = {}
    for sp_name, conds in present.items():
        if reference is None:
            ref = default_reference(conds)
        elif isinstance(reference, Mapping):
            ref = reference.get(sp_name)
            ref = ref if ref in conds else None
        else:
            cands = [reference] if isinstance(reference, str) else list(reference)
            ref = next((r for r in cands if r in conds), None)
        if ref is None:
            logger.info(
                "%s skipped: reference %r is not among its conditions %s", sp_name, reference, conds
            )
        elif len(conds) < 2:
            logger.info("%s skipped: it has only condition %r", sp_name, ref)
        else:
            out[sp_name] = ref
    if not out:
        if reference is None:
            msg = (
                f"only one condition per species ({_where(present)}); nothing to compare — "
                "pass contrasts=[[A, B]]"
            )
        else:
            msg = (
                f"reference condition {reference!r} not found with another condition in any "
                f"species; conditions present per species: {_where(present)}"
            )
        raise MkcellError(msg)
    return out


def resolve_contrasts(
    table: pd.DataFrame, contrasts: object, *, interactions: bool = False
) -> list[tuple[str, ...]]:
    """Expand contrasts to ``(species, A, B)`` within species that have all their conditions.

    ``table`` has the columns ``species`` and ``condition`` (e.g. from :func:`sample_obs`).
    ``contrasts`` as in :data:`CONTRASTS_DOC`: ``None`` compares every condition of a
    species with its reference (:func:`references`), ``[]`` gives no contrast. With
    ``interactions=True`` an interaction gives ``(species, A, B, C, D)``.

    Raises :class:`MkcellError` when a contrast is not a pair (or, with ``interactions``,
    an interaction), when a condition is absent from every species, or when no species
    holds all conditions of a contrast.
    """
    present = conditions_by_species(table)
    if contrasts is None:
        out = [
            (sp_name, c, ref)
            for sp_name, ref in references(table).items()
            for c in present[sp_name]
            if c != ref
        ]
        logger.info(
            "contrasts (default, against the reference condition): %s",
            [f"{s}: {a} vs {b}" for s, a, b in out],
        )
        return out
    pairs = parse_contrasts(contrasts)
    if not pairs:
        logger.info("no contrasts requested (contrasts=[]); per-sample numbers only")
        return []
    out = []
    for conds in pairs:
        label = contrast_label(conds)
        if len(conds) == 4 and not interactions:
            msg = (
                f"contrast '{label}' is an interaction, which this tool does not fit; give "
                "pairs [A, B] here (interactions: progenitor_pool, maturation_shift, "
                "compare_scores)"
            )
            raise MkcellError(msg)
        absent = [c for c in conds if not any(c in v for v in present.values())]
        if absent:
            msg = (
                f"condition(s) {absent} of contrast '{label}' not found; conditions present "
                f"per species: {_where(present)}"
            )
            raise MkcellError(msg)
        species = [s for s, v in present.items() if set(conds) <= set(v)]
        if not species:
            msg = (
                f"no species has {'both' if len(conds) == 2 else 'all four'} conditions of "
                f"contrast '{label}'; conditions present "
                f"per species: {_where(present)}"
            )
            raise MkcellError(msg)
        for s in present:
            if s not in species:
                logger.info(
                    "contrast '%s' skipped for %s: it lacks one of the conditions", label, s
                )
        out += [(s, *conds) for s in species]
    return out
