"""The load stage: read, simulate or fetch the cells; sample and condition columns; checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData
from omegaconf import DictConfig

import mkcell as mk

from .. import _keys as K
from .._settings import MkcellError, logger
from ._checks import check_data
from ._config import DataSource, Mode
from ._fingerprints import file_signature


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
    mode = Mode(cfg.mode)
    if mode is Mode.map:
        from ..tl._reference import MANIFEST, _reference_root

        root = _reference_root(Path(str(cfg.reference.dir)).expanduser())
        sig = {"query": _input_signature(cfg), "reference": file_signature(root / MANIFEST)}
    elif mode is Mode.bulk:
        sig = {"bulk": file_signature(Path(str(cfg.data.inputs.bulk)).expanduser())}
    else:
        sig = _input_signature(cfg)
    if cfg.data.samples_file is not None:
        path = Path(str(cfg.data.samples_file)).expanduser()
        sig = {"data": sig, "samples_file": file_signature(path)}
    return sig


def _input_signature(cfg: DictConfig) -> object:
    source = DataSource(cfg.data.source)
    if source is DataSource.files:
        return {
            s: file_signature(p) for s in cfg.data.species if (p := cfg.data.inputs[s]) is not None
        }
    if source is DataSource.registry:
        return {"registry": cfg.data.id, "entry": mk.io.registry_entry(cfg.data.id)}
    return None


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
    if d.samples_file is not None:
        join_samples_file(cfg, out)
    for sp_name, a in out.items():
        logger.info(
            "%s: %d cells x %d genes, %d samples, conditions %s",
            sp_name,
            a.n_obs,
            a.n_vars,
            a.obs[K.SAMPLE].nunique(),
            sorted(a.obs[K.CONDITION].astype(str).unique()),
        )
    check_design(cfg, out)
    check_data(cfg, out)
    return out


def join_samples_file(
    cfg: DictConfig, data: Mapping[str, AnnData], *, sample_key: str | None = K.SAMPLE
) -> None:
    """Join ``data.samples_file`` to every species' cells by sample, checked over all of them.

    A sample of the data missing from the file, a sample of the file in no species, a
    duplicated row and a numeric column with text in it each stop the run with one line.
    """
    path = Path(str(cfg.data.samples_file)).expanduser()
    ids = sorted(
        {str(s) for a in data.values() for s in (a.obs[sample_key] if sample_key else a.obs_names)}
    )
    try:
        samples = mk.io.read_samples(path)
        mk.io.join_samples(AnnData(obs=pd.DataFrame(index=ids)), samples, sample_key=None)
        for a in data.values():
            mk.io.join_samples(a, samples, sample_key=sample_key, allow_extra=True)
    except MkcellError as err:
        msg = f"data.samples_file={path}: {err}"
        raise MkcellError(msg) from None
    logger.info("joined %s: columns %s", path.name, list(map(str, samples.columns)))


def check_design(cfg: DictConfig, data: Mapping[str, AnnData]) -> None:
    """Every column ``design=`` names is a column of the data (or of the samples file)."""
    columns = {str(c) for a in data.values() for c in a.obs.columns}
    mk.io.check_design_columns(str(cfg.design), sorted(columns))


def _registry_sample_column(cfg: DictConfig) -> str | None:
    entry = mk.io.registry_entry(cfg.data.id)
    return (entry.get("obs_columns") or {}).get("sample")
