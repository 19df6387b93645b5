"""Which axis :func:`mkcell.tl.trajectory` follows when the states it should join are absent.

Marrow without mature Mk (a CD34+ sort, a small sample) still holds the Mk-commitment axis
HSC/MPP -> MEP -> MkP; following it keeps a pseudotime (0 at HSC/MPP, 1 at MkP), and says so.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from .. import _keys as K
from .._settings import MkcellError, logger

#: The Mk-commitment axis the trajectory follows when mature Mk are absent.
COMMITMENT_AXIS = (K.HSC_MPP, K.MEP, K.MKP)
MIN_CELLS = 2

IfEndsMissing = Literal["commitment", "skip", "raise"]


class Axis(NamedTuple):
    """The lineage to follow, its ends and root cell, and why it is not the one asked for."""

    lineage: tuple[str, ...]
    root_state: str
    terminal_state: str
    root: str | None
    why: str | None = None  # None: the axis asked for
    skip: bool = False  # no axis to follow: no pseudotime

    def note(self) -> dict[str, object]:
        """What ``uns['mk_trajectory']`` records of an axis other than the one asked for."""
        if self.skip:
            return {"skipped": True, "reason": self.why}
        return (
            {}
            if self.why is None
            else {"axis": "commitment (HSC/MPP -> MEP -> MkP)", "why": self.why}
        )


def choose_axis(states: np.ndarray | None, asked: Axis, if_ends_missing: IfEndsMissing) -> Axis:
    """The axis to follow given the cells' ``states`` (None: not annotated, the tool raises).

    With both ends of ``asked`` present (at least 2 cells each) it is ``asked``. Otherwise
    ``"commitment"`` follows :data:`COMMITMENT_AXIS` when the asked axis is the default MkP ->
    Mk one and the commitment states are present, else skips; ``"skip"`` skips; ``"raise"``
    returns ``asked`` and lets the trajectory's own check raise.
    """
    if states is None:
        return asked
    lacking = [
        s for s in (asked.root_state, asked.terminal_state) if (states == s).sum() < MIN_CELLS
    ]
    if not lacking or if_ends_missing == "raise":
        return asked
    why = f"fewer than {MIN_CELLS} {' and '.join(lacking)} cells"
    default = (asked.root_state, asked.terminal_state) == (K.MKP, K.MK)
    present = all((states == s).sum() >= MIN_CELLS for s in COMMITMENT_AXIS)
    if if_ends_missing == "commitment" and default and present:
        logger.warning(
            "no mature Mk to follow (%s): the trajectory follows the Mk-commitment axis %s"
            " instead, so mk_pseudotime runs HSC/MPP (0) -> MkP (1) and mk_fate is the"
            " probability of reaching MkP",
            why,
            " -> ".join(COMMITMENT_AXIS),
        )
        return Axis(COMMITMENT_AXIS, COMMITMENT_AXIS[0], K.MKP, None, why)
    logger.warning("trajectory skipped: %s; no pseudotime or fate is computed", why)
    return asked._replace(why=why, skip=True)


def check_choice(if_ends_missing: str) -> None:
    """Raise unless ``if_ends_missing`` is one of the choices."""
    if if_ends_missing not in IfEndsMissing.__args__:
        msg = f"if_ends_missing={if_ends_missing!r}; choose one of {list(IfEndsMissing.__args__)}"
        raise MkcellError(msg)
