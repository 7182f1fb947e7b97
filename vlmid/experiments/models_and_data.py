"""Notebook 00: the tiny models and the world they are trained on, and the quality gates they must pass.

``KEYS``: every key :func:`headline` writes to the notebook's ``metrics.json``; ``CLAIMS``: the claims and
targets the notebook decides, each reading headline keys only (checked by :mod:`vlmid.claims`).
"""
from __future__ import annotations

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
