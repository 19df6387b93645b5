"""Every AnnData key and state name that mkcell reads or writes, grouped by slot.

Other modules import these names (``from mkcell import _keys as K``) and never spell an
``mk_…`` string themselves: ``tests/test_architecture.py`` rejects such literals. Tools take
``key_added=`` to write under another name; the defaults are here.
"""

from __future__ import annotations

# ---------------------------------------------------------------- obs (per cell)
SPECIES = "species"
SAMPLE = "sample"
CONDITION = "condition"
STATE = "mk_state"
STATE_CONFIDENCE = "mk_state_confidence"
STATE_CLUSTER = "mk_cluster"
PSEUDOTIME = "mk_pseudotime"
PSEUDOTIME_SPREAD = "mk_pseudotime_spread"  # mapping: weighted SD of the neighbours' pseudotime
MAP_DISTANCE = "mk_map_distance"  # mapping: distance to the reference, in units of its own spacing
#: Mapping: best expression-profile correlation over its calibration.
MAP_PROFILE = "mk_map_profile_match"
MK_STAGE = "mk_stage"
#: Per-sample obs of a bulk AnnData (one row per sample), written by mk.tl.e2f_clusters.
E2F_CLUSTER = "mk_e2f_cluster"
E2F_Z = "mk_e2f_z"  # mean z-score of the E2F + Aurora genes of the sample
#: The readout name of the per-sample MkP fraction in mk.tl.associate.
MKP_FRACTION = "mkp_fraction"
FATE = "mk_fate"
S_SCORE = "S_score"
G2M_SCORE = "G2M_score"
PHASE = "phase"
SCORE_PREFIX = "mk_score_"
#: Pseudo-score compared between conditions: the share of cells not in G1 (from ``phase``).
CYCLING_FRACTION = "cycling_fraction"
#: mk.tl.endomitosis: per-cell cytokinesis-vs-mitosis contrast (G2M Mk-lineage cells; low =
#: endomitotic) and ploidy proxy (Mk-lineage cells: log RNA against the sample's other cells).
CYTOKINESIS_CONTRAST = "mk_cytokinesis_contrast"
PLOIDY_PROXY = "mk_ploidy_proxy"
#: Prefix of the cycle covariates handed to scVI as continuous covariates (obs of its copy).
CYCLE_COVARIATE_PREFIX = "mk_cycle_"
#: Scratch obs columns of the per-sample tables handed to pertpy (scCODA, Milo).
TMP_SAMPLE = "mk_sample"
TMP_CONDITION = "mk_condition"
TMP_CELL_TYPE = "mk_cell_type"
#: Quality control (mk.pp.qc): the verdict per cell (``QC_PASS`` or one of ``QC_REASONS``).
QC = "mk_qc"
DOUBLET_SCORE = "mk_doublet_score"  # scrublet's doublet score (NaN where scrublet did not run)
DOUBLET = "mk_doublet"  # the doublet call (bool)
PLATELET_SHARE = "mk_platelet_share"  # share of a cell's counts in platelet genes
#: Boolean ``obs`` column per reason: ``mk_qc_<reason>`` (a cell may meet several reasons).
QC_FLAG = {
    "low_quality": "mk_qc_low_quality",
    "doublet": "mk_qc_doublet",
    "doublet_high_counts": "mk_qc_doublet_high_counts",
    "platelet_coated": "mk_qc_platelet_coated",
}
#: Per-cell QC metrics (from scanpy.pp.calculate_qc_metrics), as ``obs`` columns.
QC_METRICS = {
    "total_counts": "mk_qc_total_counts",
    "n_genes_by_counts": "mk_qc_n_genes",
    "pct_counts_mt": "mk_qc_pct_mt",
    "pct_counts_ribo": "mk_qc_pct_ribo",
    "pct_counts_hb": "mk_qc_pct_hb",
}

# ---------------------------------------------------------------- obsm / layers
LATENT = "X_mk_scvi"
PCA_BASELINE = "X_mk_pca"
CYCLE_COVARIATES = "mk_cycle_covariates"
UMAP = "X_mk_umap"
COUNTS = "counts"
#: Layer of log-expression of a bulk table (mk.io.read_bulk): log2(CPM + 1) of counts, or the
#: file's own log values (microarray).
LOG_EXPRESSION = "log_expression"

# ---------------------------------------------------------------- var (per gene)
HVG = "mk_highly_variable"
TRAJECTORY_FEATURE = "mk_trajectory_feature"
LOGNORM = "mk_lognorm"  # layer: cached log1p(counts per 10,000) (mkcell.pp._normalize)
CONNECTIVITIES = "mk_connectivities"  # obsp: kNN graph of the latent space (mkcell._graph)
DISTANCES = "mk_distances"  # obsp: its kNN distances

# ---------------------------------------------------------------- uns (per step)
INPUT = "mk_input"
ORTHOLOGS = "mk_orthologs"
GENE_IDS = "mk_gene_ids"
INTEGRATE = "mk_integrate"
METRICS = "mk_integration_metrics"
ANNOTATE = "mk_annotate"
TRAJECTORY = "mk_trajectory"
MATURATION = "mk_maturation"
SCORE = "mk_score"
SCORE_TRENDS = "mk_score_trends"
SCORE_COMPARE = "mk_score_compare"
SCORE_DE = "mk_score_de"
ENDOMITOSIS = "mk_endomitosis"  # mk.tl.endomitosis: contrasts, sample means, trends
POOL = "mk_pool"
COMPOSITION = "mk_composition"
MILO = "mk_milo"
TRUTH = "mk_truth"
MAP = "mk_map"
POOL_VS_REFERENCE = "mk_pool_vs_reference"
LOGNORM_RECORD = "mk_lognorm"  # what the cached `layers[LOGNORM]` was computed from
NEIGHBORS = "mk_neighbors"  # scanpy-style neighbors record of obsp[CONNECTIVITIES / DISTANCES]
X_IS_COUNTS = "mk_x_is_counts"  # a stage file wrote X once, as layers[COUNTS] (mkcell._utils)
SAMPLES = "mk_samples"  # mk.io.join_samples: the samples file joined into obs
ASSOCIATIONS = "mk_associations"  # mk.tl.associate: readouts vs continuous sample covariates
E2F_CLUSTERS = "mk_e2f_clusters"  # mk.tl.e2f_clusters: samples clustered on E2F targets
GSEA = "mk_gsea"  # the workflow's patient GSEA: one table over species and group pairs
BULK = "mk_bulk"  # mk.io.read_bulk: source, orientation, kind and the per-probe fate

# ---------------------------------------------------------------- QC verdicts (obs['mk_qc'])
QC_PASS = "pass"
QC_LOW_QUALITY = "low_quality"  # few counts or genes, or a high mitochondrial share
QC_DOUBLET = "doublet"  # called by scrublet (with the library-size evidence)
QC_DOUBLET_HIGH_COUNTS = "doublet_high_counts"  # above the upper count / gene bounds
QC_PLATELET = "platelet_coated"  # platelet transcripts on a cell that is not Mk lineage
#: One reason per cell, the first that applies in this order.
QC_REASONS = (QC_LOW_QUALITY, QC_DOUBLET, QC_DOUBLET_HIGH_COUNTS, QC_PLATELET)

# --------------------------------------------------------------- states (values of obs['mk_state'])
HSC_MPP = "HSC/MPP"
MEP = "MEP"
MKP = "MkP"
MK = "Mk"
ERYTHROID = "erythroid"
MYELOID = "myeloid"
OTHER = "other"
STATES = (HSC_MPP, MEP, MKP, MK, ERYTHROID, MYELOID, OTHER)
#: Mapped cells far from every reference cell (mk.tl.map_to_reference): never a marker state,
#: counted like ``other`` by the pool (outside the MkP + Mk and HSPC denominators).
UNKNOWN = "unknown"
MAPPED_STATES = (*STATES, UNKNOWN)
MK_LINEAGE = (MKP, MK)
HSPC = (HSC_MPP, MEP, MKP)
SPECIES_NAMES = ("mouse", "human")

# ---------------------------------------------------------------- pool denominators
#: ``denominator=`` values of mk.tl.progenitor_pool and the ``pool`` config.
DENOM_MK_LINEAGE = "mk_lineage"
DENOM_HSPC = "hspc"
DENOM_ALL = "all"
#: What the MkP fraction is a share of, per pool denominator (figures and report).
DENOMINATOR_WORDS = {
    DENOM_MK_LINEAGE: "MkP / (MkP + Mk)",
    DENOM_HSPC: "MkP / (HSC/MPP + MEP + MkP)",
    DENOM_ALL: "MkP / all cells",
}
