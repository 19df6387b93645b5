"""The config sections that are tools' keyword arguments (see :mod:`._schema`).

Their defaults are read from the tools' signatures: this module imports the tools only for
that, so the fingerprints do not follow its imports (``workflow/_imports.py``); a changed
default reaches them through the config values.
"""

from __future__ import annotations

from dataclasses import field

from .. import _keys as K
from ..integrate._metrics import metrics
from ..integrate._scvi import scvi
from ..io._bulk import read_bulk
from ..pp._concat import concat_species
from ..pp._hvg import highly_variable_genes
from ..pp._qc import qc
from ..tl._annotate import annotate
from ..tl._associate import associate
from ..tl._e2f_clusters import e2f_clusters
from ..tl._gsea import gsea
from ..tl._map import map_to_reference
from ..tl._pool import progenitor_pool
from ..tl._score import score
from ..tl._trajectory import trajectory
from ._schema import tool_section

#: Default contrasts: MDS vs control (mouse), treatment vs MDS (mouse), MDS vs healthy (human).
DEFAULT_CONTRASTS = [["MDS", "control"], ["MDS_drug", "MDS"], ["MDS", "healthy"]]

OrthologsConf = tool_section(
    "OrthologsConf",
    "``orthologs``: mouse genes to human orthologs and concatenation of the species.",
    {concat_species: ["keep_species_specific"]},
    module=__name__,
)
QcConf = tool_section(
    "QcConf",
    """``qc``: quality control before integration (:func:`mkcell.pp.qc`), sample by sample.

    ``enabled`` (the workflow's own field): false skips the checks (the stage still runs and
    says so; no cell is flagged). ``keep_flagged``: true keeps flagged cells in the MkP / Mk
    calls and the pool (they are flagged in ``obs['mk_qc']`` either way).
    """,
    {
        qc: [
            "nmads",
            "mito_nmads",
            "max_pct_mito",
            "exempt_z",
            "expected_doublet_rate",
            "doublet_z",
            "doublet_min_cells",
            "n_prin_comps",
            "lineage_margin",
            "max_mk_program",
            "platelet_nmads",
            "platelet_fold",
            "min_platelet_counts",
        ]
    },
    extra=[
        ("enabled", bool, field(default=True)),
        ("keep_flagged", bool, field(default=False)),
    ],
    module=__name__,
)
IntegrateConf = tool_section(
    "IntegrateConf",
    "``integrate``: feature selection, scVI / SysVI training (:func:`mkcell.integrate.scvi`), "
    "integration metrics.",
    {
        highly_variable_genes: ["n_top_genes", "exclude_cycle_linked"],
        scvi: [
            "model",
            "n_latent",
            "n_layers",
            "max_epochs",
            "batch_size",
            "lr",
            "early_stopping",
            "cycle_covariates",
            "equalize",
        ],
        metrics: ["label_key"],
    },
    module=__name__,
)
AnnotateConf = tool_section(
    "AnnotateConf",
    """``annotate``: cell states (:func:`mkcell.tl.annotate`).

    ``labels_file`` is a CSV/TSV with a cell column (``labels_cell_column``) and a label
    column (``labels_column``; null: ``cell`` / ``label`` or the two columns of a two-column
    file). ``label_map_file`` maps labels onto mkcell states from a file (two-column CSV
    ``label,state`` or YAML), for labels with spaces or punctuation. With labels, the
    marker-based annotation is skipped.
    """,
    {
        annotate: [
            "labels_key",
            "label_map",
            "n_neighbors",
            "resolution",
            "cluster_weight",
            "min_score",
            "softmax_scale",
        ]
    },
    extra=[
        ("labels_file", str | None, field(default=None)),
        ("labels_cell_column", str | None, field(default=None)),
        ("labels_column", str | None, field(default=None)),
        ("label_map_file", str | None, field(default=None)),
    ],
    module=__name__,
)
TrajectoryConf = tool_section(
    "TrajectoryConf",
    "``trajectory``: Mk pseudotime and fate (:func:`mkcell.tl.trajectory`).",
    {
        trajectory: [
            "root",
            "lineage",
            "root_state",
            "terminal_state",
            "n_neighbors",
            "connectivity_weight",
            "regress_cycle",
            "refine_states",
            "if_ends_missing",
        ]
    },
    module=__name__,
)
ScoreConf = tool_section(
    "ScoreConf",
    "``score``: cell-cycle and gene-set scores (:func:`mkcell.tl.score`).",
    {score: ["method", "gmt", "min_genes", "on_missing"]},
    module=__name__,
)


PoolConf = tool_section(
    "PoolConf",
    """``pool``: MkP pool per sample and contrasts ``[A, B]`` (A over B), samples as replicates.

    ``contrasts`` (the workflow's own field, used by the pool, the maturation shift and the
    score contrasts; ``null`` compares every condition with the reference of its species;
    ``[A, B, C, D]`` is the interaction (A − B) − (C − D), e.g. drug x disease).
    """,
    {progenitor_pool: ["denominator"]},
    extra=[
        (
            "contrasts",
            list[list[str]] | None,
            field(default_factory=lambda: [list(c) for c in DEFAULT_CONTRASTS]),
        )
    ],
    module=__name__,
)
ReferenceConf = tool_section(
    "ReferenceConf",
    """``reference``: the finished run ``mode=map`` maps onto (:func:`mkcell.tl.map_to_reference`).

    ``dir`` (the workflow's own field) is the reference's run folder.
    """,
    {map_to_reference: ["max_epochs", "n_neighbors", "unknown_distance"]},
    extra=[("dir", str | None, field(default=None))],
    module=__name__,
)
AssociateConf = tool_section(
    "AssociateConf",
    """``associate``: per-sample readouts against continuous covariates (:func:`mkcell.tl.associate`).

    ``covariates`` (the workflow's own field): per-sample columns such as ``platelets`` (from
    ``data.samples_file``); empty: no associations.
    """,
    {associate: ["readouts", "log2_covariates", "adjust", "min_cells"]},
    extra=[("covariates", list[str], field(default_factory=list))],
    module=__name__,
)
GseaConf = tool_section(
    "GseaConf",
    """``gsea``: the calibrated gene-set test between two groups of samples (:func:`mkcell.tl.gsea`).

    The workflow's own fields: ``states``, the cell states of the per-sample pseudobulk (HSPC by
    default; null: all cells); ``split``, a covariate split such as ``'platelets < 100'`` that
    makes the two groups (null: the contrasts of ``pool.contrasts`` present in the data).
    """,
    {gsea: ["test", "gene_sets", "method", "permutations", "min_size", "max_size"]},
    extra=[
        ("states", list[str] | None, field(default_factory=lambda: list(K.HSPC))),
        ("split", str | None, field(default=None)),
    ],
    module=__name__,
)
E2fClustersConf = tool_section(
    "E2fClustersConf",
    """``e2f_clusters``: samples clustered on E2F targets + AURKA/AURKB/PLK1, with a Fisher test.

    Tested against ``covariate < threshold`` (e.g. platelets; null: the first of
    ``associate.covariates``) or, without any covariate, the first condition of the first
    contrast present (:func:`mkcell.tl.e2f_clusters`).
    """,
    {e2f_clusters: ["covariate", "threshold", "n_clusters", "method", "min_cells"]},
    module=__name__,
)
BulkConf = tool_section(
    "BulkConf",
    "``bulk``: how ``mode=bulk`` reads ``data.inputs.bulk`` (:func:`mkcell.io.read_bulk`).",
    {read_bulk: ["kind", "probe_annotation", "collapse", "orientation"]},
    module=__name__,
)
