"""Every claim of the study and every target of this repository, gathered from the experiments.

Each notebook's experiment module (:mod:`vlmid.experiments`) defines the claims it decides, on the
keys its ``headline`` declares; this module gathers them in report order and checks, on import,
that no claim reads a key its notebook's headline does not write. How a verdict is decided is
:mod:`vlmid.verdict`; the report (:mod:`vlmid.harness.report`) and each notebook's "What we found"
(:func:`show`) call the same rule.

    verdict(claim, metrics)          # (measured text, verdict word)
    table("02", metrics)             # the claims of notebook 02 as a DataFrame
    show("02", metrics)              # ... displayed as a markdown table (what "What we found" shows)
"""
from __future__ import annotations

from .experiments import BY_NUMBER, MODULES
from .verdict import (BY_CONSTRUCTION, MET, MISSED, NOT_AT_SCALE, NOT_MEASURED, NOT_OFFLINE, NOT_REPRODUCED, NOT_RUN,
                      ORDER, REPRODUCED, TABLE_MARKER, UNDECIDED, UNTESTABLE, Claim, fields, rule_text, table_cell,
                      verdict, verdicts_in)
from . import verdict as _verdict

__all__ = ["CLAIMS", "Claim", "verdict", "of_notebook", "table", "markdown", "show", "verdicts_in", "table_cell",
           "rule_text", "ORDER", "REPRODUCED", "NOT_REPRODUCED", "UNDECIDED", "MET", "MISSED", "NOT_AT_SCALE",
           "BY_CONSTRUCTION", "NOT_OFFLINE", "NOT_RUN", "NOT_MEASURED", "UNTESTABLE", "TABLE_MARKER"]

CLAIMS: tuple[Claim, ...] = tuple(c for m in MODULES for c in m.CLAIMS)


def undeclared_keys() -> dict[str, list[str]]:
    """Claim statement -> the keys it reads that its notebook's headline does not declare ({} when sound)."""
    bad = {}
    for c in CLAIMS:
        read = set(c.needs) | set(c.interval or ()) | fields(c.measured)
        extra = sorted(read - set(BY_NUMBER[c.notebook].KEYS))
        if extra:
            bad[c.statement] = extra
    return bad


_bad = undeclared_keys()
if _bad:  # a claim that reads a key no headline writes could never be decided: fail where it is defined
    raise ImportError(f"claims read keys their notebook's headline does not declare: {_bad}")


def of_notebook(number: str) -> list[Claim]:
    """The claims and targets notebook ``number`` tests, in report order."""
    return list(BY_NUMBER[number].CLAIMS)


def table(number: str, metrics: dict | None):
    """The claims and targets of one notebook with their measured values and verdicts (pandas)."""
    return _verdict.table(of_notebook(number), metrics)


def markdown(number: str, metrics: dict | None) -> str:
    """:func:`table` as a markdown table that starts with :data:`TABLE_MARKER` (verdicts in bold)."""
    return _verdict.markdown(number, of_notebook(number), metrics)


def show(number: str, metrics: dict | None) -> None:
    """Display notebook ``number``'s claims table (in Jupyter as markdown, else as text)."""
    _verdict.display_markdown(markdown(number, metrics))
