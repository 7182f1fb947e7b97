"""One definition per claim: the verdict rules, their intervals, and the same verdicts in the executed
notebooks as in results/REPORT.md."""
from __future__ import annotations

import json
import re

import pytest

from vlmid import claims

from vlmid.harness import report
from vlmid.paths import REPO_ROOT

SVD = next(c for c in claims.CLAIMS if c.statement.startswith("Activation-aware SVD"))
PRIOR = next(c for c in claims.CLAIMS if c.statement.startswith("ID-aware pruning"))


def prior_metrics(gain, low, high):
    m = {k: 0.0 for k in PRIOR.needs}
    m.update(id_prior_gain_at_40=gain, id_prior_gain_at_40_ci_low=low, id_prior_gain_at_40_ci_high=high)
    return m


@pytest.mark.parametrize("gain, low, high, word", [
    (0.02, 0.005, 0.035, claims.REPRODUCED),
    (0.02, -0.001, 0.041, claims.UNDECIDED),     # a positive point estimate is not enough
    (-0.02, -0.035, -0.005, claims.NOT_REPRODUCED),
    (-0.02, -0.04, 0.0, claims.UNDECIDED),       # an interval that touches zero decides nothing
])
def test_an_interval_decides_a_comparison(gain, low, high, word):
    measured, verdict = claims.verdict(PRIOR, prior_metrics(gain, low, high))
    assert verdict == word
    assert f"{gain:+.3f} [{low:+.3f}, {high:+.3f}]" in measured   # the interval is shown next to the verdict


def test_no_comparison_claim_can_be_decided_inside_its_interval():
    for c in claims.CLAIMS:
        if c.interval is None:
            continue
        m = {k: 1.0 for k in c.needs}
        m.update({k: "x" for k in c.needs if k.endswith(("_method_at_40", "_up_at_40", "other_method"))})
        m[c.interval[0]], m[c.interval[1]] = -0.01, 0.01
        assert claims.verdict(c, m)[1] == claims.UNDECIDED, c.statement


def test_a_rule_that_returns_none_is_undecided():
    m = {k: 1.0 for k in SVD.needs}
    m.update(svd_aware_wins=0, svd_aware_losses=0)
    assert claims.verdict(SVD, m)[1] == claims.UNDECIDED
    m.update(svd_aware_wins=1)
    assert claims.verdict(SVD, m)[1] == claims.REPRODUCED
    m.update(svd_aware_losses=1)
    assert claims.verdict(SVD, m)[1] == claims.NOT_REPRODUCED


TWONN = next(c for c in claims.CLAIMS if c.statement.startswith("Our TwoNN equals skdim's"))


@pytest.mark.parametrize("rel_diff, low, high, word", [
    (0.0, 2.1, 2.6, claims.MET),
    (0.0, 1.6, 1.95, claims.MISSED),
    (0.0, 1.9, 2.2, claims.UNDECIDED),      # a median of 2.06x or 1.97x inside this interval decides nothing
    (0.02, 2.1, 2.6, claims.MISSED),        # fast but a different estimate
])
def test_the_speed_target_is_decided_on_the_interval_of_its_timing_rounds(rel_diff, low, high, word):
    m = dict(twonn_rel_diff_vs_skdim=rel_diff, twonn_speedup=(low + high) / 2, twonn_speedup_ci_low=low,
             twonn_speedup_ci_high=high, twonn_speedup_ci_coverage=0.984)
    measured, verdict = claims.verdict(TWONN, m)
    assert verdict == word and f"[{low:.2f}, {high:.2f}] (98% interval" in measured


def test_the_markdown_table_gives_back_its_verdicts():
    m = prior_metrics(0.02, 0.005, 0.035)
    text = "intro\n" + claims.markdown("02", m) + "\nafter"
    words = claims.verdicts_in(text, "02")
    assert words == [claims.verdict(c, m)[1] for c in claims.of_notebook("02")]
    assert claims.verdicts_in(text, "03") == []


# -- the executed notebooks say what the report says ------------------------------------------------
RESULTS = REPO_ROOT / "results"


def report_verdicts(text: str) -> dict[str, list[str]]:
    """Verdict words per notebook section of REPORT.md, in order."""
    out: dict[str, list[str]] = {}
    number = None
    for line in text.splitlines():
        head = re.match(r"## (\d\d) ", line)
        if head:
            number = head.group(1)
        elif number and line.startswith("  - verdict: **"):
            out.setdefault(number, []).append(line.split("**")[1])
    return out


def executed_text(path) -> str:
    nb = json.loads(path.read_text())
    parts = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            parts.append("".join(data.get("text/markdown", "")) + "".join(o.get("text", "")))
    return "\n".join(parts)


def across_builds_rows(number: str) -> list[dict]:
    """Notebook 07's verdict table for one notebook, when it pooled more than one build (else [])."""
    import csv

    folder = RESULTS / "07_verdicts_across_builds"
    try:
        if json.loads((folder / "metrics.json").read_text()).get("n_builds", 1) < 2:
            return []
        with open(folder / "verdicts_across_builds.csv", newline="") as f:
            return [r for r in csv.DictReader(f) if r["notebook"] == number]
    except OSError:
        return []


@pytest.mark.skipif(not (RESULTS / "REPORT.md").exists(), reason="no committed results")
@pytest.mark.parametrize("nb", report.NOTEBOOKS, ids=lambda nb: nb.number)
def test_executed_notebook_verdicts_equal_the_report(nb):
    """An executed notebook shows its own build's verdicts: the report's, or, where notebook 07 pooled
    several builds, the first build's of 07's table, whose pooled verdicts are the report's."""
    if report.load_metrics(RESULTS, nb) is None:
        pytest.skip(f"{nb.stem} has no committed results")
    executed = RESULTS / "executed" / f"{nb.stem}.ipynb"
    assert executed.exists(), f"{executed} is missing: run bash run_all.sh --only {nb.number}"
    in_notebook = claims.verdicts_in(executed_text(executed), nb.number)
    in_report = report_verdicts((RESULTS / "REPORT.md").read_text()).get(nb.number)
    assert in_notebook, f"{executed.name} shows no claims table (vlmid.claims.show)"
    rows = across_builds_rows(nb.number)
    if rows:
        assert [r["verdict"] for r in rows] == in_report, (nb.number, rows, in_report)
        in_report = [r["first_build_verdict"] for r in rows]
    assert in_notebook == in_report, (nb.number, in_notebook, in_report)
