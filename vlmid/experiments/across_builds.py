"""Notebook 07: every verdict decided across the model builds, not on one trained model.

Notebooks 01-06 run on each shipped build of the tiny models (``checkpoints/tiny-seed<N>/``, the
same recipe trained from seeds 0, 1, ...). Each writes its own ``metrics.json``: the run's first build
into ``results/<notebook>/``, every further build into ``results/builds/seed<N>/<notebook>/``
(:func:`vlmid.paths.build_results_dir`). This module pools them:

    per_build = collect(root, builds)               # notebook -> [metrics of each build]
    pooled = pool(per_build["02"], KEYS_OF["02"])   # every effect: mean over builds, t interval, stability
    table = verdict_table(per_build)                # each claim: pooled verdict, builds agreeing, first build's

An **effect** (a headline key with a 95 % interval, ``key_ci_low`` / ``key_ci_high``) is pooled by
:func:`vlmid.uncertainty.across_builds`: the mean of the builds' own estimates with Student's interval
over the builds, so a comparison is "reproduced" or "not reproduced" only when its interval across
builds excludes zero; ``key_stability`` counts the builds whose own estimate has the sign of the
verdict. Any other number is the mean over the builds; a word (a cause, a shape) is the one most builds
found. What a headline selects (notebook 02's best method, notebook 03's fastest variant) is chosen on
the first build and read at that choice on every further build (:func:`chosen_on_first_build`), so that
the pooled number is not an average of maxima. A claim's rule then runs unchanged on the pooled
headline. With one build there is nothing to pool: the build's own headline (its intervals over test
items and seeds) is used, and every table says "1 build".
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from ..paths import FIRST_BUILD_ONLY
from ..uncertainty import across_builds
from ..verdict import Claim, verdict

NUMBER = "07"
STEM = "07_verdicts_across_builds"

POOLED = "pooled_metrics.json"       # notebook -> its headline pooled across builds (what the report decides on)
PROVENANCE_KEYS = ("profile", "seed", "commit")
ID_PRIOR_KEY = "id_prior_gain_at_40"   # notebook 02's central comparison, whose half-width is a target
ID_PRIOR_HALF_WIDTH = 0.04             # CIDEr-D: the half-width its interval across builds should reach

KEYS: tuple[str, ...] = (
    "n_builds", "builds", "n_claims", "n_decided", "n_changed_vs_first_build", "n_unstable",
    "id_prior_gain_half_width", "id_prior_builds_needed")


def _stems():
    """The notebooks that run on every build (01-06), by number."""
    from . import compression, flickr8k, id_prunability, intrinsic_dimension, pruning, token_pruning

    modules = (intrinsic_dimension, pruning, token_pruning, flickr8k, compression, id_prunability)
    return {m.NUMBER: m for m in modules if m.NUMBER not in FIRST_BUILD_ONLY}


def effect_keys(keys) -> list[str]:
    """The keys of ``keys`` that are effects: those written with both ends of a 95 % interval."""
    keys = set(keys)
    return [k for k in keys if f"{k}_ci_low" in keys and f"{k}_ci_high" in keys]


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _most_common(values):
    counts = Counter(values).most_common()
    if not counts:
        return None
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return values[0]   # a tie: the first build's, as a one-build run would say
    return counts[0][0]


def _tally(per_build: list[dict], values: list):
    """An outcome counted per build (``values``, one per build), over every build: numbers summed; a word
    naming what happened (which seeds failed) listed build by build, "none" where no build named any."""
    if all(_number(v) for v in values):
        return int(sum(values)) if all(float(v).is_integer() for v in values) else float(sum(values))
    named = [f"build {m.get('seed', i)}: {v}" for i, (m, v) in enumerate(zip(per_build, values))
             if v not in (None, "", "none")]
    return "; ".join(named) or "none"


def pool(per_build: list[dict], keys, repool=None, tallied=()) -> dict:
    """One notebook's headline pooled across builds (``per_build``: its metrics, one dict per build).

    Effects: mean, across-build interval, ``_n_builds`` and ``_stability``; other numbers: the mean
    over the builds that measured them (an integer where that mean is one: sizes print as sizes); outcomes
    counted per build (``tallied``, an experiment's ``TALLIED``: failed runs, runs kept) summed over the
    builds, or listed build by build, never averaged away; words and flags: the value most builds found; then ``repool``
    (an experiment's own, where its headline holds words derived from its numbers) recomputes those
    words from the pooled numbers. With one build, that build's own headline (with ``_n_builds`` 1 and
    ``_stability`` 1 for each effect)."""
    if not per_build:
        raise ValueError("no builds to pool: run the notebook on at least one build first")
    effects = effect_keys(keys)
    if len(per_build) == 1:
        only = dict(per_build[0])
        for k in effects:
            only[f"{k}_n_builds"], only[f"{k}_stability"] = 1, 1
        return only
    ends = {f"{k}_ci_{end}" for k in effects for end in ("low", "high")}
    out = {}
    for k in keys:
        if k in ends:
            continue
        values = [m.get(k) for m in per_build]
        measured = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if k in tallied:
            out[k] = _tally(per_build, values)
        elif k in effects:
            numbers = [float(v) for v in measured if _number(v)]
            if numbers:
                out.update(across_builds(numbers).as_dict(k))
            else:
                out.update({k: None, f"{k}_ci_low": None, f"{k}_ci_high": None, f"{k}_n_builds": 0,
                            f"{k}_stability": 0})
        elif measured and all(_number(v) for v in measured):
            mean = sum(float(v) for v in measured) / len(measured)
            whole = all(isinstance(v, int) for v in measured) and mean.is_integer()
            out[k] = int(mean) if whole else mean
        else:
            out[k] = _most_common(measured)
    for k in PROVENANCE_KEYS:
        if k in per_build[0]:
            out[k] = per_build[0][k]
    return repool(out) if repool is not None else out


def stability(claim: Claim, pooled: dict, per_build: list[dict]) -> tuple[int, int]:
    """``(agreeing, builds)``: for a comparison (a claim with an interval), the builds whose own effect
    has the sign of the pooled verdict (of the pooled mean when undecided); for any other claim, the
    builds whose own verdict is the pooled one."""
    if claim.interval is not None:
        key = claim.interval[0][: -len("_ci_low")]
        values = [float(m[key]) for m in per_build if _number(m.get(key))]
        return (across_builds(values).stability if values else 0), len(per_build)
    word = verdict(claim, pooled)[1]
    return sum(1 for m in per_build if verdict(claim, m)[1] == word), len(per_build)


# -- reading the builds' results ------------------------------------------------------------
def collect(root: str | Path, builds, numbers=None) -> dict[str, list[dict]]:
    """Notebook number -> the metrics of each build, in the order of ``builds``.

    A notebook that ran on no build is left out (its claims stay "not run yet"); one that ran on
    some builds but not all is an error that says which run to start: pooling a subset would
    quietly select builds."""
    from ..paths import build_results_dir

    builds = list(builds)
    out = {}
    for n in list(numbers or _stems()):
        folders = {b: _notebook_dir(build_results_dir(root, builds, b), n) for b in builds}
        missing = [b for b, f in folders.items() if f is None]
        if len(missing) == len(builds):
            continue
        if missing:
            raise FileNotFoundError(
                f"notebook {n} has results for builds {[b for b in builds if b not in missing]} but not for "
                f"{missing} (looked in {[str(build_results_dir(root, builds, b)) for b in missing]}): run "
                f"bash run_all.sh --builds {','.join(str(x) for x in builds)} (or --resume to continue a run)")
        out[n] = [json.loads((folders[b] / "metrics.json").read_text()) for b in builds]
    if not out:
        raise FileNotFoundError(f"no results of notebooks {', '.join(numbers or _stems())} for builds {builds} "
                                f"in {root}: run notebooks 01-06 first (bash run_all.sh)")
    return out


def _notebook_dir(root: Path, number: str) -> Path | None:
    hits = sorted(p for p in Path(root).glob(f"{number}_*") if (p / "metrics.json").is_file())
    return hits[0] if len(hits) == 1 else None


def chosen_on_first_build(per_build: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Each notebook's builds with what its headline selects (the best method, the fastest variant) chosen on
    the first build and read at that choice on every further build (the notebook's ``fix_choices``): pooling
    each build's own best would average maxima of noisy scores, an optimistic estimate."""
    stems = _stems()
    return {n: getattr(stems[n], "fix_choices", list)(ms) for n, ms in per_build.items()}


def pool_all(per_build: dict[str, list[dict]]) -> dict[str, dict]:
    """Every notebook's headline pooled across its builds, choices fixed on the first build."""
    stems = _stems()
    return {n: pool(ms, stems[n].KEYS, getattr(stems[n], "repool", None), getattr(stems[n], "TALLIED", ()))
            for n, ms in chosen_on_first_build(per_build).items()}


def verdict_table(per_build: dict[str, list[dict]], builds):
    """One row per claim: measured and verdict pooled across builds, how many builds agree, and the
    verdict the first build alone gives (``changed``: whether pooling moved it)."""
    import pandas as pd

    stems, pooled, chosen = _stems(), pool_all(per_build), chosen_on_first_build(per_build)
    rows = []
    for n, metrics in chosen.items():
        for c in stems[n].CLAIMS:
            measured, word = verdict(c, pooled[n])
            agree, k = stability(c, pooled[n], metrics)
            first_measured, first = verdict(c, metrics[0])
            rows.append(dict(notebook=n, kind=c.kind, claim=c.statement, measured=measured, verdict=word,
                             builds_agreeing=f"{agree}/{k}", first_build=builds[0], first_build_measured=first_measured,
                             first_build_verdict=first, changed=word != first))
    return pd.DataFrame(rows)


def effect_table(per_build: dict[str, list[dict]], builds):
    """Every effect a claim reads, per build and pooled (long: notebook, effect, build, value, low, high)."""
    import pandas as pd

    stems, pooled, chosen = _stems(), pool_all(per_build), chosen_on_first_build(per_build)
    rows = []
    for n, metrics in chosen.items():
        read = sorted(k for k in effect_keys(stems[n].KEYS) if any(_reads(c, k) for c in stems[n].CLAIMS))
        for key in read:
            for b, m in zip(builds, metrics):
                rows.append(dict(notebook=n, effect=key, build=str(b), value=m.get(key),
                                 low=m.get(f"{key}_ci_low"), high=m.get(f"{key}_ci_high")))
            p = pooled[n]
            rows.append(dict(notebook=n, effect=key, build="pooled", value=p.get(key), low=p.get(f"{key}_ci_low"),
                             high=p.get(f"{key}_ci_high")))
    return pd.DataFrame(rows)


def _reads(claim: Claim, key: str) -> bool:
    """Whether ``claim`` reads the effect ``key`` (its value or an end of its interval)."""
    from ..verdict import fields

    read = set(claim.needs) | set(claim.interval or ()) | fields(claim.measured)
    return bool(read & {key, f"{key}_ci_low", f"{key}_ci_high"})


def headline(table, per_build: dict[str, list[dict]], builds) -> dict:
    """Notebook 07's ``metrics.json``: how many builds, claims, decided verdicts, verdicts that moved
    against the first build, claims some build disagrees with, and the ID prior's half-width across
    builds with the number of builds that would bring it to +-0.04 at the spread measured."""
    from ..uncertainty import builds_needed

    decided = table.verdict.isin(["reproduced", "not reproduced", "target met", "target missed"])
    split = table.builds_agreeing.str.split("/")
    unstable = split.map(lambda p: int(p[0]) < int(p[1]))
    half = needed = None
    gains = [m.get(ID_PRIOR_KEY) for m in per_build.get("02", [])]
    gains = [float(g) for g in gains if _number(g)]
    if len(gains) > 1:
        effect = across_builds(gains)
        half, needed = effect.half_width, builds_needed(effect, ID_PRIOR_HALF_WIDTH, most=10_000)
    return {"n_builds": len(builds), "builds": ",".join(str(b) for b in builds), "n_claims": int(len(table)),
            "n_decided": int(decided.sum()), "n_changed_vs_first_build": int(table.changed.sum()),
            "n_unstable": int(unstable.sum()), "id_prior_gain_half_width": half, "id_prior_builds_needed": needed}


CLAIMS = (
    Claim(NUMBER, "target", "The ID prior's gain at 40 % (notebook 02) is known across builds to within "
          "+-0.04 CIDEr-D", "docs/methods.md §11",
          "half-width {id_prior_gain_half_width:.3f} on {n_builds} builds; builds for +-0.04 at this spread: "
          "{id_prior_builds_needed}",
          "", "the 95 % interval across builds has a half-width of at most 0.04 CIDEr-D",
          lambda m: m["id_prior_gain_half_width"] <= ID_PRIOR_HALF_WIDTH,
          ("id_prior_gain_half_width", "n_builds", "id_prior_builds_needed"),
          if_null=("one build: no interval across builds", False)),
)
