"""The notebooks as a course, graded by nbgrader; this module holds only what nbgrader cannot know.

nbgrader (``nbgrader.readthedocs.io``) does the work: ``generate_assignment`` replaces every
``### BEGIN SOLUTION`` block by ``raise NotImplementedError()`` and drops the ``### BEGIN HIDDEN
TESTS`` blocks, ``autograde`` runs a submission with the hidden tests put back and writes the
points to its gradebook, ``generate_feedback`` writes the HTML a student gets back. Ours:

- ``nbgrader_metadata(nb)``: the cell metadata nbgrader reads, derived from the markers the
  notebooks carry. A code cell headed ``# Exercise 1.1: ...`` is the student's answer
  (``exercise-1_1``); the ``# Check 1.1`` cell after it is worth ``POINTS`` (``check-1_1``);
  the essay's markdown and every other code cell that runs before the last check are read-only,
  so a check runs only on locked cells and the student's answers. The ``parameters`` cell stays
  editable. ``mark`` writes it into ``notebooks/`` (a test fails when a notebook lacks it).
- ``setup``: a course folder: ``nbgrader_config.py`` (course id, a per-cell time limit for
  full-size runs, the gradebook in the folder), the chosen notebooks as ``source/<notebook>/``
  (at smoke sizes on request: papermill's injected parameters), then ``generate_assignment``.
- ``nbgrader``: nbgrader's command line in that folder, with this Python's ``bin/`` first on
  PATH (nbgrader calls ``alembic`` from there for its gradebook).

    python -m vlmid.harness.course mark                          # set the metadata of notebooks/
    python -m vlmid.harness.course setup ~/vlmid-course 01 02 --smoke
    python -m vlmid.harness.course autograde ~/vlmid-course 01   # submitted/<student>/01_.../
    python -m vlmid.harness.course feedback ~/vlmid-course 01    # feedback/<student>/01_.../*.html
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat

from ..paths import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"
POINTS = 1             # per check cell: an exercise passes its check, visible and hidden tests alike, or not
CELL_TIMEOUT = 7200    # seconds per cell when nbgrader runs a notebook (full size: some cells run for many minutes)

EXERCISE_RE = re.compile(r"# Exercise (\d+\.\d+):")   # the first line of an exercise cell
CHECK_RE = re.compile(r"# Check (\d+\.\d+)$")         # the first line of its check cell

COMMANDS = {"autograde": "autograde", "feedback": "generate_feedback"}   # our subcommand -> nbgrader's

CONFIG = '''\
# The vlmid notebooks as an nbgrader course, written by: python -m vlmid.harness.course setup
import os

c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))   # the gradebook, gradebook.db, lies here too
c.Execute.timeout = {timeout}   # seconds per cell: a notebook at full size has cells that run for many minutes
'''


def _cell_meta(grade_id: str, *, solution: bool = False, grade: bool = False, locked: bool = False) -> dict:
    """nbgrader's schema-3 metadata, as its own assignment toolbar writes it."""
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = POINTS
    return meta


def _role(cell) -> tuple[str | None, str | None]:
    """("exercise" | "check" | None, "1.1"): what the first line of a code cell says it is."""
    first = cell.source.split("\n", 1)[0].strip() if cell.cell_type == "code" else ""
    for role, pattern in (("exercise", EXERCISE_RE), ("check", CHECK_RE)):
        m = pattern.match(first)
        if m:
            return role, m.group(1)
    return None, None


def nbgrader_metadata(nb) -> list[dict | None]:
    """The nbgrader metadata of each cell of an instructor notebook (None: an ordinary cell).

    Raises ValueError where the markers cannot be graded: a solution outside an exercise cell,
    hidden tests outside a check cell, an exercise not followed by its check."""
    roles = [_role(cell) for cell in nb.cells]
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    for i, (role, label) in enumerate(roles):
        source = nb.cells[i].source
        if ("BEGIN SOLUTION" in source) != (role == "exercise"):
            raise ValueError(f"cell {i}: a '### BEGIN SOLUTION' block belongs in a cell headed "
                             f"'# Exercise N.M: ...', and every such cell holds one")
        if "BEGIN HIDDEN TESTS" in source and role != "check":
            raise ValueError(f"cell {i}: hidden tests belong in a cell headed '# Check N.M'")
        if role == "exercise":
            after = next((j for j in code if j > i), None)
            if after is None or roles[after] != ("check", label):
                raise ValueError(f"cell {i}: exercise {label} is not followed by its '# Check {label}' cell")
    last_check = max((i for i, (role, _) in enumerate(roles) if role == "check"), default=-1)
    out = []
    for i, (cell, (role, label)) in enumerate(zip(nb.cells, roles)):
        if role == "exercise":
            out.append(_cell_meta(f"exercise-{label.replace('.', '_')}", solution=True))
        elif role == "check":
            out.append(_cell_meta(f"check-{label.replace('.', '_')}", grade=True, locked=True))
        elif cell.cell_type == "markdown" or (
                i < last_check and "parameters" not in cell.metadata.get("tags", [])):
            out.append(_cell_meta(f"readonly-{cell.id}", locked=True))   # the cell's own id: stable when cells move
        else:
            out.append(None)
    return out


def mark(nb) -> bool:
    """Set every cell's nbgrader metadata to ``nbgrader_metadata(nb)``; True when something changed."""
    changed = False
    for cell, meta in zip(nb.cells, nbgrader_metadata(nb)):
        if cell.metadata.get("nbgrader") != meta:
            changed = True
            if meta is None:
                del cell.metadata["nbgrader"]
            else:
                cell.metadata["nbgrader"] = meta
    return changed


def notebooks(numbers=None) -> list[Path]:
    """notebooks/NN_*.ipynb for the given numbers ("01", "1"), all of them for None."""
    every = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not numbers:
        return every
    picked = []
    for number in numbers:
        match = [p for p in every if p.name[:2] == str(number).zfill(2)]
        if not match:
            raise SystemExit(f"no notebook {number!r} in {NOTEBOOKS}: numbers are {[p.name[:2] for p in every]}")
        picked += match
    return picked


def nbgrader(course_dir, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """``nbgrader <args>`` in the course folder, with this Python's ``bin/`` first on PATH.

    capture: return the log (stdout and stderr together) as ``.stdout`` instead of printing it.
    Raises CalledProcessError when nbgrader fails."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course_dir, env=env, check=True,
                          text=True, stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.STDOUT if capture else None)


def setup(course_dir, numbers=None, smoke: bool = False, parameters: dict | None = None,
          course_id: str = "vlmid") -> list[str]:
    """Make ``course_dir`` an nbgrader course of the given notebooks (all: None); return the assignments.

    smoke: run at the notebooks' smoke sizes (papermill's injected ``smoke = True``); parameters:
    any further value to inject, e.g. ``{"results_dir": ...}``. Then ``generate_assignment``
    writes each student version to ``release/<notebook>/``."""
    course = Path(course_dir).resolve()
    (course / "source").mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(CONFIG.format(course_id=course_id, timeout=CELL_TIMEOUT))
    inject = {**({"smoke": True} if smoke else {}), **(parameters or {})}
    assignments = []
    for path in notebooks(numbers):
        nb = nbformat.read(path, as_version=4)
        if mark(nb):   # the metadata it would set differs from the notebook's
            raise SystemExit(f"{path.name} lacks its nbgrader metadata: run python -m vlmid.harness.course mark")
        if inject:   # papermill's own cell, tagged injected-parameters, after the parameters cell
            from papermill.iorw import load_notebook_node
            from papermill.parameterize import parameterize_notebook
            nb = parameterize_notebook(load_notebook_node(str(path)), inject)
        folder = course / "source" / path.stem
        folder.mkdir(exist_ok=True)
        nbformat.write(nb, folder / path.name)
        nbgrader(course, "generate_assignment", path.stem, "--force")
        assignments.append(path.stem)
    return assignments


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlmid.harness.course", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("mark", help="set the nbgrader metadata of notebooks/ from their markers")
    p.add_argument("numbers", nargs="*", help="notebook numbers, e.g. 01 (default: all)")
    p = sub.add_parser("setup", help="a course folder, its config and the student versions (release/)")
    p.add_argument("course_dir")
    p.add_argument("numbers", nargs="*", help="notebook numbers, e.g. 01 02 (default: all)")
    p.add_argument("--smoke", action="store_true", help="smoke sizes: each notebook runs in about a minute")
    p.add_argument("--course-id", default="vlmid")
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=f"nbgrader {command} of one notebook (further options go to nbgrader)")
        p.add_argument("course_dir")
        p.add_argument("number", help="the notebook's number, e.g. 01")
    args, extra = ap.parse_known_args(argv)
    if extra and args.command not in COMMANDS:
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "mark":
        for path in notebooks(args.numbers):
            nb = nbformat.read(path, as_version=4)
            if mark(nb):
                nbformat.write(nb, path)
                print(f"{path.name}: nbgrader metadata set")
        return 0
    try:
        if args.command == "setup":
            for name in setup(args.course_dir, args.numbers, smoke=args.smoke, course_id=args.course_id):
                print(Path(args.course_dir) / "release" / name)
        else:
            nbgrader(args.course_dir, COMMANDS[args.command], notebooks([args.number])[0].stem, *extra)
    except subprocess.CalledProcessError as exc:   # nbgrader has said why
        return exc.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
