"""A long run that loses nothing: a run killed mid-notebook leaves every results folder complete and
new or exactly as before, and ``--resume`` continues from the first notebook that is not complete."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from vlmid.harness.pipeline import WIDGET, drop_widgets
from vlmid.paths import REPO_ROOT


def _notebook(path: Path, body: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "tiny"\nseed = 0\nsmoke = False\nresults_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


def _writer_body(name: str, pause: bool) -> str:
    """A notebook that writes its results through a ResultWriter, and can wait halfway for a flag file."""
    return ("import pathlib, time\n"
            "from vlmid.harness.results import ResultWriter\n"
            f"out = ResultWriter({name!r}, profile=profile, seed=seed, root=results_dir)\n"
            "out.text(f'seed {seed}\\n', 'table.txt')\n"
            "out.metrics(seed_seen=seed)\n"
            + ("flag = pathlib.Path(results_dir, 'pause')\n"
               "while flag.exists():\n    time.sleep(0.2)\n" if pause else "")
            + "out.finish()\n")


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def _pipeline(nbdir: Path, results: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "VLMID_NOTEBOOKS": str(nbdir)}
    return subprocess.Popen([sys.executable, "-m", "vlmid.harness.pipeline", "--results", str(results), *args],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def test_a_killed_run_loses_nothing_and_resume_continues(tmp_path):
    nbdir, results = tmp_path / "notebooks", tmp_path / "results"
    nbdir.mkdir()
    for stem, pause in (("00_first", False), ("01_second", True), ("02_third", False)):
        _notebook(nbdir / f"{stem}.ipynb", _writer_body(stem, pause))
    done = _pipeline(nbdir, results, "--seed", "1")
    out, _ = done.communicate(timeout=300)
    assert done.returncode == 0, out
    before = _snapshot(results)
    assert {k.split("/")[0] for k in before} == {"00_first", "01_second", "02_third", "executed"}

    # a run with other parameters, killed while notebook 01 is halfway through writing its results
    (results / "pause").touch()
    dying = _pipeline(nbdir, results, "--seed", "0")
    deadline = time.time() + 240
    while not (results / ".01_second.partial" / "metrics.json").exists():
        assert time.time() < deadline and dying.poll() is None, dying.communicate()[0]
        time.sleep(0.2)
    os.killpg(dying.pid, signal.SIGKILL)
    dying.wait()
    (results / "pause").unlink()
    after = _snapshot(results)
    # 00 completed anew with seed 0; 01 and 02 are exactly as the seed-1 run left them
    assert json.loads(after["00_first/metrics.json"])["seed_seen"] == 0
    for key, content in before.items():
        if not key.startswith(("00_first", "executed/00_first")):
            assert after[key] == content, f"{key} changed in a run that was killed"
    assert not [k for k in after if k not in before and not k.startswith((".01_second", "executed/."))]

    resumed = _pipeline(nbdir, results, "--seed", "0", "--resume")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "00_first.ipynb on build 0: complete for this commit and these parameters, skipped" in out
    assert "01_second.ipynb on build 0  (profile=tiny" in out and "02_third.ipynb on build 0  (profile=tiny" in out
    for stem in ("00_first", "01_second", "02_third"):
        assert json.loads((results / stem / "metrics.json").read_text())["seed_seen"] == 0
        assert json.loads((results / stem / "provenance.json").read_text())["complete"] is True
    assert not list(results.glob(".*")) and not list((results / "executed").glob(".*"))


def test_a_run_over_several_builds_writes_each_build_apart_and_pools_them_last(tmp_path):
    """00 on the first build only, 01 on every build (further builds as replicates, in builds/seed<N>/),
    then 07 once with every build; --resume on the same builds runs nothing again."""
    nbdir, results = tmp_path / "notebooks", tmp_path / "results"
    nbdir.mkdir()
    _notebook(nbdir / "00_first.ipynb", _writer_body("00_first", False))
    _notebook(nbdir / "01_second.ipynb", "replicate = globals().get('replicate', False)\n"
              + _writer_body("01_second", False).replace("out.metrics(seed_seen=seed)",
                                                        "out.metrics(seed_seen=seed, replicate=replicate)"))
    _notebook(nbdir / "07_pool.ipynb", "import json, pathlib\n"
              "pathlib.Path(results_dir, 'pooled.json').write_text(json.dumps({'builds': builds}))\n")
    run = _pipeline(nbdir, results, "--builds", "3,1")
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out
    order = [line.split("] ")[1].split("  (")[0] for line in out.splitlines() if line.startswith("=== [")]
    assert order == ["00_first.ipynb on build 3", "01_second.ipynb on build 3", "01_second.ipynb on build 1",
                     "07_pool.ipynb on all builds"]
    first = json.loads((results / "01_second" / "metrics.json").read_text())
    further = json.loads((results / "builds" / "seed1" / "01_second" / "metrics.json").read_text())
    assert (first["seed_seen"], first["replicate"]) == (3, False)
    assert (further["seed_seen"], further["replicate"]) == (1, True)
    assert not (results / "builds" / "seed1" / "00_first").exists()
    assert (results / "builds" / "seed1" / "executed" / "01_second.ipynb").exists()
    assert json.loads((results / "pooled.json").read_text()) == {"builds": "3,1"}
    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["builds"] == [3, 1] and "builds/seed1/01_second" in manifest["notebooks"]

    again = _pipeline(nbdir, results, "--builds", "3,1", "--resume")
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    assert out.count("skipped (--resume)") == 3   # this 07 writes no results folder of its own, so it runs again


def test_an_executed_copy_keeps_what_cells_print_and_no_progress_bar_widget(tmp_path):
    """tqdm.auto draws a widget when ipywidgets is installed (nbgrader brings it); a headless run saves
    no widget state, so the executed copy drops those outputs and keeps the printed ones."""
    pytest.importorskip("ipywidgets")
    nbdir, results = tmp_path / "notebooks", tmp_path / "results"
    nbdir.mkdir()
    _notebook(nbdir / "00_bars.ipynb", "from tqdm.auto import tqdm\n"
              "total = sum(tqdm(range(5), desc='counting'))\nprint('total', total)\n")
    run = _pipeline(nbdir, results)
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out
    nb = json.loads((results / "executed" / "00_bars.ipynb").read_text())
    outputs = nb["cells"][-1]["outputs"]
    assert ["".join(o["text"]) for o in outputs if o["output_type"] == "stream"] == ["total 10\n"]
    assert not any(WIDGET in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    assert "widgets" not in nb["metadata"]


def test_drop_widgets_removes_only_widget_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data={WIDGET: {"model_id": "a"}, "text/plain": "0%|"}),
                    nbformat.v4.new_output("stream", name="stdout", text="kept\n"),
                    nbformat.v4.new_output("display_data", data={"image/png": "iVBOR"})]
    nb.cells = [nbformat.v4.new_markdown_cell("text"), cell]
    nb.metadata["widgets"] = {WIDGET.replace("view", "state"): {}}
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert drop_widgets(path) == 1
    back = json.loads(path.read_text())
    assert [o["output_type"] for o in back["cells"][1]["outputs"]] == ["stream", "display_data"]
    assert "widgets" not in back["metadata"] and drop_widgets(path) == 0


def test_same_code_ignores_results_docs_and_tests_only(tmp_path):
    """Resume keys on the code: a commit that changes only results, docs, tests or Markdown keeps
    what ran before it resumable; one that changes a module or a notebook does not."""
    from vlmid.harness.results import same_code

    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()

    def commit(files: dict[str, str]) -> str:
        for name, text in files.items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
        git("add", "-A")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
        return git("rev-parse", "HEAD")

    git("init", "-q")
    first = commit({"vlmid/a.py": "x = 1\n", "notebooks/01.ipynb": "{}", "README.md": "r"})
    paperwork = commit({"results/01/metrics.json": "{}", "docs/m.md": "d", "tests/t.py": "", "README.md": "r2"})
    code = commit({"vlmid/a.py": "x = 2\n"})
    notebook = commit({"vlmid/a.py": "x = 1\n", "notebooks/01.ipynb": "{ }"})
    assert same_code(first, first, tmp_path) and same_code(first, paperwork, tmp_path)
    assert not same_code(first, code, tmp_path) and not same_code(paperwork, notebook, tmp_path)
    assert not same_code(first, first + "-dirty", tmp_path) and not same_code(first, "unknown", tmp_path)
    assert not same_code(first, None, tmp_path) and not same_code(first, "0" * 40, tmp_path)
