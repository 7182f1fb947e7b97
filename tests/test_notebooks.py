"""Every notebook, end to end, in smoke mode: the same path papermill takes in run_all.sh.

Runs 00 -> 05 in order (later notebooks read what earlier ones wrote) with tiny sizes, into
temporary data/ and results/ folders, and checks that each wrote exactly the keys its experiment's
headline declares and shows its claims' verdicts.
"""
import json
import math

import pytest

from vlmid.harness import pipeline
from vlmid.experiments import BY_NUMBER

pytestmark = pytest.mark.notebooks   # slow: every notebook end to end (deselect with -m "not notebooks")
RUN_KEYS = {"profile", "seed", "commit"}   # what ResultWriter adds to every metrics.json


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


@pytest.mark.parametrize("number", sorted(BY_NUMBER))
def test_notebook_writes_exactly_its_headline_keys(smoke_run, number):
    """metrics.json holds exactly the keys the experiment's headline declares (vlmid.experiments.<name>.KEYS)."""
    _, results = smoke_run
    nb = next(p for p in pipeline.notebooks() if p.name.startswith(number))
    metrics_path = results / nb.stem / "metrics.json"
    assert metrics_path.exists(), f"{nb.name} wrote no metrics.json"
    metrics = json.loads(metrics_path.read_text())
    assert set(metrics) - RUN_KEYS == set(BY_NUMBER[number].KEYS), nb.name
    for key in BY_NUMBER[number].KEYS:
        value = metrics[key]
        assert value is None or isinstance(value, (str, bool)) or \
            (isinstance(value, (int, float)) and math.isfinite(value)), (key, value)
    assert metrics["profile"] == "tiny"


@pytest.mark.parametrize("number", sorted(BY_NUMBER))
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
