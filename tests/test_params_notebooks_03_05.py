"""vlmid.params for notebooks 03 (TokenPruningParams) and 05 (CompressionParams).

Every resolved value is what the notebooks' second cell produced before the dataclasses, in full
and in smoke mode (the expected values below were read off that cell). Each bad value raises a
ValueError naming the parameter.
"""
import json
import pathlib

import pytest

from vlmid.paths import resolve_device

from vlmid.params import NotebookParams
from vlmid.params.compression import CompressionParams
from vlmid.params.token_pruning import TokenPruningParams

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"

# the old parameters cells' values (the defaults every field must keep)
DEFAULTS_03 = dict(profile="tiny", seed=0, smoke=False, results_dir=None, device="auto", replicate=False, quick=False,
                   keeps=[1.0, 0.9, 0.7, 0.5], search_keeps=[0.4, 0.3], loo_keeps=[1.0, 0.5],
                   n_eval=2000, batch_size=32, repeats=7, warmup=1, threads=1, eval_threads=2,
                   scales=[1.0, 1.5, 2.0], scaling_batch=16, lowrank_ranks=[4, 8, 16, 32, 48, 64], max_loss=0.01, n_hard=800)
SMOKE_03 = dict(DEFAULTS_03, smoke=True, keeps=[1.0, 0.5], search_keeps=[], loo_keeps=[0.5], n_eval=100,
                batch_size=16, repeats=2, warmup=1, scales=[1.0, 2.0], scaling_batch=4, lowrank_ranks=[4, 8], n_hard=100)
DEFAULTS_05 = dict(profile="tiny", seed=0, smoke=False, results_dir=None, device="auto", replicate=False, quick=False,
                   n_test=200, n_train=1000, n_calib=128, energies=[0.9, 0.8, 0.6, 0.5], mid_energy=0.8,
                   keep_last_dense=1, finetune_steps=120, finetune_lr=3e-5, finetune_batch=32, n_zeroshot=500,
                   latency_batch=8, latency_repeats=6, threads=1, qwen2vl=None)
SMOKE_05 = dict(DEFAULTS_05, smoke=True, n_test=12, n_train=24, n_calib=8, n_zeroshot=40, energies=[0.6],
                mid_energy=0.6, finetune_steps=2, finetune_batch=4, latency_batch=2, latency_repeats=2)


def parameters_cell(name: str) -> dict:
    """The values the notebook's ``parameters`` cell defines today."""
    nb = json.loads((NOTEBOOKS / name).read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    ns: dict = {}
    exec("".join(cell["source"]), ns)  # noqa: S102
    return {k: v for k, v in ns.items() if not k.startswith("__")}


def resolved(values: dict) -> dict:
    """What the dataclass turns the defaults into: "auto" the device found here; Qwen2-VL's None whether the
    profile is the paper one."""
    out = {**values, "device": resolve_device(values["device"])}
    if "qwen2vl" in out and out["qwen2vl"] is None:
        out["qwen2vl"] = out["profile"] == "paper"
    return out


CASES = [
    (TokenPruningParams, DEFAULTS_03, SMOKE_03, "03_clip_token_pruning.ipynb"),
    (CompressionParams, DEFAULTS_05, SMOKE_05, "05_quantization_lowrank.ipynb"),
]
IDS = ["03", "05"]


# ------------------------------------------------------------------------------ defaults, smoke
@pytest.mark.parametrize("cls, defaults, smoke, notebook", CASES, ids=IDS)
def test_defaults_are_the_notebooks(cls, defaults, smoke, notebook):
    assert issubclass(cls, NotebookParams)
    assert cls().namespace() == resolved(defaults)   # "auto" becomes the device found here
    assert parameters_cell(notebook) == defaults   # the papermill cell: same names, same defaults


@pytest.mark.parametrize("cls, defaults, smoke, notebook", CASES, ids=IDS)
def test_smoke_sizes(cls, defaults, smoke, notebook):
    assert cls(smoke=True).namespace() == resolved(smoke)


def test_given_values_are_kept_and_checked_before_the_smoke_sizes():
    p = TokenPruningParams(keeps=[0.9, 0.7], loo_keeps=[1.0, 0.7, 0.5], n_eval=50, batch_size=8, lowrank_ranks=[16])
    assert (p.keeps, p.loo_keeps, p.n_eval, p.batch_size, p.lowrank_ranks) == ([0.9, 0.7], [1.0, 0.7, 0.5], 50, 8, [16])
    s = TokenPruningParams(keeps=[0.5, 1.0], search_keeps=[0.2], n_eval=5000, batch_size=64, smoke=True)
    assert (s.keeps, s.search_keeps, s.n_eval, s.batch_size) == ([0.5, 1.0], [], 100, 16)
    c = CompressionParams(n_test=50, n_train=40, n_calib=40, keep_last_dense=0, finetune_steps=0, smoke=True)
    assert (c.n_test, c.n_train, c.n_calib, c.keep_last_dense, c.finetune_steps) == (12, 24, 8, 0, 2)


def test_finetune_check_step_is_three_quarters_of_the_fine_tune():
    assert CompressionParams().finetune_check_step == 90
    assert CompressionParams(finetune_steps=60).finetune_check_step == 45
    assert CompressionParams(smoke=True).finetune_check_step == 1       # smoke: 2 steps, kept after the first
    assert CompressionParams(finetune_steps=1).finetune_check_step is None
    assert CompressionParams(finetune_steps=0).finetune_check_step is None


def test_a_replicate_build_keeps_the_low_rank_sizes_its_claims_read():
    """A further build of a multi-build run: the reported size (mid_energy) and the smallest, nothing else."""
    assert CompressionParams(replicate=True).energies == [0.8, 0.5]
    assert CompressionParams(replicate=True, energies=[0.95, 0.7, 0.4], mid_energy=0.7).energies == [0.7, 0.4]
    assert CompressionParams().energies == [0.9, 0.8, 0.6, 0.5]


def test_a_replicate_build_keeps_every_variant_of_notebook_03():
    """A further build: every keep ratio and variant, half the zero-shot images, the harder set whole."""
    first, further = TokenPruningParams(), TokenPruningParams(replicate=True)
    assert (further.keeps, further.search_keeps, further.loo_keeps) == (first.keeps, first.search_keeps, first.loo_keeps)
    assert (first.n_eval, further.n_eval) == (2000, 1000) and further.n_hard == first.n_hard == 800
    assert (further.repeats, further.scales, further.lowrank_ranks) == (3, [1.0], [8, 48])
    quick = TokenPruningParams(quick=True)   # run_all.sh --quick: the sizes of a further build
    assert (quick.n_eval, quick.repeats, quick.scales, quick.lowrank_ranks) == (1000, 3, [1.0], [8, 48])


def test_n_calib_is_capped_by_n_train():
    assert CompressionParams(n_train=100, n_calib=500).n_calib == 100
    assert CompressionParams(n_train=100, n_calib=50).n_calib == 50


def test_smoke_keeps_fall_back_to_the_first_ratio():
    assert TokenPruningParams(keeps=[0.9, 0.7], smoke=True).keeps == [0.9]
    assert TokenPruningParams(keeps=[0.7, 0.5], smoke=True).keeps == [0.5]


def test_namespace_round_trip_and_no_shared_lists():
    p = TokenPruningParams()
    assert TokenPruningParams.from_namespace(p.namespace()) == p
    p.keeps.append(0.1)
    assert TokenPruningParams().keeps == [1.0, 0.9, 0.7, 0.5]


# ------------------------------------------------------------------------------ bad values
BAD = [
    (TokenPruningParams, "keeps", [1.0, 0.0]),
    (TokenPruningParams, "keeps", [1.2]),
    (TokenPruningParams, "keeps", []),
    (TokenPruningParams, "search_keeps", [0.4, -0.1]),
    (TokenPruningParams, "loo_keeps", [1.5]),
    (TokenPruningParams, "n_eval", 9),
    (TokenPruningParams, "batch_size", 0),
    (TokenPruningParams, "batch_size", 2.5),
    (TokenPruningParams, "repeats", 0),
    (TokenPruningParams, "warmup", -1),
    (TokenPruningParams, "threads", 0),
    (TokenPruningParams, "eval_threads", 0),
    (TokenPruningParams, "scaling_batch", 0),
    (TokenPruningParams, "scales", []),
    (TokenPruningParams, "scales", [1.0, 5.0]),
    (TokenPruningParams, "scales", [0.1]),
    (TokenPruningParams, "lowrank_ranks", [4, 0]),
    (TokenPruningParams, "lowrank_ranks", [2.5]),
    (TokenPruningParams, "max_loss", -0.01),
    (TokenPruningParams, "max_loss", 1.5),
    (TokenPruningParams, "profile", "huge"),
    (TokenPruningParams, "seed", -1),
    (CompressionParams, "n_test", 0),
    (CompressionParams, "n_train", 0),
    (CompressionParams, "n_calib", 0),
    (CompressionParams, "n_zeroshot", -5),
    (CompressionParams, "latency_batch", 0),
    (CompressionParams, "latency_repeats", 0),
    (CompressionParams, "latency_repeats", 1),   # the speed claims need an interval of the median: 2 rounds at least
    (CompressionParams, "threads", 0),
    (CompressionParams, "finetune_batch", 1.5),
    (CompressionParams, "finetune_steps", -1),
    (CompressionParams, "energies", []),
    (CompressionParams, "energies", [0.8, 1.2]),
    (CompressionParams, "energies", [0.0, 0.8]),
    (CompressionParams, "mid_energy", 0.7),   # not one of energies
    (CompressionParams, "mid_energy", 1.5),
    (CompressionParams, "keep_last_dense", -1),
    (CompressionParams, "finetune_lr", 0.0),
    (CompressionParams, "finetune_lr", 2.0),
    (CompressionParams, "profile", "huge"),
]


@pytest.mark.parametrize("smoke", [False, True])
@pytest.mark.parametrize("cls, name, value", BAD, ids=[f"{c.__name__[:5]}-{n}={v!r}" for c, n, v in BAD])
def test_bad_value_raises_naming_the_parameter(cls, name, value, smoke):
    # smoke sizes replace what the user gave only after it was checked: a bad value fails in smoke mode too
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        cls(**{name: value, "smoke": smoke})


def test_the_notebooks_use_their_dataclass():
    for cls, module, notebook in [(TokenPruningParams, "token_pruning", "03_clip_token_pruning.ipynb"),
                                  (CompressionParams, "compression", "05_quantization_lowrank.ipynb")]:
        nb = json.loads((NOTEBOOKS / notebook).read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        setup = "".join(code[1]["source"])
        assert f"from vlmid.params.{module} import {cls.__name__}" in setup
        assert f"P = params_from({cls.__name__}, globals())" in setup
        assert "globals().update(P.namespace())" in setup
        assert "check_fraction" not in setup and "if smoke" not in setup


def test_qwen2vl_section_defaults_to_the_paper_profile_only():
    assert CompressionParams().qwen2vl is False
    assert CompressionParams(profile="paper", device="cpu").qwen2vl is True
    assert CompressionParams(profile="paper", device="cpu", qwen2vl=False).qwen2vl is False
    with pytest.raises(ValueError, match="qwen2vl=True needs profile='paper'"):
        CompressionParams(qwen2vl=True)


def test_token_pruning_params_are_a_leaf():
    """The parameters import no science: the work they imply is counted by the experiment (``plan(P)``)."""
    import ast
    import inspect

    import vlmid.params.token_pruning as module

    imported = {node.module for node in ast.walk(ast.parse(inspect.getsource(module)))
                if isinstance(node, ast.ImportFrom) and node.level}
    assert imported <= {"base", "paths", "plan"}, imported
    assert not hasattr(TokenPruningParams, "plan")


def test_notebook_03_calls_its_experiment_in_short_cells():
    nb = json.loads((NOTEBOOKS / "03_clip_token_pruning.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert max(len(c.splitlines()) for c in code) <= 20
    text = "\n".join(code)
    assert "exp.plan(P)" in text and "tokens.study" not in text
    assert "headline = out.metrics(**exp.headline(" in text or "headline = out.metrics(exp.headline(" in text
    assert 'claims.show("03", headline)' in text
