"""Stage functions: thin calls of the public API, file writes and figure saving, no science.

Each stage takes ``(cfg, data_or_None, run_dir)`` and returns its data (an AnnData, or
``{species: AnnData}`` after ``load``). Tables and figures are written atomically.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from omegaconf import DictConfig, OmegaConf, open_dict

import mkcell as mk

from .. import _keys as K
from .._settings import MkcellError, logger
from .._utils import atomic_path, write_csv_atomic
from ._config import DataSource, Mode
from ._runner import Stage, file_signature, single_lightning_log
from ._schema import tool_kwargs

POOL_SAMPLE_COLUMNS = ["sample", "species", "condition", "n_cells", "n_mkp", "mkp_fraction"]
POOL_CONTRAST_COLUMNS = ["species", "contrast", "effect_log2", "ci_low", "ci_high", "p_value"]
METRIC_COLUMNS = ["metric", "value", "baseline_value"]
#: The Mk-commitment axis the trajectory follows when mature Mk are absent.
COMMITMENT_AXIS = (K.HSC_MPP, K.MEP, K.MKP)
FIGURES = ("embedding", "pseudotime_density", "score_trends", "pool")
#: Extra figure of ``mode=map``: the query on the reference's embedding.
MAP_FIGURES = ("reference_map",)
MAP_SAMPLE_COLUMNS = [
    "species",
    "sample",
    "n_cells",
    "n_unknown",
    "share_unknown",
    "share_confident",
]


# --------------------------------------------------------------------------- helpers


def _seeded(func: Callable[..., Any], kwargs: dict[str, Any], seed: int) -> dict[str, Any]:
    """Add ``seed=seed`` to ``kwargs`` when ``func`` takes a seed."""
    if "seed" in inspect.signature(func).parameters:
        kwargs = {**kwargs, "seed": seed}
    return kwargs


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def contrasts_of(cfg: DictConfig) -> list[list[str]] | None:
    """``pool.contrasts`` as plain lists (None: the API's default)."""
    return _plain(cfg.pool.contrasts)


def write_table(
    df: pd.DataFrame, run_dir: Path, name: str, columns: list[str] | None = None
) -> Path:
    """Write ``tables/<name>.csv`` atomically; ``columns`` (required) come first.

    Parameters
    ----------
    df
        The table.
    run_dir
        The run folder.
    name
        File stem.
    columns
        Columns the file must hold (the output contract); missing ones raise.
    """
    if not isinstance(df, pd.DataFrame):
        msg = f"expected a DataFrame for tables/{name}.csv, got {type(df).__name__}"
        raise TypeError(msg)
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            msg = (
                f"tables/{name}.csv lacks columns {missing} (has {list(df.columns)});"
                " this is a bug in mkcell"
            )
            raise RuntimeError(msg)
        df = df[columns + [c for c in df.columns if c not in columns]]
    path = run_dir / "tables" / f"{name}.csv"
    write_csv_atomic(df, path)
    logger.info("wrote %s (%d rows)", path, len(df))
    return path


def save_figure(fig: object, run_dir: Path, name: str, dpi: int) -> Path:
    """Save a matplotlib figure (or Axes) as ``figures/<name>.png`` atomically and close it."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.gcf()
    fig = getattr(fig, "figure", fig) if not hasattr(fig, "savefig") else fig
    path = run_dir / "figures" / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    logger.info("wrote %s", path)
    return path


def _set_key(adata: AnnData, user_key: str | None, target: str, fallback: str, what: str) -> None:
    """Copy the user's ``obs[user_key]`` to ``obs[target]`` (the user's column stays)."""
    if user_key is None:
        if target not in adata.obs.columns:
            adata.obs[target] = fallback
            logger.info("no %s column given: every cell gets %s %r", what, what, fallback)
    elif user_key != target:
        if user_key not in adata.obs.columns:
            cols = ", ".join(map(str, adata.obs.columns))
            msg = (
                f"no {what} column {user_key!r} in the input obs; available columns: [{cols}]"
                f" — set data.{what}_key=COLUMN"
            )
            raise MkcellError(msg)
        if target in adata.obs.columns:
            adata.obs[f"{target}_input"] = adata.obs[target]
            logger.info("kept the input's own `obs[%r]` as `obs['%s_input']`", target, target)
        adata.obs[target] = adata.obs[user_key]
    elif target not in adata.obs.columns:
        cols = ", ".join(map(str, adata.obs.columns))
        msg = (
            f"no {what} column {user_key!r} in the input obs; available columns: [{cols}]"
            f" — set data.{what}_key=COLUMN"
        )
        raise MkcellError(msg)
    adata.obs[target] = pd.Categorical(adata.obs[target].astype(str))


def _subsample(data: dict[str, AnnData], max_cells: int, seed: int) -> dict[str, AnnData]:
    """At most ``max_cells`` cells in all, the same number per sample where a sample has enough."""
    total = sum(a.n_obs for a in data.values())
    if total <= max_cells:
        return data
    n_samples = sum(a.obs[K.SAMPLE].nunique() for a in data.values())
    per = max(1, max_cells // max(n_samples, 1))
    gen = np.random.default_rng(seed)
    out = {}
    for sp_name, a in data.items():
        codes = a.obs[K.SAMPLE].astype(str).to_numpy()
        keep = []
        for s in pd.unique(codes):
            idx = np.flatnonzero(codes == s)
            keep.append(idx if idx.size <= per else gen.choice(idx, per, replace=False))
        out[sp_name] = a[np.sort(np.concatenate(keep))].copy()
    logger.info(
        "data.max_cells=%d: kept %d of %d cells (%d per sample)",
        max_cells,
        sum(a.n_obs for a in out.values()),
        total,
        per,
    )
    return out


def input_signature(cfg: DictConfig) -> object:
    """Signature of the inputs, for the fingerprint.

    Path, size and mtime of files; the registry entry; the reference's manifest.
    """
    if Mode(cfg.mode) is Mode.map:
        from ..tl._reference import MANIFEST, _reference_root

        root = _reference_root(Path(str(cfg.reference.dir)).expanduser())
        return {"query": _input_signature(cfg), "reference": file_signature(root / MANIFEST)}
    return _input_signature(cfg)


def _input_signature(cfg: DictConfig) -> object:
    source = DataSource(cfg.data.source)
    if source is DataSource.files:
        return {
            s: file_signature(p) for s in cfg.data.species if (p := cfg.data.inputs[s]) is not None
        }
    if source is DataSource.registry:
        return {"registry": cfg.data.id, "entry": mk.io.registry_entry(cfg.data.id)}
    return None


# --------------------------------------------------------------------------- stages


def load(cfg: DictConfig, data: object, run_dir: Path) -> dict[str, AnnData]:  # noqa: ARG001
    """Read or simulate the cells; set ``obs['sample']`` and ``obs['condition']``."""
    d = cfg.data
    species = list(d.species)
    source = DataSource(d.source)
    if source is DataSource.demo:
        sim = mk.datasets.simulate_marrow
        out = sim(
            d.n_cells,
            n_genes=d.n_genes,
            n_samples=d.n_samples,
            null=d.null_effect,
            cycle_strength=d.cycle_strength,
            n_cycle_genes=d.n_cycle_genes,
            species=tuple(species),
            seed=cfg.seed,
        )
    elif source is DataSource.files:
        read = mk.io.read
        out = {
            s: read(Path(str(d.inputs[s])).expanduser(), species=s, gene_symbols=d.gene_symbols)
            for s in species
            if d.inputs[s] is not None
        }
    else:
        adata = mk.io.load(d.id)
        found = adata.obs[K.SPECIES].astype(str).unique().tolist() if K.SPECIES in adata.obs else []
        if not found:
            if len(species) != 1:
                msg = (
                    f"dataset {d.id!r} does not say its species;"
                    " set data.species=[mouse] or [human]"
                )
                raise MkcellError(msg)
            adata.obs[K.SPECIES] = species[0]
            found = species
        out = {
            s: adata[adata.obs[K.SPECIES].astype(str) == s].copy() for s in found if s in species
        }
        if not out:
            msg = (
                f"dataset {d.id!r} holds {found} cells, but data.species={species};"
                f" set data.species={found}"
            )
            raise MkcellError(msg)
    sample_key = d.sample_key
    if source is DataSource.registry and sample_key is None:
        sample_key = _registry_sample_column(cfg)
    for sp_name, a in out.items():
        _set_key(a, sample_key, K.SAMPLE, sp_name, "sample")
        _set_key(a, d.condition_key, K.CONDITION, "all", "condition")
    if d.max_cells is not None:
        out = _subsample(out, d.max_cells, cfg.seed)
    for sp_name, a in out.items():
        logger.info(
            "%s: %d cells x %d genes, %d samples, conditions %s",
            sp_name,
            a.n_obs,
            a.n_vars,
            a.obs[K.SAMPLE].nunique(),
            sorted(a.obs[K.CONDITION].astype(str).unique()),
        )
    _check_against_data(cfg, out)
    return out


def _check_against_data(cfg: DictConfig, data: dict[str, AnnData]) -> None:
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
            resolve_contrasts(table, contrasts)
        except MkcellError as err:
            msg = (
                f"pool.contrasts: {err} — set 'pool.contrasts=[[A,B]]' with these conditions, "
                "or pool.contrasts=null"
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
        msg = f"annotate.labels_file: {err}".replace(
            "cell_column= (CLI: annotate.labels_cell_column)", "annotate.labels_cell_column"
        ).replace("label_column= (CLI: annotate.labels_column)", "annotate.labels_column")
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


def _registry_sample_column(cfg: DictConfig) -> str | None:
    entry = mk.io.registry_entry(cfg.data.id)
    return (entry.get("obs_columns") or {}).get("sample")


def orthologs(cfg: DictConfig, data: dict[str, AnnData], run_dir: Path) -> AnnData:
    """Map mouse genes to human orthologs and concatenate the species."""
    id_reports = {
        s: a.uns[K.GENE_IDS] for s, a in data.items() if isinstance(a.uns.get(K.GENE_IDS), dict)
    }
    concat = mk.pp.concat_species
    adata = concat(dict(data), **tool_kwargs(cfg.orthologs, concat))
    if id_reports:  # gene IDs mapped to symbols on reading: one report for the run
        genes = pd.concat(
            [r["genes"].assign(species=s) for s, r in id_reports.items()], ignore_index=True
        )
        first = next(iter(id_reports.values()))
        adata.uns[K.GENE_IDS] = {
            "genes": genes,
            "params": {
                "source": "; ".join(f"{s}: {r['params']['source']}" for s, r in id_reports.items())
            },
            **{
                k: int(sum(r[k] for r in id_reports.values()))
                for k in ("n_mapped", "n_summed", "n_unmapped")
                if k in first
            },
        }
        write_table(genes, run_dir, "gene_id_report")
    report = adata.uns.get(K.ORTHOLOGS, {})
    genes = report.get("genes") if isinstance(report, dict) else None
    if not isinstance(genes, pd.DataFrame):
        genes = pd.DataFrame({"note": ["no mouse input: no ortholog mapping was needed"]})
    write_table(genes, run_dir, "ortholog_report")
    return adata


def integrate(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """Select features, train scVI / SysVI, compute integration metrics and a UMAP.

    The UMAP is of the latent space.
    """
    c, comp = cfg.integrate, cfg.compute
    single_lightning_log()
    hvg = mk.pp.highly_variable_genes
    hvg(adata, batch_key=K.SAMPLE, seed=cfg.seed, **tool_kwargs(c, hvg))
    scvi = mk.integrate.scvi
    scvi(
        adata,
        batch_key=K.SAMPLE,
        species_key=K.SPECIES,
        accelerator=comp.accelerator,
        devices=_plain(comp.devices),
        strategy=comp.strategy,
        seed=cfg.seed,
        save_dir=run_dir / "model",
        **tool_kwargs(c, scvi),
    )
    metrics = mk.integrate.metrics
    metrics = metrics(adata, batch_key=K.SAMPLE, species_key=K.SPECIES, **tool_kwargs(c, metrics))
    write_table(metrics, run_dir, "integration_metrics", METRIC_COLUMNS)
    umap = mk.tl.umap
    umap(adata, use_rep=K.LATENT, seed=cfg.seed)
    return adata


def annotate(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:  # noqa: ARG001
    """Cell states (``obs['mk_state']``)."""
    f = mk.tl.annotate
    c = cfg.annotate
    labels = user_labels(cfg)
    if labels is not None or c.labels_key is not None:
        logger.info(
            "annotate: cell states from your labels; the marker-based annotation is skipped"
        )
    kwargs = tool_kwargs(c, f) | {"labels": labels, "label_map": user_label_map(cfg)}
    kwargs = _seeded(f, kwargs, cfg.seed)
    f(adata, **kwargs)
    return adata


def trajectory(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:  # noqa: ARG001
    """Mk pseudotime and fate (``obs['mk_pseudotime']``, ``obs['mk_fate']``)."""
    f = mk.tl.trajectory
    t = cfg.trajectory
    kwargs = tool_kwargs(t, f)
    states = (
        adata.obs[K.STATE].astype(str) if K.STATE in adata.obs.columns else pd.Series(dtype=str)
    )
    try:
        f(adata, **_seeded(f, kwargs, cfg.seed))
        return adata
    except MkcellError as err:
        lacking = [s for s in (t.root_state, t.terminal_state) if (states == s).sum() < 2]
        if not lacking:
            raise
        reason = f"fewer than 2 {' and '.join(lacking)} cells ({err})"
        commitment = {
            "lineage": COMMITMENT_AXIS,
            "root_state": COMMITMENT_AXIS[0],
            "terminal_state": K.MKP,
            "root": None,
        }
        default_axis = (t.root_state, t.terminal_state) == (K.MKP, K.MK)
        if default_axis and all((states == s).sum() >= 2 for s in COMMITMENT_AXIS):
            logger.warning(
                "no mature Mk to follow (%s): the trajectory follows the Mk-commitment axis %s"
                " instead, so mk_pseudotime runs HSC/MPP (0) -> MkP (1) and mk_fate is the"
                " probability of reaching MkP",
                reason,
                " -> ".join(COMMITMENT_AXIS),
            )
            f(adata, **_seeded(f, {**kwargs, **commitment}, cfg.seed))
            adata.uns[K.TRAJECTORY]["axis"] = "commitment (HSC/MPP -> MEP -> MkP)"
            adata.uns[K.TRAJECTORY]["why"] = reason
            return adata
        logger.warning(
            "trajectory skipped: %s; score, pool and report continue without a pseudotime", reason
        )
        adata.obs[K.PSEUDOTIME] = np.nan
        adata.obs[K.FATE] = np.nan
        adata.uns[K.TRAJECTORY] = {"skipped": True, "reason": reason}
        return adata


def score(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """Cell-cycle and gene-set scores, their trends in pseudotime, contrasts between conditions."""
    c = cfg.score
    f = mk.tl.score
    f(adata, **_seeded(f, tool_kwargs(c, f), cfg.seed))
    if K.PSEUDOTIME in adata.obs.columns and adata.obs[K.PSEUDOTIME].notna().any():
        trends = mk.tl.score_trends
        trends(adata, **_seeded(trends, {}, cfg.seed))
        write_table(adata.uns[K.SCORE_TRENDS]["table"], run_dir, "score_trends")
    else:
        logger.info("no pseudotime (the trajectory was skipped): no score trends along it")
    compare = mk.tl.compare_scores
    compare(adata, K.SAMPLE, K.CONDITION, contrasts_of(cfg), design=cfg.design)
    write_table(adata.uns[K.SCORE_COMPARE]["table"], run_dir, "score_contrasts")
    write_table(adata.uns[K.SCORE_COMPARE]["by_phase"], run_dir, "score_contrasts_by_phase")
    return adata


def pool(cfg: DictConfig, adata: AnnData, run_dir: Path, denominator: str | None = None) -> AnnData:
    """MkP pool per sample and its contrasts; maturation shift along pseudotime."""
    contrasts = contrasts_of(cfg)
    f = mk.tl.progenitor_pool
    den = denominator or cfg.pool.denominator
    f(adata, K.SAMPLE, K.CONDITION, contrasts, denominator=den, design=cfg.design)
    res = adata.uns[K.POOL]
    write_table(res["per_sample"], run_dir, "pool_per_sample", POOL_SAMPLE_COLUMNS)
    write_table(res["contrasts"], run_dir, "pool_contrasts", POOL_CONTRAST_COLUMNS)
    has_mk = (adata.obs[K.STATE].astype(str) == K.MK).any() and adata.obs[
        K.PSEUDOTIME
    ].notna().any()
    if not has_mk:
        logger.info("no Mk cells with a pseudotime: the maturation shift is skipped")
        return adata
    shift = mk.tl.maturation_shift
    shift(adata, K.CONDITION, contrasts, design=cfg.design)
    write_table(adata.uns[K.MATURATION]["contrasts"], run_dir, "maturation_shift")
    return adata


# --------------------------------------------------------------------------- mode=map


def _reference(cfg: DictConfig) -> object:
    from ..tl._reference import load_reference

    return load_reference(str(cfg.reference.dir))


def orthologs_query(cfg: DictConfig, data: dict[str, AnnData], run_dir: Path) -> AnnData:
    """``mode=map``: orthologs as the reference mapped them.

    The query must hold enough of the reference's features.
    """
    from ..tl._map import check_features

    ref = _reference(cfg)
    # references written before the section was named "orthologs" call it "map"
    section = ref.config.get("orthologs") or ref.config.get("map") or {}
    keep = bool(section.get("keep_species_specific", cfg.orthologs.keep_species_specific))
    if keep != cfg.orthologs.keep_species_specific:
        logger.info("orthologs.keep_species_specific=%s, as in the reference", keep)
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.orthologs.keep_species_specific = keep
    adata = orthologs(cfg, data, run_dir)
    check_features(adata, ref)
    return adata


def map_reference(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """``mode=map``: place the query in the reference's space; transfer states, pseudotime, fate."""
    r, comp = cfg.reference, cfg.compute
    single_lightning_log()
    f = mk.tl.map_to_reference
    f(adata, _reference(cfg), accelerator=comp.accelerator, seed=cfg.seed, **tool_kwargs(r, f))
    write_table(adata.uns[K.MAP]["per_sample"], run_dir, "map_per_sample", MAP_SAMPLE_COLUMNS)
    missing = adata.uns[K.MAP]["missing_features"]
    if len(missing):
        write_table(missing, run_dir, "map_missing_features")
    return adata


def pool_map(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """``mode=map``: the query's pool and its place among the reference's samples.

    The pool uses the reference's denominator.
    """
    ref = _reference(cfg)
    dens = sorted(set(ref.pool["denominator"].astype(str)))
    den = None
    if cfg.pool.denominator == "auto" and len(dens) == 1:
        den = dens[0]
        logger.info("pool denominator %s, as in the reference", den)
    adata = pool(cfg, adata, run_dir, den)
    vs = mk.tl.pool_vs_reference
    vs(adata, ref)
    from ..tl._map import POOL_VS_REFERENCE_COLUMNS

    write_table(
        adata.uns[K.POOL_VS_REFERENCE], run_dir, "pool_vs_reference", POOL_VS_REFERENCE_COLUMNS
    )
    return adata


def _note_figure(text: str) -> object:
    """A small figure that says why a plot could not be drawn.

    The stage's outputs stay complete.
    """
    import textwrap

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.0, 0.5, textwrap.fill(text, 90), va="center", fontsize=8)
    return fig


def report(cfg: DictConfig, adata: AnnData, run_dir: Path) -> AnnData:
    """Figures, ``report.html`` and the final ``mkcell.h5ad``."""
    from .._utils import write_h5ad_atomic
    from ._report import write_report

    dpi = cfg.report.dpi
    mapped = Mode(cfg.mode) is Mode.map
    figures = {}
    colors = [k for k in (K.SPECIES, K.SAMPLE, K.STATE) if k in adata.obs.columns]
    figures["embedding"] = save_figure(
        mk.pl.embedding(adata, color=colors), run_dir, "embedding", dpi
    )
    has_pt = K.PSEUDOTIME in adata.obs.columns and adata.obs[K.PSEUDOTIME].notna().any()
    for name in FIGURES[1:]:
        if name in ("pseudotime_density", "score_trends") and not has_pt:
            fig = _note_figure(
                f"{name}: no pseudotime"
                f" ({adata.uns.get(K.TRAJECTORY, {}).get('reason', 'trajectory skipped')})"
            )
        else:
            fig = getattr(mk.pl, name)(adata)
        figures[name] = save_figure(fig, run_dir, name, dpi)
    if mapped:
        for name in MAP_FIGURES:
            figures[name] = save_figure(getattr(mk.pl, name)(adata), run_dir, name, dpi)
    write_h5ad_atomic(adata, run_dir / "mkcell.h5ad")
    logger.info("wrote %s", run_dir / "mkcell.h5ad")
    if not mapped:
        write = mk.tl.write_reference
        write(adata, run_dir, config=OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    write_report(cfg, adata, run_dir, figures, stages_for(cfg))
    return adata


# A stage's fingerprint holds the package files its function reaches through its imports
# and the tools it calls (mkcell.workflow._imports): no list of files is kept here.

REPORT_OUTPUTS = ("report.html", "mkcell.h5ad")
#: The score stage, the same in both modes.
SCORE_STAGE = Stage(
    "score",
    score,
    ("score", "pool.contrasts", "design", "seed"),
    ("tables/score_contrasts.csv", "tables/score_contrasts_by_phase.csv"),
)

STAGES: tuple[Stage, ...] = (
    Stage("load", load, ("data", "seed")),
    Stage("orthologs", orthologs, ("orthologs",), ("tables/ortholog_report.csv",)),
    Stage(
        "integrate",
        integrate,
        ("integrate", "seed"),
        ("tables/integration_metrics.csv",),
        ddp=True,
    ),
    Stage("annotate", annotate, ("annotate", "seed")),
    Stage("trajectory", trajectory, ("trajectory", "seed")),
    SCORE_STAGE,
    Stage(
        "pool",
        pool,
        ("pool", "design", "seed"),
        ("tables/pool_per_sample.csv", "tables/pool_contrasts.csv"),
    ),
    Stage(
        "report",
        report,
        ("report",),
        (*REPORT_OUTPUTS, "reference/manifest.json", *(f"figures/{f}.png" for f in FIGURES)),
        save_data=False,
    ),
)
"""The workflow, in order."""

MAP_STAGES: tuple[Stage, ...] = (
    Stage("load", load, ("data", "seed", "mode")),
    Stage(
        "orthologs",
        orthologs_query,
        ("orthologs", "reference.dir"),
        ("tables/ortholog_report.csv",),
    ),
    Stage(
        "reference",
        map_reference,
        ("reference", "seed"),
        ("tables/map_per_sample.csv",),
    ),
    SCORE_STAGE,
    Stage(
        "pool",
        pool_map,
        ("pool", "design", "seed"),
        ("tables/pool_per_sample.csv", "tables/pool_contrasts.csv", "tables/pool_vs_reference.csv"),
    ),
    Stage(
        "report",
        report,
        ("report",),
        (*REPORT_OUTPUTS, *(f"figures/{f}.png" for f in (*FIGURES, *MAP_FIGURES))),
        save_data=False,
    ),
)
"""``mode=map``: new samples onto a reference run, in order."""


def stages_for(cfg: DictConfig) -> tuple[Stage, ...]:
    """The stages of ``cfg.mode``: :data:`STAGES` (run) or :data:`MAP_STAGES` (map)."""
    return MAP_STAGES if Mode(cfg.mode) is Mode.map else STAGES
