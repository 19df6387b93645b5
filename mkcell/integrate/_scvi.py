"""Cross-species integration with scvi-tools (SCVI, or SysVI for strong system effects)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .. import _keys as K
from .._settings import MkcellError, logger, settings
from .._utils import check_adata, check_obs_key, get_counts, log_write


def _import_scvi():  # noqa: ANN202
    try:
        import scvi
    except ImportError as err:  # pragma: no cover - scvi-tools is a required dependency
        msg = (
            "mk.integrate.scvi needs scvi-tools: pip install scvi-tools"
            " (and a torch build for your machine)"
        )
        raise ImportError(msg) from err
    return scvi


def resolve_accelerator(accelerator: str | None = "auto") -> str:
    """The Lightning accelerator to train on: ``"gpu"`` or ``"cpu"`` (or ``"mps"``).

    ``None`` or ``"auto"`` defer to :attr:`mkcell.settings.accelerator
    <mkcell._settings.Settings.accelerator>`; where that is ``"auto"`` too, a CUDA GPU is
    used when torch sees one, else the CPU.
    """
    import torch

    where = "accelerator"
    if accelerator is None or accelerator == "auto":
        accelerator, where = settings.accelerator, "mk.settings.accelerator"
    if accelerator not in {"auto", "gpu", "cpu", "cuda", "mps"}:
        msg = f"{where}={accelerator!r}; choose 'auto', 'gpu' or 'cpu'"
        raise MkcellError(msg)
    has_gpu = torch.cuda.is_available()
    if accelerator in {"gpu", "cuda"} and not has_gpu:
        msg = (
            f"{where}='gpu' but torch sees no CUDA GPU; set {where} to 'auto' or 'cpu', "
            "or install a CUDA build of torch"
        )
        raise MkcellError(msg)
    if accelerator == "auto":
        return "gpu" if has_gpu else "cpu"
    return "gpu" if accelerator == "cuda" else accelerator


#: How :func:`scvi` equalises gene means between species before training.
EQUALIZE = ("states", "all", "none")
#: Cells of a marker state needed in each species for that state to enter the ratio.
MIN_STATE_CELLS = 20


#: Rows thinned at a time by :func:`equalize_species` (bounds its temporary arrays).
THIN_CHUNK_ROWS = 50_000


def equalize_species(
    counts: sp.csr_matrix, species: np.ndarray, seed: int = 0, groups: np.ndarray | None = None
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Equalise each gene's mean expression between species by binomial thinning.

    For each gene, the species with the higher mean (of counts per 10,000) is thinned
    by the ratio of the two means, so counts stay integers and the per-gene species
    offset — which scVI and SysVI leave in the latent space when it is strong — is
    removed before training. With ``groups`` (a rough state per cell), the ratio is
    the geometric mean of the ratios within each group both species have (at least
    ``MIN_STATE_CELLS`` cells each), so a species sorted for progenitors is not
    thinned for the mature cells it lacks; without, the means over all cells are
    compared, which assumes similar composition.

    Memory: ``counts`` is never copied whole; the means read one group's rows at a time
    and the thinning works on :data:`THIN_CHUNK_ROWS` rows at a time, so beyond the
    input and the thinned output it needs about one group's rows.

    Returns
    -------
    (thinned counts, CSR in the input's dtype; per-gene ratio of the first species' mean
    over the second's)
    """
    X = sp.csr_matrix(counts)
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        X = X.astype(np.float32)
    names = np.unique(species)
    if len(names) != 2:
        return X, np.ones(X.shape[1])
    lib = np.asarray(X.sum(1, dtype=np.float32)).ravel()
    lib[lib == 0] = 1
    scale = (1e4 / lib).astype(np.float32)

    def log_ratio(mask: np.ndarray) -> np.ndarray:
        means = []
        for s in names:
            rows = np.flatnonzero(mask & (species == s))
            part = sp.diags(scale[rows]) @ sp.csr_matrix(X[rows], dtype=np.float32)
            means.append(np.asarray(part.mean(0)).ravel() + 1e-3)
        return np.log(means[0] / means[1])

    shared = []
    if groups is not None:
        groups = np.asarray(groups).astype(str)
        for g in np.unique(groups):
            n = [int(((groups == g) & (species == s)).sum()) for s in names]
            if g != "other" and min(n) >= MIN_STATE_CELLS:
                shared.append(g)
        if not shared:
            logger.warning(
                "no marker state has %d cells in both species; equalising over all cells",
                MIN_STATE_CELLS,
            )
    ratio = (
        np.exp(np.mean([log_ratio(groups == g) for g in shared], axis=0))
        if shared
        else np.exp(log_ratio(np.ones(len(species), bool)))
    )
    return thin_to_ratio(X, species == names[0], ratio, seed), ratio


def thin_to_ratio(
    X: sp.csr_matrix, first: np.ndarray, ratio: np.ndarray, seed: int = 0
) -> sp.csr_matrix:
    """Thin counts so that each gene's species means meet.

    The last step of :func:`equalize_species`, and what a query mapped onto a reference
    gets (:mod:`mkcell.tl._map`). Cells of the first species (``first``) keep each count
    of gene ``g`` with probability ``min(1, 1 / ratio[g])``, the others with
    ``min(1, ratio[g])``. Works on
    :data:`THIN_CHUNK_ROWS` rows at a time; the draws are those of one pass over all
    non-zero values in row order. Returns a new CSR in ``X``'s dtype.
    """
    ratio = np.asarray(ratio, dtype=np.float64)
    keep = {True: np.minimum(1, 1 / ratio), False: np.minimum(1, ratio)}
    rng = np.random.default_rng(seed)
    data, indices, row_nnz = [], [], []
    for start in range(0, X.shape[0], THIN_CHUNK_ROWS):
        stop = min(start + THIN_CHUNK_ROWS, X.shape[0])
        lo, hi = X.indptr[start], X.indptr[stop]
        cols = X.indices[lo:hi]
        per_row = np.diff(X.indptr[start : stop + 1])
        row_first = np.repeat(first[start:stop], per_row)
        p = np.where(row_first, keep[True][cols], keep[False][cols])
        drawn = rng.binomial(np.round(X.data[lo:hi]).astype(np.int64), p)
        nz = drawn > 0
        data.append(drawn[nz].astype(X.dtype))
        indices.append(cols[nz])
        rows = np.repeat(np.arange(stop - start), per_row)
        row_nnz.append(np.bincount(rows[nz], minlength=stop - start))
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(row_nnz))])
    return sp.csr_matrix(
        (np.concatenate(data), np.concatenate(indices), indptr.astype(X.indptr.dtype)),
        shape=X.shape,
    )


def marker_states(
    adata: AnnData, species_key: str = K.SPECIES, layer: str | None = None
) -> np.ndarray:
    """A rough state per cell before integration: the best marker panel within its species.

    'other' if no panel scores above 0.
    """
    from .._markers import panel_scores
    from ..pp._normalize import log_normalize

    species = adata.obs[species_key].astype(str).to_numpy()
    out = np.full(adata.n_obs, "other", dtype=object)
    X = log_normalize(adata, layer)  # per-cell scaling: its rows are each species' own
    for s in np.unique(species):
        m = species == s
        scores, _ = panel_scores(adata, X, rows=np.flatnonzero(m))
        if scores.shape[1]:
            S = scores.to_numpy()
            best = np.asarray(scores.columns)[S.argmax(1)].astype(object)
            best[S.max(1) <= 0] = "other"
            out[m] = best
    return out


#: Default minibatch sizes: large enough to keep a GPU busy (sparse minibatches are
#: sent to the device and densified there), moderate on CPU. The learning rate grows with
#: them (:func:`default_lr`), which is what keeps their quality.
CPU_BATCH_SIZE, GPU_BATCH_SIZE = 512, 1024
#: scvi-tools' Adam learning rate, tuned for its default minibatch of 128 cells.
BASE_LR, BASE_BATCH_SIZE = 1e-3, 128


def default_lr(batch_size: int) -> float:
    """Adam learning rate for SCVI at ``batch_size``: ``1e-3 * sqrt(batch_size / 128)``.

    Measured at 20k hard-simulated cells, 40 epochs (``benchmarks/bench_batch_size.py``):
    at scvi-tools' fixed 1e-3, batch sizes 512 / 1024 / 4096 lost 0.023 / 0.049 / 0.126 of
    the worst species' pseudotime Spearman against 128 and 0.08-0.18 of cross-species
    mixing; with this rate 512 and 1024 lose at most 0.009 of Spearman and 0.004 of
    purity, and mix better than 128 (4096 still loses 0.024 of Spearman).
    """
    return BASE_LR * float(np.sqrt(batch_size / BASE_BATCH_SIZE))


def default_epochs(n_cells: int) -> int:
    """Epochs that finish in minutes on a 2-core CPU at ~20k cells (more for small data)."""
    return int(np.clip(round(8e5 / max(n_cells, 1)), 20, 120))


def scvi(
    adata: AnnData,
    *,
    batch_key: str = K.SAMPLE,
    species_key: str = K.SPECIES,
    model: Literal["scvi", "sysvi"] = "scvi",
    features_key: str | None = K.HVG,
    n_latent: int = 10,
    n_layers: int = 1,
    n_hidden: int = 128,
    max_epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    early_stopping: bool = True,
    accelerator: str | None = "auto",
    devices: int | str = "auto",
    strategy: str = "auto",
    equalize: Literal["states", "all", "none"] = "states",
    cycle_covariates: bool = False,
    seed: int = 0,
    save_dir: str | Path | None = None,
    layer: str | None = None,
    key_added: str = K.LATENT,
    copy: bool = False,
) -> AnnData | None:
    """Integrate mouse and human cells into one latent space with scvi-tools.

    ``model="scvi"``: SCVI on raw counts with ``batch_key`` (sample) as batch and
    ``species_key`` as a categorical covariate. ``model="sysvi"``: scvi-tools' SysVI
    (VampPrior + cycle consistency, for strong system effects such as species) on
    log-normalised features with species as the system and sample as covariate.

    Parameters
    ----------
    adata
        Raw counts (``layers['counts']`` or ``X``); features from
        :func:`mkcell.pp.highly_variable_genes` (``var[features_key]``).
    batch_key, species_key
        ``obs`` columns for sample and species.
    model
        ``"scvi"`` or ``"sysvi"``.
    features_key
        Boolean ``var`` column of the genes to train on (None: all genes).
    n_latent, n_layers, n_hidden
        Network sizes.
    max_epochs
        Default :func:`default_epochs` (40 at 20k cells, 120 at 6k or fewer).
    batch_size
        Minibatch size; default 512 on CPU and 1024 on GPU. Measured on an H200
        (``benchmarks/results/gpu.json``, 225k training cells): 30k cells/s per epoch at
        256, 111k at 1024, 158k at 2048, 306k at 4096; plain scvi-tools at its
        default 128 with dense minibatches, 16k.
    lr
        Adam learning rate. Default for SCVI :func:`default_lr` of the cells a step sees
        (``1e-3 * sqrt(min(batch_size, training cells) / 128)``: 2e-3 at 512 cells per
        batch); for SysVI, scvi-tools' default (not measured at other batch sizes).
    early_stopping
        Stop when the validation ELBO stops improving.
    accelerator, devices, strategy
        Lightning settings; ``accelerator="auto"`` (or None) follows
        ``mk.settings.accelerator``, whose default ``"auto"`` uses a GPU when present;
        several GPUs with ``devices=N, strategy="ddp_find_unused_parameters_true"``.
    equalize
        Before training, equalise each feature's mean between the two species
        (:func:`equalize_species`, binomial thinning of the training copy only):
        ``"states"`` within the marker states both species have (:func:`marker_states`),
        robust to species that differ in composition (mouse whole marrow beside human
        CD34+); ``"all"`` over all cells; ``"none"``. Measured on ``simulate_marrow``:
        without it neither SCVI nor SysVI mixes the species at all (cross-species kNN
        share 0.0); ``benchmarks/bench_cd34.py`` compares "states" and "all".
    cycle_covariates
        Give the decoder each cell's S and G2M scores (:func:`mkcell.pp.cycle_scores`)
        as continuous covariates (scvi-tools ``continuous_covariate_keys``), so the
        latent space need not encode the cycle and maturation order holds in cycling
        cells. The scores are stored in ``obsm['mk_cycle_covariates']``.
    seed
        Seeds scvi-tools (torch, numpy, python).
    save_dir
        Save the trained model here (without the data), replacing an older one atomically.
    layer
        Layer with raw counts.
    key_added
        ``obsm`` key of the latent space.
    copy
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    None, or a copy with ``obsm[key_added]`` and ``uns['mk_integrate']`` (params,
    epochs run, seconds, cells/s per epoch, accelerator).
    """
    scvi_mod = _import_scvi()
    check_adata(adata, min_obs=10, min_vars=2)
    adata = adata.copy() if copy else adata
    counts = get_counts(adata, layer)
    feats = _check_inputs(adata, batch_key, species_key, model, features_key, equalize)
    acc = resolve_accelerator(accelerator)
    epochs = max_epochs or default_epochs(adata.n_obs)
    batch_size = batch_size or (GPU_BATCH_SIZE if acc == "gpu" else CPU_BATCH_SIZE)

    scvi_mod.settings.seed = seed
    data = _training_data(
        adata, counts, feats, batch_key, species_key, equalize, cycle_covariates, seed, layer
    )
    sub = data.adata
    net = _build_model(scvi_mod, data, model, batch_key, species_key, n_latent, n_layers, n_hidden)
    if lr is None and model == "scvi":  # the batch a step sees: small data fill no full one
        lr = default_lr(min(batch_size, int(0.9 * adata.n_obs)))
    train_kwargs = _train_kwargs(
        model, epochs, acc, devices, strategy, batch_size, lr, early_stopping
    )
    logger.info(
        "training %s on %d cells x %d genes (%s, up to %d epochs)",
        model.upper(),
        sub.n_obs,
        sub.n_vars,
        acc,
        epochs,
    )
    timer = _epoch_timer()
    t0 = time.perf_counter()
    net.train(**train_kwargs, callbacks=[timer])
    seconds = time.perf_counter() - t0
    n_epochs = int(net.history["elbo_train"].shape[0]) if "elbo_train" in net.history else epochs
    adata.obsm[key_added] = np.asarray(net.get_latent_representation(sub), dtype=np.float32)
    adata.uns[K.INTEGRATE] = {
        "params": {
            "model": model,
            "batch_key": batch_key,
            "species_key": species_key,
            "features_key": features_key,
            "n_latent": n_latent,
            "n_layers": n_layers,
            "n_hidden": n_hidden,
            "max_epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "early_stopping": early_stopping,
            "accelerator": acc,
            "devices": str(devices),
            "strategy": strategy,
            "equalize": equalize,
            "cycle_covariates": cycle_covariates,
            "seed": seed,
        },
        "n_features": int(feats.sum()),
        **_training_speed(sub.n_obs, n_epochs, seconds, timer.seconds),
        "scvi_tools_version": scvi_mod.__version__,
    }
    if save_dir is not None:
        setup = _saved_setup(data, model, batch_key, species_key, adata.var_names[feats], equalize)
        _save_atomic(net, Path(save_dir), setup)
        adata.uns[K.INTEGRATE]["model_dir"] = str(save_dir)
    _release_training_data(net, sub)
    logger.info(
        "%s trained %d epochs in %.1f s (%.0f cells/s per epoch)",
        model.upper(),
        n_epochs,
        seconds,
        adata.uns[K.INTEGRATE]["cells_per_second_per_epoch"],
    )
    log_write("obsm", key_added)
    return adata if copy else None


def _check_inputs(
    adata: AnnData,
    batch_key: str,
    species_key: str,
    model: str,
    features_key: str | None,
    equalize: str,
) -> np.ndarray:
    """Refuse unknown options and missing keys; return the boolean mask of training features."""
    for key in (batch_key, species_key):
        check_obs_key(adata, key)
    if equalize not in EQUALIZE:
        msg = f"equalize={equalize!r}; choose one of {list(EQUALIZE)}"
        raise MkcellError(msg)
    if model not in {"scvi", "sysvi"}:
        msg = f"model={model!r}; choose 'scvi' or 'sysvi'"
        raise MkcellError(msg)
    if features_key is not None and features_key not in adata.var:
        msg = (
            f"no features `adata.var[{features_key!r}]`; run mk.pp.highly_variable_genes(adata)"
            " first or pass features_key=None"
        )
        raise MkcellError(msg)
    feats = adata.var[features_key].to_numpy(bool) if features_key else np.ones(adata.n_vars, bool)
    if feats.sum() < 2:
        msg = f"only {feats.sum()} features in `adata.var[{features_key!r}]`; choose more genes"
        raise MkcellError(msg)
    return feats


class _TrainingData(NamedTuple):
    """What the network trains on, and how the species were equalised."""

    adata: AnnData  # the (thinned) feature counts with batch, species and covariates in obs
    continuous: list[str] | None  # obs columns of continuous covariates
    species: np.ndarray  # each cell's species
    ratio: np.ndarray | None  # per-feature species ratio removed by thinning, if any


def _training_data(
    adata: AnnData,
    counts: object,
    feats: np.ndarray,
    batch_key: str,
    species_key: str,
    equalize: str,
    cycle_covariates: bool,
    seed: int,
    layer: str | None,
) -> _TrainingData:
    """The training AnnData: feature counts, equalised between species, with covariates."""
    # the features only, sliced before any conversion (no copy when all genes are features)
    train_counts = sp.csr_matrix(counts if feats.all() else counts[:, feats], dtype=np.float32)
    species = adata.obs[species_key].astype(str).to_numpy()
    ratio = None
    if equalize != "none" and len(set(species)) == 2:
        groups = marker_states(adata, species_key, layer) if equalize == "states" else None
        train_counts, ratio = equalize_species(train_counts, species, seed=seed, groups=groups)
        logger.info(
            "equalised per-gene means between species before training (binomial thinning, %s)",
            equalize,
        )
    sub = AnnData(X=train_counts, obs=adata.obs[[batch_key, species_key]].copy())
    for c in sub.obs.columns:
        sub.obs[c] = sub.obs[c].astype("str").astype("category")
    continuous = None
    if cycle_covariates:
        from ..pp._cycle import cycle_scores

        cc = cycle_scores(adata, layer=layer, seed=seed)
        adata.obsm[K.CYCLE_COVARIATES] = cc.to_numpy(np.float32)
        continuous = [f"{K.CYCLE_COVARIATE_PREFIX}{c}" for c in cc.columns]
        sub.obs[continuous] = cc.to_numpy(np.float32)
        log_write("obsm", K.CYCLE_COVARIATES)
    return _TrainingData(adata=sub, continuous=continuous, species=species, ratio=ratio)


def _build_model(  # noqa: ANN202
    scvi_mod,  # noqa: ANN001
    data: _TrainingData,
    model: str,
    batch_key: str,
    species_key: str,
    n_latent: int,
    n_layers: int,
    n_hidden: int,
):
    """Register the training data and build SCVI (counts) or SysVI (log-normalised)."""
    sub, continuous = data.adata, data.continuous
    if model == "scvi":
        scvi_mod.model.SCVI.setup_anndata(
            sub,
            batch_key=batch_key,
            categorical_covariate_keys=[species_key],
            continuous_covariate_keys=continuous,
        )
        return scvi_mod.model.SCVI(sub, n_latent=n_latent, n_layers=n_layers, n_hidden=n_hidden)
    from ..pp._normalize import log_normalize_matrix

    sub.X = log_normalize_matrix(sub.X)  # of the thinned training features, not the cache
    scvi_mod.external.SysVI.setup_anndata(
        sub,
        batch_key=species_key,
        categorical_covariate_keys=[batch_key],
        continuous_covariate_keys=continuous,
    )
    return scvi_mod.external.SysVI(sub, n_latent=n_latent, n_layers=n_layers, n_hidden=n_hidden)


def _train_kwargs(
    model: str,
    epochs: int,
    acc: str,
    devices: int | str,
    strategy: str,
    batch_size: int,
    lr: float | None,
    early_stopping: bool,
) -> dict:
    """Keyword arguments of the network's ``train``: Lightning settings, minibatch, rate."""
    train_kwargs = {
        "max_epochs": epochs,
        "accelerator": acc,
        "devices": devices if acc == "gpu" else 1,
        "batch_size": batch_size,
        "early_stopping": early_stopping,
    }
    if lr is not None:
        train_kwargs["plan_kwargs"] = {"lr": lr}
    if acc == "gpu" and strategy != "auto":
        train_kwargs["strategy"] = strategy
    if model == "scvi":
        train_kwargs["load_sparse_tensor"] = acc == "gpu"
    return train_kwargs


def _training_speed(n_obs: int, n_epochs: int, seconds: float, epoch_seconds: list[float]) -> dict:
    """Epochs run, seconds, and cells per second per epoch (overall and in steady state)."""
    n_train = n_obs * 0.9  # default 90% train split
    return {
        "epochs_run": n_epochs,
        "seconds": seconds,
        "cells_per_second_per_epoch": float(n_train * n_epochs / seconds),
        "epoch_seconds": [round(x, 4) for x in epoch_seconds],
        "cells_per_second_steady": float(n_train / np.median(epoch_seconds[1:]))
        if len(epoch_seconds) > 1
        else float("nan"),
    }


def _saved_setup(
    data: _TrainingData,
    model: str,
    batch_key: str,
    species_key: str,
    features: pd.Index,
    equalize: str,
) -> dict:
    """What a saved model records beside its weights to be rebuilt and to thin a query."""
    ratio = data.ratio
    return {
        "model": model,
        "batch_key": batch_key,
        "species_key": species_key,
        "continuous_covariates": data.continuous,
        "features": [str(g) for g in features],
        "equalize": equalize,
        "equalize_species": sorted(set(data.species)) if ratio is not None else None,
        "equalize_ratio": None if ratio is None else [float(x) for x in ratio],
    }


def _release_training_data(net, sub: AnnData) -> None:  # noqa: ANN001
    """Drop the training data from scvi-tools' class-level stores, where it outlives the call."""
    net.deregister_manager(sub)
    type(net)._per_instance_manager_store.pop(net.id, None)


def _epoch_timer():  # noqa: ANN202
    """A Lightning callback recording each training epoch's wall seconds in ``.seconds``."""
    from lightning.pytorch.callbacks import Callback

    class EpochTimer(Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001, ARG002
            self._t = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001, ARG002
            self.seconds.append(time.perf_counter() - self._t)

    return EpochTimer()


#: Pickle-free copy of a trained model, next to scvi-tools' own ``model.pt``: the weights
#: as plain arrays and what is needed to rebuild the network (:mod:`mkcell.tl._reference`).
WEIGHTS_FILE, SETUP_FILE = "weights.npz", "setup.json"


def _save_atomic(net, save_dir: Path, setup: dict | None = None) -> None:  # noqa: ANN001
    """Save to a sibling temp folder, then swap it in.

    Besides scvi-tools' ``model.pt`` (a pickle), the folder gets :data:`WEIGHTS_FILE`
    (the state dict as arrays, read with ``allow_pickle=False``) and :data:`SETUP_FILE`
    (JSON: features, categories of the batch and covariates, network sizes, the
    species equalisation), so that a reference can be loaded without unpickling.
    """
    tmp = save_dir.with_name(f".{save_dir.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    net.save(str(tmp), overwrite=True, save_anndata=False)
    if setup is not None:
        _save_plain(net, tmp, setup)
    if save_dir.exists():
        shutil.rmtree(save_dir)
    tmp.rename(save_dir)
    logger.info("saved the model to %s", save_dir)


def _save_plain(net, folder: Path, setup: dict) -> None:  # noqa: ANN001
    """Write the pickle-free weights and setup of a trained SCVI next to ``model.pt``."""
    import json

    state = {k: v.detach().cpu().numpy() for k, v in net.module.state_dict().items()}
    with (folder / WEIGHTS_FILE).open("wb") as fh:
        np.savez(fh, **state)
    manager = net.adata_manager
    batch = manager.get_state_registry("batch").categorical_mapping
    covs = {}
    if "extra_categorical_covs" in manager.data_registry:
        reg = manager.get_state_registry("extra_categorical_covs")
        covs = {k: [str(x) for x in v] for k, v in reg.mappings.items()}
    init = net.init_params_
    plain = {
        **setup,
        "model_class": type(net).__name__,
        "batch_categories": [str(x) for x in batch],
        "categorical_covariates": covs,
        "init_params": {k: v for k, v in init.get("non_kwargs", {}).items() if _jsonable(v)},
        "init_kwargs": {
            k: v for k, v in init.get("kwargs", {}).get("kwargs", {}).items() if _jsonable(v)
        },
        "scvi_tools_version": _import_scvi().__version__,
    }
    (folder / SETUP_FILE).write_text(json.dumps(plain, indent=1))


def _jsonable(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | tuple)
