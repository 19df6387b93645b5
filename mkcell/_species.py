"""The one rule that tells a gene list's species from its casing, and set translation by it.

HGNC writes human symbols in capitals (``PF4``, ``C1orf21``), MGI writes mouse symbols with
one capital (``Pf4``). :func:`detect_species` calls a list human or mouse when at least
:data:`SPECIES_SHARE` of its classifiable symbols follow one style; every module that needs a
species from gene names asks it (inputs, gene sets, marker panels, GSEA tables).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from ._ortholog_table import best_partners

#: Share of classified symbols that must share one casing style to call a species.
SPECIES_SHARE = 0.7
#: At most this many names are read to call the species of a long list (e.g. var_names).
N_READ = 2000

_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}")
_HUMAN_ORF = re.compile(r"^C(\d+|X|Y)orf\d+")


def symbol_styles(symbols: Iterable[str]) -> dict[str, int]:
    """Count human-style (``MCM5``) and mouse-style (``Mcm5``) symbols.

    Parameters
    ----------
    symbols
        Gene symbols.

    Returns
    -------
    ``{"human": n, "mouse": n, "ensembl": n, "other": n}``.
    """
    out = {"human": 0, "mouse": 0, "ensembl": 0, "other": 0}
    for s in map(str, symbols):
        if _ENSEMBL.match(s):
            out["ensembl"] += 1
        elif not any(c.isalpha() for c in s):
            out["other"] += 1
        elif s == s.upper() or _HUMAN_ORF.match(s):
            out["human"] += 1
        elif s[0].isupper() and s[1:] == s[1:].lower():
            out["mouse"] += 1
        else:
            out["other"] += 1
    return out


def detect_species(symbols: Sequence[str]) -> str | None:
    """``"human"``, ``"mouse"`` or ``None`` (unclear) for a list of symbols, from their casing.

    Reads the first :data:`N_READ` symbols; mostly ``Xxxx`` is mouse, mostly ``XXXX`` human.
    """
    st = symbol_styles(list(symbols)[:N_READ])
    n = st["human"] + st["mouse"]
    if n == 0:
        return None
    if st["human"] >= SPECIES_SHARE * n:
        return "human"
    if st["mouse"] >= SPECIES_SHARE * n:
        return "mouse"
    return None


def species_gene_set(genes: set[str], var_names: Sequence[str]) -> set[str]:
    """Translate a set of human symbols to the symbol space of ``var_names`` (human or mouse)."""
    if detect_species(var_names) == "mouse":
        best = best_partners("human")
        genes = set(best.reindex(list(genes))["mouse"].dropna())
    return genes
