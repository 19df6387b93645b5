"""Whole-composition differential abundance with scCODA (through pertpy)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from types import ModuleType

import numpy as np
import pandas as pd
from anndata import AnnData

from .. import _keys as K
from .._docs import KEY_ADDED_COPY_DOC, fill_doc
from .._settings import MkcellError, logger
from .._utils import check_adata, check_obs_key, log_write
from ._design import references, sample_obs

COMPOSITION = K.COMPOSITION
PERTPY_HINT = (
    "pip install 'mkcell[da]'  (pertpy 1.0.x, numpyro==0.21.*, statsmodels<0.15, pydeseq2)"
)
EFFECT_COLUMNS = [
    "species",
    "contrast",
    "cell_type",
    "effect",
    "hdi_low",
    "hdi_high",
    "inclusion_probability",
    "log2_fold_change",
    "credible",
    "reference_cell_type",
]


@contextlib.contextmanager
def pertpy_session() -> Iterator[ModuleType]:
    """Import pertpy and run a block with JAX in 64-bit mode; restore JAX and warnings after.

    ``import pertpy`` switches ``jax_enable_x64`` on for the whole process (which breaks
    scib-metrics) and installs global warning filters. Inside this block 64-bit mode
    is on (scCODA needs it); on exit the previous ``jax_enable_x64`` value and the
    warning filters are restored.

    Yields
    ------
    The ``pertpy`` module.
    """
    try:
        import jax
    except ImportError as e:
        msg = f"pertpy (with jax) is needed for this step; install it with {PERTPY_HINT}"
        raise ImportError(msg) from e
    previous = bool(jax.config.jax_enable_x64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pertpy's dependencies, at import
        warnings.simplefilter("ignore", FutureWarning)
        try:
            import pertpy
        except ImportError as e:
            jax.config.update("jax_enable_x64", previous)
            msg = (
                f"pertpy is needed for differential abundance; install it with {PERTPY_HINT} ({e})"
            )
            raise ImportError(msg) from e
        jax.config.update("jax_enable_x64", True)
        try:
            yield pertpy
        finally:
            jax.config.update("jax_enable_x64", previous)


@fill_doc(key_added_copy=KEY_ADDED_COPY_DOC)
def composition(
    adata: AnnData,
    sample_key: str = K.SAMPLE,
    condition_key: str = K.CONDITION,
    *,
    reference: str | Sequence[str] | dict[str, str] | None = None,
    species_key: str = K.SPECIES,
    state_key: str = K.STATE,
    reference_cell_type: str = "automatic",
    num_samples: int = 10_000,
    num_warmup: int = 1_000,
    est_fdr: float = 0.05,
    nuts_kwargs: dict | None = None,
    seed: int = 0,
    key_added: str = COMPOSITION,
    copy: bool = False,
) -> AnnData | None:
    """Test the whole cell-state composition between conditions with scCODA (pertpy).

    scCODA is a Bayesian Dirichlet-multinomial model of the per-sample counts of every
    state against a reference state, so the samples are the replicates and the
    compositional constraint (one state up means others down in share) is respected.
    One model is fitted per species, with every condition of that species against its
    reference condition.

    Parameters
    ----------
    adata
        Annotated cells; only ``adata.obs`` is read.
    sample_key
        Column of ``adata.obs`` with the samples.
    condition_key
        Column of ``adata.obs`` with the conditions.
    reference
        Reference condition (scCODA's baseline): a name, several names (the first
        present in each species is used) or a dict ``{species: name}``; species without
        it are skipped. Default: the reference every tool uses, the first of
        :data:`~mkcell.tl._design.DEFAULT_REFERENCES` present in the species, else its
        first condition.
    species_key
        Column with the species; missing column: one group ``"all"``.
    state_key
        Column with the cell states (the compositional parts).
    reference_cell_type
        scCODA reference state (``"automatic"``: the most stable one).
    num_samples
        MCMC samples after warm-up (a few thousand suffice for a quick look).
    num_warmup
        MCMC warm-up samples.
    est_fdr
        Expected false discovery rate used to call credible effects.
    nuts_kwargs
        Extra arguments of numpyro's NUTS kernel (e.g. ``{"max_tree_depth": 6}`` for a
        quicker, rougher run).
    seed
        Seed of the sampler.
    {key_added_copy}

    Returns
    -------
    ``None`` or a copy of ``adata``, with ``adata.uns[key_added]``: ``effects``
    (species, contrast, cell_type, effect, hdi_low, hdi_high, inclusion_probability,
    log2_fold_change, credible, reference_cell_type), ``counts`` (per sample and
    state) and ``params``.

    Raises
    ------
    ImportError
        If pertpy is not installed (``pip install 'mkcell[da]'``).
    """
    check_adata(adata, min_vars=0)
    check_obs_key(adata, state_key, what="cell-state column (run mk.tl.annotate first)")
    obs = sample_obs(adata, sample_key, condition_key, species_key)
    obs["cell_type"] = adata.obs[state_key].astype(str).to_numpy()
    refs = references(obs, reference)

    effects, counts = [], []
    with pertpy_session() as pt:
        for sp_name, ref in refs.items():
            sub = obs[obs["species"] == sp_name]
            eff, cnt = _fit_species(
                pt,
                sub,
                ref,
                reference_cell_type,
                num_samples,
                num_warmup,
                est_fdr,
                seed,
                nuts_kwargs or {},
            )
            effects.append(eff.assign(species=sp_name))
            counts.append(cnt.assign(species=sp_name))
    effect_df = pd.concat(effects, ignore_index=True)[EFFECT_COLUMNS]
    count_df = pd.concat(counts, ignore_index=True)

    if copy:
        adata = adata.copy()
    adata.uns[key_added] = {
        "effects": effect_df,
        "counts": count_df[["species", "sample", "condition", "cell_type", "n_cells", "fraction"]],
        "params": {
            "sample_key": sample_key,
            "condition_key": condition_key,
            "species_key": species_key,
            "state_key": state_key,
            "reference": refs,
            "reference_cell_type": reference_cell_type,
            "num_samples": num_samples,
            "num_warmup": num_warmup,
            "est_fdr": est_fdr,
            "seed": seed,
            "nuts_kwargs": dict(nuts_kwargs or {}),
            "method": "scCODA (pertpy), NUTS",
        },
    }
    log_write("uns", key_added)
    return adata if copy else None


def _fit_species(
    pt: ModuleType,
    obs: pd.DataFrame,
    ref: str,
    reference_cell_type: str,
    num_samples: int,
    num_warmup: int,
    est_fdr: float,
    seed: int,
    nuts_kwargs: dict,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if "'" in ref:
        msg = (
            f"reference condition {ref!r} contains a quote, "
            "which scCODA formulas cannot hold; rename it"
        )
        raise MkcellError(msg)
    cells = AnnData(
        obs=pd.DataFrame(
            {
                K.TMP_SAMPLE: pd.Categorical(obs["sample"]),
                K.TMP_CONDITION: pd.Categorical(obs["condition"]),
                K.TMP_CELL_TYPE: pd.Categorical(obs["cell_type"]),
            },
            index=obs.index.astype(str),
        )
    )
    sccoda = pt.tl.Sccoda()
    mdata = sccoda.load(
        cells,
        type="cell_level",
        generate_sample_level=True,
        cell_type_identifier=K.TMP_CELL_TYPE,
        sample_identifier=K.TMP_SAMPLE,
        covariate_obs=[K.TMP_CONDITION],
    )
    mdata = sccoda.prepare(
        mdata,
        formula=f"C({K.TMP_CONDITION}, Treatment('{ref}'))",
        reference_cell_type=reference_cell_type,
    )
    logger.info(
        "scCODA: %d samples x %d states, reference %r",
        mdata["coda"].n_obs,
        mdata["coda"].n_vars,
        ref,
    )
    sccoda.run_nuts(
        mdata, num_samples=num_samples, num_warmup=num_warmup, rng_key=seed, **nuts_kwargs
    )
    sccoda.set_fdr(mdata, est_fdr)
    eff = sccoda.get_effect_df(mdata).reset_index()
    level = eff["Covariate"].astype(str).str.extract(r"T\.(.+?)\]?$", expand=False)
    ref_type = str(mdata["coda"].uns["scCODA_params"]["reference_cell_type"])
    out = pd.DataFrame(
        {
            "contrast": level + f" vs {ref}",
            "cell_type": eff["Cell Type"].astype(str),
            "effect": eff["Final Parameter"].astype(float),
            "hdi_low": eff["HDI 3%"].astype(float),
            "hdi_high": eff["HDI 97%"].astype(float),
            "inclusion_probability": eff["Inclusion probability"].astype(float),
            "log2_fold_change": eff["log2-fold change"].astype(float),
            "credible": eff["Final Parameter"].astype(float) != 0,
            "reference_cell_type": ref_type,
        }
    )
    coda = mdata["coda"]
    X = np.asarray(coda.X, dtype=float)
    cnt = pd.DataFrame(X, index=coda.obs_names.astype(str), columns=coda.var_names.astype(str))
    cond = coda.obs[K.TMP_CONDITION].astype(str)
    long = (
        cnt.rename_axis(index="sample", columns="cell_type").stack().rename("n_cells").reset_index()
    )
    long["condition"] = long["sample"].map(cond)
    long["fraction"] = long["n_cells"] / long.groupby("sample")["n_cells"].transform("sum")
    long["n_cells"] = long["n_cells"].astype(int)
    return out, long
