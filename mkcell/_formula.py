"""Column names read by a design formula (``"~ condition + batch + np.log(age)"``).

A bottom-layer helper so that readers of sample files (mkcell.io) and the inference layer
(mkcell.tl._inference) agree on which columns a formula needs.
"""

from __future__ import annotations

import re

#: Names the formula functions of patsy use; never taken for a column.
FORMULA_WORDS = frozenset(
    {"C", "I", "np", "Treatment", "Sum", "Poly", "center", "standardize", "scale"}
)


def formula_columns(term: str) -> list[str]:
    """Identifiers of ``term`` that name columns (not function or module names), in order."""
    # identifiers that are not function or module names (``C(batch)``, ``np.log(age)``)
    words = re.findall(r"(?<![\w.])([A-Za-z_]\w*)(?![\w.]|\s*\()", term)
    return list(dict.fromkeys(w for w in words if w not in FORMULA_WORDS))
