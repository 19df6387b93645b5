"""Gene sets shipped with mkcell (human symbols) and a strict GMT reader."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from ._settings import MkcellError
from ._utils import data_path

#: Outdated HGNC symbols in the Tirosh 2016 list -> current symbols (Seurat cc.genes.updated.2019).
TIROSH_RENAMES = {"MLF1IP": "CENPU", "FAM64A": "PIMREG", "HN1": "JPT1"}
#: Cytokinesis panel (centralspindlin, RhoGEF and midbody genes).
CYTOKINESIS = ["RACGAP1", "ECT2", "ANLN", "KIF23", "PRC1", "MYH10", "KIF20A", "CIT"]
#: Cytokinesis / abscission genes lost when Mk skip cytokinesis (endomitosis): RhoA-ECT2-
#: RACGAP1, MYH10 (silenced in endomitotic Mk), KIF23, ANLN, CIT, PRC1, SPAG5. Not scored
#: by mk.tl.score; mk.tl.endomitosis contrasts them with the rest of the mitotic program.
ABSCISSION = ["RHOA", "ECT2", "RACGAP1", "MYH10", "KIF23", "ANLN", "CIT", "PRC1", "SPAG5"]
#: Aurora axis targeted by crizotinib in Kobayashi et al. 2025.
AURORA = ["AURKA", "AURKB", "PLK1"]
#: Names of the built-in sets scored by mk.tl.score (key suffix -> set name).
SCORED_SETS = {
    "e2f_targets": "HALLMARK_E2F_TARGETS",
    "g2m_checkpoint": "HALLMARK_G2M_CHECKPOINT",
    "mitotic_spindle": "HALLMARK_MITOTIC_SPINDLE",
    "cytokinesis": "MK_CYTOKINESIS",
    "aurora": "MK_AURORA",
}


def read_gmt(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a GMT file (name, description, genes... tab-separated per line).

    Raises
    ------
    MkcellError
        With the line number when a line does not parse.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"gene-set file {path} does not exist; pass the path of a .gmt file"
        raise MkcellError(msg)
    sets: dict[str, list[str]] = {}
    for i, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            msg = (
                f"{path}:{i}: not UTF-8 text; a GMT file is plain text "
                "(name<TAB>description<TAB>gene...) — save it as UTF-8"
            )
            raise MkcellError(msg) from None
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.rstrip("\n").split("\t")
        genes = [g.strip() for g in parts[2:] if g.strip()]
        if len(parts) < 3 or not parts[0].strip() or not genes:
            msg = (
                f"{path}:{i}: not a GMT line "
                "(need 'name<TAB>description<TAB>gene...', tab-separated); "
                f"got {line[:60]!r}"
            )
            raise MkcellError(msg)
        if parts[0] in sets:
            msg = f"{path}:{i}: gene set {parts[0]!r} is defined twice"
            raise MkcellError(msg)
        sets[parts[0].strip()] = list(dict.fromkeys(genes))
    if not sets:
        msg = f"{path} holds no gene sets"
        raise MkcellError(msg)
    return sets


@lru_cache(maxsize=1)
def _tirosh() -> dict[str, list[str]]:
    genes = data_path("genesets", "regev_lab_cell_cycle_genes.txt").read_text().split()
    genes = [TIROSH_RENAMES.get(g, g) for g in genes]
    # Tirosh et al. 2016 as distributed by scanpy_usage: first 43 are S phase, the other 54 G2/M.
    return {"TIROSH2016_S_PHASE": genes[:43], "TIROSH2016_G2M_PHASE": genes[43:]}


@lru_cache(maxsize=1)
def builtin_sets() -> dict[str, list[str]]:
    """The built-in human gene sets: Tirosh S/G2M, Hallmarks, cytokinesis, Aurora."""
    hall = read_gmt(data_path("genesets", "h.all.v2024.1.Hs.symbols.gmt"))
    sets = dict(_tirosh())
    for name in ("HALLMARK_E2F_TARGETS", "HALLMARK_G2M_CHECKPOINT", "HALLMARK_MITOTIC_SPINDLE"):
        sets[name] = hall[name]
    sets["MK_CYTOKINESIS"] = list(CYTOKINESIS)
    sets["MK_AURORA"] = list(AURORA)
    return sets


def hallmark_sets() -> dict[str, list[str]]:
    """All 50 MSigDB Hallmark sets (v2024.1, human symbols, CC BY 4.0)."""
    return read_gmt(data_path("genesets", "h.all.v2024.1.Hs.symbols.gmt"))


def cycle_genes() -> set[str]:
    """Every human gene in the built-in cycle, E2F, mitotic and cytokinesis sets."""
    return {g for genes in builtin_sets().values() for g in genes}
