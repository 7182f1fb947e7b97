"""The parameter dataclasses of notebooks 00, 01 and 02: the notebooks' parameters with their defaults,
per-profile defaults, smoke sizes and derived values, and a ValueError naming the parameter for every
bad value."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from vlmid.paths import resolve_device

from vlmid.params import NotebookParams
from vlmid.params.build import BuildParams
from vlmid.params.intrinsic_dimension import IntrinsicDimensionParams
from vlmid.params.pruning import PruningParams

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
POOLINGS = ("cls", "mean", "flatten")  # vlmid.id.POOLINGS (checked below)


def parameters_cell(stem: str) -> dict:
    """The defaults of a notebook's papermill ``parameters`` cell, as papermill would see them."""
    nb = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    namespace: dict = {}
    exec("".join(cell["source"]), {}, namespace)
    return namespace


CASES = {  # notebook -> its parameters dataclass
    "00_build_models_and_data": BuildParams,
    "01_intrinsic_dimension": IntrinsicDimensionParams,
    "02_pruning_blip": PruningParams,
}


def as_plain(params: NotebookParams) -> dict:
    return params.namespace()


@pytest.mark.parametrize("stem", sorted(CASES))
def test_fields_are_the_parameters_cell_with_its_defaults(stem):
    cls = CASES[stem]
    cell = parameters_cell(stem)
    fields = {f.name for f in dataclasses.fields(cls)}
    assert set(cell) == fields, set(cell) ^ fields
    for f in dataclasses.fields(cls):  # the defaults before profiles and smoke sizes fill in
        name = f.name
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        assert default == cell[name], (name, default, cell[name])


def test_a_replicate_build_evaluates_40_percent_on_the_same_schedule():
    """A further build of a multi-build run stops at the 40 % checkpoint of the schedule that the first
    build runs to 80 %: the same weights there, a quarter of the work."""
    first, further = PruningParams(), PruningParams(replicate=True)
    assert first.sparsities == [0.2, 0.4, 0.5, 0.6, 0.8] and first.final_sparsity == 0.8
    assert further.sparsities == [0.4] and further.final_sparsity == 0.8
    assert (first.n_test, further.n_test) == (1000, 500)   # half the test scenes on a further build
    from vlmid.experiments.pruning import schedule
    assert schedule(further) == schedule(first)
    from vlmid.pruning.plan import dense_finetune_steps, pruning_plan
    assert dense_finetune_steps(further) == dense_finetune_steps(first) - first.hold_steps   # one hold fewer before 40 %
    assert pruning_plan(further, 9).work[0].count < 0.5 * pruning_plan(first, 9).work[0].count
    with pytest.raises(ValueError, match="final_sparsity"):
        PruningParams(final_sparsity=0.6)   # below the largest checkpoint, 0.8
    quick = PruningParams(quick=True)   # run_all.sh --quick: 40 % and the end of the same schedule, half the scenes
    assert (quick.sparsities, quick.final_sparsity, quick.n_test) == ([0.4, 0.8], 0.8, 500)
    assert schedule(quick) == schedule(first)
    assert PruningParams(quick=True, sparsities=[0.4, 0.6]).sparsities == [0.4, 0.6]


def test_build_params_smoke_sizes():
    assert as_plain(BuildParams()) == dict(profile="tiny", seed=0, smoke=False, results_dir=None,
                                           device=resolve_device("auto"), replicate=False, quick=False,
                                           n_test=1000, n_zeroshot=None, n_probe=2000, n_probe_fit=5000)
    p = BuildParams(smoke=True)
    assert (p.n_test, p.n_zeroshot, p.n_probe, p.n_probe_fit) == (24, 60, 120, 120)
    p = BuildParams(smoke=True, n_test=5, n_probe=50, n_zeroshot=1000)
    assert (p.n_test, p.n_zeroshot, p.n_probe) == (5, 60, 50)  # min(value, smoke size); zero-shot always 60


def test_intrinsic_dimension_params_defaults_and_smoke(capsys):
    p = IntrinsicDimensionParams()
    assert (p.n_points, p.batch_size, p.pooling, p.poolings, p.n_bootstrap) == (1000, 100, "mean", ["mean", "cls", "flatten"], 200)
    assert (p.benchmark_sizes, p.benchmark_repeats, p.threads) == ([2000, 5000], 7, 1)
    s = IntrinsicDimensionParams(smoke=True)
    assert (s.n_points, s.n_bootstrap, s.benchmark_sizes, s.benchmark_repeats) == (64, 20, [400], 2)
    assert (p.n_resamples, s.n_resamples) == (200, 20)
    s.benchmark_sizes.append(1)  # each instance has its own lists
    assert IntrinsicDimensionParams(smoke=True).benchmark_sizes == [400]
    assert IntrinsicDimensionParams().poolings == ["mean", "cls", "flatten"]
    assert capsys.readouterr().out == ""
    paper = IntrinsicDimensionParams(profile="paper")
    assert paper.poolings == ["mean", "cls"]
    assert "'flatten' pooling left out" in capsys.readouterr().out
    assert IntrinsicDimensionParams(profile="paper", pooling="flatten").poolings == ["flatten", "cls", "mean"]
    given = ["cls"]
    IntrinsicDimensionParams(poolings=given)
    assert given == ["cls"]  # the caller's list is not changed


def test_poolings_are_those_of_vlmid_id():
    from vlmid.id import POOLINGS as REAL
    from vlmid.params.intrinsic_dimension import POOLINGS as CHECKED  # the parameters import no science

    assert tuple(REAL) == POOLINGS == CHECKED


def test_pruning_params_per_profile_defaults_and_smoke():
    tiny, paper = PruningParams(), PruningParams(profile="paper")
    pick = lambda p: (p.n_test, p.n_val, p.total_steps, p.hold_steps, p.batch_size, p.lr)
    assert pick(tiny) == (1000, 48, 80, 6, 24, 3e-5)
    assert pick(paper) == (5000, 500, 2000, 100, 16, 1e-5)
    assert PruningParams(profile="paper", n_test=77, lr=2e-5).n_test == 77  # a given value beats the profile's
    for profile, sizes in (("tiny", (10, 6, 6, 1, 2, 1, 4)), ("paper", (4, 4, 4, 0, 2, 1, 2))):
        s = PruningParams(profile=profile, smoke=True)  # the paper smoke runs real-width stand-ins: fewer still
        assert (s.n_test, s.n_val, s.total_steps, s.hold_steps, s.delta_t, s.initial_warmup, s.batch_size) == sizes
        assert (s.sparsities, s.n_seeds_at_40) == ([0.4, 0.8], 1)
        assert s.lr == pick(tiny if profile == "tiny" else paper)[-1]  # smoke keeps the profile's learning rate
    p = PruningParams(sparsities=[0.6, 0.4, 0.2])
    assert p.sparsities == [0.2, 0.4, 0.6] and all(isinstance(s, float) for s in p.sparsities)


BAD = {  # (dataclass, parameter, bad value, more parameters)
    "00": [(BuildParams, "n_test", 1, {}), (BuildParams, "n_test", 10.0, {}), (BuildParams, "n_probe", 0, {}), (BuildParams, "n_probe_fit", 1, {}),
           (BuildParams, "n_zeroshot", 1, {}), (BuildParams, "n_zeroshot", "all", {}),
           (BuildParams, "n_test", 1, {"smoke": True})],
    "01": [(IntrinsicDimensionParams, "n_points", 19, {}), (IntrinsicDimensionParams, "n_points", 100.0, {}),
           (IntrinsicDimensionParams, "batch_size", 0, {}), (IntrinsicDimensionParams, "pooling", "max", {}),
           (IntrinsicDimensionParams, "poolings", ["cls", "max"], {}),
           (IntrinsicDimensionParams, "n_bootstrap", -1, {}), (IntrinsicDimensionParams, "n_bootstrap", 10_001, {}),
           (IntrinsicDimensionParams, "n_resamples", 19, {}), (IntrinsicDimensionParams, "n_resamples", 200.0, {}),
           (IntrinsicDimensionParams, "benchmark_sizes", [], {}), (IntrinsicDimensionParams, "benchmark_sizes", [99], {}),
           (IntrinsicDimensionParams, "benchmark_sizes", [2000, 50_001], {}),
           (IntrinsicDimensionParams, "benchmark_repeats", 0, {}), (IntrinsicDimensionParams, "benchmark_repeats", 51, {}),
           (IntrinsicDimensionParams, "threads", 0, {}), (IntrinsicDimensionParams, "n_points", 5, {"smoke": True})],
    "02": [(PruningParams, "sparsities", [0.2, 0.6], {}), (PruningParams, "sparsities", [0.4, 0.0], {}),
           (PruningParams, "sparsities", [0.4, 0.96], {}), (PruningParams, "n_seeds_at_40", 0, {}),
           (PruningParams, "n_test", 1, {}), (PruningParams, "n_val", 1.5, {}), (PruningParams, "total_steps", 1, {}),
           (PruningParams, "hold_steps", -1, {}), (PruningParams, "delta_t", 0, {}),
           (PruningParams, "initial_warmup", -1, {}), (PruningParams, "batch_size", 0, {}),
           (PruningParams, "initial_warmup", 80, {}), (PruningParams, "initial_warmup", 10, {"total_steps": 10}),
           (PruningParams, "lr", 0.0, {}), (PruningParams, "lr", 1.5, {}), (PruningParams, "lam", -0.1, {}),
           (PruningParams, "spread", 1.1, {}), (PruningParams, "spread", -0.1, {}),
           (PruningParams, "modality_method", "random", {}), (PruningParams, "n_test", 1, {"profile": "paper"})],
    "base": [(cls, name, value, {}) for cls in (BuildParams, IntrinsicDimensionParams, PruningParams)
             for name, value in (("profile", "huge"), ("seed", -1))],
}


@pytest.mark.parametrize("cls,name,value,more", [case for cases in BAD.values() for case in cases],
                         ids=lambda x: x.__name__ if isinstance(x, type) else repr(x))
def test_bad_value_raises_a_value_error_naming_it(cls, name, value, more):
    with pytest.raises(ValueError, match=name):
        cls(**{name: value, **more})


def test_smoke_checks_what_the_user_gave():
    # The dataclasses check the values given before the smoke sizes replace them (NotebookParams):
    # a bad value fails in a smoke run as it would in a full one.
    with pytest.raises(ValueError, match="sparsities"):
        PruningParams(smoke=True, sparsities=[0.5])


@pytest.mark.parametrize("stem,cls_name", [("00_build_models_and_data", "BuildParams"),
                                           ("01_intrinsic_dimension", "IntrinsicDimensionParams"),
                                           ("02_pruning_blip", "PruningParams")])
def test_notebook_uses_its_dataclass(stem, cls_name):
    nb = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"]["tags"]
    second = "".join(code[1]["source"])
    assert f"P = params_from({cls_name}, globals())" in second
    assert "globals().update(P.namespace())" in second
    assert "raise ValueError" not in second
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_device_auto_and_bad_devices():
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="'auto'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA build"):
            PruningParams(device="cuda")   # checked with the other parameters, before anything runs
