"""Every notebook is paired with a py:percent text file (jupytext, ``jupytext.toml``) so that a change reads as a
text diff; the two must hold the same cells. After editing either: ``.venv/bin/jupytext --sync notebooks/*.ipynb``."""
import json
import pathlib

import pytest

jupytext = pytest.importorskip("jupytext")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def cells(nb) -> list[tuple]:
    """What a reader edits: each cell's type, source and tags (ids, outputs and other metadata left out)."""
    return [(c["cell_type"], c["source"] if isinstance(c["source"], str) else "".join(c["source"]),
             tuple(c.get("metadata", {}).get("tags", []))) for c in nb["cells"]]


def test_every_notebook_has_its_text_twin_and_no_text_file_is_orphaned():
    texts = sorted((ROOT / "notebooks" / "text").glob("*.py"))
    assert [p.stem for p in texts] == [p.stem for p in NOTEBOOKS], \
        "run: .venv/bin/jupytext --sync notebooks/*.ipynb (and delete the text file of a removed notebook)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_pair_holds_the_same_cells(path):
    text = ROOT / "notebooks" / "text" / f"{path.stem}.py"
    assert text.exists(), f"{text} is missing: run .venv/bin/jupytext --sync {path.relative_to(ROOT)}"
    a, b = cells(json.loads(path.read_text())), cells(jupytext.read(text))
    assert a == b, f"{path.name} and {text.name} differ: edit one, then .venv/bin/jupytext --sync notebooks/*.ipynb"


def test_the_pairing_is_configured_for_jupyterlab():
    assert 'formats = "notebooks///ipynb,notebooks/text///py:percent"' in (ROOT / "jupytext.toml").read_text()
