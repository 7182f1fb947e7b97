"""Notebook 00's parameters: how many images the quality gates of the built models are measured on."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import NotebookParams


@dataclass
class BuildParams(NotebookParams):
    """``00_build_models_and_data``: captioning, zero-shot and probe sizes."""
    PAPER_INPUTS: ClassVar[tuple[str, ...]] = ("blip", "clip", "coco", "cifar10", "fashion-mnist")   # what a paper run reads (vlmid.harness.paper_inputs)
    n_test: int = 1000              # test images captioned (tiny: all 1000 held-out scenes)
    n_zeroshot: int | None = None   # zero-shot images (None: all 10000 Fashion-MNIST test photos / CIFAR-10 test)
    n_probe: int = 2000             # test items the linear probes are scored on
    n_probe_fit: int = 5000         # validation items they are fitted on (C chosen on a fifth of them)

    # seconds, not minutes: smoke models are trained for a few steps and mean nothing
    SMOKE: ClassVar[dict] = {"n_test": lambda n: min(n, 24), "n_zeroshot": 60, "n_probe": lambda n: min(n, 120),
                           "n_probe_fit": lambda n: min(n, 120)}
    PAPER_SMOKE: ClassVar[dict] = {"n_test": 6, "n_zeroshot": 20, "n_probe": 40, "n_probe_fit": 40}

    def check(self) -> None:
        sizes = [("n_test", self.n_test), ("n_probe", self.n_probe), ("n_probe_fit", self.n_probe_fit)]
        if self.n_zeroshot is not None:
            sizes.append(("n_zeroshot", self.n_zeroshot))
        for name, value in sizes:
            if not isinstance(value, int) or value < 2:
                raise ValueError(f"{name}={value!r}: must be an integer >= 2")

    def plan(self):
        """The quality gates' work (:class:`vlmid.harness.plan.Plan`): captions, zero-shot images, probe features."""
        from ..harness.plan import Plan, Work

        n_zeroshot = self.n_zeroshot or 10_000   # None: the whole test split (Fashion-MNIST and CIFAR-10: 10,000)
        return Plan("00", (Work(self.n_test, "caption", "test images captioned and scored"),
                           Work(n_zeroshot, "clip image", "zero-shot test images (plus the class prompts, once)"),
                           Work(self.n_probe + self.n_probe_fit, "blip image", "single items for BLIP's linear probes"),
                           Work(self.n_probe + self.n_probe_fit, "clip image", "single items for CLIP's linear probes")))
