"""A finished run as a mapping reference: what it must hold, how it is written and checked.

A reference is a run folder of the normal workflow. Its ``reference/manifest.json``
lists every file mapping reads, with a sha256 each, the mkcell version, the features
and the species. Nothing is unpickled: the network is rebuilt from
``model/setup.json`` and ``model/weights.npz`` (plain arrays, read with
``allow_pickle=False``); cells are an obs-only ``.h5ad`` (HDF5), the rest JSON and CSV.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._blocks import column_mean_var, row_blocks
from .._settings import MkcellError, logger
from .._utils import get_counts, write_h5ad_atomic, write_text_atomic
from ..io._fetch import file_sha256
from ..pp._normalize import log_normalize_matrix

MANIFEST = "reference/manifest.json"
CELLS = "reference/cells.h5ad"
CONFIG = "reference/config.json"
PROFILES = "reference/profiles.h5ad"
POOL_TABLE = "tables/pool_per_sample.csv"
ORTHOLOG_TABLE = "tables/ortholog_report.csv"
WEIGHTS = "model/weights.npz"
SETUP = "model/setup.json"
#: Cells a (species, state) group needs for its own expression profile.
MIN_PROFILE_CELLS = 20
#: Quantile of the reference cells' correlation with their own profile below which a
#: mapped cell's expression is unlike its state's (see :func:`mkcell.tl.map_to_reference`).
PROFILE_QUANTILE = 0.005
#: Version of the manifest's layout.
FORMAT = 1
#: ``obs`` columns of the reference cells that mapping transfers or compares against.
CELL_COLUMNS = (K.SPECIES, K.SAMPLE, K.CONDITION, K.STATE, K.MK_STAGE, K.PSEUDOTIME, K.FATE)
FIX = (
    "pass the run folder of a finished mkcell run (mkcell ... hydra.run.dir=RUN_DIR)"
    " as the reference"
)


def _major(version: str) -> tuple[int, ...]:
    """The part of a version that breaks compatibility: ``major``, or ``0.minor`` before 1.0."""
    parts = [int(p) if p.isdigit() else -1 for p in str(version).split(".")[:2]]
    return tuple(parts[:2]) if parts and parts[0] == 0 else tuple(parts[:1])


def _version() -> str:
    from .. import __version__

    return __version__


def write_reference(
    adata: AnnData, run_dir: str | os.PathLike, *, config: dict[str, Any] | None = None
) -> Path:
    """Write ``reference/`` into a finished run folder, so that new samples can be mapped onto it.

    Needs ``model/weights.npz`` and ``model/setup.json`` (written by
    :func:`mkcell.integrate.scvi` with ``save_dir``) and ``tables/pool_per_sample.csv``.
    Writes the reference cells (``obs`` columns of :data:`CELL_COLUMNS`, the latent
    space and the UMAP; no counts), the config and, last, the manifest with the
    checksums of every file mapping reads.

    Parameters
    ----------
    adata
        The finished run's cells (states, pseudotime, latent space).
    run_dir
        The run folder.
    config
        The run's config as plain data (recorded; mapping reads ``orthologs.keep_species_specific``).

    Returns
    -------
    Path of the manifest.
    """
    run_dir = Path(run_dir)
    for rel in (WEIGHTS, SETUP, POOL_TABLE):
        if not (run_dir / rel).is_file():
            msg = (
                f"cannot write a reference: {run_dir / rel} is missing"
                " (the integrate or pool stage did not write it)"
            )
            raise MkcellError(msg)
    setup = json.loads((run_dir / SETUP).read_text())
    cols = [c for c in CELL_COLUMNS if c in adata.obs.columns]
    obs = adata.obs[cols].copy()
    for c in (K.SPECIES, K.SAMPLE, K.CONDITION):
        if c in obs:
            obs[c] = obs[c].astype(str).astype("category")
    cells = AnnData(obs=obs)
    for key in (K.LATENT, K.UMAP):
        if key in adata.obsm:
            cells.obsm[key] = np.asarray(adata.obsm[key], dtype=np.float32)
    traj = adata.uns.get(K.TRAJECTORY, {})
    stages = traj.get("maturation_stages", {}) if isinstance(traj, dict) else {}
    if isinstance(stages, dict) and stages.get("refined"):
        cells.uns["maturation_stages"] = {
            "onset_pseudotime": float(stages["onset_pseudotime"]),
            "plateau_pseudotime": float(stages["plateau_pseudotime"]),
        }
    pool = adata.uns.get(K.POOL, {})
    choice = pool.get("denominator_choice") if isinstance(pool, dict) else None
    if isinstance(choice, pd.DataFrame):
        cells.uns["denominator"] = choice.astype(str)
    write_h5ad_atomic(cells, run_dir / CELLS)
    write_h5ad_atomic(state_profiles(adata, setup["features"]), run_dir / PROFILES)
    write_text_atomic(run_dir / CONFIG, json.dumps(config or {}, indent=1, default=str))
    files = [WEIGHTS, SETUP, CELLS, PROFILES, CONFIG, POOL_TABLE]
    if (run_dir / ORTHOLOG_TABLE).is_file():
        files.append(ORTHOLOG_TABLE)
    species = sorted(obs[K.SPECIES].astype(str).unique()) if K.SPECIES in obs else []
    manifest = {
        "format": FORMAT,
        "mkcell_version": _version(),
        "created": datetime.now(UTC).isoformat(),
        "model": setup.get("model", "scvi"),
        "features": setup["features"],
        "species": species,
        "conditions": {
            s: sorted(obs.loc[obs[K.SPECIES].astype(str) == s, K.CONDITION].astype(str).unique())
            for s in species
        }
        if K.CONDITION in obs
        else {},
        "n_cells": int(adata.n_obs),
        "files": {rel: file_sha256(run_dir / rel) for rel in files},
    }
    path = run_dir / MANIFEST
    write_text_atomic(path, json.dumps(manifest, indent=1))
    logger.info(
        "wrote the mapping reference %s (%d cells, %d features)",
        path,
        adata.n_obs,
        len(setup["features"]),
    )
    return path


def log_profiles(counts: object, columns: np.ndarray | None = None) -> sp.csr_matrix:
    """log1p of counts per 10,000 over the given feature columns (CSR cells x features, float32).

    Each cell is scaled by its total over these columns, not over all genes.
    """
    X = sp.csr_matrix(counts, dtype=np.float32)
    if columns is None:
        return log_normalize_matrix(X)
    return log_normalize_matrix(X[:, columns], copy=False)  # the subset is a new matrix


def profile_corr(
    E: sp.csr_matrix, profile: np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """Pearson correlation of each row of ``E`` (or of its ``rows``) with one ``profile``.

    The same as correlating the dense rows with the profile, computed from the sparse rows'
    sums, sums of squares and products with the profile, a block of rows at a time.
    Rows (or a profile) without variance get 0.
    """
    p = np.asarray(profile, dtype=np.float64).ravel()
    n = p.size
    p_sum, p_ss = p.sum(), p @ p
    p_var = p_ss - p_sum**2 / n
    out = []
    for block in row_blocks(E, rows):
        B = sp.csr_matrix((block.data.astype(np.float64), block.indices, block.indptr), block.shape)
        x_sum = np.asarray(B.sum(1)).ravel()
        x_ss = np.asarray(B.multiply(B).sum(1)).ravel()
        cov = np.asarray(B @ p).ravel() - x_sum * p_sum / n
        x_var = x_ss - x_sum**2 / n
        # variances at rounding level (constant rows) count as none
        den = np.sqrt(np.where(x_var > 1e-12 * np.maximum(x_ss, 1.0), x_var, 0.0) * p_var)
        ok = den > 0 if p_var > 1e-12 * max(p_ss, 1.0) else np.zeros(len(den), bool)
        out.append(np.divide(cov, den, out=np.zeros(len(den)), where=ok))
    return np.concatenate(out) if out else np.zeros(0)


def state_profiles(adata: AnnData, features: list[str], *, layer: str | None = None) -> AnnData:
    """Mean log expression of features per (species, state), and how well its own cells match it.

    One row per group with at least :data:`MIN_PROFILE_CELLS` cells, plus one row per
    state over both species (``species='all'``). ``obs['corr_low']`` is the
    :data:`PROFILE_QUANTILE` quantile of the group's cells' correlation with the
    profile, ``obs['corr_median']`` its median.
    """
    pos = adata.var_names.get_indexer(pd.Index(features))
    if (pos < 0).any():
        msg = (
            f"{int((pos < 0).sum())} model features are not genes of the run's data;"
            " this is a bug in mkcell"
        )
        raise RuntimeError(msg)
    E = log_profiles(get_counts(adata, layer), pos)
    states = adata.obs[K.STATE].astype(str).to_numpy()
    species = adata.obs[K.SPECIES].astype(str).to_numpy()
    rows, mats = [], []
    groups = [
        (s, st, (species == s) & (states == st))
        for s in np.unique(species)
        for st in np.unique(states)
    ]
    groups += [("all", st, states == st) for st in np.unique(states)]
    for sp_name, st, m in groups:
        if m.sum() < MIN_PROFILE_CELLS:
            continue
        cells = np.flatnonzero(m)
        prof, _ = column_mean_var(E, cells)
        r = profile_corr(E, prof, cells)
        rows.append(
            {
                "species": sp_name,
                "state": st,
                "n_cells": int(m.sum()),
                "corr_low": float(np.quantile(r, PROFILE_QUANTILE)),
                "corr_median": float(np.median(r)),
            }
        )
        mats.append(prof)
    obs = pd.DataFrame(rows)
    obs.index = (obs["species"] + "|" + obs["state"]).to_numpy() if len(obs) else obs.index
    X = np.vstack(mats).astype(np.float32) if mats else np.zeros((0, len(features)), np.float32)
    return AnnData(X=X, obs=obs, var=pd.DataFrame(index=list(features)))


@dataclass
class Reference:
    """A checked reference run folder (see :func:`load_reference`)."""

    path: Path
    manifest: dict[str, Any]
    setup: dict[str, Any]
    cells: AnnData
    pool: pd.DataFrame
    profiles: AnnData | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> pd.Index:
        """The model's features (genes), in the model's order."""
        return pd.Index(self.setup["features"])

    @property
    def species(self) -> list[str]:
        """Species the reference holds."""
        return list(self.manifest.get("species", []))

    def model(self) -> Any:  # noqa: ANN401 - scvi.model.SCVI, imported lazily
        """The trained SCVI, rebuilt from ``setup.json`` and ``weights.npz`` (no pickle)."""
        import scvi
        import torch

        s = self.setup
        batch_key, species_key = s["batch_key"], s["species_key"]
        batches = list(s["batch_categories"])
        covs = s.get("categorical_covariates", {})
        cov_cats = {k: list(v) for k, v in covs.items()}
        n = 3 * max([len(batches), *(len(v) for v in cov_cats.values())])
        obs = pd.DataFrame(index=[f"c{i}" for i in range(n)])
        obs[batch_key] = pd.Categorical(
            [batches[i % len(batches)] for i in range(n)], categories=batches
        )
        for k, cats in cov_cats.items():
            obs[k] = pd.Categorical([cats[i % len(cats)] for i in range(n)], categories=cats)
        cont = s.get("continuous_covariates") or None
        for k in cont or ():
            obs[k] = 0.0
        dummy = AnnData(
            X=np.zeros((n, len(s["features"])), dtype=np.float32),
            obs=obs,
            var=pd.DataFrame(index=s["features"]),
        )
        scvi.model.SCVI.setup_anndata(
            dummy,
            batch_key=batch_key,
            categorical_covariate_keys=[species_key] if species_key in cov_cats else None,
            continuous_covariate_keys=cont,
        )
        net = scvi.model.SCVI(dummy, **s.get("init_params", {}), **s.get("init_kwargs", {}))
        got = list(net.adata_manager.get_state_registry("batch").categorical_mapping)
        if got != batches:
            msg = (
                f"reference {self.path}: the rebuilt model's batches differ from setup.json;"
                " this is a bug in mkcell"
            )
            raise RuntimeError(msg)
        with np.load(self.path / WEIGHTS, allow_pickle=False) as z:
            state = {k: torch.from_numpy(np.array(z[k])) for k in z.files}
        try:
            net.module.load_state_dict(state)
        except RuntimeError as err:
            msg = (
                f"reference {self.path}: {WEIGHTS} does not fit the network described in {SETUP}"
                f" ({str(err).splitlines()[0]}); run the reference again"
            )
            raise MkcellError(msg) from None
        net.module.eval()
        net.is_trained_ = True
        return net


def _reference_root(path: Path) -> Path:
    """The run folder, also when the ``reference/`` subfolder or the manifest is given."""
    if path.is_file() and path.name == "manifest.json":
        return path.parent.parent
    if path.name == "reference" and (path / "manifest.json").is_file():
        return path.parent
    return path


def load_reference(path: str | os.PathLike | Reference, *, check: bool = True) -> Reference:
    """Read and check a reference run folder; refuse, in one line, one that cannot be trusted.

    Refused: a path that is not a folder; a folder without ``reference/manifest.json``
    (not a finished run, or one from before mapping existed); a manifest that is not
    valid JSON; another mkcell major version (``0.minor`` before 1.0); a file the
    manifest lists that is missing or whose sha256 differs; a model whose features are
    not the manifest's; a model other than SCVI.

    Parameters
    ----------
    path
        The run folder (its ``reference/`` subfolder is accepted too).
    check
        Verify the checksums (skip only for folders you have just checked).

    Returns
    -------
    A :class:`Reference`.
    """
    import anndata as ad

    if isinstance(path, Reference):
        return path
    root = _checked_root(Path(path).expanduser())
    manifest = _read_manifest(root)
    if _major(manifest.version) != _major(_version()):
        msg = (
            f"reference {root} was made by mkcell {manifest.version}, this is mkcell {_version()}"
            " (another major version); run the reference again with this version,"
            f" or map with mkcell {manifest.version}"
        )
        raise MkcellError(msg)
    _check_files(root, manifest.files, check=check)
    setup = _read_setup(root, manifest.features)
    cells = ad.read_h5ad(root / CELLS)
    for key in (K.LATENT,):
        if key not in cells.obsm:
            msg = f"reference {root}: {CELLS} has no obsm[{key!r}]; run the reference again"
            raise MkcellError(msg)
    pool = pd.read_csv(root / POOL_TABLE)
    profiles = ad.read_h5ad(root / PROFILES) if PROFILES in manifest.files else None
    config = json.loads((root / CONFIG).read_text()) if (root / CONFIG).is_file() else {}
    logger.info(
        "reference %s: mkcell %s, %d cells, %d features, species %s",
        root,
        manifest.version,
        cells.n_obs,
        len(manifest.features),
        manifest.data.get("species"),
    )
    return Reference(
        path=root,
        manifest=manifest.data,
        setup=setup,
        cells=cells,
        pool=pool,
        profiles=profiles,
        config=config,
    )


def _checked_root(given: Path) -> Path:
    """The run folder of an existing reference (resolved); refuse a path that holds none."""
    if not given.exists():
        msg = f"reference {given}: no such folder; {FIX}"
        raise MkcellError(msg)
    if not given.is_dir() and given.name != "manifest.json":
        msg = f"reference {given} is a file, not a run folder; {FIX}"
        raise MkcellError(msg)
    root = _reference_root(given).resolve()
    if not (root / MANIFEST).is_file():
        msg = (
            f"reference {root} is not an mkcell reference: no {MANIFEST} (not a finished run,"
            f" or made before mapping existed); {FIX}"
        )
        raise MkcellError(msg)
    return root


class _Manifest(NamedTuple):
    """A reference's manifest, with the entries every reference must have."""

    data: dict[str, Any]  # the whole manifest
    files: dict[str, str]  # file (relative to the run folder) -> sha256
    version: str  # mkcell version that wrote it
    features: list[str]  # the model's features


def _read_manifest(root: Path) -> _Manifest:
    """Parse ``reference/manifest.json``; refuse one that is not JSON or lacks an entry."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        files = dict(manifest["files"])
        version = str(manifest["mkcell_version"])
        features = list(manifest["features"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        msg = (
            f"reference {root}: cannot read {MANIFEST} ({type(err).__name__}: {err});"
            " run the reference again"
        )
        raise MkcellError(msg) from None
    return _Manifest(data=manifest, files=files, version=version, features=features)


def _check_files(root: Path, files: dict[str, str], *, check: bool) -> None:
    """Refuse a reference whose manifest omits a needed file, or whose files are gone or changed."""
    for rel in (WEIGHTS, SETUP, CELLS, POOL_TABLE):
        if rel not in files:
            msg = f"reference {root}: {MANIFEST} does not list {rel}; run the reference again"
            raise MkcellError(msg)
    for rel, digest in files.items():
        p = root / rel
        if not p.is_file():
            msg = (
                f"reference {root}: {rel} is missing (listed in {MANIFEST});"
                " copy the whole run folder, or run the reference again"
            )
            raise MkcellError(msg)
        if check and file_sha256(p) != digest:
            msg = (
                f"reference {root}: {rel} does not match its checksum in {MANIFEST}"
                " (changed after the run); restore the original file or run the reference again"
            )
            raise MkcellError(msg)


def _read_setup(root: Path, features: list[str]) -> dict[str, Any]:
    """Read ``model/setup.json``; refuse a model of other features, or one other than SCVI."""
    setup = json.loads((root / SETUP).read_text())
    if list(setup.get("features", [])) != features:
        msg = (
            f"reference {root}: the model's {len(setup.get('features', []))} features differ"
            f" from the {len(features)} in {MANIFEST}; the folder mixes two runs"
            " — run the reference again"
        )
        raise MkcellError(msg)
    if setup.get("model", "scvi") != "scvi" or setup.get("model_class", "SCVI") != "SCVI":
        msg = (
            f"reference {root} was integrated with {setup.get('model')};"
            " mapping needs an SCVI reference (integrate.model=scvi)"
        )
        raise MkcellError(msg)
    return setup
