"""Notebook 01's experiment: the headline from hand-built tables whose answer is known (the sign of every
comparison included), and each re-examined rule coming out every way it can."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlmid import claims
from vlmid.experiments import intrinsic_dimension as exp
from vlmid.verdict import NOT_AT_SCALE, NOT_REPRODUCED, REPRODUCED, UNDECIDED, verdict

B = 40
SCALE = {"cls": 1.0, "mean": 2.0, "flatten": 3.0}  # each pooling's IDs differ, so a mixed-up pooling shows

# BLIP towers by layer: vision rises to layer 1 and falls (above both ends by min(18-15, 18-13) = 3); fusion at 11;
# language flat at 8 (its resamples are noisy, so no step is beyond the noise)
HUNCHBACK = {"vision": [15.0, 18.0, 16.0, 13.0], "fusion": [11.0] * 4, "language": [8.0] * 4}
# vision falls (its best interior layer 1 is below layer 0 by 1); language rises 6 -> 9 beyond the noise; fusion
# lies below language (fusion mean 7.0, language mean 7.5)
FALLING = {"vision": [18.0, 17.0, 14.0, 12.0], "fusion": [7.0] * 4, "language": [6.0, 7.0, 8.0, 9.0]}
NOISY = {"language"}  # towers whose resamples carry layer-specific noise in HUNCHBACK


def module(group: str, layer: int) -> str:
    return {"vision": f"vision_model.encoder.layers.{layer}",
            "language": f"text_decoder.bert.encoder.layer.{layer}",
            "fusion": f"text_decoder.bert.encoder.layer.{layer}.crossattention"}[group]


def world(shapes: dict) -> tuple[pd.DataFrame, dict]:
    """A profile table and resamples: per pooling, BLIP's towers as given (times the pooling's scale) and a
    CLIP with two layers per tower. Every resample shifts all sites alike (so differences are exact), and
    HUNCHBACK's language sites also get +-u, u from -1 to 1, with the sign alternating by layer: layers 0 and 1
    differ by 2u (an interval around zero), layers 0 and 2 not at all, and the tower's mean is exact."""
    rows, resamples = [], {}
    common = np.linspace(-2, 2, B)
    for p, shape in shapes.items():
        k, cols = SCALE[p], {}
        for group, ids in shape.items():
            for layer, v in enumerate(ids):
                rows.append(dict(module=module(group, layer), group=group, layer=layer, id=k * v, model="BLIP",
                                 pooling=p))
                noise = (-1) ** layer * np.linspace(-1, 1, B) if (group in NOISY and shape is HUNCHBACK) else 0.0
                cols[module(group, layer)] = k * v + common + noise
        for group, ids in (("vision", [20.0 * k, 21.0 * k]), ("text", [4.0 * k, 5.0 * k])):
            rows += [dict(module=f"{group}.{layer}", group=group, layer=layer, id=v, model="CLIP", pooling=p)
                     for layer, v in enumerate(ids)]
        resamples[p] = pd.DataFrame(cols)
    return pd.DataFrame(rows), resamples


BENCH = pd.DataFrame([dict(n_points=400, rel_diff=0.5, speedup=0.5, speedup_low=0.4, speedup_high=0.6,
                           speedup_coverage=0.9, vlmid_seconds=9.0, skdim_seconds=9.0, distance_seconds=9.0),
                      dict(n_points=5000, rel_diff=1e-16, speedup=7.5, speedup_low=2.9, speedup_high=8.6,
                           speedup_coverage=0.984, vlmid_seconds=0.36, skdim_seconds=2.69, distance_seconds=0.38)])
LINEAR = pd.DataFrame({"module": ["a", "b", "c"], "id": [7.0, 3.5, 12.9]})


def headline(shapes: dict, pooling: str = "mean") -> dict:
    profiles, resamples = world(shapes)
    return exp.headline(BENCH, profiles, LINEAR, resamples, pooling=pooling, n_points=1000,
                        widths={"vision": 128, "text": 96}, wall_seconds=55.04)


def decide(m: dict) -> list[str]:
    return [verdict(c, m)[1] for c in claims.of_notebook("01")]


def test_headline_writes_exactly_its_keys():
    m = headline({p: HUNCHBACK for p in ("cls", "mean", "flatten")})
    assert set(m) == set(exp.KEYS)
    assert len(exp.KEYS) == len(set(exp.KEYS))


def test_headline_values_by_hand():
    m = headline({p: HUNCHBACK for p in ("cls", "mean", "flatten")})
    # the last (largest) benchmark size is the target's
    assert (m["twonn_benchmark_points"], m["twonn_speedup"], m["twonn_speedup_ci_low"]) == (5000, 7.5, 2.9)
    assert (m["twonn_seconds"], m["skdim_seconds"], m["distance_matrix_seconds"]) == (0.36, 2.69, 0.38)
    # the main pooling ("mean", scale 2): BLIP and CLIP towers
    assert (m["id_vision_max"], m["id_vision_mean"]) == (36.0, 31.0)
    assert (m["id_fusion_max"], m["id_fusion_mean"], m["id_language_max"], m["id_language_mean"]) == (22, 22, 16, 16)
    assert (m["clip_id_vision_max"], m["clip_id_vision_mean"], m["clip_id_text_max"], m["clip_id_text_mean"]) == \
        (42.0, 41.0, 10.0, 9.0)
    assert (m["linear_id_min"], m["linear_id_max"], m["wall_seconds"], m["n_points"]) == (3.5, 12.9, 55.0, 1000)
    assert (m["blip_vision_width"], m["blip_text_width"], m["id_resamples"]) == (128, 96, B)
    assert m["id_poolings"] == "cls, mean, flatten"
    for p, k in SCALE.items():
        # vision mean (15.5) minus fusion mean (11), fusion minus language (8): every resample shifts all sites
        # alike, so the intervals are the point itself
        assert [m[f"id_vision_minus_fusion_{p}{e}"] for e in ("", "_ci_low", "_ci_high")] == pytest.approx([4.5 * k] * 3)
        assert [m[f"id_fusion_minus_language_{p}{e}"] for e in ("", "_ci_low", "_ci_high")] == pytest.approx([3 * k] * 3)
        assert [m[f"id_vision_hump_{p}{e}"] for e in ("", "_ci_low", "_ci_high")] == pytest.approx([3 * k] * 3)
        # the pair farthest from zero is an exact zero (layers 0 and 2); layers 0 and 1 differ by 2u, around zero
        assert [m[f"id_language_step_{p}{e}"] for e in ("", "_ci_low", "_ci_high")] == pytest.approx([0, 0, 0])
        assert [m[f"id_fusion_step_{p}{e}"] for e in ("", "_ci_low", "_ci_high")] == pytest.approx([0, 0, 0])
    assert m["id_order_by_pooling"].startswith("cls: vision - fusion +4.50 [+4.50, +4.50], fusion - language "
                                               "+3.00 [+3.00, +3.00]; mean: vision - fusion +9.00")
    assert m["id_shape_by_pooling"].startswith("cls: vision hunchback (layer 1 above both ends by +3.00 [+3.00, +3.00]), "
                                               "language flat (layer 2 - 0: +0.00 [+0.00, +0.00]); mean: ")
    assert m["id_vision_shape"] == "cls hunchback, mean hunchback, flatten hunchback"
    assert m["id_language_shape"] == "cls flat, mean flat, flatten flat"
    assert m["id_fusion_shape"] == "cls flat, mean flat, flatten flat"  # equal layers, no noise: a zero step
    assert m["id_order_holds_under"] == m["id_shape_holds_under"] == "cls, mean, flatten"


def test_the_signs_when_the_towers_are_the_other_way_round():
    m = headline({p: FALLING for p in ("cls", "mean", "flatten")})
    for p, k in SCALE.items():
        assert m[f"id_vision_minus_fusion_{p}"] == pytest.approx((15.25 - 7.0) * k)
        assert m[f"id_fusion_minus_language_{p}_ci_high"] == pytest.approx(-0.5 * k)   # fusion below language
        assert m[f"id_vision_hump_{p}_ci_high"] == pytest.approx(-1.0 * k)   # layer 1 is below layer 0 by 1
        assert m[f"id_language_step_{p}_ci_low"] == pytest.approx(3.0 * k)  # layer 3 - layer 0 = 9 - 6, rising
    assert "language not flat (layer 3 - 0: +3.00 [+3.00, +3.00])" in m["id_shape_by_pooling"]
    assert "vision no hunchback (layer 1 above both ends by -1.00" in m["id_shape_by_pooling"]
    assert m["id_vision_shape"].startswith("cls no hunchback") and m["id_language_shape"].startswith("cls not flat")
    assert m["id_order_holds_under"] == m["id_shape_holds_under"] == "no pooling"


def test_the_rules_come_out_reproduced_not_reproduced_and_undecided():
    order, ranges, shape, target = claims.of_notebook("01")
    all_three = ("cls", "mean", "flatten")
    yes = headline({p: HUNCHBACK for p in all_three})
    assert decide(yes) == [REPRODUCED, NOT_AT_SCALE, REPRODUCED, "target met"]
    no = headline({p: FALLING for p in all_three})
    assert decide(no)[:3] == [NOT_REPRODUCED, NOT_AT_SCALE, NOT_REPRODUCED]
    mixed = headline({"cls": HUNCHBACK, "mean": FALLING, "flatten": FALLING})
    assert decide(mixed)[:3] == [UNDECIDED, NOT_AT_SCALE, UNDECIDED]
    text, _ = verdict(order, mixed)
    assert text.endswith("; holds under: cls") and "mean: vision - fusion +16.50" in text
    text, _ = verdict(shape, mixed)
    assert text.endswith("; holds under: cls") and "flatten: vision no hunchback" in text


def test_a_hunchback_with_a_rising_language_tower_is_not_reproduced():
    """Both halves of the shape claim must hold: a hunchback in vision does not save a language tower that rises."""
    rising_language = {**HUNCHBACK, "language": [6.0, 7.0, 8.0, 9.0]}
    m = headline({p: rising_language for p in ("cls", "mean", "flatten")})
    assert m["id_vision_shape"] == "cls hunchback, mean hunchback, flatten hunchback"
    assert m["id_language_shape"] == "cls not flat, mean not flat, flatten not flat"
    assert decide(m)[2] == NOT_REPRODUCED


def test_order_is_undecided_inside_the_noise():
    m = headline({p: HUNCHBACK for p in ("cls", "mean", "flatten")})
    m["id_fusion_minus_language_mean_ci_low"] = -0.1  # fusion - language holds zero under one pooling
    assert exp.order_outcome(m, "mean") == 0 and exp.order_outcome(m, "cls") == 1
    assert verdict(claims.of_notebook("01")[0], m)[1] == UNDECIDED
    for p in ("cls", "mean", "flatten"):  # below zero under every pooling: not reproduced
        m[f"id_fusion_minus_language_{p}_ci_low"], m[f"id_fusion_minus_language_{p}_ci_high"] = -0.2, -0.05
    assert verdict(claims.of_notebook("01")[0], m)[1] == NOT_REPRODUCED


def test_vision_hump_inside_the_noise_is_undecided():
    m = headline({p: HUNCHBACK for p in ("cls", "mean", "flatten")})
    for p in ("cls", "mean", "flatten"):
        m[f"id_vision_hump_{p}_ci_low"] = -0.2
    assert [exp.shape_outcome(m, p) for p in ("cls", "mean", "flatten")] == [0, 0, 0]
    assert verdict(claims.of_notebook("01")[2], m)[1] == UNDECIDED
    assert exp.hump_word(-0.2, 1.0) == "undecided" and exp.hump_word(0.1, 1.0) == "hunchback"
    assert exp.hump_word(-1.0, -0.1) == "no hunchback"
    assert exp.flat_word(-0.1, 0.1) == "flat" and exp.flat_word(0.1, 0.3) == exp.flat_word(-0.3, -0.1) == "not flat"


def test_a_pooling_not_measured_is_left_out():
    """The paper profile leaves flatten out: its keys are None and the rules read the poolings measured."""
    m = headline({"mean": HUNCHBACK, "cls": HUNCHBACK})
    assert set(m) == set(exp.KEYS) and m["id_poolings"] == "mean, cls"
    assert m["id_vision_hump_flatten"] is None and m["id_vision_hump_cls"] == pytest.approx(3.0)
    assert decide(m)[:3] == [REPRODUCED, NOT_AT_SCALE, REPRODUCED]


def test_the_id_ranges_are_not_testable_at_this_scale():
    m = headline({p: HUNCHBACK for p in ("cls", "mean", "flatten")})
    text, word = verdict(claims.of_notebook("01")[1], m)
    assert word == NOT_AT_SCALE
    assert text == "max ID: vision 36.0, language 16.0 (mean pooling); BLIP's towers here are 128 (vision) and 96 " \
                   "(text) wide"


def test_largest_step_is_the_pair_farthest_from_zero():
    point = pd.DataFrame({"a": [1.0], "b": [2.0], "c": [1.5]})
    samples = pd.DataFrame({"a": np.zeros(B) + 1, "b": 2 + np.linspace(-3, 3, B), "c": np.full(B, 1.5)})
    i, j, e = exp.largest_step(point, samples, ["a", "b", "c"])
    # b is noisy: a -> b (+1) holds zero; a -> c (+0.5) is exact, hence beyond the noise
    assert (i, j) == (0, 2) and e.diff == pytest.approx(0.5) and e.low == pytest.approx(0.5)
    j, e = exp.hump(point, samples, ["a", "b", "c"])
    assert j == 1 and e.diff == pytest.approx(0.5)  # min(2 - 1, 2 - 1.5)


def test_effects_table_rows():
    profiles, resamples = world({"mean": FALLING})
    t = exp.effects_table(profiles, resamples)
    assert list(t.key) == list(exp.EFFECTS) and set(t.pooling) == {"mean"}
    assert list(t.reading) == ["above zero", "below zero", "no hunchback", "not flat", "flat"]
    assert list(t.layers) == ["all", "all", "1", "3 - 0", "1 - 0"]


def test_resample_ids_share_one_draw_across_poolings():
    from vlmid.id import Site

    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3)) @ rng.standard_normal((3, 8))
    sites = [Site("a", "vision", 0, "image", "block"), Site("b", "vision", 1, "image", "block")]
    out = exp.resample_ids({"cls": {"a": X, "b": 2 * X}, "mean": {"a": X, "b": X[:, :4]}}, sites, 20, seed=1,
                           progress=False)
    assert list(out) == ["cls", "mean"] and out["cls"].shape == (20, 2)
    np.testing.assert_allclose(out["cls"]["a"], out["cls"]["b"])  # a scaled copy: the same ID in every resample
    np.testing.assert_allclose(out["cls"]["a"], out["mean"]["a"])  # the same images under both poolings
    table = exp.resample_table(out)
    assert list(table.columns) == ["resample", "a", "b", "pooling"] and len(table) == 40
