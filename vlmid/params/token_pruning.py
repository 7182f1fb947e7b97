"""Parameters of notebook 03 (CLIP vision-token pruning).

The notebook's ``parameters`` cell stays plain (papermill overrides it); its second cell turns
it into :class:`TokenPruningParams`, which checks the ranges, swaps in the smoke sizes and hands
the values back as plain names. The work these values imply is
:func:`vlmid.experiments.token_pruning.plan` (it counts the notebook's variants).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..paths import check_fraction
from .base import NotebookParams, check_whole


@dataclass
class TokenPruningParams(NotebookParams):
    """Keep ratios, evaluation and timing sizes, the harder set, scaling study and Extension B ranks of notebook 03."""
    PAPER_INPUTS: ClassVar[tuple[str, ...]] = ("clip", "cifar10")   # what a paper run reads (vlmid.harness.paper_inputs)
    keeps: list[float] = field(default_factory=lambda: [1.0, 0.9, 0.7, 0.5])  # the CLIP token report's keep ratios (fraction of patch tokens kept)
    search_keeps: list[float] = field(default_factory=lambda: [0.4, 0.3])     # extra ratios for EViT and ToMe: the fastest variant within 1 point
    loo_keeps: list[float] = field(default_factory=lambda: [1.0, 0.5])        # keep ratios of the leave-one-out diagnostics
    n_eval: int = 2000        # zero-shot test images (Fashion-MNIST test in tiny, CIFAR-10 test in paper)
    n_hard: int = 800         # images of the harder set (placed items; tiny only: a paper run has none, 0 here)
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
        "n_hard": lambda n: min(n, 100),
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
    # a further model build of a run over several: the same variants on half the zero-shot images (the harder
    # set, where the target is decided, whole), fewer timing rounds (the speed of a variant is the machine's,
    # not the build's), one input size and two ranks for the scaling study and Extension B, which no claim reads
    REPLICATE: ClassVar[dict[str, Any]] = {
        "n_eval": lambda n: max(10, n // 2),
        "repeats": lambda r: min(r, 3),
        "scales": lambda s: s[:1],
        "lowrank_ranks": lambda rs: rs[1::3] or rs[:1],
    }
    QUICK: ClassVar[dict[str, Any]] = REPLICATE   # a quick run (one build): the further builds' sizes
    PAPER_SMOKE: ClassVar[dict[str, Any]] = {"n_eval": 20, "batch_size": 4, "repeats": 1, "scaling_batch": 2}

    def check(self) -> None:
        for name in ("keeps", "search_keeps", "loo_keeps"):
            for k in getattr(self, name):
                check_fraction(name, k, 0.0, 1.0, include_low=False)
        if not self.keeps:
            raise ValueError("keeps must name at least one keep ratio in (0, 1]")
        if self.n_hard:
            self.n_hard = check_whole("n_hard", self.n_hard, 10)   # 0: no harder set
        for name, low in [("n_eval", 10), ("batch_size", 1), ("repeats", 1), ("warmup", 0), ("threads", 1),
                          ("eval_threads", 1), ("scaling_batch", 1)]:
            setattr(self, name, check_whole(name, getattr(self, name), low))
        if not self.scales or any(not 0.25 <= s <= 4 for s in self.scales):
            raise ValueError(f"scales={self.scales!r} is out of range: each must lie in [0.25, 4]")
        if any(isinstance(r, bool) or int(r) != r or r < 1 for r in self.lowrank_ranks):
            raise ValueError(f"lowrank_ranks={self.lowrank_ranks!r}: each rank must be an integer >= 1")
        check_fraction("max_loss", self.max_loss, 0.0, 1.0)

    def finish(self) -> None:
        super().finish()
        if self.profile == "paper":
            self.n_hard = 0   # the harder set draws Fashion-MNIST garments; CIFAR-10 photos have backgrounds of their own


__all__ = ["TokenPruningParams"]
