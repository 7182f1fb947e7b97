"""vlmid.params.id_prunability: notebook 06's parameters, their defaults, smoke sizes and checks."""
import json
import pathlib

import pytest

from vlmid.params.id_prunability import IdPrunabilityParams

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "06_id_and_prunability.ipynb"


def parameters_cell() -> dict:
    nb = json.loads(NOTEBOOK.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    ns: dict = {}
    exec("".join(cell["source"]), ns)  # noqa: S102
    return {k: v for k, v in ns.items() if not k.startswith("__")}


def test_the_parameters_cell_is_the_dataclass():
    import dataclasses

    cell, fields = parameters_cell(), {f.name: f for f in dataclasses.fields(IdPrunabilityParams)}
    assert set(cell) == set(fields)
    P = IdPrunabilityParams(device="cpu")
    for name, value in cell.items():
        if value is not None and name != "device":
            assert getattr(P, name) == value, name


def test_profile_defaults_smoke_and_replicate():
    P = IdPrunabilityParams(device="cpu")
    assert (P.n_val, P.n_test, P.total_steps, P.batch_size, P.lr) == (300, 500, 80, 24, 3e-5)
    assert P.control_sparsities == [0.4, 0.6, 0.8] and P.n_seeds == 3 and P.validate_estimators
    assert IdPrunabilityParams(device="cpu", profile="paper").n_test == 5000
    R = IdPrunabilityParams(device="cpu", replicate=True)
    assert R.validate_estimators is False and (R.n_test, R.n_val, R.n_resamples) == (250, 200, 500)
    assert (R.n_seeds, R.control_sparsities, R.unit_sparsities) == (P.n_seeds, P.control_sparsities, P.unit_sparsities)
    Q = IdPrunabilityParams(device="cpu", quick=True)   # run_all.sh --quick: a further build's sizes, two seeds
    assert (Q.n_test, Q.n_val, Q.n_resamples, Q.validate_estimators, Q.long_factor, Q.n_seeds) == (250, 200, 500, False, 0, 2)
    assert P.long_factor == 10
    s = IdPrunabilityParams(device="cpu", smoke=True)
    assert s.n_val == 8 and s.control_sparsities == [0.4, 0.8] and s.n_seeds == 1
    assert IdPrunabilityParams(device="cpu", control_sparsities=[0.8, 0.4]).control_sparsities == [0.4, 0.8]


@pytest.mark.parametrize("name, value", [("unit_sparsities", [0.0]), ("unit_sparsities", []),
                                         ("control_sparsities", [0.99]), ("n_seeds", 0), ("n_val", 1),
                                         ("n_resamples", 5), ("allocation_spread", 1.5), ("lr", 0.0),
                                         ("initial_warmup", 100), ("workers", 0)])
@pytest.mark.parametrize("smoke", [False, True])
def test_bad_value_raises_naming_the_parameter(name, value, smoke):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        IdPrunabilityParams(device="cpu", smoke=smoke, **{name: value})


def test_the_notebook_uses_its_dataclass():
    nb = json.loads(NOTEBOOK.read_text())
    setup = "".join([c for c in nb["cells"] if c["cell_type"] == "code"][1]["source"])
    assert "P = params_from(IdPrunabilityParams, globals())" in setup and "globals().update(P.namespace())" in setup
