"""Every AnnData key that mkcell reads or writes, in one place."""

from __future__ import annotations

# obs
SPECIES = "species"
SAMPLE = "sample"
CONDITION = "condition"
STATE = "mk_state"
STATE_CONFIDENCE = "mk_state_confidence"
STATE_CLUSTER = "mk_cluster"
PSEUDOTIME = "mk_pseudotime"
PSEUDOTIME_SPREAD = "mk_pseudotime_spread"  # mapping: weighted SD of the neighbours' pseudotime
MAP_DISTANCE = "mk_map_distance"  # mapping: distance to the reference, in units of its own spacing
MAP_PROFILE = (
    "mk_map_profile_match"  # mapping: best expression-profile correlation over its calibration
)
STAGE = "mk_stage"
FATE = "mk_fate"
S_SCORE = "S_score"
G2M_SCORE = "G2M_score"
PHASE = "phase"
SCORE_PREFIX = "mk_score_"

# obsm / layers / var
LATENT = "X_mk_scvi"
PCA_BASELINE = "X_mk_pca"
CYCLE_COVARIATES = "mk_cycle_covariates"
UMAP = "X_mk_umap"
COUNTS = "counts"
HVG = "mk_highly_variable"
TRAJECTORY_FEATURE = "mk_trajectory_feature"
LOGNORM = "mk_lognorm"  # layer: cached log1p(counts per 10,000) (mkcell.pp._normalize)
CONNECTIVITIES = "mk_connectivities"  # obsp: kNN graph of the latent space (mkcell._graph)
DISTANCES = "mk_distances"  # obsp: its kNN distances

# uns
ORTHOLOGS = "mk_orthologs"
GENE_IDS = "mk_gene_ids"
INTEGRATE = "mk_integrate"
METRICS = "mk_integration_metrics"
ANNOTATE = "mk_annotate"
TRAJECTORY = "mk_trajectory"
SCORE = "mk_score"
POOL = "mk_pool"
TRUTH = "mk_truth"
MAP = "mk_map"
POOL_VS_REFERENCE = "mk_pool_vs_reference"
LOGNORM_RECORD = "mk_lognorm"  # what the cached `layers[LOGNORM]` was computed from
NEIGHBORS = "mk_neighbors"  # scanpy-style neighbors record of obsp[CONNECTIVITIES / DISTANCES]

# states
MKP = "MkP"
MK = "Mk"
STATES = ("HSC/MPP", "MEP", "MkP", "Mk", "erythroid", "myeloid", "other")
#: Mapped cells far from every reference cell (mk.tl.map_to_reference): never a marker state,
#: counted like ``other`` by the pool (outside the MkP + Mk and HSPC denominators).
UNKNOWN = "unknown"
MAPPED_STATES = (*STATES, UNKNOWN)
MK_LINEAGE = (MKP, MK)
HSPC = ("HSC/MPP", "MEP", "MkP")
SPECIES_NAMES = ("mouse", "human")
