"""Notebook 06's parameters: the IDs behind the claim, the units' prunability, and the prior's controls."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import ClassVar

from ..paths import check_fraction
from .base import NotebookParams, check_whole


@dataclass
class IdPrunabilityParams(NotebookParams):
    """``06_id_and_prunability``: ``None`` sizes take the profile's default (``PROFILE_DEFAULTS``)."""
    PAPER_INPUTS: ClassVar[tuple[str, ...]] = ("blip", "coco")
    n_points: int = 1000      # training images whose representations give each Linear's ID (never the test scenes)
    feature_batch: int = 100  # images per forward pass while collecting them
    validate_estimators: bool = True   # check the four estimators on manifolds of known dimension first
    n_validation_points: int = 2000    # points per known-dimension cloud, 50 ambient dimensions
    n_validation_draws: int = 3        # clouds per manifold
    n_val: int | None = None  # validation scenes that score each unit's prunability (None: tiny 300, paper 500)
    unit_sparsities: list[float] = field(default_factory=lambda: [0.5, 0.7, 0.9])  # each unit alone, by magnitude
    n_resamples: int = 1000   # resamples of the validation scenes: the interval of each build's rho
    control_sparsities: list[float] = field(default_factory=lambda: [0.4, 0.6, 0.8])  # where prior and controls meet
    n_seeds: int = 3          # fine-tuning seeds (seed, seed+1, ...) of every control and allocation run
    n_test: int | None = None  # test scenes that score those runs (None: tiny 500, paper 5000)
    total_steps: int | None = None  # cubic schedule to the largest control sparsity (None: tiny 80, paper 2000)
    hold_steps: int | None = None   # recovery steps at each checkpoint (None: tiny 6, paper 100)
    delta_t: int = 10         # masks recomputed every delta_t steps
    initial_warmup: int = 5   # dense fine-tuning steps before pruning starts
    batch_size: int | None = None   # (None: tiny 24, paper 16)
    lr: float | None = None   # AdamW learning rate (None: tiny 3e-5, paper 1e-5), as notebook 02
    allocation_spread: float = 0.2  # ID allocation: unit sparsities within target +- spread * min(target, 1 - target)
    long_factor: int = 10     # no prior, the prior and PLATON again on a schedule this many times longer (0: not run)
    threads: int | None = None  # torch threads (None: every core)
    workers: int | None = None  # pruning runs at once, one CPU core each (None: every core on the CPU, 1 on a GPU)

    PROFILE_DEFAULTS: ClassVar[dict] = {
        "tiny": dict(n_val=300, n_test=500, total_steps=80, hold_steps=6, batch_size=24, lr=3e-5),
        "paper": dict(n_val=500, n_test=5000, total_steps=2000, hold_steps=100, batch_size=16, lr=1e-5),
    }
    # a further build: the estimators' check on known dimensions says nothing about the build; every run and
    # seed is kept (the controls are chosen on the first build, the comparisons read all of them) on half
    # the test scenes and two thirds of the validation scenes: across builds, the spread between builds sets
    # the interval of each comparison, and the scenes of one build add little to it. The longer schedule runs
    # on the first build only (it costs as much as every other run of the notebook together)
    REPLICATE: ClassVar[dict] = dict(validate_estimators=False, n_test=lambda n: max(2, n // 2),
                                     n_val=lambda n: max(2, 2 * n // 3), n_resamples=lambda n: max(10, n // 2),
                                     long_factor=0)
    # a quick run (one build): the further builds' sizes, and two fine-tuning seeds of each run instead of three
    QUICK: ClassVar[dict] = {**REPLICATE, "n_seeds": 2}
    SMOKE: ClassVar[dict] = dict(n_points=60, feature_batch=30, n_validation_points=200, n_validation_draws=2, n_val=8,
                                 unit_sparsities=lambda _: [0.5, 0.9], n_resamples=20,
                                 control_sparsities=lambda _: [0.4, 0.8], n_seeds=1, n_test=8, total_steps=6,
                                 hold_steps=1, delta_t=2, initial_warmup=1, batch_size=4, long_factor=2)
    PAPER_SMOKE: ClassVar[dict] = dict(n_points=8, feature_batch=4, n_val=4, n_test=4, total_steps=4, hold_steps=0,
                                       batch_size=2)

    def check(self) -> None:
        for name in ("unit_sparsities", "control_sparsities"):
            values = [float(s) for s in getattr(self, name)]
            if not values:
                raise ValueError(f"{name}=[]: give at least one sparsity")
            for s in values:
                check_fraction(f"{name}[...]", s, 0.0, 1.0 if name == "unit_sparsities" else 0.95, include_low=False)
        for name, low in [("n_points", 3), ("feature_batch", 1), ("n_validation_points", 20), ("n_validation_draws", 1),
                          ("n_val", 2), ("n_resamples", 10), ("n_seeds", 1), ("n_test", 2), ("total_steps", 2),
                          ("hold_steps", 0), ("delta_t", 1), ("initial_warmup", 0), ("batch_size", 1)]:
            check_whole(name, getattr(self, name), low)
        if self.initial_warmup >= self.total_steps:
            raise ValueError(f"initial_warmup={self.initial_warmup} must be smaller than total_steps={self.total_steps}")
        check_fraction("lr", self.lr, 0.0, 1.0, include_low=False)
        check_fraction("allocation_spread", self.allocation_spread, 0.0, 1.0)
        check_whole("long_factor", self.long_factor, 0)
        if self.long_factor == 1:
            raise ValueError("long_factor=1 is today's schedule again: use 0 (no longer schedule) or 2 and more")
        for name in ("threads", "workers"):
            if getattr(self, name) is not None:
                check_whole(name, getattr(self, name), 1)

    def finish(self) -> None:
        self.unit_sparsities = sorted(float(s) for s in self.unit_sparsities)
        self.control_sparsities = sorted(float(s) for s in self.control_sparsities)
        if self.workers is None:
            self.workers = 1 if self.device.startswith("cuda") else len(os.sched_getaffinity(0))
