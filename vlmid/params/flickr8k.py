"""Notebook 04's parameters: the Flickr8k report's setup, and what we add to compare its two models fairly.

    P = params_from(Flickr8kParams, globals())   # defaults, range checks, smoke sizes
    globals().update(P.namespace())

The defaults are the Flickr8k report's settings (112 px, 16 px patches, a random 40 % of each
split, Adam at 1e-3, 3 epochs, batch 16, keep half the tokens); ``keep_ratios``,
``n_seeds`` (three training seeds of the two arms compared, so that the quality cost has an interval
and one failed training cannot decide it), ``depth`` and ``threads`` are ours. A leaf: it imports no science.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..paths import check_fraction
from .base import NotebookParams, check_whole


def _check_keep_ratio(name: str, value: Any) -> float:
    """A fraction of patch tokens kept, in (0, 1]; else a ValueError naming the parameter ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}={value!r} is out of range: it must lie in (0, 1] (the fraction of patch tokens kept)")
    return check_fraction(name, value, 0.0, 1.0, include_low=False)


def _check_whole_because(name: str, value: Any, low: int, why: str) -> int:
    """:func:`check_whole`, its error followed by why the bound is what it is."""
    try:
        return check_whole(name, value, low)
    except ValueError as err:
        raise ValueError(f"{err} ({why})") from None


@dataclass
class Flickr8kParams(NotebookParams):
    """The parameters of ``04_flickr8k_token_pruned``; papermill sets the same names in its parameters cell."""
    PAPER_INPUTS: ClassVar[tuple[str, ...]] = ("flickr8k",)   # what a paper run reads (vlmid.harness.paper_inputs)
    image_size: int = 112       # the Flickr8k report resized Flickr8k to 112 px; our 64 px scenes are upscaled to it
    patch_size: int = 16        # the report: 16 px patches, 7 x 7 (49) tokens
    sample_ratio: float = 0.4   # the report's random fraction of each split
    epochs: int = 3             # the report's
    batch_size: int = 16        # the report's
    lr: float = 1e-3            # the report's (Adam)
    keep_ratios: list = field(default_factory=lambda: [0.25, 0.5, 0.75])  # fractions of patch tokens the pruned models keep
    default_keep: float = 0.5   # the report kept int(49 * 0.5), i.e. 24 tokens
    n_seeds: int = 3            # training seeds of the baseline and the default pruned model: seed, seed + 1, ...
    width: int = 64             # token width (the report's embed_dim)
    depth: int = 2              # transformer blocks after the pruning point (the report had none)
    threads: int = 1            # torch threads: timings are taken on one core

    # a few batches of everything; numbers meaningless, the code path the same
    SMOKE: ClassVar[dict[str, Any]] = {"epochs": 2, "keep_ratios": lambda _: [0.25, 0.5], "n_seeds": 2,
                                       "depth": 1, "sample_ratio": 1.0}

    @property
    def extra_seeds(self) -> list[int]:
        """The training seeds after ``seed`` (``seed + 1``, ...): each trains the baseline and the default arm again."""
        return [self.seed + k for k in range(1, self.n_seeds)]

    def check(self) -> None:
        check_fraction("sample_ratio", self.sample_ratio, 0.0, 1.0, include_low=False)
        if isinstance(self.keep_ratios, (str, bytes)) or not hasattr(self.keep_ratios, "__iter__"):
            raise ValueError(f"keep_ratios={self.keep_ratios!r} must be a list of fractions in (0, 1]")
        ratios = [_check_keep_ratio("keep_ratios", r) for r in self.keep_ratios]
        self._check_default_keep(ratios)
        _check_whole_because("epochs", self.epochs, 2, "the first epoch is reported apart from the later ones")
        _check_whole_because("batch_size", self.batch_size, 2, "a contrastive batch of one has nothing to contrast")
        check_whole("depth", self.depth, 1)
        check_whole("image_size", self.image_size, 1)
        check_whole("patch_size", self.patch_size, 1)
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}")
        check_whole("width", self.width, 4)
        check_whole("threads", self.threads, 1)
        check_whole("n_seeds", self.n_seeds, 1)
        if not (isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool) and self.lr > 0):
            raise ValueError(f"lr={self.lr!r} is out of range: it must be a positive learning rate")

    def plan(self, n_train: int, n_test: int, n_models: int):
        """This notebook's work (:class:`vlmid.harness.plan.Plan`) for ``n_train`` / ``n_test`` sampled images and the
        ``n_models`` matching models of one seed; every extra seed trains two more (the baseline and the
        default keep ratio), and the report's own two models are trained once more at the end."""
        import math

        from ..harness.plan import Plan, Work

        steps = self.epochs * math.ceil(n_train / self.batch_size)
        trained = n_models + 2 * len(self.extra_seeds) + 2
        return Plan("04", (Work(trained * steps, "step",
                                f"optimiser steps: {trained} models x {self.epochs} epochs x {steps // self.epochs} batches "
                                f"of {self.batch_size} (CPU, {self.threads} thread(s))"),
                           Work(trained * n_test, "test image", f"held-out images embedded and ranked by every model"),))

    def _check_default_keep(self, ratios: list[float]) -> None:
        if _check_keep_ratio("default_keep", self.default_keep) not in ratios:
            raise ValueError(f"default_keep={self.default_keep!r} must be one of keep_ratios={sorted(ratios)}")

    def finish(self) -> None:
        self.keep_ratios = sorted(_check_keep_ratio("keep_ratios", r) for r in self.keep_ratios)
        self._check_default_keep(self.keep_ratios)   # again: the smoke sizes may have dropped it
        self.default_keep = float(self.default_keep)
        for name in ("epochs", "batch_size", "depth", "image_size", "patch_size", "width", "threads"):
            setattr(self, name, int(getattr(self, name)))
        self.n_seeds = int(self.n_seeds)
        self.sample_ratio, self.lr = float(self.sample_ratio), float(self.lr)
