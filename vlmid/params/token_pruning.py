"""Parameters of notebook 03 (CLIP vision-token pruning).

The notebook's ``parameters`` cell stays plain (papermill overrides it); its second cell turns
it into :class:`TokenPruningParams`, which checks the ranges, swaps in the smoke sizes and hands
the values back as plain names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..paths import check_fraction
from .base import NotebookParams, check_whole


@dataclass
class TokenPruningParams(NotebookParams):
    """Keep ratios, evaluation and timing sizes, scaling study and Extension B ranks of notebook 03."""
    PAPER_INPUTS: ClassVar[tuple[str, ...]] = ("clip", "cifar10")   # what a paper run reads (vlmid.paper_inputs)
    keeps: list[float] = field(default_factory=lambda: [1.0, 0.9, 0.7, 0.5])  # the CLIP token report's keep ratios (fraction of patch tokens kept)
    search_keeps: list[float] = field(default_factory=lambda: [0.4, 0.3])     # extra ratios for EViT and ToMe: the fastest variant within 1 point
    loo_keeps: list[float] = field(default_factory=lambda: [1.0, 0.5])        # keep ratios of the leave-one-out diagnostics
    n_eval: int = 2000        # zero-shot test images (Fashion-MNIST test in tiny, CIFAR-10 test in paper)
    batch_size: int = 32      # images per timed forward
    repeats: int = 7          # timed rounds, all variants interleaved round-robin
    warmup: int = 1           # untimed rounds first
    threads: int = 1          # torch threads while timing (fixed and recorded)
    eval_threads: int = 2     # torch threads for the accuracy evaluations (not timed)
    scales: list[float] = field(default_factory=lambda: [1.0, 1.5, 2.0])     # input sizes of the scaling study, as multiples of the model's
    scaling_batch: int = 16   # images per timed forward in the scaling study
    lowrank_ranks: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 48, 64])  # ranks of the factorised projections (Extension B)
    max_loss: float = 0.01    # "within 1 point": the largest top-1 loss (a fraction) a variant may have

    # a minute on two cores, on the smoke models
    SMOKE: ClassVar[dict[str, Any]] = {
        "n_eval": lambda n: min(n, 100),
        "batch_size": lambda b: min(b, 16),
        "repeats": 2,
        "warmup": 1,
        "scaling_batch": 4,
        "keeps": lambda ks: [k for k in ks if k in (1.0, 0.5)] or ks[:1],  # the ratios the headline needs
        "search_keeps": [],
        "loo_keeps": lambda ks: ks[-1:],
        "scales": [1.0, 2.0],
        "lowrank_ranks": lambda rs: rs[:2],
    }
    PAPER_SMOKE: ClassVar[dict[str, Any]] = {"n_eval": 20, "batch_size": 4, "repeats": 1, "scaling_batch": 2}

    def check(self) -> None:
        for name in ("keeps", "search_keeps", "loo_keeps"):
            for k in getattr(self, name):
                check_fraction(name, k, 0.0, 1.0, include_low=False)
        if not self.keeps:
            raise ValueError("keeps must name at least one keep ratio in (0, 1]")
        for name, low in [("n_eval", 10), ("batch_size", 1), ("repeats", 1), ("warmup", 0), ("threads", 1),
                          ("eval_threads", 1), ("scaling_batch", 1)]:
            setattr(self, name, check_whole(name, getattr(self, name), low))
        if not self.scales or any(not 0.25 <= s <= 4 for s in self.scales):
            raise ValueError(f"scales={self.scales!r} is out of range: each must lie in [0.25, 4]")
        if any(isinstance(r, bool) or int(r) != r or r < 1 for r in self.lowrank_ranks):
            raise ValueError(f"lowrank_ranks={self.lowrank_ranks!r}: each rank must be an integer >= 1")
        check_fraction("max_loss", self.max_loss, 0.0, 1.0)

    def plan(self):
        """This notebook's work (:class:`vlmid.plan.Plan`): the variants' zero-shot evaluations and timed
        batches, the scaling study and Extension B, in images through CLIP's image encoder."""
        from ..plan import Plan, Work
        from ..tokens import study

        timed = study.grid(study.REPORT_AND_SINGLE_FIXES + study.PUBLISHED, self.keeps) + \
            study.grid(study.PUBLISHED, [k for k in self.search_keeps if k not in self.keeps])
        evaluated = len(timed) + len(study.grid(study.LEAVE_ONE_OUT, self.loo_keeps)) + 1   # + the baseline
        rounds = self.warmup + self.repeats + 2   # + one pass each for FLOPs and memory
        scaled = sum(s * s for s in self.scales) * (len(study.PUBLISHED) + 2) * (2 + max(2, self.repeats // 2))
        return Plan("03", (
            Work(evaluated * self.n_eval, "clip image", f"zero-shot evaluations: {evaluated} variants x {self.n_eval} images"),
            Work((len(timed) + 1) * rounds * self.batch_size, "clip image",
                 f"timed batches: {len(timed) + 1} variants x {rounds} rounds x {self.batch_size} images "
                 f"(on {self.threads} thread(s) on a CPU)"),
            Work(round(scaled * self.scaling_batch), "clip image",
                 f"scaling study at {self.scales} x the input size (counted in tokens: an image at 2x is 4 images)"),
            Work(len(self.lowrank_ranks) * self.n_eval, "clip image",
                 f"Extension B: {len(self.lowrank_ranks)} ranks x {self.n_eval} images"),
        ))


__all__ = ["TokenPruningParams"]
