"""Per-sample MkP fraction by condition, with per-condition CIs and contrast effects."""

from __future__ import annotations

import os

import numpy as np
from anndata import AnnData
from matplotlib.figure import Figure

from .. import _keys as K
from .._settings import MkcellError
from ._utils import finish, panel_save_returns_doc


def read_uns(adata: AnnData, key: str, tool: str, tables: tuple[str, ...]) -> dict:
    """Return ``adata.uns[key]`` after checking it holds ``tables``.

    If it does not, the error names ``tool``, the tool to run.
    """
    res = adata.uns.get(key)
    if not isinstance(res, dict) or any(t not in res for t in tables):
        msg = f"no results in `adata.uns[{key!r}]`; run {tool} first (or pass key=)"
        raise MkcellError(msg)
    return res


@panel_save_returns_doc
def pool(
    adata: AnnData,
    key: str = K.POOL,
    *,
    species: list[str] | None = None,
    panel_size: tuple[float, float] = (3.6, 3.6),
    save: str | os.PathLike | None = None,
) -> Figure:
    """Plot the per-sample MkP fraction by condition, one panel per species.

    Reads ``adata.uns[key]`` written by ``mk.tl.progenitor_pool``: dots are
    samples, bars the geometric-mean fraction of each condition with its 95% CI, the axis
    names the denominator used, and the panel lists each contrast (log2 effect, CI,
    BH-adjusted p).

    Parameters
    ----------
    adata
        AnnData holding the results.
    key
        Key of the results in ``adata.uns``.
    species
        Species to show (default all).
    {panel_save_returns}
    """
    res = read_uns(adata, key, "mk.tl.progenitor_pool", ("per_sample", "contrasts"))
    per_sample, contrasts = res["per_sample"], res["contrasts"]
    per_cond = res.get("per_condition")
    names = list(dict.fromkeys(per_sample["species"])) if species is None else list(species)
    fig = Figure(
        figsize=(panel_size[0] * max(len(names), 1), panel_size[1] + 0.25 * len(contrasts)),
        layout="constrained",
    )
    axes = np.atleast_1d(fig.subplots(1, max(len(names), 1), squeeze=False)[0])
    for ax, sp_name in zip(axes, names, strict=False):
        tab = per_sample[per_sample["species"] == sp_name]
        conds = list(dict.fromkeys(tab["condition"]))
        for i, cond in enumerate(conds):
            vals = tab.loc[tab["condition"] == cond, "mkp_fraction"].to_numpy(float)
            jitter = np.linspace(-0.12, 0.12, vals.size) if vals.size > 1 else np.zeros(1)
            ax.scatter(
                i + jitter, vals, s=22, color=f"C{i}", zorder=3, edgecolor="k", linewidth=0.4
            )
            if per_cond is not None:
                row = per_cond[(per_cond["species"] == sp_name) & (per_cond["condition"] == cond)]
                if len(row):
                    r = row.iloc[0]
                    ax.hlines(r["mkp_fraction"], i - 0.3, i + 0.3, color=f"C{i}", linewidth=2)
                    if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]):
                        ax.vlines(i + 0.32, r["ci_low"], r["ci_high"], color="k", linewidth=1.2)
        ax.set_xticks(range(len(conds)), conds, rotation=30, ha="right")
        ax.set_xlim(-0.6, len(conds) - 0.4)
        dens = [str(d) for d in dict.fromkeys(tab.get("denominator", [K.DENOM_MK_LINEAGE]))]
        ax.set_ylabel("MkP fraction, " + ", ".join(K.DENOMINATOR_WORDS.get(d, d) for d in dens))
        lines = []
        for _, c in contrasts[contrasts["species"] == sp_name].iterrows():
            p_adj = c.get("p_adj", c["p_value"])
            p = "NA" if not np.isfinite(p_adj) else f"{p_adj:.2g}"
            lines.append(
                f"{c['contrast']}: {c['effect_log2']:+.2f} [{c['ci_low']:.2f}, "
                f"{c['ci_high']:.2f}] adj. p={p}"
            )
        ax.set_title(sp_name + ("\n" + "\n".join(lines) if lines else ""), fontsize=8, loc="left")
    fig.suptitle(
        "MkP pool per sample (bar: geometric mean of samples, line: 95% CI; log2 A/B)", fontsize=9
    )
    return finish(fig, save)
