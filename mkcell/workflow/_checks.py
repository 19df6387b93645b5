"""Pre-flight checks of the data against the config, run in the load stage.

They fail before integration when the config names conditions, columns, labels or markers
the data lack, with one line saying what is wrong and how to fix it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from anndata import AnnData
from omegaconf import DictConfig

import mkcell as mk

from .. import _keys as K
from .._settings import ArgumentError, MkcellError, logger
from ._outputs import _plain, contrasts_of

# A tool argument's config key, where a tool's message names the argument (ArgumentError)
CONFIG_KEYS = {
    "cell_column": "annotate.labels_cell_column",
    "label_column": "annotate.labels_column",
}


def check_data(cfg: DictConfig, data: dict[str, AnnData]) -> None:
    """Fail before integration when the config names conditions or columns the data lack."""
    from ..tl._design import check_nesting, resolve_contrasts

    table = pd.concat(
        pd.DataFrame(
            {
                "species": s,
                "sample": a.obs[K.SAMPLE].astype(str).to_numpy(),
                "condition": a.obs[K.CONDITION].astype(str).to_numpy(),
            }
        )
        for s, a in data.items()
    )
    d = cfg.data
    try:  # the tools check this too, but only after integration
        check_nesting(
            table, sample_key=d.sample_key or K.SAMPLE, condition_key=d.condition_key or K.CONDITION
        )
    except MkcellError as err:
        msg = f"data: {err}"
        raise MkcellError(msg) from None
    contrasts = contrasts_of(cfg)
    if contrasts is not None:
        try:
            resolve_contrasts(table, contrasts, interactions=True)
        except MkcellError as err:
            msg = (
                f"pool.contrasts: {err} — set 'pool.contrasts=[[A,B]]' (or [[A,B,C,D]]) with "
                "these conditions, or pool.contrasts=null"
            )
            raise MkcellError(msg) from None
    key = cfg.annotate.labels_key
    lacking = [s for s, a in data.items() if key is not None and key not in a.obs.columns]
    if lacking:
        cols = ", ".join(map(str, data[lacking[0]].obs.columns))
        msg = (
            f"annotate.labels_key={key}: no such column in the {lacking[0]} input obs"
            f" (columns: [{cols}]); set annotate.labels_key=COLUMN or null"
        )
        raise MkcellError(msg)
    _check_labels(cfg, data)
    _check_markers(cfg, data)


def user_labels(cfg: DictConfig) -> pd.Series | None:
    """The labels file of ``annotate.labels_file`` as labels by cell name (None: no file)."""
    from ..tl._labels import read_labels

    a = cfg.annotate
    if a.labels_file is None:
        return None
    try:
        return read_labels(
            Path(str(a.labels_file)).expanduser(),
            cell_column=a.labels_cell_column,
            label_column=a.labels_column,
        )
    except MkcellError as err:
        said = err.naming(CONFIG_KEYS[err.argument]) if isinstance(err, ArgumentError) else err
        msg = f"annotate.labels_file: {said}"
        raise MkcellError(msg) from None


def user_label_map(cfg: DictConfig) -> dict[str, str] | None:
    """The user's label map as a checked ``{label: state}`` dict.

    From ``annotate.label_map_file`` or ``annotate.label_map``.
    """
    from ..tl._labels import as_label_map

    a = cfg.annotate
    source = (
        Path(str(a.label_map_file)).expanduser()
        if a.label_map_file is not None
        else (_plain(a.label_map) or None)
    )
    try:
        return as_label_map(source)
    except MkcellError as err:
        key = "annotate.label_map_file" if a.label_map_file is not None else "annotate.label_map"
        msg = f"{key}: {err}"
        raise MkcellError(msg) from None


def _check_labels(cfg: DictConfig, data: dict[str, AnnData]) -> None:
    """Read the labels and the label map now, so that a bad file fails before any training."""
    from ..tl._labels import align_labels, labels_to_states

    a = cfg.annotate
    labels = user_labels(cfg)
    mapping = user_label_map(cfg)
    if labels is None and a.labels_key is None:
        return
    if labels is not None:
        names = pd.Index([n for ad_ in data.values() for n in ad_.obs_names.astype(str)])
        where = f"annotate.labels_file={Path(str(a.labels_file)).name}"
        values = align_labels(labels, names, where=where)
    else:
        values = pd.concat([ad_.obs[a.labels_key].astype(str) for ad_ in data.values()])
        where = f"annotate.labels_key={a.labels_key}"
    states, unmapped = labels_to_states(pd.Series(values.to_numpy()), mapping, where=where)
    states = pd.Series(states.to_numpy())
    n_unmapped = int(unmapped["n_cells"].sum())
    logger.info(
        "%s: %d cells labelled, %d of them MkP, %d mapped to no state (they will be 'other')",
        where,
        int((values != "").sum()),
        int((states == K.MKP).sum()),
        n_unmapped,
    )


def _check_markers(cfg: DictConfig, data: dict[str, AnnData]) -> None:
    """Without labels, the marker panels must cover MkP; warn when Mk is not covered.

    The warning says what still runs.
    """
    from .._markers import MIN_PANEL_GENES, panel_coverage
    from ..tl._axis import COMMITMENT_AXIS

    a = cfg.annotate
    if a.labels_key is not None or a.labels_file is not None:
        return
    fix = (
        "annotate.labels_file=CELLS.csv annotate.label_map_file=MAP.csv"
        " (or annotate.labels_key=COLUMN)"
    )
    panels = mk.datasets.marker_panels()
    for sp_name, ad_ in data.items():
        cov = panel_coverage(ad_.var_names)
        for state in (K.MKP, K.MK):
            have = cov.get(state, [])
            if len(have) >= MIN_PANEL_GENES:
                continue
            wanted = panels.loc[
                panels["state"] == state, "human" if sp_name == "human" else "mouse"
            ].tolist()
            if state == K.MKP:
                msg = (
                    f"no MkP markers in the {sp_name} input: {len(have)} of the MkP panel genes"
                    f" {wanted} present (need {MIN_PANEL_GENES}), so MkP cannot be called;"
                    f" give your own labels: {fix}"
                )
                raise MkcellError(msg)
            logger.warning(
                "no mature-Mk markers in the %s input (%d of %s present, need %d): MkP and the"
                " other states will still be called, the pool will use MkP among HSPC"
                " (pool.denominator=auto), and if no Mk cell is called the trajectory follows"
                " the Mk-commitment axis %s; to change that, give your own labels: %s",
                sp_name,
                len(have),
                wanted,
                MIN_PANEL_GENES,
                " -> ".join(COMMITMENT_AXIS),
                fix,
            )
