"""The repository stands alone: every source it cites is inside it, under docs/."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = [*sorted((ROOT / "vlmid").rglob("*.py")), *sorted((ROOT / "notebooks").glob("*.ipynb")),
           ROOT / "README.md", ROOT / "results" / "REPORT.md", *sorted((ROOT / "docs").glob("*.md"))]
# files outside the repository, issue-tracker numbers, and source documents called by a random seed's name
FORBIDDEN = re.compile(r"\bREFERENCE\b|shared/|\bissue [0-9]|\bseeds? 00[0-4]")
CITATION = re.compile(r"docs/(\w+\.md) §(\d+)")


def _texts():
    return [(p, p.read_text(encoding="utf-8")) for p in SCANNED if p.exists()]


def test_nothing_cites_a_file_outside_the_repository_or_calls_a_source_by_a_seed_number():
    hits = [f"{p.relative_to(ROOT)}:{t.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
            for p, t in _texts() for m in FORBIDDEN.finditer(t)]
    assert hits == []


def test_every_cited_docs_section_exists():
    sections = {}
    for doc in (ROOT / "docs").glob("*.md"):
        sections[doc.name] = set(re.findall(r"^## (\d+)\.", doc.read_text(encoding="utf-8"), flags=re.M))
    cited = {(m.group(1), m.group(2)) for _, t in _texts() for m in CITATION.finditer(t)}
    assert cited, "the code and report cite docs/methods.md sections"
    missing = sorted(c for c in cited if c[1] not in sections.get(c[0], set()))
    assert missing == []


@pytest.mark.parametrize("name", ["ID-pruning study", "ID-pruning notes", "CLIP token report", "Flickr8k report",
                                  "compression slides"])
def test_each_source_document_is_described_under_its_short_name(name):
    assert f"**{name}**" in (ROOT / "docs" / "sources.md").read_text(encoding="utf-8")
