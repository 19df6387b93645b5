"""Convert Zhu et al. 2021 (GSE145531) full-length CD34+ counts into mkcell's shipped h5ad.

Writes mkcell/data/real/zhu2021_cd34.h5ad.
Run from the repository root (inputs: the shared copy described in its PROVENANCE.md):
    python docs/data/make_zhu2021_cd34.py /work/shared/data/zhu2021_cd34
Only genes with any count are kept; counts are int32 (CSR), gzip-9 + shuffle compressed.
"""

from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

src = Path(sys.argv[1])
out = Path(__file__).resolve().parents[2] / "mkcell" / "data" / "real" / "zhu2021_cd34.h5ad"

counts = pd.read_csv(src / "GSE145531_Full_length_SingleCell_counts.txt.gz", sep="\t", index_col=0)
assert np.allclose(counts.to_numpy(), np.round(counts.to_numpy())), "not integer counts"
counts = counts.loc[counts.sum(1) > 0]
X = sp.csr_matrix(counts.to_numpy(dtype=np.int32).T)

with gzip.open(src / "metadata_subsample.txt.gz", "rt") as fh:
    rows = {r[0]: r[1:] for r in csv.reader(fh, delimiter="\t")}
meta = pd.DataFrame(
    {
        "title": rows["Sample_title"],
        "donor": rows["Sample_source_name_ch1"],
        "sex": [v.removeprefix("Sex: ") for v in rows["Sample_sex"]],
        "age": [v.removeprefix("age: ") for v in rows["Sample_age"]],
        "disease_state": [v.removeprefix("disease state: ") for v in rows["Sample_disease_state"]],
        "geo_accession": rows["ID_REF"],
    }
)
# cells are matched by name (the count table lists HDN* first, the metadata nonSAA_* first)
assert sorted(meta["title"]) == sorted(counts.columns), "cell names differ from the metadata"
obs = meta.set_index("title").loc[counts.columns.astype(str)]
obs.index.name = None
obs["condition"] = obs["disease_state"].map({"non-SAA": "nonSAA", "Ctrl": "control"})
for col in obs.columns:
    obs[col] = obs[col].astype("category")

feats = pd.read_csv(src / "features_10x_GRCh38.tsv.gz", sep="\t", header=None, usecols=[0, 1])
symbol = dict(zip(feats[0], feats[1], strict=True))
ids = counts.index.str.replace(r"\.\d+", "", regex=True)  # ENSG..._PAR_Y stays distinct
n_symbol = sum(
    i in symbol for i in ids
)  # symbols come from mkcell's shipped Ensembl tables instead
var = pd.DataFrame(index=pd.Index(ids, name=None))
adata = ad.AnnData(X=X, obs=obs, var=var)
adata.uns["provenance"] = (
    "Zhu C. et al. 2021 Blood (PMID 33763704), GEO GSE145531: Smart-seq2 Lin-CD34+ marrow cells, "
    "raw read counts (HTSeq, GENCODE 27). 86 cells of a non-severe aplastic anaemia patient (P17) "
    "and 91 of a healthy donor (Ctrl3); only genes with any count kept. "
    "var_names: Ensembl gene IDs (GENCODE 27 versions stripped); "
    "mk.io.read maps them to symbols through the shipped Ensembl BioMart table. "
    "See mkcell/data/real/PROVENANCE_zhu2021.md."
)
# gzip-9 with the shuffle filter (sorted int32 indices compress about 3x better than plain gzip)
tmp = out.with_suffix(".tmp.h5ad")
ad.AnnData(obs=adata.obs, var=adata.var, uns=adata.uns).write_h5ad(
    tmp, compression="gzip", compression_opts=9
)
with h5py.File(tmp, "r") as src, h5py.File(out, "w") as f:
    f.attrs.update(src.attrs)
    for key in ("obs", "uns", "obsm", "varm", "obsp", "varp", "layers"):
        if key in src:
            src.copy(src[key], f, name=key)
    var = f.create_group("var")
    var.attrs.update(src["var"].attrs)
    # Gene IDs as fixed-length ASCII, gzip-compressed: variable-length strings sit uncompressed
    # in the HDF5 heap (1.3 MB here). anndata reads a "string-array" through .asstr() either way.
    width = max(map(len, ids))
    d = var.create_dataset(
        "_index", data=np.array(ids, dtype=f"S{width}"), compression="gzip", compression_opts=9
    )
    d.attrs.update(src["var/_index"].attrs)
    # CSC: the row indices are cell numbers < 256, which the shuffle filter compresses well
    kw = {"compression": "gzip", "compression_opts": 9, "shuffle": True}
    ad.io.write_elem(f, "X", adata.X.tocsc(), dataset_kwargs=kw)
tmp.unlink()
print(  # noqa: T201 - a build script reports what it wrote
    out, adata.shape, adata.X.nnz, out.stat().st_size, f"{n_symbol} genes in the 10x features file"
)
