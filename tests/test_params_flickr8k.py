"""vlmid.params.flickr8k: notebook 04's parameters as a dataclass (defaults, smoke sizes, range checks)."""
import dataclasses
import json

import pytest

from vlmid.paths import resolve_device

from vlmid.params.flickr8k import Flickr8kParams
from vlmid.paths import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "04_flickr8k_token_pruned.ipynb"


def _parameters_cell() -> dict:
    """The names the notebook's papermill ``parameters`` cell sets, with its values."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    (cell,) = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    namespace: dict = {}
    exec("".join(cell["source"]), {}, namespace)
    return namespace


def test_defaults_are_the_notebooks_parameters():
    cell = _parameters_cell()
    fields = {f.name for f in dataclasses.fields(Flickr8kParams)}
    assert set(cell) == fields                                    # the same names, none missing, none extra
    resolved = {**cell, "device": resolve_device(cell["device"])}   # "auto" becomes the device found here
    assert Flickr8kParams().namespace() == resolved               # and the same defaults
    assert Flickr8kParams.from_namespace(cell).namespace() == resolved


def test_defaults_are_the_flickr8k_reports_setup():
    p = Flickr8kParams()
    assert (p.image_size, p.patch_size, p.sample_ratio, p.epochs, p.batch_size, p.lr, p.default_keep) == \
        (112, 16, 0.4, 3, 16, 1e-3, 0.5)
    assert Flickr8kParams().keep_ratios is not p.keep_ratios      # no list shared between instances
    assert p.n_seeds >= 3 and p.extra_seeds == [1, 2]            # three training seeds per arm: an interval, not one run
    assert Flickr8kParams(seed=4).extra_seeds == [5, 6]            # never `seed` itself again


def test_parameters_are_a_leaf_that_imports_no_science():
    """vlmid.params.flickr8k imports only vlmid.params.base, vlmid.paths and vlmid.harness.plan (read with ast)."""
    import ast

    from vlmid.paths import REPO_ROOT as root

    tree = ast.parse((root / "vlmid" / "params" / "flickr8k.py").read_text(encoding="utf-8"))
    imported = {("." * n.level) + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "dataclasses", "typing", "math", "..paths", ".base", "..harness.plan"}, imported


def test_smoke_sizes():
    p = Flickr8kParams(smoke=True)
    assert (p.epochs, p.keep_ratios, p.n_seeds, p.extra_seeds, p.depth, p.sample_ratio) == (2, [0.25, 0.5], 2, [1], 1, 1.0)
    assert (p.image_size, p.patch_size, p.batch_size, p.width, p.default_keep) == (112, 16, 16, 64, 0.5)
    assert Flickr8kParams(smoke=True).keep_ratios is not p.keep_ratios


def test_keep_ratios_come_back_sorted_as_floats_and_namespace_is_plain():
    p = Flickr8kParams(keep_ratios=[0.75, 1, 0.25], default_keep=1, epochs=4.0)
    assert p.keep_ratios == [0.25, 0.75, 1.0] and p.default_keep == 1.0
    assert p.epochs == 4 and isinstance(p.epochs, int)
    ns = p.namespace()
    assert ns["keep_ratios"] == [0.25, 0.75, 1.0] and ns["profile"] == "tiny" and ns["seed"] == 0


def test_from_namespace_takes_only_its_fields():
    p = Flickr8kParams.from_namespace({"epochs": 5, "seed": 2, "In": [], "torch": object()})
    assert p.epochs == 5 and p.seed == 2 and p.batch_size == 16


@pytest.mark.parametrize("name, bad", [
    ("sample_ratio", 0.0), ("sample_ratio", 1.5), ("sample_ratio", -0.1),
    ("keep_ratios", [0.5, 0.0]), ("keep_ratios", [0.5, 1.5]), ("keep_ratios", [0.5, True]), ("keep_ratios", 0.5),
    ("default_keep", 0.3), ("default_keep", 0.0), ("default_keep", 2.0),
    ("epochs", 1), ("epochs", 2.5), ("epochs", True),
    ("batch_size", 1), ("batch_size", 0),
    ("depth", 0), ("depth", 1.5),
    ("image_size", 100), ("image_size", 0),
    ("patch_size", 0), ("patch_size", 15),
    ("width", 2), ("threads", 0), ("n_seeds", 0), ("n_seeds", 1.5), ("lr", 0.0), ("lr", -1e-3),
    ("profile", "huge"), ("seed", -1),
])
def test_a_bad_value_names_its_parameter(name, bad):
    with pytest.raises(ValueError, match=name):
        Flickr8kParams(**{name: bad})


def test_default_keep_must_survive_the_smoke_sizes():
    Flickr8kParams(default_keep=0.25, smoke=True)
    with pytest.raises(ValueError, match="default_keep"):
        Flickr8kParams(default_keep=0.75, smoke=True)   # smoke keeps 0.25 and 0.5 only


def test_the_notebook_builds_its_parameters_from_the_dataclass():
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    second = "".join(code[1]["source"])
    assert "P = params_from(Flickr8kParams, globals())" in second and "globals().update(P.namespace())" in second
    assert "raise ValueError" not in second                       # the checks live in the dataclass now
