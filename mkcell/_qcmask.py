"""Which cells quality control passed (``obs['mk_qc']`` of :func:`mkcell.pp.qc`).

The tools that call or count MkP and Mk (:func:`mkcell.tl.annotate`,
:func:`mkcell.tl.progenitor_pool`) read this, so that flagged cells stay in the data but
are left out of the calls and the pool; ``qc_key=None`` keeps them in.
"""

from __future__ import annotations

import numpy as np
from anndata import AnnData

from . import _keys as K


def qc_passed(adata: AnnData, qc_key: str | None) -> np.ndarray:
    """Boolean mask of the cells that passed QC; every cell when ``qc_key`` is None or absent."""
    if qc_key is None or qc_key not in adata.obs:
        return np.ones(adata.n_obs, dtype=bool)
    return (adata.obs[qc_key].astype(str) == K.QC_PASS).to_numpy()
