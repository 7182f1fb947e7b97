"""Notebook 04: a baseline against a token-pruned retrieval model, compared honestly.

The arms are one dual encoder trained with one objective (:mod:`vlmid.retrieval`): ``"baseline"``
(every patch token), ``"keep r"`` for each keep ratio and the report's scorer alone, all from one
training seed; the baseline and the default keep ratio are trained again from every extra seed.

    models = make_models(P, cfg, P.seed)                 # the arms of the first seed, same initial weights
    runs = train(P, cfg, models, train_set)              # + the baseline and the default arm of the extra seeds
    items = R.per_image_table(runs, test_set)            # each test image's recall@5, per run
    seeds = seed_table(quality, kept, P.default_keep)    # per seed: the pair compared, and whether it failed
    metrics = headline(seeds, items, quality, speed, report_mini, report_flops, P.default_keep, P.seed)

A pruned run **failed** when its scorer keeps foreground tokens no more often than their share of
all tokens (what a random selection keeps): its training went wrong, and averaging it in would
decide the quality claim on one bad initialisation. Failed seeds are counted in the headline and
left out of the comparison, with their baseline (the pairs are per seed). The quality cost is a
paired bootstrap over test images and seeds (:mod:`vlmid.uncertainty`).

``KEYS``: every key :func:`headline` writes to the notebook's ``metrics.json``; ``CLAIMS``: the claims and
targets the notebook decides, each reading headline keys only (checked by :mod:`vlmid.claims`).
"""
from __future__ import annotations

import math

import numpy as np

from ..uncertainty import Effect, paired_effect
from ..verdict import BY_CONSTRUCTION, Claim, ci, ci_keys

NUMBER = "04"
BASELINE = "baseline"
LOSSY_THRESHOLD = 0.05   # "considerable": the pruned model keeps less than 95 % of the baseline's recall@5
# the report's FLOPs rebuilt (vlmid.retrieval.flickr8k_report.REPORT_FLOPS_MODELS) -> headline key
REPORT_FLOPS_KEYS = {"report baseline": "report_flops_baseline", "report pruned, keep 0.5": "report_flops_keep_half",
                     "report pruned, keep 1.0": "report_flops_keep_all"}

KEYS: tuple[str, ...] = (
    'baseline_recall5', 'pruned_recall5', *ci_keys('recall5_diff'), *ci_keys('lossyness'),
    'n_seeds_default', 'n_failed_seeds', 'failed_seeds', 'n_seeds_compared', 'n_test_images',
    'flops_ratio', 'train_time_ratio', 'encode_time_ratio', 'later_epoch_time_ratio', 'first_epoch_over_later',
    'report_setup_lossyness', 'report_setup_baseline_loss', 'report_setup_pruned_loss', *REPORT_FLOPS_KEYS.values(),
    'scorer_only_recall5')
# outcomes of each build's training runs: summed (or listed) over the builds when pooled, never averaged
TALLIED = ("n_seeds_default", "n_failed_seeds", "failed_seeds", "n_seeds_compared")


def arm(keep_ratio: float) -> str:
    """The name of the pruned arm keeping ``keep_ratio`` of the patch tokens (:func:`vlmid.retrieval.make_models`)."""
    return f"keep {keep_ratio:g}"


# ---------------------------------------------------------------------------------------
# the arms and their training
# ---------------------------------------------------------------------------------------
def make_models(P, cfg, s: int, scorer_only: bool = True) -> dict:
    """The arms of training seed ``s`` (the same initial weights up to the scorer): the baseline, one
    pruned model per keep ratio of ``P`` and (``scorer_only``) the report's scorer alone."""
    from ..retrieval import make_models as models_of_seed

    return models_of_seed(cfg, P.keep_ratios, s, P.default_keep, scorer_only=scorer_only)


def train(P, cfg, models: dict, train_set, progress: bool = True) -> list[tuple]:
    """Train ``models`` (the arms of seed ``P.seed``) round-robin, then the baseline and the default arm
    again from every seed of ``P.extra_seeds`` (``seed + 1``, ...); returns runs (seed, name, model, :class:`TrainLog`).

    Every arm of an extra seed is built (and the two kept) so that torch's random stream, which the
    Gumbel selection draws from in training, is the same whichever arms are kept."""
    from ..retrieval import fit

    fit_args = dict(epochs=P.epochs, batch_size=P.batch_size, lr=P.lr, progress=progress)
    logs = fit(models, train_set, seed=P.seed, **fit_args)
    runs = [(P.seed, name, models[name], logs[name]) for name in models]
    for s in P.extra_seeds:   # another initialisation and batch order
        more = {k: v for k, v in make_models(P, cfg, s, scorer_only=False).items() if k in (BASELINE, arm(P.default_keep))}
        more_logs = fit(more, train_set, seed=s, **fit_args)
        runs += [(s, name, more[name], more_logs[name]) for name in more]
    return runs


# ---------------------------------------------------------------------------------------
# the tables that feed the verdicts
# ---------------------------------------------------------------------------------------
def seed_table(quality, kept, default_keep: float):
    """One row per training seed of the default arm: the pair compared, and whether the pruned run failed.

    ``quality``: :func:`vlmid.retrieval.retrieval_table`; ``kept``: :func:`vlmid.retrieval.kept_token_table`.
    Columns: seed, baseline_recall5, pruned_recall5, lossyness (1 - pruned / baseline), foreground_share_of_kept,
    foreground_base_rate (the share of all tokens: what random selection keeps) and failed (the scorer
    kept foreground no more often than the base rate).
    """
    import pandas as pd

    name = arm(default_keep)
    base = quality[quality.model == BASELINE].set_index("seed").recall5
    pruned = quality[quality.model == name].set_index("seed").recall5
    share = kept[kept.model == name].set_index("seed")
    rows = []
    for s in pruned.index:
        b, p = float(base[s]), float(pruned[s])
        kept_fg, base_rate = float(share.loc[s, "foreground_share_of_kept"]), float(share.loc[s, "foreground_share_of_all_tokens"])
        rows.append(dict(seed=int(s), baseline_recall5=b, pruned_recall5=p, lossyness=1 - p / b if b else math.nan,
                         foreground_share_of_kept=kept_fg, foreground_base_rate=base_rate, failed=kept_fg <= base_rate))
    return pd.DataFrame(rows, columns=["seed", "baseline_recall5", "pruned_recall5", "lossyness",
                                       "foreground_share_of_kept", "foreground_base_rate", "failed"])


def _per_image(items, model: str, seeds) -> np.ndarray:
    """(n_seeds, n_images) recall@5 of ``model``'s runs of ``seeds``, images in the same order in every row."""
    rows = items[items.model == model].set_index(["seed", "image"]).recall5
    return np.stack([rows.loc[s].sort_index().to_numpy(dtype=float) for s in seeds])


def lossyness_interval(pruned, baseline, tol: float = 5e-4, **kwargs) -> tuple[float, float, float]:
    """Lossy-ness ``1 - mean(pruned) / mean(baseline)`` over seeds and images, with its 95 % interval.

    ``pruned``, ``baseline``: per-image scores, (n_images,) or (n_seeds, n_images), paired. The interval
    is every lossy-ness c that the paired bootstrap cannot reject: ``pruned - (1 - c) * baseline``
    (:func:`vlmid.uncertainty.paired_effect`, ``kwargs`` passed on) below zero beyond the noise rejects
    c from below (the pruned model keeps less than 1 - c of the baseline), above zero from above.
    Every c resamples the same seeds and images, and in each resample the sign of that difference is
    the sign of c minus the resample's lossy-ness, so the ends (found by bisection to ``tol``) are the
    2.5 % and 97.5 % points of the resampled lossy-ness. Returns (lossy-ness, low, high); all NaN when
    the baseline hits nothing.
    """
    pruned, baseline = np.asarray(pruned, dtype=float), np.asarray(baseline, dtype=float)
    if baseline.mean() <= 0:
        return math.nan, math.nan, math.nan
    point = float(1 - pruned.mean() / baseline.mean())

    def too_low(c):    # the pruned model keeps less than 1 - c of the baseline, beyond the noise
        return paired_effect(pruned, baseline, 1 - c, **kwargs).high < 0

    def too_high(c):   # ... more than 1 - c
        return paired_effect(pruned, baseline, 1 - c, **kwargs).low > 0

    low = point - 1.0
    while not too_low(low):   # widen downwards (lossy-ness has no lower bound)
        if point - low > 1e6:
            low = -math.inf
            break
        low = point - 2 * (point - low)
    low = _crossing(too_low, point, low, tol) if math.isfinite(low) else low
    high = _crossing(too_high, point, 1.0, tol) if too_high(1.0) else 1.0   # lossy-ness never exceeds 1
    return point, low, high


def _crossing(rejects, inside: float, outside: float, tol: float) -> float:
    """Where ``rejects`` (False at ``inside``, True at ``outside``) turns True, to ``tol`` (bisection)."""
    while abs(outside - inside) > tol:
        mid = (inside + outside) / 2
        inside, outside = (inside, mid) if rejects(mid) else (mid, outside)
    return (inside + outside) / 2


def comparison(seeds, items, default_keep: float) -> dict:
    """The pruned arm against the baseline on the seeds that did not fail (``seeds``: :func:`seed_table`;
    ``items``: :func:`vlmid.retrieval.per_image_table`): recall@5 of each, the difference pruned minus
    baseline (:class:`Effect`) and the lossy-ness with its interval. Values None when every seed failed."""
    kept = [int(s) for s in seeds.loc[~seeds.failed.astype(bool), "seed"]]
    if not kept:
        return dict(seeds=kept, baseline=None, pruned=None, diff=None, lossyness=(None, None, None))
    b, p = _per_image(items, BASELINE, kept), _per_image(items, arm(default_keep), kept)
    return dict(seeds=kept, baseline=float(b.mean()), pruned=float(p.mean()), diff=paired_effect(p, b),
                lossyness=lossyness_interval(p, b))


def headline(seeds, items, quality, speed, report_mini, report_flops, default_keep: float, seed: int) -> dict:
    """Notebook 04's ``metrics.json`` (exactly :data:`KEYS`) from its tables.

    ``seeds``: :func:`seed_table`; ``items``: :func:`vlmid.retrieval.per_image_table`; ``quality``:
    :func:`vlmid.retrieval.retrieval_table`; ``speed``: :func:`vlmid.retrieval.speed_table`;
    ``report_mini``: :func:`vlmid.retrieval.train_report_miniature`'s table; ``report_flops``:
    :func:`vlmid.retrieval.report_flops_table`. Times and FLOPs are those of training seed ``seed``.
    """
    from ..retrieval import scorer_only_name

    name = arm(default_keep)
    cmp = comparison(seeds, items, default_keep)
    diff = cmp["diff"].as_dict("recall5_diff") if isinstance(cmp["diff"], Effect) else dict.fromkeys(ci_keys("recall5_diff"))
    failed = [int(s) for s in seeds.loc[seeds.failed.astype(bool), "seed"]]
    row = lambda model: quality[(quality.model == model) & (quality.seed == seed)].iloc[0]  # noqa: E731
    b, p = row(BASELINE), row(name)
    sp = speed.set_index("model").loc[name]
    flops = report_flops.set_index("model").matmul_flops_batch16
    last = report_mini.iloc[-1]
    return dict(
        baseline_recall5=cmp["baseline"], pruned_recall5=cmp["pruned"], **diff,
        **dict(zip(ci_keys("lossyness"), cmp["lossyness"])),
        n_seeds_default=int(len(seeds)), n_failed_seeds=len(failed), failed_seeds=_seed_list(failed),
        n_seeds_compared=len(cmp["seeds"]), n_test_images=int(items.image.nunique()),
        flops_ratio=float(sp.flops_ratio), train_time_ratio=float(p.train_seconds / b.train_seconds),
        encode_time_ratio=float(sp.encode_time_ratio), later_epoch_time_ratio=float(sp.epoch_time_ratio),
        first_epoch_over_later=float(b.first_epoch_s / b.later_epoch_s),
        report_setup_lossyness=float(last.report_lossyness), report_setup_baseline_loss=float(last.baseline_test_loss),
        report_setup_pruned_loss=float(last.pruned_test_loss),
        **{key: int(flops[model]) for model, key in REPORT_FLOPS_KEYS.items()},
        scorer_only_recall5=float(row(scorer_only_name(default_keep)).recall5))


def _seed_list(seeds: list[int]) -> str:
    """``[0]`` -> "seed 0", ``[0, 3]`` -> "seeds 0, 3", ``[]`` -> "none"."""
    return "none" if not seeds else ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def _lossy_beyond_noise(m: dict) -> bool | None:
    """The quality rule: the lossy-ness interval above the threshold -> True, below -> False, else None."""
    if m["lossyness_ci_low"] > LOSSY_THRESHOLD:
        return True
    return False if m["lossyness_ci_high"] < LOSSY_THRESHOLD else None


CLAIMS = (
    Claim("04", "claim", "Token pruning lowers the FLOPs per image", "Flickr8k report",
        "FLOPs pruned / baseline {flops_ratio:.3f}; the report's models rebuilt, matmul FLOPs per batch of 16: "
        "baseline {report_flops_baseline:,}, pruned at keep 0.5 {report_flops_keep_half:,}, at keep 1.0 "
        "{report_flops_keep_all:,}",
        "83,494,912 -> 78,807,104 (ratio 0.944; Flickr8k report)",
        "FLOPs ratio < 1", lambda m: m["flops_ratio"] < 1,
        ("flops_ratio", *REPORT_FLOPS_KEYS.values()),
        untestable=(BY_CONSTRUCTION, "blocks that see fewer tokens do less work, so the ratio is below 1 whenever a "
                    "token is dropped; the report's own models, rebuilt, count the same FLOPs at keep 1.0 as at keep "
                    "0.5: its 6 % came from the projector its pruned model lacks, not from pruning")),
    Claim("04", "claim", "Token pruning cuts training time about 13-fold", "Flickr8k report",
        "training time pruned / baseline {train_time_ratio:.3f}",
        "714 s -> 54.7 s (ratio 0.077, first epoch's one-off cost included; Flickr8k report)",
        "training-time ratio <= 0.1", lambda m: m["train_time_ratio"] <= 0.1, ("train_time_ratio",)),
    Claim("04", "claim", "Token pruning costs considerable quality", "Flickr8k report",
        "recall@5 {baseline_recall5:.1%} -> {pruned_recall5:.1%}, pruned minus baseline " + ci("recall5_diff")
        + "; lossy-ness " + ci("lossyness") + " ({n_seeds_compared} of {n_seeds_default} training seeds, "
        "{n_test_images} test images; failed, left out: {failed_seeds})",
        "test loss 0.0007 -> 0.5050 and lossy-ness -704, from two different objectives (Flickr8k report)",
        "lossy-ness (1 - pruned / baseline recall@5; seeds whose scorer kept foreground no more often than chance "
        "left out) above 0.05: its 95 % interval over test images and seeds lies above 0.05 (reproduced), below "
        "(not reproduced), or holds 0.05 (undecided)",
        _lossy_beyond_noise,
        ("baseline_recall5", "pruned_recall5", *ci_keys("recall5_diff"), *ci_keys("lossyness"), "n_seeds_compared",
         "n_seeds_default", "n_test_images", "failed_seeds")),
    Claim("04", "claim", "The token-pruned model's lossy-ness is -704 (test loss 0.0007 vs 0.5050)", "Flickr8k report",
        "the report's setup rebuilt in miniature: test loss {report_setup_baseline_loss:.2g} (baseline) vs "
        "{report_setup_pruned_loss:.4f} (pruned), lossy-ness {report_setup_lossyness:+,.0f}",
        "-704 (Flickr8k report)", "the rebuilt report setup gives a lossy-ness below -10 (a ratio of two unrelated losses)",
        lambda m: m["report_setup_lossyness"] < -10,
        ("report_setup_lossyness", "report_setup_baseline_loss", "report_setup_pruned_loss"),
        untestable=(BY_CONSTRUCTION, "1 - pruned / baseline of two losses of different objectives runs to minus "
                    "infinity as the baseline's loss falls to 0 (its target is one constant direction) while the "
                    "pruned model's cannot move (no gradient): its size says how long the baseline trained, not "
                    "what either model retrieves")),
)
