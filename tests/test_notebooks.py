"""Every notebook, end to end, in smoke mode: the same path papermill takes in run_all.sh.

Runs 00 -> 05 in order (later notebooks read what earlier ones wrote) with tiny sizes, into
temporary data/ and results/ folders, and checks each wrote the headline keys its issue names.
"""
import json
import math

import pytest

from vlmid import pipeline

HEADLINE_KEYS = {
    "00": ["blip_cider", "blip_bleu4", "clip_zeroshot_top1", "build_seconds", "blip_params", "clip_params",
           "blip_garment_f1", "blip_binding_acc", "blip_count_acc", "blip_scene_exact", "probe_blip_class",
           "probe_clip_class", "build_cpu_seconds"],
    "01": ["twonn_rel_diff_vs_skdim", "twonn_speedup_vs_skdim", "id_vision_max", "id_language_max",
           "id_fusion_max", "id_vision_mean", "id_language_mean", "id_fusion_mean"],
    "02": ["dense_cider", "best_method_at_40", "best_cider_retained_at_40", "id_prior_gain_at_40",
           "vision_only_cider_at_40", "language_only_cider_at_40", "wanda_cider_at_40", "wanda_id_cider_at_40",
           "id_prior_gain_at_40_ci_low", "id_prior_gain_at_40_ci_high", "modality_gap_at_40_ci_low",
           "modality_gap_at_40_ci_high", "n_test"],
    "03": ["baseline_top1", "naive_top1_keep_0.5", "naive_speedup_keep_0.5", "best_variant",
           "best_speedup_within_1pt", "best_flops_ratio_within_1pt", "n_eval"],
    "04": ["baseline_recall5", "pruned_recall5", "flops_ratio", "lossyness", "train_time_ratio"],
    "05": ["int8_bytes_ratio", "nf4_bytes_ratio", "int8_cider", "nf4_cider", "fp32_cider",
           "svd_plain_cider", "svd_aware_cider", "layerdrop_cider", "int8_vs_95pct_fp32_ci_low",
           "layerdrop_vs_best_other_ci_low", "svd_aware_minus_plain_ci_high"],
}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    mp = pytest.MonkeyPatch()
    mp.setenv("VLMID_DATA", str(root / "data"))
    mp.setenv("VLMID_RESULTS", str(root / "results"))
    try:
        status = pipeline.run("tiny", 0, results=str(root / "results"), smoke=True)
    finally:
        mp.undo()
    return status, root / "results"


def test_all_notebooks_run_in_smoke_mode(smoke_run):
    status, results = smoke_run
    manifest = json.loads((results / "manifest.json").read_text())
    failed = {k: v["error"] for k, v in manifest["notebooks"].items() if v["exit_status"] != "ok"}
    assert status == 0 and not failed, failed
    assert len(manifest["notebooks"]) == len(pipeline.notebooks())


@pytest.mark.parametrize("number", sorted(HEADLINE_KEYS))
def test_notebook_writes_its_headline_metrics(smoke_run, number):
    _, results = smoke_run
    nb = next(p for p in pipeline.notebooks() if p.name.startswith(number))
    metrics_path = results / nb.stem / "metrics.json"
    assert metrics_path.exists(), f"{nb.name} wrote no metrics.json"
    metrics = json.loads(metrics_path.read_text())
    for key in HEADLINE_KEYS[number]:
        assert key in metrics, f"{nb.name}: metrics.json lacks {key!r}"
        value = metrics[key]
        assert isinstance(value, str) or (isinstance(value, (int, float)) and math.isfinite(value)), (key, value)
    assert metrics["profile"] == "tiny"


@pytest.mark.parametrize("number", sorted(HEADLINE_KEYS))
def test_notebook_shows_the_verdicts_of_vlmid_claims(smoke_run, number):
    """"What we found" displays vlmid.claims' table for the notebook's own metrics.json: one rule per claim."""
    from vlmid import claims

    _, results = smoke_run
    nb = next(p for p in pipeline.notebooks() if p.name.startswith(number))
    metrics = json.loads((results / nb.stem / "metrics.json").read_text())
    executed = json.loads((results / "executed" / nb.name).read_text())
    shown = "\n".join("".join(o.get("data", {}).get("text/markdown", "")) for c in executed["cells"]
                      for o in c.get("outputs", []))
    assert claims.verdicts_in(shown, number) == [claims.verdict(c, metrics)[1] for c in claims.of_notebook(number)]
