"""Student handouts of the notebooks, in the spirit of nbgrader's "generate assignment".

The instructor notebooks in ``notebooks/`` carry their own solutions. In a code cell,
the lines a student should write sit between two marker comments, right under a hint::

    # Exercise 1.1: the TwoNN fit through the origin
    def twonn_fit(mu, discard_fraction=0.1):
        # HINT: sort mu, F_i = i/N, keep the smallest 90 %, least squares through 0
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

and the check cell that follows may hold tests the student should not see::

    # Check 1.1
    assert ...
    ### BEGIN HIDDEN TESTS
    assert ...
    ### END HIDDEN TESTS

A handout keeps everything but: each solution block becomes one ``raise
NotImplementedError(<hint>)`` at the marker's indentation (the hint line stays above it),
hidden tests are removed, and every output and execution count is cleared. The
autograder (``vlmid.harness.course.autograde``) puts the hidden tests back from the instructor version.

    python -m vlmid.harness.course.handouts                   # notebooks/*.ipynb -> handouts/*.ipynb
    python -m vlmid.harness.course.handouts --out /tmp/hw 01  # only notebook 01, elsewhere
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ...paths import REPO_ROOT

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"

# "# Exercise 1.1: title" and "# Check 1.1" on a cell's first comment lines name it
EXERCISE_RE = re.compile(r"^\s*#\s*Exercise\s+([0-9A-Za-z_.-]*[0-9A-Za-z_])\s*[:.-]?\s*(.*?)\s*$")
CHECK_RE = re.compile(r"^\s*#\s*Check\s+([0-9A-Za-z_.-]*[0-9A-Za-z_])\b")
HINT_RE = re.compile(r"^\s*#\s*HINT\s*:?\s*(.*?)\s*$", re.IGNORECASE)

NOTEBOOKS = REPO_ROOT / "notebooks"
HANDOUTS = REPO_ROOT / "handouts"


class MarkerError(ValueError):
    """Unbalanced or misplaced BEGIN/END markers: the notebook cannot be handed out safely."""


@dataclass(frozen=True)
class SolutionBlock:
    cell: int            # index of the code cell in the notebook
    exercise: str | None  # "1.1" from the cell's "# Exercise 1.1" line, if any
    hint: str | None      # the text of the "# HINT:" line just above BEGIN SOLUTION
    lines: tuple[str, ...]  # the solution's lines, markers excluded


def _marker(line: str, marker: str) -> bool:
    return line.strip().upper() == marker


def cell_label(source: str, pattern: re.Pattern = EXERCISE_RE) -> str | None:
    """'1.1' from the first line of ``source`` matching ``pattern`` (Exercise or Check)."""
    for line in source.splitlines():
        m = pattern.match(line)
        if m:
            return m.group(1)
    return None


def exercise_title(source: str) -> str:
    for line in source.splitlines():
        m = EXERCISE_RE.match(line)
        if m:
            return m.group(2)
    return ""


def _hint_above(lines: list[str], begin: int) -> str | None:
    """The hint of a solution: the "# HINT:" comment just above BEGIN SOLUTION, with the comment
    lines that continue it (a hint may span several lines), or None."""
    j = begin - 1
    continued = []
    while j >= 0 and lines[j].strip().startswith("#"):
        m = HINT_RE.match(lines[j])
        if m:
            return " ".join([m.group(1), *reversed(continued)]).strip()
        continued.append(lines[j].strip().lstrip("#").strip())
        j -= 1
    return None


def _blocks(lines: list[str], begin: str, end: str, where: str) -> list[tuple[int, int]]:
    """(begin, end) line indices of each marked block; unbalanced markers are an error."""
    out, start = [], None
    for i, line in enumerate(lines):
        if _marker(line, begin):
            if start is not None:
                raise MarkerError(f"{where}, line {i + 1}: {begin!r} inside an open block (line {start + 1})")
            start = i
        elif _marker(line, end):
            if start is None:
                raise MarkerError(f"{where}, line {i + 1}: {end!r} without {begin!r}")
            out.append((start, i))
            start = None
    if start is not None:
        raise MarkerError(f"{where}, line {start + 1}: {begin!r} is never closed by {end!r}")
    return out


def solution_blocks(nb) -> list[SolutionBlock]:
    """Every solution block of an instructor notebook, in order."""
    found = []
    for c, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        lines = cell.source.splitlines()
        label = cell_label(cell.source)
        for b, e in _blocks(lines, BEGIN_SOLUTION, END_SOLUTION, f"cell {c}"):
            found.append(SolutionBlock(c, label, _hint_above(lines, b), tuple(lines[b + 1:e])))
    return found


def stub_source(source: str, where: str = "cell") -> str:
    """``source`` with solutions replaced by ``raise NotImplementedError(hint)`` and hidden tests removed."""
    lines = source.splitlines()
    label = cell_label(source)
    hidden = _blocks(lines, BEGIN_HIDDEN, END_HIDDEN, where)
    solutions = _blocks(lines, BEGIN_SOLUTION, END_SOLUTION, where)
    for hb, he in hidden:
        if any(hb <= sb <= he or hb <= se <= he for sb, se in solutions):
            raise MarkerError(f"{where}: a solution block overlaps hidden tests (lines {hb + 1}-{he + 1})")
    replace = {sb: (se, "solution") for sb, se in solutions} | {hb: (he, "hidden") for hb, he in hidden}
    out, i = [], 0
    while i < len(lines):
        if i not in replace:
            out.append(lines[i])
            i += 1
            continue
        end, kind = replace[i]
        if kind == "solution":
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            hint = _hint_above(lines, i)
            message = " ".join(x for x in (f"Exercise {label}:" if label else None,
                                           hint or "write your solution here") if x)
            out.append(f"{indent}raise NotImplementedError({message!r})")
        i = end + 1
    # a trailing newline in the original stays (nbformat keeps sources as one string)
    text = "\n".join(out)
    return text + ("\n" if source.endswith("\n") and out else "")


def make_handout(nb):
    """A student copy of an instructor notebook (the input is left untouched)."""
    student = copy.deepcopy(nb)
    for c, cell in enumerate(student.cells):
        if cell.cell_type == "code":
            cell.source = stub_source(cell.source, where=f"cell {c}")
            cell.outputs = []
            cell.execution_count = None
            # papermill's and the executor's traces of a previous run are outputs too
            for key in ("execution", "papermill"):
                cell.metadata.pop(key, None)
    student.metadata.pop("papermill", None)
    return student


def handout_notebooks(src: Path = NOTEBOOKS, only: str | None = None) -> list[Path]:
    found = sorted(Path(src).glob("[0-9][0-9]_*.ipynb"))
    if only is not None:
        found = [p for p in found if p.name.startswith(f"{int(only):02d}_")]
    return found


def write_handouts(src: str | Path = NOTEBOOKS, out: str | Path = HANDOUTS, only: str | None = None) -> list[Path]:
    """Write the student version of every numbered notebook in ``src`` to ``out``."""
    src, out = Path(src), Path(out)
    todo = handout_notebooks(src, only)
    if not todo:
        raise SystemExit(f"no numbered notebooks (NN_*.ipynb) in {src}" + (f" for {only!r}" if only else ""))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in todo:
        nb = nbformat.read(path, as_version=4)
        try:
            student = make_handout(nb)
        except MarkerError as exc:
            raise SystemExit(f"{path.name}: {exc}") from None
        target = out / path.name
        nbformat.write(student, target)
        written.append(target)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlmid.harness.course.handouts", description=__doc__.splitlines()[0])
    ap.add_argument("only", nargs="?", default=None, help="one notebook by its number, e.g. 01 (default: all)")
    ap.add_argument("--src", default=str(NOTEBOOKS), help="instructor notebooks (default: notebooks/)")
    ap.add_argument("--out", default=str(HANDOUTS), help="where the handouts go (default: handouts/, git-ignored)")
    args = ap.parse_args(argv)
    if args.only is not None and not re.fullmatch(r"\d{1,2}", args.only):
        ap.error(f"the notebook number must be like 01, not {args.only!r}")
    for path in write_handouts(args.src, args.out, args.only):
        nb = nbformat.read(path, as_version=4)
        n = sum(1 for c in nb.cells if c.cell_type == "code" and cell_label(c.source))
        print(f"{path}  ({n} exercise{'s' if n != 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
