"""Where things live on disk, and the checks every notebook runs on its parameters."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("tiny", "paper")


def results_dir(path: str | os.PathLike | None = None) -> Path:
    """The results folder: ``path`` if given, else ``$VLMID_RESULTS`` or ``<repo>/results``."""
    return Path(path or os.environ.get("VLMID_RESULTS") or REPO_ROOT / "results")


def run_results_dir(profile: str = "tiny", smoke: bool = False, path: str | os.PathLike | None = None) -> Path:
    """Where a run writes: ``path`` if given; else the results folder, ``smoke/`` below it for smoke
    runs and ``paper/`` for the paper profile, so that neither ever overwrites the committed tiny results."""
    if path is not None:
        return Path(path)
    return results_dir() / ("smoke" if smoke else "") / ("paper" if profile == "paper" else "")


# A run over several model builds: notebook 00 runs on the first build only (it re-measures that build and
# tables every shipped build's quality gates from their manifests), notebook 07 once after all of them (it
# pools the builds), every other notebook on each build.
FIRST_BUILD_ONLY, ACROSS_BUILDS = ("00",), ("07",)


def build_results_dir(root: str | os.PathLike, builds, build: int) -> Path:
    """Where one model build's notebooks write in a run over ``builds`` (model seeds, in run order):
    the first build into ``root`` itself (``results/<notebook>/``, what the figures of the README show),
    every further one into ``root/builds/seed<N>/`` (notebook 07 pools them all)."""
    builds = [int(b) for b in builds]
    if int(build) not in builds:
        raise ValueError(f"build {build} is not among the run's builds {builds}")
    return Path(root) if int(build) == builds[0] else Path(root) / "builds" / f"seed{int(build)}"


def parse_builds(text: str | int | list | tuple) -> list[int]:
    """``"0,1,2"`` (or a list, or one number) -> ``[0, 1, 2]``: model builds by their seed, each once, in order."""
    items = list(text) if isinstance(text, (list, tuple)) else str(text).replace(" ", "").split(",")
    try:
        builds = [int(x) for x in items if str(x) != ""]
    except ValueError:
        raise ValueError(f"builds={text!r}: give model seeds as whole numbers separated by commas, e.g. 0,1,2") from None
    if not builds or any(b < 0 for b in builds) or len(set(builds)) != len(builds):
        raise ValueError(f"builds={text!r}: give at least one model seed, each >= 0 and once, e.g. 0,1,2")
    return builds


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Generated data and trained tiny models: ``path``, else ``$VLMID_DATA`` or ``<repo>/data``."""
    return Path(path or os.environ.get("VLMID_DATA") or REPO_ROOT / "data")


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(
            f"unknown profile {profile!r}: use 'tiny' (offline, models trained here) "
            f"or 'paper' (real checkpoints and datasets on disk)"
        )
    return profile


def check_fraction(name: str, value: float, low: float = 0.0, high: float = 1.0,
                   include_low: bool = True) -> float:
    """Raise a ValueError that says what is allowed when a ratio is out of range."""
    ok = (low <= value if include_low else low < value) and value <= high
    if not ok:
        bracket = "[" if include_low else "("
        raise ValueError(f"{name}={value!r} is out of range: it must lie in {bracket}{low}, {high}]")
    return float(value)


def resolve_device(device: str | None = "auto") -> str:
    """The torch device a notebook runs on: ``"auto"`` (or None) is CUDA when a GPU is visible, else the CPU;
    ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` are taken as given, after a check that they exist here."""
    import torch

    name = "auto" if device is None else str(device)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}, but torch {torch.__version__} sees no GPU here: use device='auto' or "
                             f"'cpu', or install the CUDA build of torch (README, 'On a GPU machine')")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} GPU(s) here")
        return name
    raise ValueError(f"device={device!r}: use 'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch, and ask torch for deterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
