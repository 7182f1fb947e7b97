"""Handouts strip solutions and hidden tests; the autograder grades each exercise on its own.

The grading tests run a tiny synthetic notebook (two numpy exercises, no model) through
papermill, so they take seconds. The last tests look at the real notebooks/ as they are.
"""
from __future__ import annotations

import ast
import json
import re
import textwrap

import nbformat
import pytest

from vlmid.harness.course import autograde, handouts
from vlmid.harness.course.handouts import BEGIN_SOLUTION, END_SOLUTION, MarkerError, make_handout, solution_blocks, stub_source

# tokens that occur only inside solutions / hidden tests: a handout must not contain them
SOLUTION_TOKENS = ("zz_sol_token_twonn", "zz_sol_token_topk")
HIDDEN_TOKENS = ("zz_hidden_token_a", "zz_hidden_token_b")

EXERCISE_1 = '''\
# Exercise 9.1: the TwoNN fit through the origin
def twonn_fit(mu, discard_fraction=0.1):
    # HINT: sort mu, F_i = i/N, keep the smallest 90 %, least squares of -log(1-F) on log(mu) through 0
    ### BEGIN SOLUTION
    zz_sol_token_twonn = np.sort(np.asarray(mu, dtype=float))
    n = len(zz_sol_token_twonn)
    keep = int(np.floor(n * (1 - discard_fraction)))
    x = np.log(zz_sol_token_twonn[:keep])
    y = -np.log(1 - np.arange(1, keep + 1) / n)
    return float(x @ y / (x @ x))
    ### END SOLUTION
'''
CHECK_1 = '''\
# Check 9.1
rng = np.random.default_rng(0)
mu = (1 - rng.random(4000)) ** (-1 / 7.0)   # Pareto law with exponent d = 7
assert abs(twonn_fit(mu) - 7.0) < 0.5
### BEGIN HIDDEN TESTS
zz_hidden_token_a = (1 - rng.random(4000)) ** (-1 / 3.0)
assert abs(twonn_fit(zz_hidden_token_a) - 3.0) < 0.3
### END HIDDEN TESTS
'''
EXERCISE_2 = '''\
# Exercise 9.2: keep CLS and the top-k patch tokens, in their original order
def keep_topk(tokens, scores, k):
    """tokens [N, D] with CLS at row 0; scores [N - 1] for the patches."""
    # HINT: the indices of the k largest scores, sorted, shifted by one; CLS (row 0) always first
    ### BEGIN SOLUTION
    zz_sol_token_topk = np.sort(np.argsort(-np.asarray(scores))[:k]) + 1
    return tokens[np.concatenate([[0], zz_sol_token_topk])]
    ### END SOLUTION
'''
CHECK_2 = '''\
# Check 9.2
t = np.arange(12).reshape(6, 2)
out = keep_topk(t, np.array([0.1, 0.9, 0.3, 0.8, 0.0]), 2)
assert out.shape == (3, 2) and out[0, 0] == 0
### BEGIN HIDDEN TESTS
zz_hidden_token_b = keep_topk(t, np.array([0.1, 0.8, 0.3, 0.9, 0.0]), 2)
assert zz_hidden_token_b[:, 0].tolist() == [0, 4, 8], "patches must keep their original order"
### END HIDDEN TESTS
'''


def synthetic_notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "tiny"\nseed = 0\nsmoke = False\nresults_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Synthetic notebook\nTwo exercises, no model."),
        params,
        nbformat.v4.new_code_cell("import numpy as np\n"
                                  "assert profile == 'tiny' and smoke is True  # autograde's smoke parameters"),
        nbformat.v4.new_code_cell(EXERCISE_1), nbformat.v4.new_code_cell(CHECK_1),
        nbformat.v4.new_code_cell(EXERCISE_2), nbformat.v4.new_code_cell(CHECK_2),
        nbformat.v4.new_code_cell("print('the rest of the notebook still runs')"),
    ]
    # pretend it was executed: the handout must drop all of this
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.execution_count = i
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="zz_output_token\n")]
    return nb


def paste_back(student, instructor):
    """The handout with each stub replaced by the instructor's solution lines (a student who solved it)."""
    solved = nbformat.from_dict(json.loads(json.dumps(student)))
    blocks = iter(solution_blocks(instructor))
    for cell in solved.cells:
        if cell.cell_type != "code":
            continue
        lines = []
        for line in cell.source.splitlines():
            if line.strip().startswith("raise NotImplementedError("):
                lines.extend(next(blocks).lines)
            else:
                lines.append(line)
        cell.source = "\n".join(lines)
    assert next(blocks, None) is None
    return solved


@pytest.fixture()
def instructor_path(tmp_path):
    path = tmp_path / "notebooks" / "09_synthetic.ipynb"
    path.parent.mkdir()
    nbformat.write(synthetic_notebook(), path)
    return path


# -- handouts ---------------------------------------------------------------------------------
def test_handout_strips_solutions_hidden_tests_and_outputs():
    nb = synthetic_notebook()
    student = make_handout(nb)
    text = json.dumps(student)
    for token in SOLUTION_TOKENS + HIDDEN_TOKENS + ("zz_output_token",):
        assert token not in text, token
    assert BEGIN_SOLUTION not in text and "HIDDEN TESTS" not in text
    code = [c for c in student.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    # everything else is kept: the hint lines, the visible checks, the parameters tag, the markdown
    assert "# HINT: sort mu, F_i = i/N" in code[2].source
    assert "assert abs(twonn_fit(mu) - 7.0) < 0.5" in code[3].source
    assert code[0].metadata["tags"] == ["parameters"]
    assert student.cells[0].source == nb.cells[0].source
    # the instructor notebook itself is untouched
    assert "zz_sol_token_twonn" in nb.cells[3].source and nb.cells[3].outputs


def test_stub_keeps_indentation_and_raises_the_hint():
    src = stub_source(EXERCISE_2)
    ast.parse(src)
    stub = [line for line in src.splitlines() if "NotImplementedError" in line]
    assert stub == ["    raise NotImplementedError('Exercise 9.2: the indices of the k largest scores, "
                    "sorted, shifted by one; CLS (row 0) always first')"]
    scope = {}
    exec(src, scope)
    with pytest.raises(NotImplementedError, match="CLS .row 0. always first"):
        scope["keep_topk"](None, [], 1)


def test_hint_spanning_several_comment_lines():
    src = textwrap.dedent('''\
        def f(x):
            # x: an array (not part of the hint)
            # HINT: first line of the hint;
            #       its continuation
            ### BEGIN SOLUTION
            return x
            ### END SOLUTION
        ''')
    out = stub_source(src)
    assert "raise NotImplementedError('first line of the hint; its continuation')" in out
    assert "#       its continuation" in out  # the hint lines themselves stay


def test_stub_deeper_block_and_no_hint():
    src = textwrap.dedent('''\
        class A:
            def f(self):
                if True:
                    ### BEGIN SOLUTION
                    return 1
                    ### END SOLUTION
        x = 1
        ''')
    out = stub_source(src)
    assert "            raise NotImplementedError('write your solution here')\n" in out
    assert out.endswith("x = 1\n") and "return 1" not in out


@pytest.mark.parametrize("bad", [
    f"{BEGIN_SOLUTION}\nx = 1\n",                               # never closed
    f"x = 1\n{END_SOLUTION}\n",                                 # closed, never opened
    f"{BEGIN_SOLUTION}\n{BEGIN_SOLUTION}\n{END_SOLUTION}\n",    # nested
])
def test_unbalanced_markers_are_an_error(bad):
    with pytest.raises(MarkerError):
        stub_source(bad)


def test_write_handouts_cli(instructor_path, tmp_path):
    out = tmp_path / "handouts"
    assert handouts.main(["--src", str(instructor_path.parent), "--out", str(out)]) == 0
    written = out / instructor_path.name
    assert written.exists() and "zz_sol_token" not in written.read_text()


# -- autograde (papermill, a few seconds each) ----------------------------------------------------
def test_autograde_handout_as_issued_fails_with_the_hint(instructor_path, tmp_path):
    student = tmp_path / "student.ipynb"
    nbformat.write(make_handout(nbformat.read(instructor_path, as_version=4)), student)
    out = tmp_path / "grade.json"
    code = autograde.main([str(student), "--instructor", str(instructor_path), "--json", str(out)])
    report = json.loads(out.read_text())
    assert code == 1 and report["status"] == "graded"
    assert [e["id"] for e in report["exercises"]] == ["9.1", "9.2"]
    assert [e["status"] for e in report["exercises"]] == ["failed", "failed"]
    assert report["n_passed"] == 0 and report["score"] == 0
    first = report["exercises"][0]
    assert first["error"].startswith("NotImplementedError: Exercise 9.1: sort mu, F_i = i/N")
    assert first["hint"].startswith("sort mu, F_i = i/N")
    assert report["notebook_errors"] == []  # the other cells ran fine
    assert report["parameters"] == {"profile": "tiny", "seed": 0, "smoke": True}


def test_autograde_solutions_pasted_back_pass(instructor_path, tmp_path):
    teacher = nbformat.read(instructor_path, as_version=4)
    solved = paste_back(make_handout(teacher), teacher)
    student = tmp_path / "solved.ipynb"
    nbformat.write(solved, student)
    report = autograde.grade(student, instructor_path)
    assert [e["status"] for e in report["exercises"]] == ["passed", "passed"], report
    assert report["score"] == 1.0 and report["notebook_errors"] == []


def test_autograde_uses_the_hidden_tests_and_grades_each_exercise_alone(instructor_path, tmp_path):
    teacher = nbformat.read(instructor_path, as_version=4)
    nb = paste_back(make_handout(teacher), teacher)
    # exercise 9.1: a syntax error; exercise 9.2: passes the visible check, fails the hidden one
    nb.cells[3].source = nb.cells[3].source.replace("return float(x @ y / (x @ x))", "return float(x @ y / (x @ x)")
    nb.cells[5].source = nb.cells[5].source.replace("np.sort(np.argsort(-np.asarray(scores))[:k])",
                                                    "np.argsort(-np.asarray(scores))[:k]")
    nb.cells[6].source = "# Check 9.2\npass  # the student 'simplified' the check"
    student = tmp_path / "partial.ipynb"
    nbformat.write(nb, student)
    report = autograde.grade(student, instructor_path)
    by_id = {e["id"]: e for e in report["exercises"]}
    assert by_id["9.1"]["status"] == "error" and by_id["9.1"]["error"].startswith("SyntaxError")
    assert by_id["9.2"]["status"] == "failed"
    assert "patches must keep their original order" in by_id["9.2"]["error"]
    assert report["n_passed"] == 0


# -- the real notebooks ---------------------------------------------------------------------------
REAL = sorted(handouts.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.skipif(not REAL, reason="no notebooks in notebooks/ yet")
@pytest.mark.parametrize("path", REAL, ids=[p.stem for p in REAL])
def test_real_notebook_exercises_have_checks(path):
    nb = nbformat.read(path, as_version=4)
    code = _code_cells(nb)
    exercises = [i for i, c in enumerate(code) if BEGIN_SOLUTION in c.source]
    if path.name[:2] != "00":
        assert len(exercises) >= 2, f"{path.name}: {len(exercises)} exercise(s), at least 2 wanted"
    for i in exercises:
        label = handouts.cell_label(code[i].source)
        assert label, f"{path.name}: an exercise cell without a '# Exercise N.M: ...' line"
        assert i + 1 < len(code), f"{path.name}: exercise {label} is the last cell"
        assert handouts.cell_label(code[i + 1].source, handouts.CHECK_RE) == label, \
            f"{path.name}: exercise {label} is not followed by its '# Check {label}' cell"


@pytest.mark.skipif(not REAL, reason="no notebooks in notebooks/ yet")
@pytest.mark.parametrize("path", REAL, ids=[p.stem for p in REAL])
def test_real_notebook_handout_strips_every_solution(path):
    nb = nbformat.read(path, as_version=4)
    student = make_handout(nb)
    blocks = solution_blocks(nb)
    # lines of the instructor notebook outside every solution block (found here independently
    # of the generator, so a generator that leaks a solution line cannot hide it)
    outside, inside = set(), False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if line.strip() in (BEGIN_SOLUTION, END_SOLUTION):
                inside = line.strip() == BEGIN_SOLUTION
            elif not inside:
                outside.add(line.strip())
    handout_text = "\n".join(c.source for c in _code_cells(student))
    handout_lines = {line.strip() for line in handout_text.splitlines()}
    for block in blocks:
        unique = [l.strip() for l in block.lines if l.strip() and not l.strip().startswith("#")
                  and l.strip() not in outside]
        assert unique, f"{path.name}: exercise {block.exercise}: no solution line unique to it"
        assert block.hint, f"{path.name}: exercise {block.exercise}: no '# HINT:' line above BEGIN SOLUTION"
        leaked = [l for l in unique if l in handout_lines]
        assert not leaked, f"{path.name}: solution lines left in the handout: {leaked}"
    assert BEGIN_SOLUTION not in handout_text and END_SOLUTION not in handout_text
    assert "HIDDEN TESTS" not in handout_text
    assert all(c.outputs == [] for c in _code_cells(student))
    for cell in _code_cells(student):  # every stubbed cell is still valid python
        if re.search(r"^\s*[%!]", cell.source, re.M):
            continue
        ast.parse(cell.source)
