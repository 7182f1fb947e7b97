"""Notebook 06: does a unit's intrinsic dimension predict how prunable it is? The study's central claim.

A *unit* is one block's Linears of one kind (``vision.2``, ``language.1``, ``fusion.1``). For each unit
the notebook measures its ID (four estimators, on training images, never the test scenes) and its
prunability (the quality lost when that unit alone is pruned, :func:`vlmid.pruning.unit_prunability`,
on validation scenes). The claim "low-ID layers are redundant, high-ID layers critical" says the two rank
alike: Spearman's rho between ID and loss above zero.

    ids = linear_ids(features, estimators())              # one ID per Linear and estimator
    table = unit_table(prunability, unit_ids(ids, units))  # one row per unit: group, ID per estimator, loss
    rhos = rho_effects(prunability, unit_ids(ids, units))  # each estimator x comparison, scenes resampled

Across two or three towers, any quantity that differs between towers correlates with ID, so the claim
is decided *within* towers too, and beside the overall rho stands the rho that the towers' mean IDs
alone reach (each unit given its tower's mean ID): what the ordering of towers explains by itself.

The second half of the study's argument, that the ID prior therefore helps pruning, is decided against
controls at the same global sparsity (:mod:`vlmid.pruning.controls`: shuffled, inverse and random
multipliers, and the prior's split between towers with nothing else), and beside the way current methods
use a per-layer signal: each layer's sparsity allocated from its ID (:mod:`vlmid.pruning.allocation`).
Every run is scored on the same test scenes at 40, 60 and 80 %, with several fine-tuning seeds.

``KEYS``: every key :func:`headline` writes; ``CLAIMS``: the claims and how they are decided.
"""
from __future__ import annotations

import json
import math
import warnings
from typing import Mapping, Sequence

import numpy as np

from ..uncertainty import Effect, across_builds, paired_effect
from ..verdict import Claim, ci, ci_keys

NUMBER = "06"
STEM = "06_id_and_prunability"

TOWERS = ("vision", "language", "fusion")
OVERALL, WITHIN, TOWERS_ONLY = "all units", "within towers", "tower means only"
COMPARISONS = (OVERALL, WITHIN, *TOWERS, TOWERS_ONLY)
# the four estimators of vlmid.id.validation.estimators(), by the short names of the headline keys
SLUGS = {"TwoNN": "twonn", "GRIDE (n1=4)": "gride", "MLE (k=20)": "mle", "participation ratio": "pr"}
LEAD = "TwoNN"   # the study's estimator: its interval decides, the others must agree

# the prior's controls and the allocations, all on the magnitude score unless named (label -> PruneConfig fields,
# control kind of vlmid.pruning.controls for the prior's multipliers)
NONE, PRIOR = "magnitude", "magnitude + ID"
CONTROL_LABELS = {"shuffled": "magnitude + shuffled ID", "inverse": "magnitude + inverse ID",
                  "random": "magnitude + random multipliers", "tower": "magnitude, ID's tower split"}
ALLOCATION_PAIRS = {"magnitude": ("magnitude, ID-allocated", "magnitude, uniform"),
                    "wanda": ("wanda, ID-allocated", "wanda")}   # (ID-allocated, uniform) per base score
# the same schedule ``long_factor`` times longer (first build only), for no prior, the prior and PLATON, whose
# moving averages see 5 steps before their first mask on today's schedule and 50 on the longer one
PLATON = "platon"
SCHEDULE_RUNS = {NONE: dict(), PRIOR: dict(id_prior=True), PLATON: dict(method="platon")}
SCHEDULE_PAIRS = (("longer schedule, magnitude", NONE), ("longer schedule, magnitude + ID", PRIOR),
                  ("longer schedule, PLATON", PLATON))   # (comparison, run): the run's longer minus today's schedule


def unit_table(prunability, ids: Mapping[str, Mapping[str, float]], metric: str = "CIDEr"):
    """One row per unit: ``unit``, ``group``, ``id_<estimator>`` for each estimator in ``ids``
    ({estimator: {unit: ID}}) and ``loss``: the mean over sparsities of ``drop_<metric>`` in ``prunability``
    (:func:`vlmid.pruning.unit_prunability`), the area under the unit's loss curve."""
    column = f"drop_{metric}"
    if column not in prunability:
        raise KeyError(f"the prunability table has no {column!r} (its metrics: "
                       f"{[c[5:] for c in prunability.columns if c.startswith('drop_')]})")
    t = prunability.groupby(["unit", "group"], sort=False)[column].mean().rename("loss").reset_index()
    for name, per_unit in ids.items():
        missing = sorted(set(t.unit) - set(per_unit))
        if missing:
            raise KeyError(f"estimator {name!r} has no ID for units {missing}")
        t[f"id_{name}"] = t.unit.map(per_unit).astype(float)
    return t


def spearman(x, y) -> float:
    """Spearman's rho of two equally long sequences (NaN when either is constant or shorter than 3)."""
    return float(_rho_rows(np.asarray(x, dtype=float), np.asarray(y, dtype=float)[None, :])[0])


def rank_correlations(table, x: str, y: str = "loss") -> dict[str, float]:
    """rho(``x``, ``y``) over all units, within each tower present, and with every unit given its tower's mean
    ``x`` (:data:`TOWERS_ONLY`: what the contrast between towers alone gives): :func:`correlations` of one table."""
    rhos = correlations(table[x].to_numpy(float), table[y].to_numpy(float)[None, :], table.group.to_numpy())
    return {k: float(v[0]) for k, v in rhos.items() if k != WITHIN}


def pooled(per_build: list[Mapping[str, float]]) -> dict[str, dict]:
    """Each comparison's rho across builds: {comparison: {"rho", "ci_low", "ci_high", "stability", "n_builds"}}
    (builds where rho is undefined, a constant tower, are left out and counted)."""
    out = {}
    for key in per_build[0]:
        values = [float(b[key]) for b in per_build if b.get(key) is not None and math.isfinite(b[key])]
        if not values:
            out[key] = dict(rho=math.nan, ci_low=math.nan, ci_high=math.nan, stability=0, n_builds=0)
            continue
        e = across_builds(values)
        out[key] = dict(rho=e.diff, ci_low=max(e.low, -1.0) if math.isfinite(e.low) else e.low,
                        ci_high=min(e.high, 1.0) if math.isfinite(e.high) else e.high, stability=e.stability,
                        n_builds=e.n_builds)
    return out


# ---------------------------------------------------------------------------------------
# the IDs: four estimators per Linear, on training images
# ---------------------------------------------------------------------------------------
def linear_ids(features: Mapping[str, object], estimators: Mapping[str, object], progress: bool = True):
    """One row per Linear and estimator (module, group, estimator, id) from each Linear's pooled outputs
    ``features`` ({module name: points x dims}). An estimator that cannot fit a Linear (too few distinct
    points) gives NaN there, and the row says why."""
    import pandas as pd
    from tqdm.auto import tqdm

    from ..models.anatomy import module_group

    rows = []
    for name in tqdm(list(features), desc="IDs per Linear, 4 estimators", disable=not progress, leave=False):
        for est_name, est in estimators.items():
            try:
                value, why = float(est.fit(features[name]).dimension_), ""
            except ValueError as exc:
                value, why = math.nan, str(exc)
            rows.append(dict(module=name, group=module_group(name), estimator=est_name, id=value, error=why))
    return pd.DataFrame(rows)


def unit_ids(linear_table, units: Mapping[str, list[str]]) -> dict[str, dict[str, float]]:
    """{estimator: {unit: the mean ID of the unit's Linears}} from :func:`linear_ids`' table."""
    out = {}
    for est, part in linear_table.groupby("estimator", sort=False):
        by_module = dict(zip(part.module, part.id))
        out[est] = {u: float(np.nanmean([by_module[n] for n in names])) for u, names in units.items()}
    return out


# ---------------------------------------------------------------------------------------
# each unit's prunability, and rho with an interval over the validation scenes
# ---------------------------------------------------------------------------------------
def scene_evaluator(examples: Sequence, items=None):
    """``evaluate(cap)``: CIDEr-D (with its per-scene values, ``per_image_cider``, for resampling and pairing)
    and, where the scenes' items are known (tiny profile), garment F1, of ``cap``'s captions of ``examples``.
    The official CIDEr-D (PTB tokenizer), without the slower BLEU / METEOR / ROUGE-L."""
    from ..data.base import images_of
    from ..metrics import cider_per_image

    refs = {e.image_id: list(e.captions) for e in examples}

    def evaluate(cap) -> dict:
        preds = dict(zip(refs, cap.generate(images_of(examples), batch_size=64)))
        per_scene = np.asarray(cider_per_image(refs, preds))
        out = {"CIDEr": float(per_scene.mean()), "per_image_cider": per_scene}
        if items is not None:
            from ..metrics.grounding import grounded_scores
            out["garment_f1"] = grounded_scores(preds, items)["garment_f1"]
        return out
    return evaluate


def loss_matrix(prunability, key: str = "per_image_cider"):
    """(units, groups, D): D[u, i] is scene i's drop of ``key`` when unit u alone is pruned, averaged over the
    sparsities (intact minus pruned, from the table's ``attrs``): the per-scene terms of ``unit_table``'s loss."""
    per_item, intact = prunability.attrs["per_item"], prunability.attrs["intact_per_item"][key]
    units = list(dict.fromkeys(prunability.unit))
    groups = [prunability.group[prunability.unit == u].iloc[0] for u in units]
    sparsities = sorted(set(prunability.sparsity))
    D = np.stack([np.mean([intact - per_item[(u, s)][key] for s in sparsities], axis=0) for u in units])
    return units, groups, D


def _rank(a: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank), as Spearman's rho needs."""
    from scipy.stats import rankdata

    return rankdata(a, axis=-1)


def _rho_rows(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Spearman's rho of the vector ``x`` with every row of ``Y`` (NaN where either is constant)."""
    if x.size < 3 or np.ptp(x) == 0:
        return np.full(Y.shape[0], math.nan)
    rx, rY = _rank(x), _rank(Y)
    rx, rY = rx - rx.mean(), rY - rY.mean(axis=1, keepdims=True)
    den = np.sqrt((rx ** 2).sum() * (rY ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rY @ rx) / den, math.nan)


def correlations(x: np.ndarray, Y: np.ndarray, groups: Sequence[str]) -> dict[str, np.ndarray]:
    """Every comparison of :data:`COMPARISONS` for the unit IDs ``x`` and each row of losses ``Y``
    (resamples x units): rho over all units, inside each tower, their mean (:data:`WITHIN`), and with each
    unit given its tower's mean ID (:data:`TOWERS_ONLY`)."""
    groups = np.asarray(groups)
    out = {OVERALL: _rho_rows(x, Y)}
    inside = []
    for t in TOWERS:
        sel = groups == t
        if sel.any():
            out[t] = _rho_rows(x[sel], Y[:, sel])
            inside.append(out[t])
    with warnings.catch_warnings():   # a tower whose units share one ID has no rho: the mean is of the others
        warnings.simplefilter("ignore", RuntimeWarning)
        out[WITHIN] = np.nanmean(np.stack(inside), axis=0) if inside else np.full(Y.shape[0], math.nan)
    tower_mean = np.array([x[groups == g].mean() for g in groups])
    out[TOWERS_ONLY] = _rho_rows(tower_mean, Y)
    return out


def rho_effects(prunability, ids: Mapping[str, Mapping[str, float]], n_resamples: int = 1000, seed: int = 0,
                level: float = 0.95):
    """One row per estimator and comparison: rho, and its percentile interval over ``n_resamples`` resamples of
    the validation scenes (each resample re-averages every unit's per-scene loss). The interval says how
    well this build's scenes pin rho down; the builds' spread is added when they are pooled."""
    import pandas as pd

    units, groups, D = loss_matrix(prunability)
    rng = np.random.default_rng(seed)
    n = D.shape[1]
    draws = rng.integers(0, n, size=(n_resamples, n))
    Y = np.stack([D[:, d].mean(axis=1) for d in draws])            # resamples x units
    point = D.mean(axis=1)[None, :]
    rows = []
    for est, per_unit in ids.items():
        x = np.array([per_unit[u] for u in units], dtype=float)
        at, boot = correlations(x, point, groups), correlations(x, Y, groups)
        for comp in at:
            b = boot[comp][np.isfinite(boot[comp])]
            lo, hi = (np.quantile(b, [(1 - level) / 2, (1 + level) / 2]) if b.size else (math.nan, math.nan))
            rows.append(dict(estimator=est, comparison=comp, rho=float(at[comp][0]), ci_low=float(lo), ci_high=float(hi),
                             n_units=len(units), n_scenes=n))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------
# the ID prior against its controls, and ID-allocated sparsity, along one schedule each
# ---------------------------------------------------------------------------------------
def seeds(P) -> list[int]:
    """The fine-tuning seeds of every run: ``seed, seed + 1, ...``."""
    return [P.seed + k for k in range(P.n_seeds)]


def schedule(P) -> dict:
    """Every run's cubic schedule to the largest control sparsity, evaluated at each of them."""
    return dict(final_sparsity=max(P.control_sparsities), total_steps=P.total_steps, initial_warmup=P.initial_warmup,
                final_warmup=0, delta_t=P.delta_t, lr=P.lr, hold_steps=P.hold_steps,
                checkpoints=tuple(P.control_sparsities), allocation_spread=P.allocation_spread)


def run_labels() -> list[str]:
    """Every run's label, in the tables' order: no prior, the prior, its controls, then the allocations."""
    return [NONE, PRIOR, *CONTROL_LABELS.values(), *[lab for pair in ALLOCATION_PAIRS.values() for lab in pair]]


def long_label(label: str) -> str:
    """The table label of run ``label`` on the longer schedule."""
    return f"{label}, longer schedule"


def long_schedule(P) -> dict:
    """:func:`schedule` with its total, recovery and dense warm-up steps ``P.long_factor`` times as many, masks
    still recomputed every ``delta_t`` steps: about ten times the mask updates and the fine-tuning between them,
    and PLATON's moving averages (time constants 1 / (1 - beta): about 7 and 20 steps) warmed up over the
    ``initial_warmup * long_factor`` dense steps before the first mask."""
    f = P.long_factor
    return {**schedule(P), "total_steps": P.total_steps * f, "hold_steps": P.hold_steps * f,
            "initial_warmup": P.initial_warmup * f}


def schedule_jobs(P) -> list:
    """The runs that compare the schedules, each fine-tuning seed: PLATON on today's schedule, and no prior,
    the prior and PLATON on the longer one (none when ``P.long_factor`` is 0; no prior and the prior on
    today's schedule are runs of :func:`control_jobs`)."""
    from ..pruning import PruneConfig, PruneJob

    if not P.long_factor:
        return []
    base, long = schedule(P), long_schedule(P)
    jobs = []
    for s in seeds(P):
        jobs.append(PruneJob(PruneConfig(**{**base, "method": PLATON}), s, PLATON))
        jobs += [PruneJob(PruneConfig(**{"method": "magnitude", **long, **kw}), s, long_label(lab))
                 for lab, kw in SCHEDULE_RUNS.items()]
    return jobs


def control_jobs(P, ids: Mapping[str, float]) -> list:
    """One :class:`vlmid.pruning.PruneJob` per run and fine-tuning seed. The shuffled and random multipliers
    are drawn anew for each seed, so that their interval covers the draws too."""
    from ..pruning import PruneConfig, PruneJob, control_ids

    base = schedule(P)
    jobs = []
    for s in seeds(P):
        plan = [(NONE, dict(), None), (PRIOR, dict(id_prior=True), None)]
        plan += [(CONTROL_LABELS[k], dict(id_prior=True), control_ids(ids, k, seed=s)) for k in ("shuffled", "inverse", "random")]
        plan += [(CONTROL_LABELS["tower"], dict(id_prior=True, tower_matched=True), None)]
        plan += [("magnitude, ID-allocated", dict(allocation="id"), None), ("magnitude, uniform", dict(allocation="uniform"), None),
                 ("wanda, ID-allocated", dict(method="wanda", allocation="id"), None), ("wanda", dict(method="wanda"), None)]
        jobs += [PruneJob(PruneConfig(**{"method": "magnitude", **base, **kw}), s, lab, ids=i) for lab, kw, i in plan]
    return jobs


def _stack(per_scene, label: str, seeds_: Sequence[int], sparsities: Sequence[float]) -> np.ndarray:
    """Per-scene CIDEr-D of ``label`` averaged over ``sparsities``: shape (n_seeds, n_scenes)."""
    return np.stack([np.mean([per_scene[(label, s, sp)] for sp in sparsities], axis=0) for s in seeds_])


def gain(per_scene, a: str, b: str, seeds_: Sequence[int], sparsities: Sequence[float]) -> Effect:
    """``a`` minus ``b`` in CIDEr-D, paired on test scenes and seeds, averaged over ``sparsities``."""
    return paired_effect(_stack(per_scene, a, seeds_, sparsities), _stack(per_scene, b, seeds_, sparsities))


def comparison_table(per_scene, seeds_: Sequence[int], sparsities: Sequence[float]):
    """Every comparison the claims read, at each sparsity and averaged over them ("mean"): the prior against
    no prior and each control, ID allocation against uniform for each base score, and the tower split alone
    against no prior (what moving sparsity between towers does by itself)."""
    pairs = [("ID prior vs no prior", PRIOR, NONE)]
    pairs += [(f"ID prior vs {k} control", PRIOR, lab) for k, lab in CONTROL_LABELS.items()]
    pairs += [("tower split alone vs no prior", CONTROL_LABELS["tower"], NONE)]
    pairs += [(f"ID allocation vs uniform, {m}", a, u) for m, (a, u) in ALLOCATION_PAIRS.items()]
    return _table(per_scene, pairs, seeds_, sparsities,
                  extra=lambda over: [("ID allocation vs uniform, mean of both", allocation_effect(per_scene, seeds_, over))])


def schedule_table(per_scene, seeds_: Sequence[int], sparsities: Sequence[float]):
    """The longer schedule against today's for each run of :data:`SCHEDULE_RUNS`, and the two comparisons it is
    for, on each schedule: PLATON against magnitude, and the prior against no prior (the rows of
    :func:`comparison_table`'s form)."""
    pairs = [(name, long_label(lab), lab) for name, lab in SCHEDULE_PAIRS]
    pairs += [("PLATON vs magnitude, today's schedule", PLATON, NONE),
              ("PLATON vs magnitude, longer schedule", long_label(PLATON), long_label(NONE)),
              ("ID prior vs no prior, today's schedule", PRIOR, NONE),
              ("ID prior vs no prior, longer schedule", long_label(PRIOR), long_label(NONE))]
    return _table(per_scene, pairs, seeds_, sparsities)


def _table(per_scene, pairs, seeds_: Sequence[int], sparsities: Sequence[float], extra=None):
    """One row per comparison ``(name, a, b)`` of ``pairs`` (``a`` minus ``b``) and sparsity, then averaged
    over the sparsities ("mean"); ``extra(sparsities)``: more ``(name, Effect)`` rows at each."""
    import pandas as pd

    rows = []
    for at in [*sparsities, "mean"]:
        over = sparsities if at == "mean" else [at]
        effects = [(name, gain(per_scene, a, b, seeds_, over)) for name, a, b in pairs]
        effects += extra(over) if extra is not None else []
        rows += [dict(comparison=name, sparsity=at, gain=e.diff, ci_low=e.low, ci_high=e.high, n_scenes=e.n_items,
                      n_seeds=e.n_seeds) for name, e in effects]
    order = {name: i for i, name in enumerate(dict.fromkeys(r["comparison"] for r in rows))}
    return pd.DataFrame(rows).sort_values("comparison", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


def best_control(table) -> str:
    """The control closest to (or above) the ID prior, averaged over the sparsities: the strongest of them
    (a key of :data:`CONTROL_LABELS`; on a tie, the first)."""
    gains = table[table.sparsity == "mean"].set_index("comparison").gain
    return min(CONTROL_LABELS, key=lambda k: gains[f"ID prior vs {k} control"])


def allocation_effect(per_scene, seeds_: Sequence[int], sparsities: Sequence[float]) -> Effect:
    """ID allocation minus uniform, averaged over the base scores (magnitude, Wanda) and the sparsities."""
    a = np.mean([_stack(per_scene, pair[0], seeds_, sparsities) for pair in ALLOCATION_PAIRS.values()], axis=0)
    b = np.mean([_stack(per_scene, pair[1], seeds_, sparsities) for pair in ALLOCATION_PAIRS.values()], axis=0)
    return paired_effect(a, b)


# ---------------------------------------------------------------------------------------
# the headline and the claims
# ---------------------------------------------------------------------------------------
def _rho_key(comparison: str, est: str) -> str:
    part = {OVERALL: "all", WITHIN: "within", TOWERS_ONLY: "towers_only"}.get(comparison, comparison)
    return f"rho_{part}_{SLUGS[est]}"


# the rows of schedule_table that the headline keeps (averaged over the sparsities), by key
SCHEDULE_KEYS = {"longer schedule, magnitude": "long_vs_today_magnitude",
                 "longer schedule, magnitude + ID": "long_vs_today_id_prior", "longer schedule, PLATON": "long_vs_today_platon",
                 "PLATON vs magnitude, today's schedule": "platon_vs_magnitude_today",
                 "PLATON vs magnitude, longer schedule": "platon_vs_magnitude_long",
                 "ID prior vs no prior, longer schedule": "id_prior_vs_none_long"}

KEYS: tuple[str, ...] = (
    *[k for est in SLUGS for comp in (OVERALL, WITHIN) for k in ci_keys(_rho_key(comp, est))],
    *[k for comp in (*TOWERS, TOWERS_ONLY) for k in ci_keys(_rho_key(comp, LEAD))],
    'rho_all_twonn_garment_f1', *[f"tower_order_{s}" for s in SLUGS.values()], 'n_estimators_agree_on_tower_order',
    *[f"validation_max_rel_error_{s}" for s in SLUGS.values()],
    *ci_keys('id_prior_vs_none'), *[k for sp in (40, 60, 80) for k in ci_keys(f'id_prior_vs_none_at_{sp}')],
    *ci_keys('id_prior_vs_best_control'), 'best_control', 'id_prior_vs_controls', *ci_keys('tower_split_vs_none'),
    *ci_keys('id_allocation_vs_uniform'), *ci_keys('id_allocation_vs_uniform_magnitude'),
    *ci_keys('id_allocation_vs_uniform_wanda'), *[k for key in SCHEDULE_KEYS.values() for k in ci_keys(key)],
    'long_factor', 'cider_by_run', 'dense_val_cider', 'dense_cider', 'n_units', 'n_val', 'n_test', 'n_seeds',
    'sparsities', 'wall_seconds')


def _at(sp: float) -> str:
    return f"{round(100 * sp):d}"


def headline(rhos, linear_table, validation, comparisons, results, *, dense_val: Mapping, dense: Mapping,
             n_units: int, n_val: int, n_test: int, n_seeds: int, sparsities: Sequence[float], rho_f1: float,
             wall_seconds: float, schedules=None, long_factor: int = 0) -> dict:
    """Every key of :data:`KEYS`: ``rhos`` (:func:`rho_effects`), the per-Linear IDs (:func:`linear_ids`, for the
    towers' order per estimator), the estimators' check on known dimensions (None on a further build),
    ``comparisons`` (:func:`comparison_table`), ``results`` (one row per run and checkpoint: label, seed,
    sparsity, CIDEr), the dense model's scores on the validation and test scenes, and ``schedules``
    (:func:`schedule_table` of the runs on a ``long_factor`` times longer schedule; None where none ran)."""
    r = rhos.set_index(["estimator", "comparison"])
    out = {}
    for est in SLUGS:
        for comp in (OVERALL, WITHIN) + ((*TOWERS, TOWERS_ONLY) if est == LEAD else ()):
            row = r.loc[(est, comp)] if (est, comp) in r.index else None
            vals = (row.rho, row.ci_low, row.ci_high) if row is not None else (None,) * 3
            out.update({k: (None if v is None or not math.isfinite(v) else float(v))
                        for k, v in zip(ci_keys(_rho_key(comp, est)), vals)})
    out["rho_all_twonn_garment_f1"] = None if rho_f1 is None or not math.isfinite(rho_f1) else float(rho_f1)
    orders = {}
    for est, part in linear_table.groupby("estimator"):
        orders[est] = " > ".join(part.groupby("group").id.mean().sort_values(ascending=False).index)
    out.update({f"tower_order_{SLUGS[e]}": orders.get(e) for e in SLUGS})
    lead_order = orders.get(LEAD)
    out["n_estimators_agree_on_tower_order"] = sum(o == lead_order for o in orders.values())
    for est, slug in SLUGS.items():
        part = validation[validation.estimator == est] if validation is not None else None
        out[f"validation_max_rel_error_{slug}"] = (float(part.rel_error.abs().max())
                                                   if part is not None and len(part) else None)
    c = comparisons.set_index(["comparison", "sparsity"])

    def effect(name, at="mean", table=c):
        row = table.loc[(name, at)]
        return row.gain, row.ci_low, row.ci_high

    out.update(zip(ci_keys("id_prior_vs_none"), effect("ID prior vs no prior")))
    for at in ("40", "60", "80"):   # a sparsity the runs did not reach (a smoke run) is None
        sp = next((s for s in sparsities if _at(s) == at), None)
        out.update(zip(ci_keys(f"id_prior_vs_none_at_{at}"),
                       effect("ID prior vs no prior", sp) if sp is not None else (None,) * 3))
    best = best_control(comparisons)
    out["best_control"] = best
    out.update(zip(ci_keys("id_prior_vs_best_control"), effect(f"ID prior vs {best} control")))
    out["id_prior_vs_controls"] = json.dumps({k: float(c.loc[(f"ID prior vs {k} control", "mean"), "gain"])
                                              for k in CONTROL_LABELS})
    out.update(zip(ci_keys("tower_split_vs_none"), effect("tower split alone vs no prior")))
    for m in ALLOCATION_PAIRS:
        out.update(zip(ci_keys(f"id_allocation_vs_uniform_{m}"), effect(f"ID allocation vs uniform, {m}")))
    out.update(zip(ci_keys("id_allocation_vs_uniform"), effect("ID allocation vs uniform, mean of both")))
    sched = schedules.set_index(["comparison", "sparsity"]) if schedules is not None else None
    for name, key in SCHEDULE_KEYS.items():
        out.update(zip(ci_keys(key), effect(name, table=sched) if sched is not None else (None,) * 3))
    out["long_factor"] = int(long_factor) if schedules is not None else 0
    means = results.groupby(["method", "sparsity"]).CIDEr.mean()
    out["cider_by_run"] = json.dumps({m: {_at(sp): float(v) for (mm, sp), v in means.items() if mm == m}
                                      for m in dict.fromkeys(results.method)})
    out.update(dense_val_cider=float(dense_val["CIDEr"]), dense_cider=float(dense["CIDEr"]), n_units=int(n_units),
               n_val=int(n_val), n_test=int(n_test), n_seeds=int(n_seeds),
               sparsities=", ".join(_at(s) for s in sparsities), wall_seconds=round(float(wall_seconds), 1))
    return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in out.items()}


def fix_choices(per_build: list[dict]) -> list[dict]:
    """The builds' headlines with the best control chosen on the first build: every further build's
    "ID prior vs best control" is read at that control (its ``id_prior_vs_controls``), its own interval
    kept only where it chose the same one (see :func:`vlmid.experiments.pruning.fix_choices`)."""
    first, out = per_build[0], [per_build[0]]
    best = first["best_control"]
    for i, m in enumerate(per_build[1:], start=1):
        by = json.loads(m.get("id_prior_vs_controls") or "{}")
        if best not in by:
            raise KeyError(f"build {i} of notebook 06 has no comparison with the {best!r} control: run notebook 06 "
                           "on that build again")
        m = dict(m, best_control=best, id_prior_vs_best_control=by[best])
        if per_build[i]["best_control"] != best:
            m["id_prior_vs_best_control_ci_low"] = m["id_prior_vs_best_control_ci_high"] = None
        out.append(m)
    return out


def _agree(key: str):
    """The rule of an ID claim: decided only where every estimator's interval lies on the side of TwoNN's."""
    def test(m: dict):
        lead = m[f"{key}_{SLUGS[LEAD]}_ci_low"] > 0
        for slug in SLUGS.values():
            lo, hi = m.get(f"{key}_{slug}_ci_low"), m.get(f"{key}_{slug}_ci_high")
            if lo is None or hi is None or not (lo > 0 if lead else hi < 0):
                return None
        return lead
    return test


def _rhos_text(key: str) -> str:
    return "; ".join(f"{name} " + ci(f"{key}_{slug}") for name, slug in SLUGS.items())


CLAIMS = (
    Claim("06", "claim", "A unit's ID predicts its prunability: high-ID units lose more quality when pruned, "
          "low-ID units are redundant",
          "ID-pruning study; docs/methods.md §12",
          "Spearman rho of unit ID and CIDEr-D lost when the unit alone is pruned ({n_units} units, {n_val} validation "
          "scenes): " + _rhos_text("rho_all") + "; the towers' mean IDs alone: " + ci("rho_towers_only_twonn"),
          "a high correlation between ID and modality prunability (ID-pruning study)",
          "rho above zero under every estimator (95 % intervals; undecided where the interval holds zero or the "
          "estimators disagree)",
          _agree("rho_all"), tuple(k for s in SLUGS.values() for k in ci_keys(f"rho_all_{s}"))
          + ci_keys("rho_towers_only_twonn") + ("n_units", "n_val"),
          interval=ci_keys("rho_all_twonn")[1:]),
    Claim("06", "claim", "... and within each tower, not only between towers",
          "docs/methods.md §12",
          "mean over the towers of rho inside each: " + _rhos_text("rho_within") + "; TwoNN per tower: vision "
          + ci("rho_vision_twonn") + ", language " + ci("rho_language_twonn") + ", fusion " + ci("rho_fusion_twonn"),
          "", "the mean within-tower rho above zero under every estimator (95 % intervals; undecided where the interval "
          "holds zero or the estimators disagree)",
          _agree("rho_within"), tuple(k for s in SLUGS.values() for k in ci_keys(f"rho_within_{s}"))
          + tuple(k for t in TOWERS for k in ci_keys(f"rho_{t}_twonn")),
          interval=ci_keys("rho_within_twonn")[1:]),
    Claim("06", "claim", "The ID prior helps pruning (magnitude score, against no prior)",
          "ID-pruning study; docs/methods.md §12",
          "CIDEr-D with the prior minus without, mean over {sparsities} %: " + ci("id_prior_vs_none") + " (40 %: "
          + ci("id_prior_vs_none_at_40") + ", 80 %: " + ci("id_prior_vs_none_at_80") + "; {n_test} test scenes, "
          "{n_seeds} seeds)",
          "", "the gain is above zero (95 % interval; undecided when it holds zero)",
          lambda m: m["id_prior_vs_none_ci_low"] > 0,
          (*ci_keys("id_prior_vs_none"), *ci_keys("id_prior_vs_none_at_40"), *ci_keys("id_prior_vs_none_at_80"),
           "sparsities", "n_test", "n_seeds"),
          interval=ci_keys("id_prior_vs_none")[1:]),
    Claim("06", "claim", "The ID prior helps beyond moving sparsity between towers: it beats the best control "
          "(shuffled, inverse or random multipliers, or its own tower split alone)",
          "docs/methods.md §12",
          "CIDEr-D with the prior minus the {best_control} control (the strongest, chosen on the first build): "
          + ci("id_prior_vs_best_control") + "; the tower split alone minus no prior: " + ci("tower_split_vs_none"),
          "", "the prior minus the best control is above zero (95 % interval; undecided when it holds zero)",
          lambda m: m["id_prior_vs_best_control_ci_low"] > 0,
          (*ci_keys("id_prior_vs_best_control"), "best_control", *ci_keys("tower_split_vs_none")),
          interval=ci_keys("id_prior_vs_best_control")[1:]),
    Claim("06", "claim", "Allocating each layer's sparsity by its ID beats a uniform allocation (as OWL allocates by "
          "outliers)",
          "OWL, D-Rank; docs/methods.md §12",
          "CIDEr-D, ID-allocated minus uniform, mean of magnitude and Wanda over {sparsities} %: "
          + ci("id_allocation_vs_uniform") + " (magnitude " + ci("id_allocation_vs_uniform_magnitude") + ", Wanda "
          + ci("id_allocation_vs_uniform_wanda") + ")",
          "", "the mean gain is above zero (95 % interval; undecided when it holds zero)",
          lambda m: m["id_allocation_vs_uniform_ci_low"] > 0,
          (*ci_keys("id_allocation_vs_uniform"), *ci_keys("id_allocation_vs_uniform_magnitude"),
           *ci_keys("id_allocation_vs_uniform_wanda"), "sparsities"),
          interval=ci_keys("id_allocation_vs_uniform")[1:]),
)


def unit_tables(root, builds):
    """Every build's unit table (ID per estimator and loss per unit, ``unit_table.csv`` of notebook 06) in one
    DataFrame with a ``build`` column; None when notebook 06 has not run on these builds."""
    from pathlib import Path

    import pandas as pd

    from ..paths import build_results_dir

    frames = []
    for b in builds:
        path = Path(build_results_dir(root, builds, b)) / STEM / "unit_table.csv"
        if not path.is_file():
            return None
        frames.append(pd.read_csv(path).assign(build=int(b)))
    return pd.concat(frames, ignore_index=True)


def _f(v, spec: str = "+.3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def summary(m: Mapping) -> str:
    """The headline in five lines of words: rho, the towers' order, the prior and its best control, allocation,
    the schedules
    (an undefined value, e.g. rho of a constant, reads "n/a")."""
    return "\n".join([
        f"rho (TwoNN): all units {_f(m['rho_all_twonn'], '+.2f')}, within towers {_f(m['rho_within_twonn'], '+.2f')}, "
        f"tower means alone {_f(m['rho_towers_only_twonn'], '+.2f')}; against the garment F1 lost "
        f"{_f(m['rho_all_twonn_garment_f1'], '+.2f')}",
        "towers by mean ID: " + "; ".join(f"{e} {m['tower_order_' + s]}" for e, s in SLUGS.items()),
        f"the prior minus no prior {_f(m['id_prior_vs_none'])}; minus its best control ({m['best_control']}) "
        f"{_f(m['id_prior_vs_best_control'])}; the tower split alone minus no prior {_f(m['tower_split_vs_none'])}",
        f"ID allocation minus uniform {_f(m['id_allocation_vs_uniform'])} (magnitude "
        f"{_f(m['id_allocation_vs_uniform_magnitude'])}, Wanda {_f(m['id_allocation_vs_uniform_wanda'])})",
        f"a {m['long_factor']}x longer schedule minus today's: magnitude {_f(m['long_vs_today_magnitude'])}, "
        f"PLATON {_f(m['long_vs_today_platon'])}; PLATON minus magnitude {_f(m['platon_vs_magnitude_today'])} today, "
        f"{_f(m['platon_vs_magnitude_long'])} longer; the prior minus no prior, longer {_f(m['id_prior_vs_none_long'])}"])
