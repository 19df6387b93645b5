"""The reference: what an experienced user would write in a notebook, without mkcell.

scanpy preprocessing, scvi-tools SCVI (library defaults, the same epochs as mkcell), a
marker-based MkP call per Leiden cluster, diffusion pseudotime, CellRank 2
``PseudotimeKernel`` + ``GPCCA`` with library defaults (``fit``,
``predict_terminal_states``, ``compute_fate_probabilities``), cell-cycle / E2F scores per
condition and the MkP fraction per sample. It reads only mkcell's *data files* (ortholog
table, marker and gene lists), never its code.

Each stage prints one JSON line ``{"stage": ..., "seconds": ...}``; the last line is
``{"done": true, ...}``. ``bench_reference.py`` runs it in a subprocess and watches its
memory.

    python benchmarks/reference_pipeline.py mouse.h5ad human.h5ad --epochs 80
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "mkcell" / "data"


class Stages:
    """Time each stage and print it as a JSON line."""

    def __init__(self) -> None:
        self.t = time.perf_counter()

    def done(self, stage: str, **extra: object) -> None:
        now = time.perf_counter()
        print(json.dumps({"stage": stage, "seconds": round(now - self.t, 3), **extra}), flush=True)
        self.t = now


def gene_sets() -> tuple[list[str], list[str], list[str]]:
    """S-phase, G2M (Tirosh 2016) and Hallmark E2F target genes (human symbols)."""
    sets = {}
    for line in (DATA / "genesets" / "cellcycle_e2f_human.gmt").read_text().splitlines():
        name, _, *genes = line.split("\t")
        sets[name] = genes
    return sets["TIROSH2016_S_PHASE"], sets["TIROSH2016_G2M_PHASE"], sets["HALLMARK_E2F_TARGETS"]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("mouse", type=Path)
    p.add_argument("human", type=Path)
    p.add_argument(
        "--epochs", type=int, required=True, help="scVI epochs (mkcell's default for this size)"
    )
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    import anndata as ad
    import cellrank as cr
    import numpy as np
    import pandas as pd
    import scanpy as sc
    import scvi

    st = Stages()
    scvi.settings.seed = a.seed

    # --- load, one-to-one orthologs, concatenate
    mouse, human = sc.read_h5ad(a.mouse), sc.read_h5ad(a.human)
    orth = pd.read_csv(DATA / "orthologs" / "biomart_mouse_to_human.csv.gz")
    orth = orth[orth["Human homology type"] == "ortholog_one2one"][
        ["Gene name", "Human gene name"]
    ].dropna()
    orth = orth.drop_duplicates("Gene name").drop_duplicates("Human gene name")
    m2h = dict(zip(orth["Gene name"], orth["Human gene name"], strict=True))
    mouse = mouse[:, mouse.var_names.isin(list(m2h))].copy()
    mouse.var_names = [m2h[g] for g in mouse.var_names]
    adata = ad.concat(
        {"mouse": mouse, "human": human}, label="species", join="inner", index_unique="-"
    )
    del mouse, human
    st.done("load_map", n_obs=adata.n_obs, n_vars=adata.n_vars)

    # --- preprocessing
    adata.layers["counts"] = adata.X.copy()
    sc.pp.filter_genes(adata, min_cells=3)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(
        adata, n_top_genes=2000, flavor="seurat_v3", layer="counts", batch_key="sample"
    )
    st.done("preprocess")

    # --- scVI (library defaults but the epochs)
    hv = adata[:, adata.var["highly_variable"]].copy()
    scvi.model.SCVI.setup_anndata(
        hv, layer="counts", batch_key="sample", categorical_covariate_keys=["species"]
    )
    model = scvi.model.SCVI(hv)
    model.train(max_epochs=a.epochs)
    adata.obsm["X_scVI"] = model.get_latent_representation()
    del hv
    st.done("scvi", epochs=a.epochs)

    # --- neighbours, clusters, UMAP
    sc.pp.neighbors(adata, use_rep="X_scVI")
    sc.tl.leiden(adata, flavor="igraph", n_iterations=2, directed=False, random_state=a.seed)
    sc.tl.umap(adata, random_state=a.seed)
    st.done("neighbors_leiden_umap", n_clusters=int(adata.obs["leiden"].nunique()))

    # --- cluster annotation by marker scores (each cluster gets its best state)
    markers = pd.read_csv(DATA / "markers" / "marker_panels.tsv", sep="\t")
    for state, genes in markers.groupby("state")["human"]:
        sc.tl.score_genes(adata, list(genes), score_name=f"score_{state}")
    cols = [f"score_{s}" for s in markers["state"].unique()]
    best = (
        adata.obs.groupby("leiden", observed=True)[cols]
        .mean()
        .idxmax(axis=1)
        .str.removeprefix("score_")
    )
    adata.obs["state"] = adata.obs["leiden"].map(best).astype(str).astype("category")
    st.done("annotate", states=sorted(adata.obs["state"].unique()))

    # --- pseudotime and CellRank 2 GPCCA with library defaults
    sc.tl.diffmap(adata)
    hsc = np.flatnonzero(adata.obs["state"] == "HSC/MPP")
    adata.uns["iroot"] = (
        int(hsc[np.argmax(adata.obs["score_HSC/MPP"].to_numpy()[hsc])]) if hsc.size else 0
    )
    sc.tl.dpt(adata)
    st.done("diffusion_pseudotime")
    pk = cr.kernels.PseudotimeKernel(adata, time_key="dpt_pseudotime").compute_transition_matrix()
    st.done("cellrank_kernel")
    g = cr.estimators.GPCCA(pk)
    g.fit(cluster_key="state")
    st.done("cellrank_gpcca_fit")
    g.predict_terminal_states()
    g.compute_fate_probabilities()
    st.done("cellrank_fates", terminal=[str(t) for t in g.terminal_states.cat.categories])

    # --- cell-cycle and E2F scores per condition, MkP fraction per sample
    s_genes, g2m_genes, e2f = gene_sets()
    sc.tl.score_genes_cell_cycle(adata, s_genes=s_genes, g2m_genes=g2m_genes)
    sc.tl.score_genes(adata, e2f, score_name="E2F")
    by_cond = (
        adata.obs[adata.obs["state"] == "MkP"]
        .groupby(["species", "condition"], observed=True)["E2F"]
        .mean()
    )
    pool = pd.crosstab(adata.obs["sample"], adata.obs["state"] == "MkP", normalize="index")
    st.done("score_pool", e2f_mkp=by_cond.round(3).to_dict().__repr__(), n_samples=len(pool))
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main()
