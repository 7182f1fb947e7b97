"""Per-layer ID tables and figures, and the per-``nn.Linear`` ID file the pruning notebook reads.

    table = layer_ids(features, sites)                # one row per site: id, bootstrap interval, ...
    out.csv(linear_id_table(table), LINEAR_IDS_FILE)  # notebook 01
    ids = load_linear_ids()                           # notebook 02: {"vision_model...fc1": 37.2, ...}
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .representations import Site
from .twonn import TwoNN

NOTEBOOK = "01_intrinsic_dimension"
LINEAR_IDS_FILE = "linear_ids_blip.csv"
LINEAR_ID_COLUMNS = ["module", "id", "n_points", "group"]


def layer_ids(features: dict, sites: list[Site], n_bootstrap: int = 100, discard_fraction: float = 0.1,
              random_state: int = 0, progress: bool = True):
    """TwoNN per site, with a bootstrap interval. Returns a DataFrame with columns
    module, group, layer, kind, id, ci_low, ci_high, n_points, n_dropped, dims: n_points are the
    distinct points the estimate uses, n_dropped the rows removed before the fit as duplicates of
    another row (``TwoNN.n_dropped_duplicates_``; identical inputs, e.g. repeated captions)."""
    import pandas as pd
    from tqdm.auto import tqdm

    rows = []
    for site in tqdm(sites, desc="TwoNN per layer", disable=not progress, leave=False):
        X = features[site.name]
        est = TwoNN(discard_fraction=discard_fraction, n_bootstrap=n_bootstrap, random_state=random_state).fit(X)
        rows.append(dict(module=site.name, group=site.group, layer=site.layer, kind=site.kind,
                         id=est.dimension_, ci_low=est.ci_[0], ci_high=est.ci_[1],
                         n_points=est.n_used_,
                         n_dropped=est.n_dropped_duplicates_, dims=int(X.shape[1])))
    return pd.DataFrame(rows)


def linear_id_table(table):
    """The per-Linear rows of a ``layer_ids`` table in the file format notebook 02 reads
    (module, id, n_points, group first; the rest for reference)."""
    cols = LINEAR_ID_COLUMNS + [c for c in ("layer", "ci_low", "ci_high", "n_dropped", "dims") if c in table]
    return table[cols].reset_index(drop=True)


def linear_ids_path(results_dir: str | os.PathLike | None = None, smoke: bool = False,
                    profile: str = "tiny") -> Path:
    """Where notebook 01 writes the per-Linear IDs. ``results_dir`` may be the results root (as a
    notebook's ``results_dir`` parameter), notebook 01's folder, or the CSV itself."""
    from ..paths import run_results_dir

    root = run_results_dir(profile, smoke, results_dir)
    for candidate in (root, root / LINEAR_IDS_FILE, root / NOTEBOOK / LINEAR_IDS_FILE):
        if candidate.is_file():
            return candidate
    return root / NOTEBOOK / LINEAR_IDS_FILE


def load_linear_ids(results_dir: str | os.PathLike | None = None, smoke: bool = False,
                    profile: str = "tiny") -> dict[str, float]:
    """{module path: ID} of every BLIP ``nn.Linear``, as notebook 01 measured it."""
    import pandas as pd

    path = linear_ids_path(results_dir, smoke, profile)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run notebook 01 first (bash run_all.sh --only 01"
            f"{' --smoke' if smoke else ''}), it writes the per-Linear IDs")
    df = pd.read_csv(path)
    missing = [c for c in LINEAR_ID_COLUMNS if c not in df]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}: rerun notebook 01")
    if not np.all(np.isfinite(df["id"])):
        raise ValueError(f"{path} has non-finite IDs for {list(df.module[~np.isfinite(df['id'])])}")
    return {str(m): float(v) for m, v in zip(df["module"], df["id"])}


# --- figures -------------------------------------------------------------------------------------
def plot_profiles(table, ax, hue_order=None, title: str | None = None):
    """ID against layer depth per group, with the bootstrap interval as a band."""
    import seaborn as sns

    hue_order = hue_order or list(dict.fromkeys(table["group"]))
    palette = dict(zip(hue_order, sns.color_palette("colorblind", len(hue_order))))
    sns.lineplot(data=table, x="layer", y="id", hue="group", hue_order=hue_order, palette=palette,
                 marker="o", ax=ax)
    for g in hue_order:
        part = table[table["group"] == g].sort_values("layer")
        if part["ci_low"].notna().any():
            ax.fill_between(part["layer"], part["ci_low"], part["ci_high"], color=palette[g], alpha=0.2, lw=0)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (block index within its tower)")
    ax.set_ylabel("intrinsic dimension (TwoNN)")
    if title:
        ax.set_title(title)
    return ax
