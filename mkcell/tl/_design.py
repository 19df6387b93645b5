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


def parse_contrasts(contrasts: object) -> list[tuple[str, str]]:
    """Normalise ``["A", "B"]``, ``"A vs B"`` or a list of either to ``[("A", "B"), ...]``.

    Raises :class:`MkcellError` for anything that is not a pair of two different
    conditions.
    """
    if isinstance(contrasts, str):
        contrasts = [contrasts]
    try:
        items = list(contrasts)  # type: ignore[call-overload]
    except TypeError:
        items = [contrasts]
    if len(items) == 2 and all(isinstance(c, str) and " vs " not in c for c in items):
        items = [items]  # a single pair ["A", "B"]
    pairs = []
    for c in items:
        if isinstance(c, str):
            parts = [p.strip() for p in c.split(" vs ")]
        elif isinstance(c, Sequence):
            parts = [str(p) for p in c]
        else:
            parts = [str(c)]
        if len(parts) != 2 or parts[0] == parts[1]:
            msg = (
                f"contrast {c!r} is not a pair of two different conditions; write it as "
                "[A, B] (A over B) or 'A vs B'"
            )
            raise MkcellError(msg)
        pairs.append((parts[0], parts[1]))
    return pairs


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


def resolve_contrasts(table: pd.DataFrame, contrasts: object) -> list[tuple[str, str, str]]:
    """Expand contrasts to ``(species, A, B)`` triples within species that have both conditions.

    ``table`` has the columns ``species`` and ``condition`` (e.g. from :func:`sample_obs`).
    ``contrasts`` as in :data:`CONTRASTS_DOC`: ``None`` compares every condition of a
    species with its reference (:func:`references`), ``[]`` gives no contrast.

    Raises :class:`MkcellError` when a contrast is not a pair, when a condition is absent
    from every species, or when no species holds both conditions of a contrast.
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
    for a, b in pairs:
        absent = [c for c in (a, b) if not any(c in v for v in present.values())]
        if absent:
            msg = (
                f"condition(s) {absent} of contrast '{a} vs {b}' not found; conditions present "
                f"per species: {_where(present)}"
            )
            raise MkcellError(msg)
        species = [s for s, v in present.items() if a in v and b in v]
        if not species:
            msg = (
                f"no species has both conditions of contrast '{a} vs {b}'; conditions present "
                f"per species: {_where(present)}"
            )
            raise MkcellError(msg)
        for s in present:
            if s not in species:
                logger.info(
                    "contrast '%s vs %s' skipped for %s: it lacks one of the conditions", a, b, s
                )
        out += [(s, a, b) for s in species]
    return out
