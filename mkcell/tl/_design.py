"""Helpers shared by the tools that compare conditions with samples as replicates.

Used by :func:`~mkcell.tl.progenitor_pool`, :func:`~mkcell.tl.maturation_shift`,
:func:`~mkcell.tl.composition` and :func:`~mkcell.tl.da_neighbourhoods`: the
sample / condition / species table of the cells, contrast parsing and expansion per
species, user warnings, and the docstring text these tools share.
"""

from __future__ import annotations

import re
import textwrap
import warnings
from collections.abc import Callable
from typing import TypeVar

import pandas as pd
from anndata import AnnData

from .._settings import MkcellError, MkcellWarning, logger
from .._utils import check_obs_key

F = TypeVar("F", bound=Callable)

#: Conditions taken as the reference when ``contrasts=None`` (first one present per species).
DEFAULT_REFERENCES = ("control", "healthy")

#: Docstring entries of the ``key_added`` and ``copy`` parameters of the tools.
KEY_ADDED_COPY_DOC = """\
key_added
    Key in ``adata.uns`` for the results.
copy
    Return a copy instead of writing to ``adata``."""


def fill_doc(**parts: str) -> Callable[[F], F]:
    """Decorator: replace each line ``{name}`` of the docstring with ``parts[name]``.

    The text is indented like the placeholder line, so the docstring reads as if it had
    been written out. A missing placeholder raises at import time.
    """

    def decorate(func: F) -> F:
        doc = func.__doc__ or ""
        for name, text in parts.items():
            pattern = re.compile(rf"^([ \t]*)\{{{name}\}}[ \t]*$", re.MULTILINE)
            if not pattern.search(doc):
                msg = f"docstring of {func.__qualname__} has no line {{{name}}}"
                raise ValueError(msg)
            doc = pattern.sub(lambda m, t=text: textwrap.indent(t, m.group(1)), doc)
        func.__doc__ = doc
        return func

    return decorate


def warn_and_log(message: str) -> None:
    """Log ``message`` and raise it as a :class:`MkcellWarning` at the caller of the tool."""
    logger.warning(message)
    warnings.warn(message, MkcellWarning, stacklevel=4)


def sample_obs(
    adata: AnnData, sample_key: str, condition_key: str, species_key: str
) -> pd.DataFrame:
    """Return obs with string columns ``sample``, ``condition``, ``species``; check nesting.

    Each sample must belong to exactly one condition within its species.
    """
    check_obs_key(adata, sample_key, what="sample column")
    check_obs_key(adata, condition_key, what="condition column")
    obs = pd.DataFrame(index=adata.obs_names)
    obs["sample"] = adata.obs[sample_key].astype(str).to_numpy()
    obs["condition"] = adata.obs[condition_key].astype(str).to_numpy()
    cond = adata.obs[condition_key]
    if isinstance(cond.dtype, pd.CategoricalDtype):  # keep the user's order of conditions
        order = [str(c) for c in cond.cat.categories]
    else:
        order = list(pd.unique(obs["condition"]))
    obs.attrs["condition_order"] = order
    if species_key in adata.obs.columns:
        obs["species"] = adata.obs[species_key].astype(str).to_numpy()
    else:
        logger.info("no `adata.obs[%r]`: all cells are analysed as one species 'all'", species_key)
        obs["species"] = "all"
    for col, key in (("sample", sample_key), ("condition", condition_key)):
        if (adata.obs[key].isna()).any():
            msg = f"`adata.obs[{key!r}]` has missing values; give every cell a {col} (or subset the cells)"
            raise MkcellError(msg)
    n_cond = obs.groupby(["species", "sample"], observed=True)["condition"].nunique()
    bad = n_cond[n_cond > 1]
    if len(bad):
        sp_name, sample = bad.index[0]
        conds = sorted(
            obs.loc[(obs["species"] == sp_name) & (obs["sample"] == sample), "condition"].unique()
        )
        msg = (
            f"sample {sample!r} ({sp_name}) has cells of several conditions {conds}; each sample must "
            f"belong to one condition — check `sample_key={sample_key!r}` and `condition_key={condition_key!r}`"
        )
        raise MkcellError(msg)
    return obs


def conditions_by_species(table: pd.DataFrame) -> dict[str, list[str]]:
    """Conditions present per species in a table with ``species`` and ``condition`` columns."""
    return {
        str(s): sorted(map(str, g["condition"].unique()))
        for s, g in table.groupby("species", sort=True)
    }


def parse_contrast_pairs(contrasts: object) -> list[tuple[str, str]]:
    """Normalise ``[A, B]``, ``"A vs B"`` or a list of them to ``[(A, B), ...]``."""
    if isinstance(contrasts, str):
        contrasts = [contrasts]
    items = list(contrasts)  # type: ignore[call-overload]
    if len(items) == 2 and all(isinstance(c, str) and " vs " not in c for c in items):
        items = [items]  # a single pair ["A", "B"]
    pairs = []
    for c in items:
        if isinstance(c, str):
            parts = [p.strip() for p in c.split(" vs ")]
        else:
            parts = [str(p) for p in list(c)]
        if len(parts) != 2 or parts[0] == parts[1]:
            msg = f"contrast {c!r} is not a pair of two different conditions; write it as [A, B] (A over B) or 'A vs B'"
            raise MkcellError(msg)
        pairs.append((parts[0], parts[1]))
    return pairs


def resolve_contrasts(table: pd.DataFrame, contrasts: object) -> list[tuple[str, str, str]]:
    """Expand contrasts to ``(species, A, B)`` triples within species that have both conditions.

    Raises :class:`MkcellError` when a condition is absent from every species, or when
    no species holds both conditions of a contrast.
    """
    present = conditions_by_species(table)
    where = "; ".join(f"{s}: {c}" for s, c in present.items())
    if (
        contrasts is not None and len(contrasts) == 0
    ):  # an explicit empty list: per-sample numbers only
        logger.info("no contrasts requested (contrasts=[]); per-sample numbers only")
        return []
    if contrasts is None:
        out = []
        for sp_name, conds in present.items():
            ordered = list(dict.fromkeys(table.loc[table["species"] == sp_name, "condition"]))
            ref = next((r for r in DEFAULT_REFERENCES if r in conds), ordered[0])
            out += [(sp_name, c, ref) for c in ordered if c != ref]
        if not out:
            msg = f"only one condition per species ({where}); nothing to compare — pass contrasts=[[A, B]]"
            raise MkcellError(msg)
        logger.info(
            "contrasts (default, against the reference condition): %s",
            [f"{s}: {a} vs {b}" for s, a, b in out],
        )
        return out
    out = []
    for a, b in parse_contrast_pairs(contrasts):
        absent = [c for c in (a, b) if not any(c in v for v in present.values())]
        if absent:
            msg = f"condition(s) {absent} of contrast '{a} vs {b}' not found; conditions present per species: {where}"
            raise MkcellError(msg)
        species = [s for s, v in present.items() if a in v and b in v]
        if not species:
            msg = f"no species has both conditions of contrast '{a} vs {b}'; conditions present per species: {where}"
            raise MkcellError(msg)
        for s in present:
            if s not in species:
                logger.info(
                    "contrast '%s vs %s' skipped for %s: it lacks one of the conditions", a, b, s
                )
        out += [(s, a, b) for s in species]
    return out
