"""vlmid.harness.plan (each notebook's counted work and its time estimate) and vlmid.harness.paper_plan (the README's table)."""
from __future__ import annotations

import pytest
import torch

from vlmid.paths import REPO_ROOT
from vlmid.harness.plan import Plan, Work, seconds_per_item


def test_a_plan_adds_its_work_by_unit_and_estimates_only_what_has_a_rate():
    plan = Plan("xx", (Work(10, "caption", "a"), Work(4, "step", "b"), Work(5, "caption", "c"), Work(2, "odd", "d")))
    assert plan.totals() == {"caption": 15, "step": 4, "odd": 2}
    rates = {"caption": 2.0, "step": 30.0}
    assert plan.seconds(rates) == 15 * 2.0 + 4 * 30.0 == 150.0
    assert [w.what for w in plan.untimed(rates)] == ["d"]
    text = plan.describe(rates)
    assert "~20 s" in text and "~120 s" in text and "(not timed ahead)" in text
    assert "about 2.5 min (0.04 h)" in text and text.endswith("plus the work not timed ahead")
    assert "about 75 s from" in plan.describe({"caption": 5.0})   # under two minutes: in seconds
    assert "~" not in plan.describe()   # without rates: the counts only


def test_timing_a_unit_leaves_torchs_random_state_as_it_was():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    seconds = seconds_per_item(lambda: torch.rand(1000), n_items=10)
    assert torch.equal(torch.rand(4), expected) and seconds > 0
    with pytest.raises(ValueError, match="n_items"):
        seconds_per_item(lambda: None, 0)


def test_the_plans_count_each_notebooks_work_by_hand():
    from vlmid.params.compression import CompressionParams
    from vlmid.params.flickr8k import Flickr8kParams
    from vlmid.params.intrinsic_dimension import IntrinsicDimensionParams

    # notebook 05, tiny defaults: 200 test images, 6 timed rounds + a warm-up of 8, 120 fine-tune steps of 32
    # (the fine-tune's checkpoint captions the 200 test images once more), 500 zero-shot
    p05 = CompressionParams(profile="tiny", device="cpu").plan(caption_methods=18, clip_methods=7)
    assert p05.totals() == {"caption": 18 * (200 + 7 * 8) + 200, "blip pass": 18 * 200, "blip train pair": 2 * 120 * 32,
                            "clip image": 7 * (500 + 7 * 8)}
    # notebook 04: 3 epochs of ceil(2400 / 16) = 150 steps, 5 models + 2 of each of the 2 further seeds + the report's 2
    p04 = Flickr8kParams(profile="paper", device="cpu").plan(n_train=2400, n_test=400, n_models=5)
    assert p04.totals() == {"step": 11 * 450, "test image": 11 * 400}
    # notebook 01: two BLIP passes (blocks, Linears), one CLIP pass; fits: sites x 3 poolings, one neighbour
    # list per BLIP site and pooling for the image resamples, Linears, 5 towers x 2
    p01 = IntrinsicDimensionParams(profile="tiny", device="cpu").plan(blip_sites=12, clip_sites=8, blip_linears=40)
    assert p01.count("blip pass") == 2000 and p01.count("clip pass") == 1000
    assert p01.count("twonn fit") == 20 * 3 + 12 * 3 + 40 + 10


def test_notebook_05s_method_suite_depends_on_the_device_as_the_notebook_says():
    from vlmid.compress.methods import captioner_suite, clip_suite
    from vlmid.params.compression import CompressionParams

    cpu = CompressionParams(profile="tiny", device="cpu")
    names = list(captioner_suite(cpu))
    assert names[:5] == ["fp32", "bf16", "int8 dynamic", "bnb int8", "bnb nf4"]
    assert len(names) == 5 + 3 * len(cpu.energies) + 3 + 1 and names[-1] == "svd whiten 0.80 + int8"
    assert list(clip_suite(cpu, captioner_suite(cpu))) == ["fp32", "bf16", "int8 dynamic", "bnb int8", "bnb nf4",
                                                           "svd plain 0.80", "svd whiten 0.80"]
    gpu = CompressionParams(profile="tiny", device="cpu")
    gpu.device = "cuda"   # torch.ao's int8 has CPU kernels only
    assert not any("int8 dynamic" in n or "+ int8" in n for n in captioner_suite(gpu))
    assert len(captioner_suite(gpu)) == len(names) - 2


def test_the_readmes_paper_plan_table_is_what_the_code_computes():
    from vlmid.harness import paper_plan

    readme = (REPO_ROOT / "README.md").read_text()
    start, end = readme.index(paper_plan.README_START), readme.index(paper_plan.README_END)
    assert readme[start + len(paper_plan.README_START):end] == paper_plan.readme_section(), \
        "the README's paper-plan table is stale: run python -m vlmid.harness.paper_plan --readme"
    plans = {nb: (plan, gb) for nb, plan, gb in paper_plan.paper_plans()}
    assert sum(paper_plan.plan_hours(p) for p, _ in plans.values()) <= 8   # the whole paper run on one GPU
    assert paper_plan.plan_hours(plans["02"][0]) <= 4 and all(gb <= 80 for _, gb in plans.values())


def test_the_activation_rule_matches_its_formula_by_hand():
    from vlmid.harness.paper_plan import Shape, activation_bytes, peak_memory_gb

    s = Shape(params=1_000_000, tokens=10, width=8, heads=2, layers=3)
    one_layer = 10 * 4 * 8 * (34 + 5 * 2 * 10 / 8) * 4 / 2     # fp32: twice the 16-bit bytes
    assert activation_bytes(s, batch=4) == pytest.approx(one_layer)
    assert peak_memory_gb([(s, 4)], train=(s, 4)) == pytest.approx((16e6 + 3 * one_layer) / 1e9)
    assert peak_memory_gb([(s, 4)], infer=(s, 4)) == pytest.approx((4e6 + one_layer) / 1e9)
