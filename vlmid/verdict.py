"""A claim and how a verdict is decided: the rule's machinery, shared by every notebook's claims.

A :class:`Claim` holds what is claimed and where it comes from (a source document of
``docs/sources.md`` or a section of ``docs/methods.md``), the headline keys it reads, how the
measured value is written, the literature's value where one exists, and the rule that decides it,
in words and in code. Each notebook's experiment (:mod:`vlmid.experiments`) defines its claims;
:mod:`vlmid.claims` gathers them. The report and each notebook's "What we found" call the same
:func:`verdict`, so a claim is never decided twice by different rules.

Comparisons carry their uncertainty: a claim with an ``interval`` names the keys of the 95 %
interval of its effect (:mod:`vlmid.uncertainty`). When that interval includes zero the verdict is
**undecided**, whatever the point estimate says. A claim this repository cannot test (a range the
tiny towers cannot reach, a ratio that holds by construction) says so with its reason
(``untestable``), and is never counted as "not reproduced".
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

CHANCE_10_CLASSES = 0.10

# verdict words: a claim of the study is reproduced, not reproduced or undecided (its interval holds
# zero); a target of this repository is met or missed
REPRODUCED, NOT_REPRODUCED, UNDECIDED = "reproduced", "not reproduced", "undecided"
MET, MISSED = "target met", "target missed"
# claims that cannot be decided here, each with its reason in the claim (``untestable``)
NOT_AT_SCALE, BY_CONSTRUCTION = "not testable at this scale", "true by construction"
NOT_OFFLINE, NOT_RUN, NOT_MEASURED = "not testable offline", "not run yet", "not measured"
ORDER = (REPRODUCED, NOT_REPRODUCED, UNDECIDED, MET, MISSED, NOT_AT_SCALE, BY_CONSTRUCTION, NOT_OFFLINE,
         NOT_MEASURED, NOT_RUN)
UNTESTABLE = (NOT_AT_SCALE, BY_CONSTRUCTION)
# the marker that starts a notebook's claims table (tests find the verdicts printed in executed notebooks by it)
TABLE_MARKER = "<!-- vlmid claims {number} -->"


@dataclass(frozen=True)
class Claim:
    """One claim (or target), how it is measured and how it is decided."""
    notebook: str                 # "01"
    kind: str                     # "claim" of the study, or "target" of this repository
    statement: str                # what is claimed, in words
    source: str                   # where the claim comes from (docs/sources.md, a docs/methods.md section)
    measured: str                 # template over the headline: "{key:format}" (keys may contain dots)
    anchor: str                   # the literature's value (docs/methods.md section), "" when none
    rule: str                     # the verdict rule in words
    test: Callable[[dict], bool | None]  # the verdict rule in code, on the headline (None: undecided)
    needs: tuple[str, ...]        # headline keys the template and rule read
    paper_only: bool = False      # only the paper profile (real checkpoints, COCO...) can test it
    if_null: tuple[str, bool] | None = None  # (measured text, verdict) when the notebook wrote null
    interval: tuple[str, str] | None = None  # headline keys (low, high) of the effect's 95 % interval
    untestable: tuple[str, str] | None = None  # (verdict word of UNTESTABLE, why) for a claim not testable here


def ci(key: str) -> str:
    """The measured text of an effect with its interval: ``+0.012 [-0.010, +0.034]``."""
    return f"{{{key}:+.3f}} [{{{key}_ci_low:+.3f}}, {{{key}_ci_high:+.3f}}]"


def ci_keys(key: str) -> tuple[str, str, str]:
    """An effect's key and the keys of the ends of its interval."""
    return key, f"{key}_ci_low", f"{key}_ci_high"


def above_zero(key: str) -> Callable[[dict], bool]:
    """The rule "the effect ``key`` is above zero": its interval's lower end lies above 0 (an interval
    that holds zero is undecided by :func:`verdict`)."""
    return lambda m: m[f"{key}_ci_low"] > 0


_FIELD = re.compile(r"\{([^{}:]+)(?::([^{}]*))?\}")


def fields(template: str) -> set[str]:
    """The keys a measured-text template reads."""
    return {m.group(1) for m in _FIELD.finditer(template)}


def fill(template: str, metrics: dict) -> str:
    """``template`` with each ``{key:format}`` replaced from ``metrics`` (keys may contain dots)."""
    return _FIELD.sub(lambda m: format(metrics[m.group(1)], m.group(2) or ""), template)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _word(claim: Claim, ok: bool) -> str:
    if claim.kind == "target":
        return MET if ok else MISSED
    return REPRODUCED if ok else NOT_REPRODUCED


def verdict(claim: Claim, metrics: dict | None) -> tuple[str, str]:
    """(measured text, verdict word) of one claim on one notebook's metrics (None: not run)."""
    if metrics is None:
        return "", NOT_RUN
    needs = claim.needs + (claim.interval or ())
    absent = [k for k in needs if _missing(metrics.get(k))]
    if absent and claim.if_null is not None and all(k in metrics for k in absent):
        text, ok = claim.if_null  # the notebook ran and found nothing to report, e.g. no variant qualifies
        return text, _word(claim, ok)
    if absent:
        return f"missing in metrics.json: {', '.join(absent)}", NOT_MEASURED
    try:
        measured = fill(claim.measured, metrics)
        if claim.untestable is not None:
            return measured, claim.untestable[0]
        decided = claim.test(metrics)  # True / False, or None: the evidence does not decide
        ok = None if decided is None else bool(decided)
        low, high = (float(metrics[k]) for k in claim.interval) if claim.interval else (math.nan, math.nan)
    except (TypeError, ValueError) as exc:  # e.g. a string where a number belongs
        return f"unreadable value in metrics.json ({exc})", NOT_MEASURED
    if claim.paper_only and metrics.get("profile") != "paper":
        return measured + f" ({metrics.get('profile', '?')} profile)", NOT_OFFLINE
    if ok is None or (claim.interval and low <= 0 <= high):
        return measured, UNDECIDED  # the 95 % interval of the effect includes zero: the data cannot decide
    return measured, _word(claim, ok)


def rule_text(claim: Claim) -> str:
    """The rule as the tables show it: for a claim not testable here, why not."""
    return claim.rule if claim.untestable is None else f"{claim.untestable[1]} (rule if it were: {claim.rule})"


def table_cell(text: Any) -> str:
    """``text`` safe inside a markdown table cell (pipes escaped, line breaks as spaces)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(claims, metrics: dict | None):
    """``claims`` with their measured values and verdicts (pandas)."""
    import pandas as pd

    rows = []
    for c in claims:
        measured, word = verdict(c, metrics)
        rows.append({"kind": c.kind, "claim": c.statement, "measured": measured, "rule": rule_text(c), "verdict": word})
    return pd.DataFrame(rows, columns=["kind", "claim", "measured", "rule", "verdict"])


def markdown(number: str, claims, metrics: dict | None) -> str:
    """``claims`` as a markdown table that starts with :data:`TABLE_MARKER` (verdicts in bold)."""
    lines = [TABLE_MARKER.format(number=number), "",
             "| | Claim | Measured here | Rule | Verdict |", "|---|---|---|---|---|"]
    for c in claims:
        measured, word = verdict(c, metrics)
        lines.append("| " + " | ".join(table_cell(x) for x in ("target" if c.kind == "target" else "claim", c.statement,
                                                         measured or "-", rule_text(c), f"**{word}**")) + " |")
    return "\n".join(lines) + "\n"


def verdicts_in(text: str, number: str) -> list[str]:
    """The verdict words of notebook ``number``'s claims table inside ``text`` (e.g. an executed
    notebook's output), in order; [] when the table is not there."""
    marker = TABLE_MARKER.format(number=number)
    if marker not in text:
        return []
    words = []
    for line in text.split(marker, 1)[1].splitlines():
        if line.startswith("| ") and line.rstrip().endswith("** |"):
            words.append(line.rstrip()[:-4].rsplit("**", 1)[1])
        elif words and not line.startswith("|"):
            break
    return words


def display_markdown(text: str) -> None:
    """Show ``text`` in Jupyter as markdown, else print it."""
    try:
        from IPython.display import Markdown, display
    except ImportError:  # plain Python: print it
        print(text)
        return
    display(Markdown(text))
