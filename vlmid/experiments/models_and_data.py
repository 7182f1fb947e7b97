"""Notebook 00: the tiny models and the world they are trained on, and the quality gates they must pass.

The gates themselves are measured by :mod:`vlmid.models.quality` (the one place, also used at build
time); here are the notebook's tables around them (the models, the captioner beside trivial
baselines and a shortcut oracle, the build record) and :func:`headline`, which turns those tables
into the notebook's ``metrics.json``.

Every build of the recipe is reported, none selected: :func:`builds_table` puts the quality each
shipped build measured when it was built (:func:`vlmid.models.zoo.build_records`) beside the gates this
notebook re-measures on its own models, and :func:`across_builds` gives each gate's mean, sd, min and max
over the builds. The floors (:data:`GATES`) apply to the mean; a build below one is flagged, never dropped.

``KEYS``: every key :func:`headline` writes to the notebook's ``metrics.json``; ``CLAIMS``: the claims and
targets the notebook decides, each reading headline keys only (checked by :mod:`vlmid.claims`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..models import quality
from ..verdict import CHANCE_10_CLASSES, Claim, ci, ci_keys

NUMBER = "00"


@dataclass(frozen=True)
class Gate:
    """A quality gate: the headline key, its name in the tables, and the bound the recipe is held to."""
    key: str
    label: str
    bound: float
    at_least: bool = True   # False: a ceiling (the build time)

    def passes(self, value) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound

    @property
    def rule(self) -> str:
        """``garment F1 >= 0.80``"""
        bound = f"{self.bound:.2f}" if self.bound < 10 else f"{self.bound:g}"
        return f"{self.label} {'>=' if self.at_least else '<='} {bound}"


# The floors of this repository (one place: the claims, the table of builds and the tests read them here).
GATES = (Gate("blip_garment_f1", "garment F1", 0.80), Gate("blip_binding_acc", "binding", 0.75),
         Gate("blip_count_acc", "count accuracy", 0.95), Gate("clip_zeroshot_top1", "zero-shot top-1", 0.82),
         Gate("probe_blip_class", "BLIP item-class probe", 0.80), Gate("probe_clip_class", "CLIP item-class probe", 0.82),
         Gate("build_seconds", "build wall seconds", 3600, at_least=False))
GATE = {g.key: g for g in GATES}
SHOWN = ("blip_scene_exact", "blip_cider")   # in the table of builds beside the gates, no floor of their own
# A build's gates re-measured on the data of its build must give its manifest's values: equal on the CPU that
# built it, within about one decision in a hundred on another vector unit (the tolerance of tests/test_zoo.py).
AGREE_WITHIN = 0.011
ACROSS = tuple(f"{g.key}_{stat}" for g in GATES for stat in ("mean", "sd", "builds_passing"))

KEYS: tuple[str, ...] = ('blip_cider', 'blip_bleu4', 'clip_zeroshot_top1', 'blip_garment_f1', 'blip_garment_precision', 'blip_garment_recall', 'blip_binding_acc', 'blip_count_acc', 'blip_scene_exact', 'shortcut_oracle_cider', 'shortcut_oracle_garment_f1', 'build_seconds', 'build_cpu_seconds', 'model_source', 'checkpoint_sha256', 'blip_params', 'clip_params', 'baseline_constant_cider', 'baseline_constant_bleu4', 'baseline_random_cider', 'baseline_random_bleu4', 'probe_blip_class', 'probe_blip_colour', 'probe_clip_class', 'probe_clip_colour', 'probe_protocol', 'n_probe_fit', 'n_probe', 'n_test_images', 'n_zeroshot_images', 'num_beams', 'max_length', 'min_length',
                         'n_builds', 'build_seeds', 'builds_note', *ACROSS, 'spread_widest_gate',
                         'spread_widest_range_over_floor', 'remeasured_agrees')


def _on_mean(*keys: str):
    """(rule in words, rule in code, keys read) of floors that apply to the mean over every build."""
    rule = "mean over the builds: " + " and ".join(GATE[k].rule for k in keys)
    needs = ("n_builds", "builds_note", *(f"{k}_mean" for k in keys), *(f"{k}_builds_passing" for k in keys))
    return rule, (lambda m: all(GATE[k].passes(m[f"{k}_mean"]) for k in keys)), needs


def _passing(*keys: str) -> str:
    """The measured text of how many builds pass each of ``keys``' floors."""
    counts = ", ".join(f"{{{k}_builds_passing}}" for k in keys)
    where = "at or above" if all(GATE[k].at_least for k in keys) else "within"
    return f"builds {where} {'each' if len(keys) > 1 else 'the'} floor: {counts} of {{n_builds}}"


_CAPTION = _on_mean("blip_garment_f1", "blip_binding_acc", "blip_count_acc")
_ZEROSHOT = _on_mean("clip_zeroshot_top1")
_PROBES = _on_mean("probe_blip_class", "probe_clip_class")
_BUILD = _on_mean("build_seconds")
CLAIMS = (
    Claim("00", "target", "The tiny BLIP names the garments it sees: on the 1000 test scenes (beam 3, max 20 "
        "tokens) garment F1 >= 0.80, colour-garment binding >= 0.75, count accuracy >= 0.95, on the mean of "
        "every shipped build of the recipe", "quality gate of this repository",
        "{builds_note}: garment F1 {blip_garment_f1_mean:.3f}, binding {blip_binding_acc_mean:.3f}, count "
        "{blip_count_acc_mean:.3f} (" + _passing("blip_garment_f1", "blip_binding_acc", "blip_count_acc") + "); "
        "the models measured here: all right in {blip_scene_exact:.1%} of scenes, CIDEr-D {blip_cider:.3f} "
        "(constant caption {baseline_constant_cider:.3f}; true colours and count with one garment: "
        "{shortcut_oracle_cider:.3f}, garment F1 {shortcut_oracle_garment_f1:.3f})",
        "BLIP-base on COCO Karpathy test: CIDEr 1.333, BLEU-4 0.397 (other data, for scale only)",
        _CAPTION[0], _CAPTION[1],
        _CAPTION[2] + ("blip_scene_exact", "blip_cider", "baseline_constant_cider", "shortcut_oracle_cider",
                       "shortcut_oracle_garment_f1")),
    Claim("00", "target", "The tiny CLIP classifies garments zero-shot: top-1 >= 82 % on all 10,000 Fashion-MNIST "
        "test photos (chance 10 %), on the mean of every shipped build", "quality gate of this repository",
        "{builds_note}: {clip_zeroshot_top1_mean:.1%} (" + _passing("clip_zeroshot_top1") + ")",
        "CLIP ViT-B/16 zero-shot CIFAR-10: 88-91 %", _ZEROSHOT[0], _ZEROSHOT[1], _ZEROSHOT[2]),
    Claim("00", "target", "The vision towers encode the garment, not only its colour: item-class linear probe on "
        "the CLS >= 80 % (BLIP) and >= 82 % (CLIP) (fitted on validation items, scored on test items), on the "
        "mean of every shipped build", "quality gate of this repository",
        "{builds_note}: item class BLIP {probe_blip_class_mean:.1%}, CLIP {probe_clip_class_mean:.1%} ("
        + _passing("probe_blip_class", "probe_clip_class") + "); the models measured here: colour BLIP "
        "{probe_blip_colour:.1%}, CLIP {probe_clip_colour:.1%}",
        "tiny towers trained on captions alone: colour 100 %, shape 24-38 %", _PROBES[0], _PROBES[1],
        _PROBES[2] + ("probe_blip_colour", "probe_clip_colour")),
    Claim("00", "target", "Both models train from nothing in <= 60 minutes on 2 CPU cores, on the mean of every "
        "shipped build", "quality gate of this repository",
        "{builds_note}: {build_seconds_mean:.0f} s wall (" + _passing("build_seconds")
        + "); BLIP {blip_params:,} and CLIP {clip_params:,} parameters", "", _BUILD[0], _BUILD[1],
        _BUILD[2] + ("blip_params", "clip_params")),
)


# the rows of the grounded table that the headline reads
CAPTIONER = "tiny BLIP"
CONSTANT, RANDOM = "constant caption", "random other image's caption"
SHORTCUT = "shortcut oracle (true colours and count, one garment)"
CAPTION_METRICS = ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SPICE")


def model_table(cap, clip):
    """One row per model: its transformers class, parameters, vision / text layers and image size."""
    import pandas as pd

    from ..profiling import n_parameters

    rows = []
    for name, bundle, image_px in (("BLIP captioner", cap, cap.model.config.vision_config.image_size),
                                   ("CLIP", clip, clip.image_size)):
        config = bundle.model.config
        rows.append({"model": name, "class": type(bundle.model).__name__, "parameters": n_parameters(bundle.model),
                     "vision layers": config.vision_config.num_hidden_layers,
                     "text layers": config.text_config.num_hidden_layers, "image px": image_px})
    return pd.DataFrame(rows)


def describe_build(build: dict | None) -> str:
    """Where the tiny models come from and how they were trained, from their build record (None: paper profile)."""
    if build is None:
        return "paper profile: pretrained checkpoints, nothing was trained here"
    lines = [f"tiny models: {build['source']}, from {build['folder']} (trained at commit "
             f"{str(build.get('commit'))[:12]}, CPU {build.get('host', {}).get('cpu_capability')})"]
    for part in ("blip", "clip"):
        b = build[part]
        lines.append(f"{part.upper()}: {b['pretrain_steps']} pre-training + {b['steps']} task steps, "
                     f"{b['seconds_per_step']:.2f} s/step, {b['cpu_seconds'] / 60:.1f} CPU minutes (one thread)")
    lines.append(f"built from nothing in {build['build_seconds'] / 60:.1f} min wall (both models at once, one process each)")
    return "\n".join(lines)


def caption_table(captioner: str, scores: dict, constant: dict, random: dict):
    """COCO caption metrics of the captioner (``evaluate_captioner``'s scores) beside the constant-caption
    and random-caption baselines; one row per system."""
    import pandas as pd

    rows = [(captioner, scores), (f"constant caption ({constant['caption']!r})", constant), (RANDOM, random)]
    return pd.DataFrame([{"system": name, **{k: s.get(k) for k in CAPTION_METRICS}} for name, s in rows])


def grounded_table(test, items: dict, predictions: dict, scores: dict, constant: dict, random: dict, seed: int = 0):
    """The grounded scores (:func:`vlmid.metrics.grounding.grounded_scores`) and CIDEr-D of the captioner, the
    two baselines and the shortcut oracle (true colours and count, always one garment) on the ``test`` scenes;
    ``items``: each scene's true items (``scene_items``). One row per system."""
    import pandas as pd

    from ..metrics import caption_scores
    from ..metrics.captioning import random_captions
    from ..metrics.grounding import grounded_scores, shortcut_captions

    truth = [items[e.image_id] for e in test]
    refs = {e.image_id: list(e.captions) for e in test}
    shortcut = dict(zip(refs, shortcut_captions(truth)))
    systems = {CAPTIONER: (predictions, scores["CIDEr"]),    # each system: its captions and their CIDEr-D
               CONSTANT: ({e.image_id: constant["caption"] for e in test}, constant["CIDEr"]),
               RANDOM: (random_captions(test, seed=seed), random["CIDEr"]),
               SHORTCUT: (shortcut, caption_scores(refs, shortcut)["CIDEr"])}
    return pd.DataFrame([{"system": name, **grounded_scores([caps[e.image_id] for e in test], truth), "CIDEr-D": cider}
                         for name, (caps, cider) in systems.items()])


def headline(captions: dict, constant: dict, random: dict, grounded, zeroshot, probes, models,
             build: dict | None = None, checkpoint_sha256: str | None = None, records: list | None = None,
             seed: int = 0) -> dict:
    """Notebook 00's ``metrics.json``: exactly :data:`KEYS`.

    ``captions``: ``evaluate_captioner``'s scores of the captioner (with its decoding settings and
    ``n_images``); ``constant`` / ``random``: the two baselines' scores; ``grounded``: :func:`grounded_table`
    (None in the paper profile: COCO has no item labels, those keys are None); ``zeroshot``:
    :func:`vlmid.models.quality.zeroshot_table`; ``probes``: :func:`vlmid.models.probe.probe_towers`;
    ``models``: :func:`model_table`; ``build``: the tiny models' build record (None: paper profile);
    ``records``: every shipped build's quality at build time (:func:`vlmid.models.zoo.build_records`; None or
    [] in the paper profile), the gates of the models measured here (of ``seed``) added by :func:`builds_table`:
    the floors' keys (:data:`ACROSS`) are over every build of the recipe, the rest are of the models here."""
    from ..models.probe import probe_metrics

    out = {"blip_cider": captions["CIDEr"], "blip_bleu4": captions["BLEU-4"],
           "clip_zeroshot_top1": quality.zeroshot_top1(zeroshot), "n_zeroshot_images": int(zeroshot["n"].sum())}
    if grounded is None:
        out |= quality.caption_gates(None) | dict.fromkeys(("shortcut_oracle_cider", "shortcut_oracle_garment_f1"))
    else:
        by_system = grounded.set_index("system")
        out |= quality.caption_gates(by_system.loc[CAPTIONER])
        out |= {"shortcut_oracle_cider": float(by_system.at[SHORTCUT, "CIDEr-D"]),
                "shortcut_oracle_garment_f1": float(by_system.at[SHORTCUT, "garment_f1"])}
    params = models.set_index("model")["parameters"]
    out |= {"build_seconds": build["build_seconds"] if build else None,
            "build_cpu_seconds": max(build["blip"]["cpu_seconds"], build["clip"]["cpu_seconds"]) if build else None,
            "model_source": build["source"] if build else "paper", "checkpoint_sha256": checkpoint_sha256,
            "blip_params": int(params["BLIP captioner"]), "clip_params": int(params["CLIP"]),
            "baseline_constant_cider": constant["CIDEr"], "baseline_constant_bleu4": constant["BLEU-4"],
            "baseline_random_cider": random["CIDEr"], "baseline_random_bleu4": random["BLEU-4"],
            "n_test_images": captions["n_images"], "num_beams": captions["num_beams"],
            "max_length": captions["max_length"], "min_length": captions["min_length"]}
    out |= probe_metrics(probes)
    out |= across_metrics(builds_table(records or [], out, seed, out["model_source"]))
    return {k: out[k] for k in KEYS}


def build_vs_here(build: dict | None, metrics: dict):
    """The gates the build recorded (``vlmid.models.quality.measure`` at build time) beside the same gates
    measured here, and whether they agree to 4 decimals (they must, for the shipped models); None when
    there is no build record. The probes are compared only when both used the same protocol."""
    import pandas as pd

    if build is None or not build.get("metrics"):
        return None
    at_build = build["metrics"]
    keys = ["blip_garment_f1", "blip_binding_acc", "blip_count_acc", "blip_scene_exact", "blip_cider", "clip_zeroshot_top1"]
    if at_build.get("probe_protocol", 1) == metrics["probe_protocol"]:
        keys += ["probe_blip_class", "probe_clip_class"]
    same = pd.DataFrame([{"metric": k, "at build time": at_build[k], "here": metrics[k]}
                         for k in keys if k in at_build and metrics.get(k) is not None])
    same["equal to 4 decimals"] = (same["at build time"] - same["here"]).abs() < 5e-5
    return same


# -- every build of the recipe ---------------------------------------------------------------
BUILD_TIME, HERE = "at build time (manifest)", "re-measured here"
MODELS = {"shipped": "shipped", "built": "built here", "paper": "pretrained checkpoints (paper profile)",
          "smoke": "smoke model (seconds of training: not a build of the recipe)"}


def _agreement(record: dict | None, here: dict, source: str) -> tuple[bool | None, str]:
    """Whether the gates measured here give the manifest's values of the same seed (``record``), within
    :data:`AGREE_WITHIN`; None, and why, where the two cannot be compared."""
    if source in ("smoke", "paper"):
        return None, f"{MODELS[source]}: no manifest to compare with"
    if record is None:
        return None, "no shipped build of this seed: nothing to compare with"
    for at_build, key, what in (("n_test", "n_test_images", "test scenes"), ("n_zeroshot", "n_zeroshot_images",
                                "zero-shot photos"), ("n_probe", "n_probe", "probe items"), ("n_probe_fit", "n_probe_fit",
                                "probe fitting items")):
        if record.get(at_build) is not None and here.get(key) != record[at_build]:
            return None, f"not compared: {here.get(key)} {what} here, {record[at_build]} at build time"
    keys = [g.key for g in GATES if g.key != "build_seconds"] + ["blip_scene_exact"]
    if record.get("probe_protocol") != here.get("probe_protocol"):   # the probes changed since: not the same measure
        keys = [k for k in keys if not k.startswith("probe_")]
    off = {k: abs(here[k] - record[k]) for k in keys if here.get(k) is not None and record.get(k) is not None}
    if not off:
        return None, "no gate measured both here and at build time"
    worst = max(off, key=off.get)
    word = "agrees" if off[worst] <= AGREE_WITHIN else "differs"
    return word == "agrees", f"{word}: largest difference {off[worst]:.4f} ({worst}), tolerance {AGREE_WITHIN}"


def _below(row: dict) -> str:
    return ", ".join(g.label for g in GATES if row.get(g.key) is not None and not g.passes(row[g.key]))


def builds_table(records: list[dict], here: dict, seed: int, source: str, cpu: str | None = None):
    """The quality of every build of the recipe, one row per build, sorted by seed, none left out.

    ``records``: :func:`vlmid.models.zoo.build_records` (each shipped build's gates at build time); ``here``:
    the gates measured by this notebook on its models (the headline's keys) of ``seed``, from ``source``
    ("shipped", "built", "smoke" or "paper"), on a CPU with vector unit ``cpu``. The models measured here get a
    row of their own. "in the mean": one row per build, the manifest's where the build ships (its re-measured
    row is the check, "agrees with manifest"), else the one measured here; a smoke model never counts. "below a
    floor" names the gates a build misses: it is flagged, and counted."""
    import pandas as pd

    records = sorted(records, key=lambda r: r["seed"])
    columns = [g.key for g in GATES] + list(SHOWN)
    rows = [{"seed": r["seed"], "measured": BUILD_TIME, "models": MODELS["shipped"], "in the mean": True,
             "cpu": r.get("cpu_capability"), "bf16": r.get("bf16"), **{k: r.get(k) for k in columns},
             "agrees with manifest": None, "check": ""} for r in records]
    mine = next((r for r in records if r["seed"] == seed), None)
    agrees, check = _agreement(mine, here, source)
    rows.append({"seed": seed, "measured": HERE, "models": MODELS.get(source, source),
                 "in the mean": source != "smoke" and mine is None, "cpu": cpu, "bf16": None,
                 **{k: here.get(k) for k in columns}, "agrees with manifest": agrees, "check": check})
    for row in rows:
        row["below a floor"] = _below(row)
    order = {BUILD_TIME: 0, HERE: 1}
    rows.sort(key=lambda r: (r["seed"], order[r["measured"]]))
    return pd.DataFrame(rows, columns=["seed", "measured", "models", "in the mean", "cpu", "bf16", *columns,
                                       "below a floor", "agrees with manifest", "check"])


def across_builds(table):
    """Each gate over the builds in the mean of :func:`builds_table` (one row per gate, then :data:`SHOWN`):
    the floor, the number of builds, mean, sd (ddof=1, the sample's; NaN with one build), min, max, range
    (max - min), range / floor (how far apart the builds are, on the scale of the floor), margin (the mean's
    distance past its floor, negative: missed), builds passing and whether the mean passes."""
    import pandas as pd

    counted = table[table["in the mean"].astype(bool)]
    rows = []
    for key in [g.key for g in GATES] + list(SHOWN):
        gate = GATE.get(key)
        v = pd.to_numeric(counted[key], errors="coerce").dropna().astype(float)
        n = len(v)
        mean = float(v.mean()) if n else math.nan
        low, high = (float(v.min()), float(v.max())) if n else (math.nan, math.nan)
        spread = high - low if n > 1 else math.nan     # one build: how far apart builds lie is not known
        rows.append({"gate": key, "floor": gate.rule if gate else "", "builds": n, "mean": mean,
                     "sd": float(v.std(ddof=1)) if n > 1 else math.nan, "min": low, "max": high, "range": spread,
                     "range / floor": spread / gate.bound if gate else math.nan,
                     "margin": (mean - gate.bound) * (1 if gate.at_least else -1) if gate else math.nan,
                     "builds passing": int(sum(gate.passes(x) for x in v)) if gate else None,
                     "mean passes": (gate.passes(mean) if n else None) if gate else None})
    out = pd.DataFrame(rows)
    out["builds passing"] = out["builds passing"].astype("Int64")   # a count, empty where there is no floor
    return out


def _none(x) -> float | None:
    """A number for metrics.json: a plain float, None where there is none (NaN: no build, or one build's sd)."""
    return None if x is None or not math.isfinite(float(x)) else float(x)


def across_metrics(table) -> dict:
    """The headline keys of :func:`builds_table`: ``n_builds``, ``build_seeds``, ``builds_note`` (what the floors
    were decided on, in words), each gate's ``_mean``, ``_sd`` (None with one build) and ``_builds_passing``,
    the gate whose builds lie furthest apart relative to its floor, and whether the models measured here
    agree with their manifest (None: not comparable)."""
    counted = table[table["in the mean"].astype(bool)]
    seeds = [int(s) for s in counted["seed"]]
    if not seeds:
        note = None
    elif len(seeds) == 1:
        note = (MODELS["paper"] if counted["models"].iloc[0] == MODELS["paper"] else f"one build (seed {seeds[0]})") \
            + ": decided on one model, its spread across builds unknown"
    else:
        note = f"mean of {len(seeds)} builds (seeds {', '.join(map(str, seeds))})"
    across = across_builds(table).set_index("gate")
    out = {"n_builds": len(seeds), "build_seeds": ", ".join(map(str, seeds)) or None, "builds_note": note}
    for g in GATES:
        out |= {f"{g.key}_mean": _none(across.at[g.key, "mean"]), f"{g.key}_sd": _none(across.at[g.key, "sd"]),
                f"{g.key}_builds_passing": int(across.at[g.key, "builds passing"])}
    spread = across.loc[[g.key for g in GATES]]
    spread = spread[spread["builds"] > 1]
    widest = spread["range / floor"].idxmax() if len(spread) else None
    here = table[table["measured"] == HERE]
    agrees = here["agrees with manifest"].iloc[0] if len(here) else None
    out |= {"spread_widest_gate": widest, "spread_widest_range_over_floor":
            _none(float(spread.at[widest, "range / floor"])) if widest else None,
            "remeasured_agrees": None if agrees is None else bool(agrees)}
    return out


def describe_spread(table, across) -> str:
    """How far apart the builds are, what the floors were decided on, and which builds miss a floor, in words."""
    counted = table[table["in the mean"].astype(bool)]
    n = len(counted)
    if n == 0:
        return "no build of the recipe to report: no shipped build here, and a smoke model is not one"
    lines = []
    if n == 1:
        lines.append("one build: every floor is decided on it alone, and how far apart builds lie is not known")
    else:
        a = across[across["floor"] != ""].set_index("gate")
        spread = ", ".join(f"{GATE[k].label} {r['range']:.4g} (sd {r['sd']:.3g})" for k, r in a.iterrows())
        widest = a["range / floor"].idxmax()
        lines.append(f"{n} builds; range (max - min) of each gate across them: {spread}")
        lines.append(f"furthest apart relative to its floor: {GATE[widest].label}, range "
                     f"{a.at[widest, 'range / floor']:.1%} of the floor {GATE[widest].rule}")
    for _, r in counted.iterrows():
        if r["below a floor"]:
            lines.append(f"seed {r['seed']} is below a floor ({r['below a floor']}): shown, and counted in the mean")
    verdicts = across[across["floor"] != ""]
    missed = [GATE[k].rule for k, ok in zip(verdicts["gate"], verdicts["mean passes"]) if ok is not None and not ok]
    absent = [GATE[k].label for k, n_k in zip(verdicts["gate"], verdicts["builds"]) if n_k == 0]
    lines.append(("the mean over the builds passes every floor" + (" measured" if absent else "")) if not missed else
                 "the mean over the builds misses: " + "; ".join(missed))
    if absent:
        lines.append("not measured on any build: " + ", ".join(absent))
    return "\n".join(lines)
