"""The skeleton a newcomer relies on: install metadata, run_all.sh, notebooks, results writer, papermill."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from vlmid.harness import pipeline
from vlmid.paths import REPO_ROOT, check_fraction, check_profile
from vlmid.harness.results import ResultWriter, atomic_write

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RUN_ALL = REPO_ROOT / "run_all.sh"


def test_package_imports_and_knows_its_root():
    import vlmid

    assert vlmid.__version__
    assert (REPO_ROOT / "pyproject.toml").exists()


def test_profile_and_range_checks_say_what_is_allowed():
    assert check_profile("tiny") == "tiny"
    with pytest.raises(ValueError, match="tiny.*paper"):
        check_profile("nope")
    assert check_fraction("keep", 0.5) == 0.5
    with pytest.raises(ValueError, match=r"keep=1\.5 is out of range"):
        check_fraction("keep", 1.5)


# ---- run_all.sh ------------------------------------------------------------------------------
def _run_all(*args):
    return subprocess.run(["bash", str(RUN_ALL), *args], capture_output=True, text=True, timeout=60)


def test_run_all_help_lists_the_options():
    r = _run_all("--help")
    assert r.returncode == 0
    for opt in ("--profile", "--seed", "--builds", "--quick", "--only", "--tests", "--smoke"):
        assert opt in r.stdout


def _snapshot(folder: Path):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.mark.parametrize("args, message", [
    (["--only", "99"], "no notebook numbered 99"),
    (["--profile", "nope"], "unknown profile 'nope'"),
    (["--seed", "x"], "--seed must be a whole number"),
    (["--frobnicate"], "unknown option"),
    (["--builds", "0,x"], "--builds takes model seeds separated by commas"),
    (["--quick", "--seed", "1"], "give one of --builds, --seed and --quick"),
    (["--builds", "0,1", "--seed", "1"], "give one of --builds, --seed and --quick"),
    (["--rebuild-models", "--builds", "0,1"], "--rebuild-models trains one build"),
])
def test_run_all_rejects_bad_arguments_at_once_and_leaves_results_untouched(args, message):
    results = REPO_ROOT / "results"
    before = _snapshot(results) if results.exists() else None
    r = _run_all(*args)
    assert r.returncode != 0
    assert message in r.stderr
    assert ">>>" not in r.stdout  # failed before any set-up step
    assert (_snapshot(results) if results.exists() else None) == before


# ---- notebooks -----------------------------------------------------------------------------
def test_there_are_eight_numbered_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_parameterised_clean_and_python3(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    source = tagged[0].source
    for name in ("profile", "seed", "smoke", "results_dir"):
        assert re.search(rf"^{name}\s*=", source, re.M), f"parameters cell lacks {name}"
    assert re.search(r'^profile\s*=\s*"tiny"', source, re.M), "default profile must be tiny"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, "notebooks are committed without outputs"
            assert cell.execution_count is None
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# ")


# ---- environment.yml and pyproject.toml agree ----------------------------------------------------
def _norm(req: str) -> str:
    return re.split(r"[<>=!~ ;\[]", req.strip(), 1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    import tomllib

    import yaml

    py = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_pkgs = {_norm(r) for r in pip if not r.startswith("-e")}
    py_pkgs = {_norm(r) for r in py["dependencies"] + py["optional-dependencies"]["dev"]}
    assert env_pkgs == py_pkgs
    # the torch pin must be the same too (an unpinned torch pulls a CUDA build)
    assert "torch==2.13.0" in pip and "torch==2.13.0" in py["dependencies"]


# ---- results writer ----------------------------------------------------------------------------
def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text('{"old": 1}')

    def boom(f):
        f.write('{"new": ')
        raise RuntimeError("interrupted mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == '{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_result_writer_records_provenance_and_flat_metrics(tmp_path):
    import matplotlib.pyplot as plt
    import pandas as pd

    out = ResultWriter("99_demo", profile="tiny", seed=7, root=tmp_path)
    out.csv(pd.DataFrame({"a": [1, 2]}), "table.csv")
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    out.figure(fig, "fig.png")
    out.metrics(score=0.5, best="magnitude")
    out.finish()
    folder = tmp_path / "99_demo"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["score"] == 0.5 and metrics["best"] == "magnitude" and metrics["seed"] == 7
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["profile"] == "tiny" and prov["seed"] == 7
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", prov["commit"])
    assert prov["versions"]["torch"].startswith("2.13")
    assert prov["host"]["cpu_capability"] in {"DEFAULT", "NO AVX", "AVX2", "AVX512", "ZVECTOR", "VSX", "SVE256"} \
        or prov["host"]["cpu_capability"].startswith(("SVE", "AVX"))
    assert set(prov["files"]) == {"table.csv", "fig.png", "metrics.json"}
    assert (folder / "fig.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(TypeError, match="flat"):
        out.metrics(nested={"a": 1})


def test_a_rerun_replaces_the_folder_only_when_it_completes(tmp_path):
    import pandas as pd

    first = ResultWriter("99_demo", profile="tiny", seed=0, root=tmp_path)
    first.csv(pd.DataFrame({"a": [1]}), "old_name.csv")
    first.csv(pd.DataFrame({"a": [1]}), "kept.csv")
    first.metrics(n_test_images=150, score=0.1)
    first.finish()
    folder = tmp_path / "99_demo"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    second = ResultWriter("99_demo", profile="tiny", seed=0, root=tmp_path)
    second.csv(pd.DataFrame({"a": [2]}), "kept.csv")
    second.metrics(score=0.2)
    second.metrics(n_test=400)   # calls within one run add up
    # until the run completes, the earlier folder is untouched: every file, byte for byte
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert json.loads((second.dir / "metrics.json").read_text()) == {
        "score": 0.2, "n_test": 400, "profile": "tiny", "seed": 0, "commit": second._prov["commit"]}
    written = second.finish()
    assert set(written) == {"kept.csv", "metrics.json"} and not (folder / "old_name.csv").exists()
    prov = json.loads((folder / "provenance.json").read_text())
    assert set(prov["files"]) == {"kept.csv", "metrics.json"} and prov["complete"] is True
    assert written["kept.csv"] == (folder / "kept.csv").stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["99_demo"]   # no staging folder left


def test_an_interrupted_run_leaves_the_earlier_folder_as_it_was(tmp_path):
    import pandas as pd

    from vlmid.harness.results import is_complete, recover

    first = ResultWriter("99_demo", profile="tiny", seed=0, root=tmp_path)
    first.metrics(score=0.1)
    first.finish()
    folder = tmp_path / "99_demo"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    dying = ResultWriter("99_demo", profile="tiny", seed=0, root=tmp_path)
    dying.csv(pd.DataFrame({"a": [1]}), "half.csv")
    dying.metrics(score=0.9)                        # ... and the process is killed here
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert is_complete(folder)["complete"] is True and is_complete(dying.dir) is None
    # a stop between the two renames of the swap: the earlier folder is put back by the next writer
    os.rename(folder, tmp_path / ".99_demo.old")
    recover(tmp_path, "99_demo")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["99_demo"]


def test_smoke_results_never_land_in_the_real_results(monkeypatch, tmp_path):
    monkeypatch.setenv("VLMID_RESULTS", str(tmp_path))
    out = ResultWriter("99_demo", profile="tiny", seed=0, smoke=True)
    assert out.final == tmp_path / "smoke" / "99_demo"


# ---- papermill and the pipeline driver -------------------------------------------------------------
def _tiny_notebook(path: Path, body: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "tiny"\nseed = 0\nsmoke = False\nresults_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# demo"), params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


def test_papermill_runs_a_notebook_with_parameters(tmp_path):
    import papermill as pm

    src, dst = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    _tiny_notebook(src, "import json, pathlib\n"
                        "pathlib.Path(results_dir, 'seen.json').write_text(json.dumps([profile, seed]))")
    pm.execute_notebook(str(src), str(dst), parameters={"seed": 3, "results_dir": str(tmp_path)},
                        kernel_name="python3", progress_bar=False)
    assert json.loads((tmp_path / "seen.json").read_text()) == ["tiny", 3]


def test_pipeline_stops_at_the_failing_notebook_and_names_it(tmp_path, monkeypatch, capsys):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    _tiny_notebook(nbdir / "00_ok.ipynb", "x = 1")
    _tiny_notebook(nbdir / "01_broken.ipynb", "raise ValueError('keep=2 is out of range')")
    _tiny_notebook(nbdir / "02_never.ipynb", "x = 2")
    monkeypatch.setattr(pipeline, "NOTEBOOKS", nbdir)
    status = pipeline.run("tiny", 0, results=str(tmp_path / "results"))
    assert status == 1
    err = capsys.readouterr().err
    assert "01_broken.ipynb on build 0 failed at cell" in err and "ValueError" in err
    manifest = json.loads((tmp_path / "results" / "manifest.json").read_text())
    entries = manifest["notebooks"]
    assert entries["00_ok"]["exit_status"] == "ok" and entries["01_broken"]["exit_status"] == "failed"
    assert "02_never" not in entries
    for key in ("wall_seconds", "profile", "seed", "commit", "python", "versions"):
        assert key in entries["00_ok"]
    assert (tmp_path / "results" / "executed" / "00_ok.ipynb").exists()


def test_smoke_and_paper_runs_never_write_over_the_committed_tiny_results(tmp_path, monkeypatch):
    from vlmid.paths import run_results_dir

    monkeypatch.setenv("VLMID_RESULTS", str(tmp_path))
    assert run_results_dir("tiny") == tmp_path
    assert run_results_dir("tiny", smoke=True) == tmp_path / "smoke"
    assert run_results_dir("paper") == tmp_path / "paper"
    assert run_results_dir("paper", smoke=True) == tmp_path / "smoke" / "paper"
    assert run_results_dir("paper", path=tmp_path / "x") == tmp_path / "x"
    out = ResultWriter("99_example", profile="paper", seed=0)
    assert out.final == tmp_path / "paper" / "99_example"


def test_a_report_without_the_readme_leaves_the_readme_alone(tmp_path):
    from vlmid.harness.report import README_END, README_START, write_report

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{README_START}\nold table\n{README_END}\n")
    write_report(tmp_path / "results", readme, update_readme=False)
    assert "old table" in readme.read_text() and (tmp_path / "results" / "REPORT.md").exists()
    write_report(tmp_path / "results", readme)
    assert "old table" not in readme.read_text()
