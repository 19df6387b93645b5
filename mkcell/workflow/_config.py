"""Schemas of the workflow configuration (dataclasses in Hydra's ConfigStore).

Every YAML option under ``configs/`` starts with ``defaults: [base_<group>, _self_]``,
so the YAML is merged onto the dataclass: an unknown key (``integrat.max_epochs``) or a
value of the wrong type (``seed=abc``) fails when the config is composed, before any
work. :func:`check_config` adds the checks a type cannot express (input files exist,
contrasts are pairs...).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from .._settings import MkcellError
from ._sections import (
    AnnotateConf,
    AssociateConf,
    BulkConf,
    E2fClustersConf,
    GseaConf,
    IntegrateConf,
    OrthologsConf,
    PoolConf,
    QcConf,
    ReferenceConf,
    ScoreConf,
    TrajectoryConf,
)

SPECIES = ("mouse", "human")


class DataSource(StrEnum):
    """Where the cells come from."""

    demo = "demo"
    files = "files"
    registry = "registry"


class Mode(StrEnum):
    """What the command does: the whole workflow, mapping onto a reference, or a bulk cohort."""

    run = "run"
    map = "map"
    bulk = "bulk"


@dataclass
class InputsConf:
    """Input paths per species (``.h5ad``, 10x ``.h5`` or a 10x mtx folder); either may be null."""

    mouse: str | None = None
    human: str | None = None
    bulk: str | None = None  # mode=bulk: samples x genes (CSV/TSV or a GEO series matrix)


@dataclass
class DataConf:
    """``data``: the input cells.

    ``source`` picks the reader: ``demo`` simulates marrow (``n_cells``, ``n_genes``,
    ``n_samples``, ``null_effect``, ``cycle_strength``, ``n_cycle_genes``), ``files`` reads
    ``inputs.mouse`` / ``inputs.human``, ``registry`` loads the registry entry ``id``.
    ``sample_key`` and
    ``condition_key`` name the user's ``obs`` columns copied to ``sample`` and
    ``condition`` (null: the data has none; every cell gets one sample / condition).
    ``max_cells`` subsamples at most this many cells, evenly per sample (``debug=tiny``).
    ``species`` lists the species to use. ``gene_symbols`` names the ``var`` column with
    gene symbols when the inputs' gene names are IDs (null: Ensembl IDs are mapped through
    the shipped tables; see :func:`mkcell.io.read`). ``samples_file`` is a CSV/TSV with one
    row per sample (clinical covariates such as ``platelets``), joined to the cells by sample
    (:func:`mkcell.io.join_samples`); its columns can enter ``design=`` and ``associate``.
    """

    source: DataSource = DataSource.demo
    n_cells: int = 10_000
    n_genes: int = 1500
    n_samples: int = 4
    null_effect: bool = False
    cycle_strength: float = 1.0
    n_cycle_genes: int = 120
    inputs: InputsConf = field(default_factory=InputsConf)
    id: str | None = None
    sample_key: str | None = "sample"
    condition_key: str | None = "condition"
    species: list[str] = field(default_factory=lambda: list(SPECIES))
    max_cells: int | None = None
    gene_symbols: str | None = None
    samples_file: str | None = None


@dataclass
class ComputeConf:
    """``compute``: Lightning settings for scVI training (they do not change the fingerprints)."""

    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"


@dataclass
class ReportConf:
    """``report``: the HTML report and figures."""

    title: str = "mkcell report"
    dpi: int = 110


@dataclass
class Config:
    """The whole workflow configuration (``mkcell --cfg job`` prints it)."""

    mode: Mode = Mode.run
    data: DataConf = MISSING
    orthologs: OrthologsConf = field(default_factory=OrthologsConf)
    qc: QcConf = MISSING
    integrate: IntegrateConf = MISSING
    annotate: AnnotateConf = MISSING
    trajectory: TrajectoryConf = MISSING
    score: ScoreConf = MISSING
    pool: PoolConf = MISSING
    compute: ComputeConf = MISSING
    reference: ReferenceConf = MISSING
    associate: AssociateConf = field(default_factory=AssociateConf)
    gsea: GseaConf = field(default_factory=GseaConf)
    e2f_clusters: E2fClustersConf = field(default_factory=E2fClustersConf)
    bulk: BulkConf = field(default_factory=BulkConf)
    report: ReportConf = field(default_factory=ReportConf)
    seed: int = 0
    design: str = "~ condition"


_GROUPS = {
    "data": DataConf,
    "qc": QcConf,
    "integrate": IntegrateConf,
    "annotate": AnnotateConf,
    "trajectory": TrajectoryConf,
    "score": ScoreConf,
    "pool": PoolConf,
    "compute": ComputeConf,
    "reference": ReferenceConf,
}


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (``base_config`` and ``<group>/base_<group>``)."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for group, node in _GROUPS.items():
        cs.store(group=group, name=f"base_{group}", node=node)


def config_dir() -> Path:
    """Absolute path of the YAML configs: ``configs/`` of a checkout, else ``mkcell/configs``."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "configs", package / "configs"):
        if (candidate / "config.yaml").is_file():
            return candidate
    msg = "cannot find the mkcell configs (configs/config.yaml); reinstall mkcell"
    raise MkcellError(msg)


def unknown_keys(node: DictConfig, schema: type, prefix: str = "") -> list[str]:
    """Keys of ``node`` (e.g. added with ``+key=value``) that the dataclass ``schema`` lacks.

    Parameters
    ----------
    node
        A config node (the ``hydra`` key of the root is ignored).
    schema
        The dataclass it must follow.
    prefix
        Dotted path of ``node`` (for the messages).
    """
    hints = typing.get_type_hints(schema)
    names = {f.name for f in dataclasses.fields(schema)}
    out = []
    for key in node:
        if not prefix and key == "hydra":
            continue
        full = f"{prefix}{key}"
        if key not in names:
            out.append(full)
            continue
        sub_type = _GROUPS.get(str(key), hints[key]) if not prefix else hints[key]
        value = node[key]
        if dataclasses.is_dataclass(sub_type) and isinstance(value, DictConfig):
            out += unknown_keys(value, sub_type, f"{full}.")
    return out


def check_config(cfg: DictConfig) -> None:
    """Check what types cannot express; raise :class:`MkcellError` naming the fix.

    Parameters
    ----------
    cfg
        The composed job config.
    """
    unknown = unknown_keys(cfg, Config)
    if unknown:
        msg = (
            f"unknown config key '{unknown[0]}' (not in the schema); "
            "check the spelling (run `mkcell --cfg job` to list every key)"
        )
        raise MkcellError(msg)
    data = cfg.data
    species = list(data.species)
    bad = [s for s in species if s not in SPECIES]
    if bad or not species:
        msg = f"data.species={species}: choose from {list(SPECIES)}, e.g. 'data.species=[mouse]'"
        raise MkcellError(msg)
    source = DataSource(data.source)
    if source is DataSource.files:
        given = {s: data.inputs[s] for s in SPECIES if data.inputs[s] is not None and s in species}
        if not given:
            msg = (
                "data=files needs an input: "
                "pass data.inputs.mouse=PATH and/or data.inputs.human=PATH"
            )
            raise MkcellError(msg)
        for sp_name, path in given.items():
            if not Path(str(path)).expanduser().exists():
                msg = (
                    f"data.inputs.{sp_name}={path}: no such file or folder; "
                    "pass an existing .h5ad, "
                    "10x .h5 or 10x mtx folder"
                )
                raise MkcellError(msg)
    elif source is DataSource.registry and not data.id:
        msg = "data=registry needs a dataset id: pass data.id=ID (e.g. data.id=paul15_tradeseq)"
        raise MkcellError(msg)
    if data.max_cells is not None and data.max_cells < 10:
        msg = f"data.max_cells={data.max_cells}: use at least 10 cells, or null for all cells"
        raise MkcellError(msg)
    _check_contrasts(cfg)
    label_map = cfg.annotate.label_map
    if label_map is not None and not (
        isinstance(label_map, DictConfig) and all(isinstance(v, str) for v in label_map.values())
    ):
        msg = (
            f"annotate.label_map={label_map}: write a mapping of labels to states, "
            "e.g. 'annotate.label_map={7MEP: MEP, 8Mk: MkP}'"
        )
        raise MkcellError(msg)
    a = cfg.annotate
    for key in ("labels_file", "label_map_file"):
        path = a[key]
        if path is not None and not Path(str(path)).expanduser().is_file():
            what = (
                "a CSV with a cell column and a label column"
                if key == "labels_file"
                else "a CSV (label,state) or YAML mapping"
            )
            msg = f"annotate.{key}={path}: no such file; pass {what}"
            raise MkcellError(msg)
    if a.labels_file is not None and a.labels_key is not None:
        msg = (
            "annotate.labels_file and annotate.labels_key are both set; "
            "keep one (set the other to null)"
        )
        raise MkcellError(msg)
    if a.label_map is not None and a.label_map_file is not None:
        msg = (
            "annotate.label_map and annotate.label_map_file are both set; "
            "keep one (set the other to null)"
        )
        raise MkcellError(msg)
    if cfg.integrate.max_epochs is not None and cfg.integrate.max_epochs < 1:
        msg = (
            f"integrate.max_epochs={cfg.integrate.max_epochs}: "
            "use at least 1 (or null for the default)"
        )
        raise MkcellError(msg)
    _check_choices(cfg)
    _check_reference(cfg)
    check_patients_config(cfg)


def check_patients_config(cfg: DictConfig) -> None:
    """The samples file, the bulk input and the GSEA split."""
    from ._patients import parse_split

    d = cfg.data
    if d.samples_file is not None and not Path(str(d.samples_file)).expanduser().is_file():
        msg = (
            f"data.samples_file={d.samples_file}: no such file; pass a CSV/TSV, one row per sample"
        )
        raise MkcellError(msg)
    if Mode(cfg.mode) is Mode.bulk:
        path = d.inputs.bulk
        if path is None or not Path(str(path)).expanduser().is_file():
            msg = (
                f"mode=bulk needs a samples x genes table: data.inputs.bulk={path} is not a file; "
                "pass data.inputs.bulk=PATH (CSV/TSV or a GEO series matrix)"
            )
            raise MkcellError(msg)
    if cfg.gsea.split is not None:
        parse_split(cfg.gsea.split)


def _check_contrasts(cfg: DictConfig) -> None:
    """``pool.contrasts`` must parse as the tools parse it (:mod:`mkcell.tl._design`)."""
    from ..tl._design import parse_contrasts

    contrasts = cfg.pool.contrasts
    if contrasts is None:
        return
    try:
        parse_contrasts(OmegaConf.to_container(contrasts, resolve=True))
    except MkcellError as err:
        msg = (
            f"pool.contrasts: {err} — e.g. 'pool.contrasts=[[MDS,control],[MDS_drug,MDS]]' "
            "or [[MDS_drug,MDS,control_drug,control]]"
        )
        raise MkcellError(msg) from None


def _check_reference(cfg: DictConfig) -> None:
    """``mode=map``: the reference folder must be a trusted reference holding the input species."""
    if Mode(cfg.mode) is not Mode.map:
        return
    from ..tl._reference import load_reference

    ref = cfg.reference
    if ref.dir is None:
        msg = (
            "mode=map needs a reference: "
            "pass reference.dir=RUN_DIR (the folder of a finished mkcell run)"
        )
        raise MkcellError(msg)
    if ref.max_epochs is not None and ref.max_epochs < 1:
        msg = f"reference.max_epochs={ref.max_epochs}: use at least 1 (or null for the default)"
        raise MkcellError(msg)
    try:
        loaded = load_reference(str(ref.dir))
    except MkcellError as err:
        msg = f"reference.dir={ref.dir}: {err}"
        raise MkcellError(msg) from None
    data = cfg.data
    wanted = [
        s
        for s in data.species
        if DataSource(data.source) is not DataSource.files or data.inputs[s] is not None
    ]
    lacking = [s for s in wanted if s not in loaded.species]
    if lacking:
        have = loaded.species
        msg = (
            f"reference.dir={ref.dir} holds {have} cells only, "
            f"but the query has {lacking[0]} cells (data.inputs.{lacking[0]}); "
            f"map them onto a reference with {lacking[0]} cells, or set "
            f"data.species={have}"
        )
        raise MkcellError(msg)


def _check_choices(cfg: DictConfig) -> None:
    """Values the score and pool stages would reject only after integration: check them now.

    ``Literal`` choices of the tools (``score.method``, ``score.on_missing``...) are enums of
    the schema and fail at compose already.
    """
    from .._genesets import read_gmt
    from ..tl._inference import parse_design
    from ..tl._pool import DENOMINATOR_CHOICES

    if cfg.pool.denominator not in DENOMINATOR_CHOICES:
        msg = f"pool.denominator={cfg.pool.denominator}: choose one of {list(DENOMINATOR_CHOICES)}"
        raise MkcellError(msg)
    if cfg.score.gmt is not None:
        read_gmt(str(cfg.score.gmt))  # a missing or unparsable file fails here, naming the line
    parse_design(cfg.design)  # the message names design= and shows a valid formula


register_configs()
