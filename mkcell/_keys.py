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

# states
MKP = "MkP"
MK = "Mk"
STATES = ("HSC/MPP", "MEP", "MkP", "Mk", "erythroid", "myeloid", "other")
MK_LINEAGE = (MKP, MK)
HSPC = ("HSC/MPP", "MEP", "MkP")
SPECIES_NAMES = ("mouse", "human")
