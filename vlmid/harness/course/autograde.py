"""Grade a student's filled-in handout: run it headless and report each exercise as JSON.

    python -m vlmid.harness.course.autograde handouts/01_intrinsic_dimension.ipynb --json grade.json

What happens:

1. The instructor version (``notebooks/<same file name>``, or ``--instructor``) provides
   every check cell *with* its hidden tests; they replace the student's check cells (matched
   by their ``# Check 1.1`` label), so a deleted or weakened assert does not count. A check
   cell the student removed is put back after its exercise.
2. Every code cell is tagged ``raises-exception``, so a failing cell records its error and
   execution goes on: one unsolved exercise never stops the grading of the others (the
   notebook's own cells keep using vlmid, so they do not depend on the exercises).
3. papermill runs it with the smoke parameters (profile "tiny", smoke True, results in a
   temporary folder), and the errors of each exercise cell and its check cell decide it.

The JSON (also printed)::

    {"notebook": ..., "instructor": ..., "parameters": {...}, "status": "graded",
     "n_exercises": 2, "n_passed": 1, "score": 0.5, "wall_seconds": 12.3,
     "exercises": [{"id": "1.1", "title": "...", "passed": true, "status": "passed",
                    "error": null, "hint": "..."}, ...],
     "notebook_errors": [{"cell": 7, "error": "ValueError: ..."}]}

``status`` of an exercise is "passed", "failed" (its check raised: ``error`` holds the
exception, e.g. ``NotImplementedError: Exercise 1.1: <hint>``), "error" (the exercise cell
itself raised), "not run" (the kernel never got there) or "missing" (no such cell).
The exit code is 0 when every exercise passed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from .handouts import BEGIN_SOLUTION, CHECK_RE, EXERCISE_RE, NOTEBOOKS, _hint_above, cell_label, exercise_title

GRADE_KEY = "vlmid_grade"  # cell metadata marking exercise and check cells in the graded copy
SMOKE_PARAMETERS = {"profile": "tiny", "seed": 0, "smoke": True}


def _error_of(cell) -> str | None:
    """'Name: message' of the first error output of an executed cell, or None."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".strip()
    return None


def _exercises(instructor) -> list[dict]:
    """The exercises of the instructor notebook: id, title, hint, and its check cell's source."""
    out, by_id = [], {}
    for c, cell in enumerate(instructor.cells):
        if cell.cell_type != "code":
            continue
        if BEGIN_SOLUTION in cell.source:
            ex_id = cell_label(cell.source) or f"cell {c}"
            lines = cell.source.splitlines()
            hints = [_hint_above(lines, i) for i, l in enumerate(lines) if l.strip() == BEGIN_SOLUTION]
            entry = {"id": ex_id, "title": exercise_title(cell.source),
                     "hint": "; ".join(h for h in hints if h) or None, "check": None, "cell": c}
            out.append(entry)
            by_id[ex_id] = entry
        check = cell_label(cell.source, CHECK_RE)
        if check is not None:
            if check in by_id:
                by_id[check]["check"] = cell.source
            elif out and out[-1]["check"] is None:  # a check labelled differently: the one just above
                out[-1]["check"] = cell.source
    return out


def find_instructor(student: Path) -> Path:
    """notebooks/<same name>, else the instructor notebook with the same number.

    Grading an instructor notebook itself is allowed: every exercise must then pass (the
    inverse check of a handout: the solutions satisfy their own tests).
    """
    same = NOTEBOOKS / student.name
    if same.exists():
        return same
    number = student.name[:2]
    if number.isdigit():
        matches = sorted(NOTEBOOKS.glob(f"{number}_*.ipynb"))
        if len(matches) == 1:
            return matches[0]
    raise SystemExit(f"no instructor notebook for {student.name} in {NOTEBOOKS}: pass --instructor PATH")


def prepare(student, instructor) -> tuple[object, list[dict]]:
    """The notebook to execute: the student's cells, the instructor's checks, errors allowed."""
    nb = copy.deepcopy(student)
    exercises = _exercises(instructor)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        tags = list(cell.metadata.get("tags", []))
        if "raises-exception" not in tags:
            tags.append("raises-exception")
        cell.metadata["tags"] = tags
        cell.metadata.pop(GRADE_KEY, None)
    for ex in exercises:
        ex_cell = next((c for c in nb.cells if c.cell_type == "code"
                        and cell_label(c.source) == ex["id"]), None)
        if ex_cell is None and not ex["id"].startswith("cell "):
            continue  # the student removed it: reported as missing
        if ex_cell is None:  # an exercise without a label: the cell at the same place
            ex_cell = nb.cells[ex["cell"]] if ex["cell"] < len(nb.cells) else None
            if ex_cell is None or ex_cell.cell_type != "code":
                continue
        ex_cell.metadata[GRADE_KEY] = {"role": "exercise", "id": ex["id"]}
        if ex["check"] is None:
            continue
        check_cell = next((c for c in nb.cells if c.cell_type == "code"
                           and cell_label(c.source, CHECK_RE) == ex["id"]), None)
        if check_cell is None:  # removed by the student: put the instructor's back after the exercise
            check_cell = nbformat.v4.new_code_cell(ex["check"])
            check_cell.metadata["tags"] = ["raises-exception"]
            nb.cells.insert(nb.cells.index(ex_cell) + 1, check_cell)
        check_cell.source = ex["check"]
        check_cell.metadata[GRADE_KEY] = {"role": "check", "id": ex["id"]}
    return nb, exercises


def collect(executed, exercises: list[dict], run_error: str | None = None) -> dict:
    """Per-exercise verdicts from the executed notebook's cell outputs."""
    cells = {}
    notebook_errors = []
    for i, cell in enumerate(executed.cells):
        if cell.cell_type != "code":
            continue
        tag = cell.metadata.get(GRADE_KEY)
        ran = cell.get("execution_count") is not None or bool(cell.get("outputs"))
        info = {"ran": ran, "error": _error_of(cell)}
        if tag:
            cells[(tag["role"], tag["id"])] = info
        elif info["error"]:
            notebook_errors.append({"cell": i, "error": info["error"]})
    results = []
    for ex in exercises:
        ex_cell, check = cells.get(("exercise", ex["id"])), cells.get(("check", ex["id"]))
        entry = {"id": ex["id"], "title": ex["title"], "hint": ex["hint"], "error": None}
        if ex_cell is None:
            entry["status"] = "missing"
            entry["error"] = f"no cell labelled '# Exercise {ex['id']}' in the notebook"
        elif check is None:
            entry["status"] = "missing"
            entry["error"] = f"the instructor notebook has no check cell for exercise {ex['id']}"
        elif not check["ran"]:
            entry["status"] = "not run"
            entry["error"] = run_error or "the check cell was not executed"
        elif ex_cell["error"]:
            entry["status"], entry["error"] = "error", ex_cell["error"]
        elif check["error"]:
            entry["status"], entry["error"] = "failed", check["error"]
        else:
            entry["status"] = "passed"
        entry["passed"] = entry["status"] == "passed"
        results.append(entry)
    n_pass = sum(r["passed"] for r in results)
    return {"n_exercises": len(results), "n_passed": n_pass,
            "score": round(n_pass / len(results), 4) if results else None,
            "exercises": results, "notebook_errors": notebook_errors}


def grade(notebook: str | Path, instructor: str | Path | None = None, parameters: dict | None = None,
          timeout: int = 900, kernel_name: str = "python3") -> dict:
    """Run ``notebook`` with the instructor's checks; return the report (see the module doc)."""
    import papermill as pm

    notebook = Path(notebook)
    if not notebook.exists():
        raise SystemExit(f"no such notebook: {notebook}")
    instructor = Path(instructor) if instructor else find_instructor(notebook)
    student_nb = nbformat.read(notebook, as_version=4)
    teacher_nb = nbformat.read(instructor, as_version=4)
    nb, exercises = prepare(student_nb, teacher_nb)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vlmid-grade-") as tmp:
        params = {**SMOKE_PARAMETERS, "results_dir": str(Path(tmp) / "results"), **(parameters or {})}
        src, dst = Path(tmp) / "graded_in.ipynb", Path(tmp) / "graded_out.ipynb"
        nbformat.write(nb, src)
        env_before = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MPLBACKEND")}
        os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg")
        run_error = None
        try:
            pm.execute_notebook(str(src), str(dst), parameters=params, kernel_name=kernel_name,
                                cwd=str(instructor.parent), progress_bar=False, log_output=False,
                                execution_timeout=timeout, interrupt_on_timeout=True)
        except pm.PapermillExecutionError:
            pass  # errors in cells are what we grade; papermill reports them after the run
        except Exception as exc:  # the kernel died, a timeout, ...: grade what ran
            run_error = f"{type(exc).__name__}: {str(exc).strip()[:500]}"
        finally:
            for k, v in env_before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        executed = nbformat.read(dst, as_version=4) if dst.exists() else nb
    report = {"notebook": str(notebook), "instructor": str(instructor),
              "parameters": {k: v for k, v in params.items() if k != "results_dir"},
              "status": "graded" if run_error is None else "incomplete", "run_error": run_error}
    report.update(collect(executed, exercises, run_error))
    report["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlmid.harness.course.autograde", description=__doc__.splitlines()[0])
    ap.add_argument("notebook", help="the student's filled-in notebook")
    ap.add_argument("--instructor", default=None, help="instructor version (default: notebooks/<same name>)")
    ap.add_argument("--json", dest="json_out", default=None, help="also write the report to this file")
    ap.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell (default 900)")
    args = ap.parse_args(argv)
    if args.timeout <= 0:
        ap.error(f"--timeout must be a positive number of seconds, not {args.timeout}")
    report = grade(args.notebook, args.instructor, timeout=args.timeout)
    text = json.dumps(report, indent=2)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(text + "\n")
    print(text)
    for ex in report["exercises"]:
        mark = "PASS" if ex["passed"] else ex["status"].upper()
        print(f"  [{mark}] Exercise {ex['id']}" + (f": {ex['error']}" if ex["error"] else ""), file=sys.stderr)
    return 0 if report["n_exercises"] and report["n_passed"] == report["n_exercises"] else 1


if __name__ == "__main__":
    sys.exit(main())
