"""The course, end to end with nbgrader itself (vlmid.harness.course).

Fast: every notebook carries the nbgrader metadata its markers imply, and ``nbgrader
generate_assignment`` turns each into a student version without solutions or hidden tests (no
notebook runs). Slow (marked ``notebooks``): notebook 01 at smoke sizes, three students submit,
``nbgrader autograde`` grades them into its gradebook and ``generate_feedback`` writes their HTML.
"""
from __future__ import annotations

import copy
import re

import nbformat
import pytest

from vlmid.harness import course

pytest.importorskip("nbgrader")
from nbgrader.api import Gradebook  # noqa: E402
from nbgrader.preprocessors import CheckCellMetadata  # noqa: E402
from nbgrader.validator import Validator  # noqa: E402

NOTEBOOKS = course.notebooks()
STUB = "raise NotImplementedError()"   # nbgrader's code stub (its ClearSolutions.code_stub for Python)


def _blocks(source: str, begin: str, end: str) -> list[list[str]]:
    """The lines between each ``### BEGIN X`` and ``### END X`` marker of a cell (found here, not by nbgrader)."""
    out, inside = [], None
    for line in source.splitlines():
        if line.strip() == begin:
            inside = []
        elif line.strip() == end:
            out.append(inside)
            inside = None
        elif inside is not None:
            inside.append(line.strip())
    return out


def _meta(nb) -> list:
    return [cell.metadata.get("nbgrader") for cell in nb.cells]


# -- the metadata --------------------------------------------------------------------------------
def synthetic_notebook():
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("smoke = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        params,
        nbformat.v4.new_code_cell("import numpy as np"),
        nbformat.v4.new_code_cell("# Exercise 9.1: a sum\ndef f(x):\n    # HINT: add\n"
                                  "    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION"),
        nbformat.v4.new_code_cell("# Check 9.1\nassert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 3\n"
                                  "### END HIDDEN TESTS"),
        nbformat.v4.new_code_cell("print(f(3))"),   # after the last check: the student may change it
    ]
    return nb


def test_metadata_from_the_markers():
    nb = synthetic_notebook()
    ids = [cell.id for cell in nb.cells]
    base = {"schema_version": 3, "task": False}
    assert course.nbgrader_metadata(nb) == [
        {**base, "grade": False, "solution": False, "locked": True, "grade_id": f"readonly-{ids[0]}"},
        None,   # the parameters cell stays editable
        {**base, "grade": False, "solution": False, "locked": True, "grade_id": f"readonly-{ids[2]}"},
        {**base, "grade": False, "solution": True, "locked": False, "grade_id": "exercise-9_1"},
        {**base, "grade": True, "solution": False, "locked": True, "grade_id": "check-9_1", "points": 1},
        None,
    ]
    assert course.mark(nb) is True and course.mark(nb) is False   # idempotent
    assert _meta(nb) == course.nbgrader_metadata(nb)
    nb.cells[2].metadata["nbgrader"] = {"stale": True}
    nb.cells[5].metadata["nbgrader"] = {"stale": True}
    assert course.mark(nb) is True and "nbgrader" not in nb.cells[5].metadata
    assert nb.cells[2].metadata["nbgrader"]["grade_id"] == f"readonly-{ids[2]}"


@pytest.mark.parametrize("broken, message", [
    (lambda nb: nb.cells.pop(4), "not followed by its '# Check 9.1'"),
    (lambda nb: setattr(nb.cells[4], "source", "# Check 9.2\nassert f(1) == 2"), "not followed by its"),
    (lambda nb: setattr(nb.cells[2], "source", "### BEGIN SOLUTION\nx = 1\n### END SOLUTION"), "BEGIN SOLUTION"),
    (lambda nb: setattr(nb.cells[3], "source", "def f(x):\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
     "BEGIN SOLUTION"),   # a solution without its '# Exercise' line
    (lambda nb: setattr(nb.cells[5], "source", "### BEGIN HIDDEN TESTS\nassert 1\n### END HIDDEN TESTS"), "hidden"),
])
def test_markers_that_cannot_be_graded_are_an_error(broken, message):
    nb = synthetic_notebook()
    broken(nb)
    with pytest.raises(ValueError, match=message):
        course.nbgrader_metadata(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_carries_its_nbgrader_metadata(path):
    nb = nbformat.read(path, as_version=4)
    assert _meta(nb) == course.nbgrader_metadata(nb), \
        f"{path.name}: run .venv/bin/python -m vlmid.harness.course mark, then jupytext --sync"
    exercises = [c for c in nb.cells if "### BEGIN SOLUTION" in c.source]
    assert len(exercises) >= (1 if path.name.startswith("00") else 2), path.name
    checks = [m for m in _meta(nb) if m and m["grade"]]
    assert [m["grade_id"] for m in checks] == [
        "check-" + re.match(r"# Exercise (\d+)\.(\d+):", c.source).expand(r"\1_\2") for c in exercises]
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "nbgrader" not in params.metadata
    assert all(c.metadata["nbgrader"]["locked"] for c in nb.cells if c.cell_type == "markdown")
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")


# -- generate_assignment on every notebook (nothing runs) ------------------------------------------
@pytest.fixture(scope="module")
def released(tmp_path_factory):
    root = tmp_path_factory.mktemp("course") / "course"
    assert course.setup(root) == [p.stem for p in NOTEBOOKS]
    return root


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_version_has_no_solution_and_no_hidden_test(released, path):
    source = nbformat.read(path, as_version=4)
    student = nbformat.read(released / "release" / path.stem / path.name, as_version=4)
    assert [c.id for c in student.cells] == [c.id for c in source.cells]
    solutions = [b for c in source.cells for b in _blocks(c.source, "### BEGIN SOLUTION", "### END SOLUTION")]
    hidden = [b for c in source.cells for b in _blocks(c.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")]
    # lines of the instructor's notebook outside every block: a block's other lines must all be gone
    outside = {line.strip() for c in source.cells for line in c.source.splitlines()} \
        - {line for b in solutions + hidden for line in b}
    text = "\n".join(c.source for c in student.cells)
    kept = {line.strip() for line in text.splitlines()}
    for block in solutions + hidden:
        unique = [line for line in block if line and not line.startswith("#") and line not in outside]
        assert unique and not set(unique) & kept, f"{path.name}: {set(unique) & kept}"
    assert "SOLUTION" not in text and "HIDDEN TESTS" not in text
    assert text.count(STUB) == len(solutions)
    hints = [line for c in source.cells for line in c.source.splitlines() if line.strip().startswith("# HINT:")]
    assert len(hints) >= len(solutions) and all(hint in text for hint in hints)   # the hints stay
    for cell in student.cells:   # read-only and check cells cannot be edited in JupyterLab
        meta = cell.metadata.get("nbgrader", {})
        assert cell.metadata.get("editable", True) is not (meta.get("locked", False) and not meta.get("solution"))


def test_gradebook_holds_every_check_at_one_point(released):
    with Gradebook(f"sqlite:///{released}/gradebook.db") as gb:
        points = {a.name: a.max_score for a in gb.assignments}
    exercises = {p.stem: sum("### BEGIN SOLUTION" in c.source for c in nbformat.read(p, as_version=4).cells)
                 for p in NOTEBOOKS}
    assert points == {name: float(n * course.POINTS) for name, n in exercises.items()}
    assert points["01_intrinsic_dimension"] == 2.0 and points["02_pruning_blip"] == 3.0


def test_course_config_as_nbgrader_reads_it(released):
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import Execute
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(released)).load_config()
    assert Execute(config=config).timeout == course.CELL_TIMEOUT == 7200
    coursedir = CourseDirectory(config=config)
    assert coursedir.course_id == "vlmid"
    assert coursedir.db_url == f"sqlite:///{released}/gradebook.db"


def test_validate_reports_edited_read_only_cells(released):
    """``nbgrader validate`` flags a student version whose locked cells (read-only or checks) changed.

    Its Validator runs the notebook first (at full size here); the checksums it compares do not
    depend on that, so this runs it without the Execute step."""
    name = "01_intrinsic_dimension"
    student = nbformat.read(released / "release" / name / f"{name}.ipynb", as_version=4)
    by_id = {c.metadata["nbgrader"]["grade_id"]: c for c in student.cells if "nbgrader" in c.metadata}
    by_id["check-1_2"].source = "# Check 1.2\npass"
    by_id["exercise-1_1"].source += "\n# my own note"   # an answer cell: the student's to edit
    title = student.cells[0]
    title.source = title.source.replace("Intrinsic dimension", "ID")
    path = released / "edited.ipynb"
    nbformat.write(student, path)
    validator = Validator()
    validator.preprocessors = [CheckCellMetadata]
    assert validator.validate(str(path)) == {"changed": [{"source": title.source.strip()},
                                                         {"source": "# Check 1.2\npass"}]}


# -- notebook 01 at smoke sizes: submit, autograde, feedback (slow) -------------------------------------
NAME = "01_intrinsic_dimension"
CHANGED = re.compile(r"Attribute 'checksum' for cell (\S+) has changed!")
# autograde puts the hidden tests back by overwriting each check cell with the gradebook's copy, whose
# checksum differs from the student version's: it logs that for every check cell, edited or not
CHECKS = ["check-1_1", "check-1_2"]


def _answered(student, source, grade_ids):
    """The student version with the instructor's solution lines typed into the given exercise cells."""
    solutions = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells if "nbgrader" in c.metadata}
    nb = copy.deepcopy(student)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in grade_ids:
            cell.source = "\n".join(line for line in solutions[grade_id].splitlines() if "SOLUTION" not in line)
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("course-smoke")
    root = tmp / "course"
    course.setup(root, ["01"], smoke=True, parameters={"results_dir": str(tmp / "results")})
    source = nbformat.read(root / "source" / NAME / f"{NAME}.ipynb", as_version=4)
    student = nbformat.read(root / "release" / NAME / f"{NAME}.ipynb", as_version=4)
    cy = _answered(student, source, {"exercise-1_1"})   # solves 1.1, not 1.2, and edits locked cells
    for cell in cy.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if grade_id == "check-1_2":
            cell.source = "# Check 1.2\npass   # would pass her unsolved 1.2"
        elif grade_id == f"readonly-{source.cells[0].id}":
            cell.source = "# My notebook"
        elif grade_id.startswith("readonly-") and cell.cell_type == "code" and "import time" in cell.source:
            cell.source += "\nprint('my setup')"
    submissions = {"ada": _answered(student, source, {"exercise-1_1", "exercise-1_2"}), "ben": student, "cy": cy}
    logs = {}
    for name, nb in submissions.items():
        folder = root / "submitted" / name / NAME
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{NAME}.ipynb")
        logs[name] = course.nbgrader(root, "autograde", NAME, "--student", name, capture=True).stdout
    assert course.main(["feedback", str(root), "01"]) == 0
    with Gradebook(f"sqlite:///{root}/gradebook.db") as gb:
        scores = {name: (gb.find_submission(NAME, name).score, gb.find_submission(NAME, name).max_score,
                         {g: gb.find_grade(g, NAME, NAME, name).score for g in ("check-1_1", "check-1_2")})
                  for name in submissions}
    return root, source, logs, scores


@pytest.mark.notebooks
def test_solutions_filled_in_score_full_points(graded):
    _, _, logs, scores = graded
    assert scores["ada"] == (2.0, 2.0, {"check-1_1": 1.0, "check-1_2": 1.0})
    assert sorted(CHANGED.findall(logs["ada"])) == CHECKS   # no read-only cell


@pytest.mark.notebooks
def test_student_version_as_released_scores_zero_and_its_feedback_shows_the_hint(graded):
    root, _, logs, scores = graded
    assert scores["ben"] == (0.0, 2.0, {"check-1_1": 0.0, "check-1_2": 0.0})
    assert sorted(CHANGED.findall(logs["ben"])) == CHECKS
    html = (root / "feedback" / "ben" / NAME / f"{NAME}.html").read_text()
    assert "NotImplementedError" in html
    assert "HINT: sort mu, F_i = i/N" in html and "hide the diagonal" in html
    assert re.search(r"Score:\s*0(\.0)?\s*/\s*2(\.0)?", html), "the feedback shows the score"
    ada = (root / "feedback" / "ada" / NAME / f"{NAME}.html").read_text()
    assert re.search(r"Score:\s*2(\.0)?\s*/\s*2(\.0)?", ada) and "NotImplementedError" not in ada


@pytest.mark.notebooks
def test_edited_locked_cells_are_flagged_and_put_back(graded):
    """autograde compares each locked cell with the gradebook's copy, logs every change and grades the
    original: cy's edited read-only cells are named in the log, and her weakened check 1.2, which
    would pass her unsolved exercise, is graded as the instructor wrote it, and fails."""
    root, source, logs, scores = graded
    assert scores["cy"] == (1.0, 2.0, {"check-1_1": 1.0, "check-1_2": 0.0})
    setup_id = next(c.id for c in source.cells if c.cell_type == "code" and "import time" in c.source)
    assert sorted(CHANGED.findall(logs["cy"])) == CHECKS + sorted([f"readonly-{source.cells[0].id}",
                                                                   f"readonly-{setup_id}"])
    graded_nb = nbformat.read(root / "autograded" / "cy" / NAME / f"{NAME}.ipynb", as_version=4)
    sources = {c.id: c.source for c in source.cells}
    locked = [c for c in graded_nb.cells if c.metadata.get("nbgrader", {}).get("locked")]
    assert len(locked) > 10 and all(cell.source == sources[cell.id] for cell in locked)
    check = next(c for c in graded_nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "check-1_2")
    assert "BEGIN HIDDEN TESTS" in check.source
    assert [o.get("ename") for o in check.outputs if o.output_type == "error"] == ["NotImplementedError"]
