"""Notebook 00's experiment (vlmid.experiments.models_and_data): its tables and its headline, on small
hand-built tables whose answer is known by hand; and the gates' steps of vlmid.models.quality."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlmid.experiments import models_and_data as exp
from vlmid.models import quality
from vlmid.models.probe import PROTOCOL

GROUNDED = ("garment_precision", "garment_recall", "garment_f1", "binding_acc", "count_acc", "scene_exact")


def _grounded_row(system, base):
    """A grounded-table row whose six scores are base + 0.01 * their position (all distinct)."""
    return {"system": system, **{k: base + 0.01 * i for i, k in enumerate(GROUNDED)}, "CIDEr-D": 10 * base}


def _tables():
    captions = {"CIDEr": 3.0, "BLEU-4": 0.6, "n_images": 4, "num_beams": 3, "max_length": 20, "min_length": 5,
                "prompt": ""}
    constant = {"CIDEr": 0.3, "BLEU-4": 0.15, "caption": "a red bag"}
    random = {"CIDEr": 0.35, "BLEU-4": 0.1}
    # the captioner first, the shortcut oracle last, the baselines between: rows found by name, not position
    grounded = pd.DataFrame([_grounded_row(exp.CONSTANT, 0.2), _grounded_row(exp.CAPTIONER, 0.8),
                             _grounded_row(exp.SHORTCUT, 0.1), _grounded_row(exp.RANDOM, 0.3)])
    # 3 of 3 right in class a, 0 of 1 in class b: top-1 over images 0.75, the mean over classes would be 0.5
    zeroshot = pd.DataFrame({"class": ["a", "b"], "n": [3, 1], "correct": [3, 0], "top-1": [1.0, 0.0]})
    probes = pd.DataFrame([{"tower": t, "probe target": target, "accuracy": acc, "chance": 0.1, "C": 1.0,
                            "n_fit": 40, "n_test": 20, "protocol": PROTOCOL}
                           for t, target, acc in [("BLIP vision", "item class", 0.81), ("BLIP vision", "colour", 0.91),
                                                  ("CLIP vision", "item class", 0.84), ("CLIP vision", "colour", 0.99)]])
    models = pd.DataFrame({"model": ["BLIP captioner", "CLIP"], "parameters": [1000, 700]})
    build = {"build_seconds": 100.0, "source": "shipped", "blip": {"cpu_seconds": 90.0}, "clip": {"cpu_seconds": 80.0}}
    return captions, constant, random, grounded, zeroshot, probes, models, build


def test_headline_writes_exactly_its_keys_with_the_values_known_by_hand():
    h = exp.headline(*_tables(), checkpoint_sha256="abc")
    assert list(h) == list(exp.KEYS)
    expected = {
        "blip_cider": 3.0, "blip_bleu4": 0.6, "clip_zeroshot_top1": 0.75,
        "blip_garment_precision": 0.8, "blip_garment_recall": 0.81, "blip_garment_f1": 0.82,
        "blip_binding_acc": 0.83, "blip_count_acc": 0.84, "blip_scene_exact": 0.85,
        "shortcut_oracle_cider": 1.0, "shortcut_oracle_garment_f1": 0.12,
        "build_seconds": 100.0, "build_cpu_seconds": 90.0, "model_source": "shipped", "checkpoint_sha256": "abc",
        "blip_params": 1000, "clip_params": 700,
        "baseline_constant_cider": 0.3, "baseline_constant_bleu4": 0.15,
        "baseline_random_cider": 0.35, "baseline_random_bleu4": 0.1,
        "probe_blip_class": 0.81, "probe_blip_colour": 0.91, "probe_clip_class": 0.84, "probe_clip_colour": 0.99,
        "probe_protocol": PROTOCOL, "n_probe_fit": 40, "n_probe": 20,
        "n_test_images": 4, "n_zeroshot_images": 4, "num_beams": 3, "max_length": 20, "min_length": 5}
    assert set(expected) == set(exp.KEYS)
    for k, v in expected.items():
        assert h[k] == pytest.approx(v) if isinstance(v, float) else h[k] == v, (k, h[k], v)


def test_headline_build_cpu_is_the_slower_model_whichever_it_is():
    captions, constant, random, grounded, zeroshot, probes, models, build = _tables()
    build = {**build, "blip": {"cpu_seconds": 60.0}, "clip": {"cpu_seconds": 95.0}}
    h = exp.headline(captions, constant, random, grounded, zeroshot, probes, models, build)
    assert h["build_cpu_seconds"] == 95.0 and h["checkpoint_sha256"] is None


def test_headline_paper_profile_has_no_grounded_scores_and_no_build():
    captions, constant, random, _, zeroshot, probes, models, _ = _tables()
    h = exp.headline(captions, constant, random, None, zeroshot, probes, models, None)
    assert set(h) == set(exp.KEYS)
    none = [k for k, v in h.items() if v is None]
    assert sorted(none) == sorted([f"blip_{k}" for k in GROUNDED] + ["shortcut_oracle_cider", "shortcut_oracle_garment_f1",
                                                                   "build_seconds", "build_cpu_seconds", "checkpoint_sha256"])
    assert h["model_source"] == "paper" and h["blip_cider"] == 3.0


def test_every_claim_of_notebook_00_reads_headline_keys_and_decides_the_hand_built_headline():
    from vlmid import verdict

    h = exp.headline(*_tables(), checkpoint_sha256="abc")
    words = [verdict.verdict(c, h)[1] for c in exp.CLAIMS]
    # F1 0.82 >= 0.80, binding 0.83 >= 0.75, count 0.84 < 0.95: missed; zero-shot 0.75 < 0.82: missed;
    # probes 0.81 >= 0.80 and 0.84 >= 0.82: met; 100 s <= 3600: met
    assert words == [verdict.MISSED, verdict.MISSED, verdict.MET, verdict.MET]


def test_caption_gates_map_every_grounded_score_and_none_for_coco():
    row = pd.Series(_grounded_row(exp.CAPTIONER, 0.5))
    gates = quality.caption_gates(row)
    assert gates == pytest.approx({f"blip_{k}": 0.5 + 0.01 * i for i, k in enumerate(GROUNDED)})
    assert quality.caption_gates(None) == {f"blip_{k}": None for k in GROUNDED}


def test_zeroshot_table_counts_per_class_and_top1_is_over_images(monkeypatch):
    from types import SimpleNamespace

    zs = SimpleNamespace(classnames=["shirt", "bag", "boot"], labels=np.array([0, 0, 0, 1, 2, 2]))
    monkeypatch.setattr("vlmid.metrics.zeroshot_predict", lambda clip, zs: np.array([0, 0, 1, 1, 0, 2]))
    t = quality.zeroshot_table(None, zs)
    assert t["n"].tolist() == [3, 1, 2] and t["correct"].tolist() == [2, 1, 1]
    assert t["top-1"].tolist() == pytest.approx([2 / 3, 1.0, 0.5])
    assert quality.zeroshot_top1(t) == 4 / 6          # not the mean of the classes (0.722)


def test_grounded_table_scores_each_system_on_its_own_captions(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr("vlmid.metrics.caption_scores", lambda refs, preds: {"CIDEr": 1.25})
    test = [SimpleNamespace(image_id=i, captions=(c,)) for i, c in enumerate(["a red bag", "a blue shirt"])]
    items = {0: [(8, "red")], 1: [(6, "blue")]}        # (Fashion-MNIST class, colour): a bag, a shirt
    preds = {0: "a red bag", 1: "a blue bag"}          # one garment right of two
    t = exp.grounded_table(test, items, preds, {"CIDEr": 2.0}, {"CIDEr": 0.5, "caption": "a red bag"},
                           {"CIDEr": 0.25}, seed=0)
    by = t.set_index("system")
    assert list(by.index) == [exp.CAPTIONER, exp.CONSTANT, exp.RANDOM, exp.SHORTCUT]
    assert by.at[exp.CAPTIONER, "garment_f1"] == pytest.approx(0.5) and by.at[exp.CAPTIONER, "CIDEr-D"] == 2.0
    assert by.at[exp.CONSTANT, "CIDEr-D"] == 0.5 and by.at[exp.RANDOM, "CIDEr-D"] == 0.25
    assert by.at[exp.SHORTCUT, "CIDEr-D"] == 1.25
    assert by.at[exp.SHORTCUT, "count_acc"] == 1.0     # the oracle states the true count and colours


def test_caption_table_rows_and_build_vs_here():
    t = exp.caption_table("tiny BLIP", {"CIDEr": 3.0, "BLEU-4": 0.6}, {"CIDEr": 0.3, "BLEU-4": 0.1, "caption": "a bag"},
                          {"CIDEr": 0.2, "BLEU-4": 0.05})
    assert t.system.tolist() == ["tiny BLIP", "constant caption ('a bag')", exp.RANDOM]
    assert t.CIDEr.tolist() == [3.0, 0.3, 0.2] and t.SPICE.isna().all()
    build = {"metrics": {"blip_garment_f1": 0.8, "blip_cider": 3.0, "probe_protocol": 1, "probe_blip_class": 0.5}}
    here = {"blip_garment_f1": 0.8, "blip_cider": 2.9, "probe_protocol": 2, "probe_blip_class": 0.8}
    same = exp.build_vs_here(build, here)
    assert same.metric.tolist() == ["blip_garment_f1", "blip_cider"]   # other probe protocol: not compared
    assert same["equal to 4 decimals"].tolist() == [True, False]
    assert exp.build_vs_here(None, here) is None
