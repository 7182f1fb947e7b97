"""Parameters of notebook 05 (quantization, layer dropping and low-rank factorization).

The notebook's ``parameters`` cell stays plain (papermill overrides it); its second cell turns
it into :class:`CompressionParams`, which checks the ranges, swaps in the smoke sizes, caps
``n_calib`` at ``n_train`` and hands the values back as plain names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..paths import check_fraction
from .base import NotebookParams, check_whole


@dataclass
class CompressionParams(NotebookParams):
    """Data sizes, low-rank energies, fine-tune and timing settings of notebook 05."""
    PAPER_INPUTS: ClassVar[tuple[str, ...]] = ("blip", "clip", "coco", "cifar10")   # what a paper run reads (vlmid.harness.paper_inputs)
    n_test: int = 200                 # test images captioned by every method (CIDEr's IDF comes from them)
    n_train: int = 1000               # training examples: calibration (activation statistics) and fine-tuning
    n_calib: int = 128                # calibration examples for the activation-aware factorization (at most n_train)
    energies: list[float] = field(default_factory=lambda: [0.9, 0.8, 0.6, 0.5])  # retained spectral energy of the low-rank variants (four sizes)
    mid_energy: float = 0.8           # the size reported in metrics.json (svd_plain_cider, svd_aware_cider); one of energies
    keep_last_dense: int = 1          # last decoder layers not factorized (the compression slides: else garbage); the LM head never is
    # fine-tune after dropping every second decoder layer (and of the fp32 control). Layer drop's CIDEr-D after
    # 60 / 120 / 240 / 480 steps (tiny seed-0 models): 2.41 / 2.64 / 2.66 / 2.80; its fp32 control 3.41 at 60, 3.40 at 120
    finetune_steps: int = 120
    finetune_lr: float = 3e-5         # small: the model is already trained; 1e-4 cost the fp32 control 0.09 CIDEr
    finetune_batch: int = 32
    n_zeroshot: int = 500             # zero-shot images for CLIP
    latency_batch: int = 8            # images per timed call
    latency_repeats: int = 6          # interleaved timing rounds after one warm-up (median; 6: a 97 % interval of it)
    threads: int = 1                  # torch threads (the machine is shared; recorded in provenance)
    qwen2vl: bool | None = None       # run the Qwen2-VL-2B section (None: in the paper profile; it needs its weights)

    # shrink everything: the smoke models are untrained, the point is that every cell runs
    SMOKE: ClassVar[dict[str, Any]] = {
        "n_test": 12, "n_train": 24, "n_calib": 8, "n_zeroshot": 40,
        "energies": [0.6], "mid_energy": 0.6,
        "finetune_steps": 2, "finetune_batch": 4, "latency_batch": 2, "latency_repeats": 2,
    }
    PAPER_SMOKE: ClassVar[dict[str, Any]] = {"n_test": 4, "n_train": 8, "n_calib": 4, "n_zeroshot": 20}

    def check(self) -> None:
        for name in ("n_test", "n_train", "n_calib", "n_zeroshot", "latency_batch", "threads", "finetune_batch"):
            setattr(self, name, check_whole(name, getattr(self, name), 1))
        # the speed claims read an interval of the median latency ratio: two rounds at least
        self.latency_repeats = check_whole("latency_repeats", self.latency_repeats, 2)
        self.finetune_steps = check_whole("finetune_steps", self.finetune_steps, 0)
        if not self.energies:
            raise ValueError("energies must list at least one retained-energy fraction in (0, 1)")
        for e in self.energies:
            check_fraction("energies", e, 0.0, 1.0, include_low=False)
        check_fraction("mid_energy", self.mid_energy, 0.0, 1.0, include_low=False)
        if self.mid_energy not in self.energies:
            raise ValueError(f"mid_energy={self.mid_energy!r} must be one of energies={self.energies!r}")
        self.keep_last_dense = check_whole("keep_last_dense", self.keep_last_dense, 0)
        check_fraction("finetune_lr", self.finetune_lr, 0.0, 1.0, include_low=False)
        if self.qwen2vl and self.profile != "paper":
            raise ValueError("qwen2vl=True needs profile='paper' (the tiny profile has no Qwen2-VL weights)")

    def finish(self) -> None:
        self.n_calib = min(self.n_calib, self.n_train)  # calibration examples come out of the training split
        if self.replicate:
            # a further model build of a run over several: the claims read the reported size (mid_energy) and the
            # smallest method that does not quantize, so the low-rank sweep keeps those two of its sizes
            self.energies = sorted({self.mid_energy, min(self.energies)}, reverse=True)
        if self.qwen2vl is None:
            self.qwen2vl = self.profile == "paper"

    @property
    def finetune_check_step(self) -> int | None:
        """The fine-tune step whose weights are kept to see whether the fine-tune converged: three quarters of
        the way (the cosine schedule's last quarter starts at 15 % of the peak learning rate); None without a
        fine-tune of two steps or more."""
        return 3 * self.finetune_steps // 4 if self.finetune_steps >= 2 else None

    def plan(self, caption_methods: int, clip_methods: int):
        """This notebook's work (:class:`vlmid.harness.plan.Plan`) for ``caption_methods`` compressed captioners and
        ``clip_methods`` compressed CLIPs (the factorizations and quantizations themselves are not counted)."""
        from ..harness.plan import Plan, Work

        timed = (self.latency_repeats + 1) * self.latency_batch   # one warm-up round
        check = self.n_test if self.finetune_check_step else 0     # the layer-drop fine-tune at its check step
        work = [Work(caption_methods * (self.n_test + timed) + check, "caption",
                     f"captions: {caption_methods} methods x ({self.n_test} test + {timed} timed images)"
                     + (f" + {check} of the fine-tune's checkpoint" if check else "")),
                Work(caption_methods * self.n_test, "blip pass", f"test NLL: {caption_methods} methods x {self.n_test} pairs"),
                Work(2 * self.finetune_steps * self.finetune_batch, "blip train pair",
                     f"fine-tuning after layer dropping and its control: 2 x {self.finetune_steps} steps of {self.finetune_batch}"),
                Work(clip_methods * (self.n_zeroshot + timed), "clip image",
                     f"zero-shot: {clip_methods} methods x ({self.n_zeroshot} + {timed} timed images)")]
        if self.qwen2vl:
            work.append(Work(5 * (self.n_test + timed), "qwen2-vl caption", "Qwen2-VL-2B: 5 methods x the same images"))
        return Plan("05", tuple(work))

    def paper_inputs(self) -> tuple[str, ...]:
        return self.PAPER_INPUTS + (("qwen2vl",) if self.qwen2vl else ())


__all__ = ["CompressionParams"]
