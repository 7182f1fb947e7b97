"""Notebook 00: the tiny models and the world they are trained on, and the quality gates they must pass.

The gates themselves are measured by :mod:`vlmid.models.quality` (the one place, also used at build
time); here are the notebook's tables around them (the models, the captioner beside trivial
baselines and a shortcut oracle, the build record) and :func:`headline`, which turns those tables
into the notebook's ``metrics.json``.

``KEYS``: every key :func:`headline` writes to the notebook's ``metrics.json``; ``CLAIMS``: the claims and
targets the notebook decides, each reading headline keys only (checked by :mod:`vlmid.claims`).
"""
from __future__ import annotations

from ..models import quality
from ..verdict import CHANCE_10_CLASSES, Claim, ci, ci_keys

NUMBER = "00"
KEYS: tuple[str, ...] = ('blip_cider', 'blip_bleu4', 'clip_zeroshot_top1', 'blip_garment_f1', 'blip_garment_precision', 'blip_garment_recall', 'blip_binding_acc', 'blip_count_acc', 'blip_scene_exact', 'shortcut_oracle_cider', 'shortcut_oracle_garment_f1', 'build_seconds', 'build_cpu_seconds', 'model_source', 'checkpoint_sha256', 'blip_params', 'clip_params', 'baseline_constant_cider', 'baseline_constant_bleu4', 'baseline_random_cider', 'baseline_random_bleu4', 'probe_blip_class', 'probe_blip_colour', 'probe_clip_class', 'probe_clip_colour', 'probe_protocol', 'n_probe_fit', 'n_probe', 'n_test_images', 'n_zeroshot_images', 'num_beams', 'max_length', 'min_length')

CLAIMS = (
    Claim("00", "target", "The tiny BLIP names the garments it sees: on the 1000 test scenes (beam 3, max 20 "
        "tokens) garment F1 >= 0.80, colour-garment binding >= 0.75, count accuracy >= 0.95",
        "quality gate of this repository",
        "garment F1 {blip_garment_f1:.3f}, binding {blip_binding_acc:.3f}, count {blip_count_acc:.3f}, "
        "all right in {blip_scene_exact:.1%} of scenes; CIDEr-D {blip_cider:.3f} (constant caption "
        "{baseline_constant_cider:.3f}; true colours and count with one garment: {shortcut_oracle_cider:.3f}, "
        "garment F1 {shortcut_oracle_garment_f1:.3f})",
        "BLIP-base on COCO Karpathy test: CIDEr 1.333, BLEU-4 0.397 (other data, for scale only)",
        "garment F1 >= 0.80 and binding >= 0.75 and count accuracy >= 0.95",
        lambda m: m["blip_garment_f1"] >= 0.80 and m["blip_binding_acc"] >= 0.75 and m["blip_count_acc"] >= 0.95,
        ("blip_garment_f1", "blip_binding_acc", "blip_count_acc", "blip_scene_exact", "blip_cider",
         "baseline_constant_cider", "shortcut_oracle_cider", "shortcut_oracle_garment_f1")),
    Claim("00", "target", "The tiny CLIP classifies garments zero-shot: top-1 >= 82 % on all 10,000 Fashion-MNIST "
        "test photos (chance 10 %)", "quality gate of this repository", "{clip_zeroshot_top1:.1%}",
        "CLIP ViT-B/16 zero-shot CIFAR-10: 88-91 %", "top-1 >= 0.82",
        lambda m: m["clip_zeroshot_top1"] >= 0.82, ("clip_zeroshot_top1",)),
    Claim("00", "target", "The vision towers encode the garment, not only its colour: item-class linear probe on "
        "the CLS >= 80 % (BLIP) and >= 82 % (CLIP) (fitted on validation items, scored on test items)",
        "quality gate of this repository",
        "item class: BLIP {probe_blip_class:.1%}, CLIP {probe_clip_class:.1%}; "
        "colour: BLIP {probe_blip_colour:.1%}, CLIP {probe_clip_colour:.1%}",
        "tiny towers trained on captions alone: colour 100 %, shape 24-38 %",
        "probe_blip_class >= 0.80 and probe_clip_class >= 0.82",
        lambda m: m["probe_blip_class"] >= 0.80 and m["probe_clip_class"] >= 0.82,
        ("probe_blip_class", "probe_clip_class", "probe_blip_colour", "probe_clip_colour")),
    Claim("00", "target", "Both models train from nothing in <= 60 minutes on 2 CPU cores", "quality gate of this repository",
        "{build_seconds:.0f} s wall for the shipped models' build; BLIP {blip_params:,} and CLIP {clip_params:,} "
        "parameters", "", "build_seconds <= 3600", lambda m: m["build_seconds"] <= 3600,
        ("build_seconds", "blip_params", "clip_params")),
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
             build: dict | None = None, checkpoint_sha256: str | None = None) -> dict:
    """Notebook 00's ``metrics.json``: exactly :data:`KEYS`.

    ``captions``: ``evaluate_captioner``'s scores of the captioner (with its decoding settings and
    ``n_images``); ``constant`` / ``random``: the two baselines' scores; ``grounded``: :func:`grounded_table`
    (None in the paper profile: COCO has no item labels, those keys are None); ``zeroshot``:
    :func:`vlmid.models.quality.zeroshot_table`; ``probes``: :func:`vlmid.models.probe.probe_towers`;
    ``models``: :func:`model_table`; ``build``: the tiny models' build record (None: paper profile)."""
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
