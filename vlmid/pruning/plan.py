"""The work notebook 02 is about to do, counted from its parameters, and how long it will take here.

Notebook 02 is the study's expensive part: every method prunes and fine-tunes the captioner along the
cubic schedule and is scored on the test images at each checkpoint. :func:`pruning_plan` counts the
optimiser steps and the test-set evaluations its parameters imply (before anything runs);
:meth:`StudyPlan.describe` turns them into hours with seconds per step and per test image measured
on this machine by the notebook's own first runs (the dense evaluation and the dense fine-tune
control), so the estimate holds for a laptop CPU and a GPU alike.
"""
from __future__ import annotations

from dataclasses import dataclass

from .schedule import first_step_below


@dataclass(frozen=True)
class StudyPlan:
    """Counts of notebook 02's work: prune-fine-tune runs, optimiser steps, test-set evaluations."""
    runs: int
    steps: int
    evaluations: int
    images_per_evaluation: int
    batch_size: int

    def seconds(self, seconds_per_step: float, seconds_per_image: float) -> float:
        """Estimated wall time: every step at ``seconds_per_step``, every test image decoded and scored at
        ``seconds_per_image`` (mask updates and plotting are inside those or negligible)."""
        return self.steps * seconds_per_step + self.evaluations * self.images_per_evaluation * seconds_per_image

    def describe(self, seconds_per_step: float | None = None, seconds_per_image: float | None = None) -> str:
        text = (f"planned: {self.runs} prune-fine-tune runs, {self.steps:,} optimiser steps at batch {self.batch_size}, "
                f"{self.evaluations} evaluations of {self.images_per_evaluation:,} test images")
        if seconds_per_step is None or seconds_per_image is None:
            return text
        total = self.seconds(seconds_per_step, seconds_per_image)
        return (f"{text}; measured here {seconds_per_step:.3g} s a step and {seconds_per_image:.3g} s a test image, "
                f"so about {total / 3600:.2f} h ({total / 60:.0f} min) in all")


def pruning_plan(params, n_methods: int, n_extra_runs_at_40: int = 3) -> StudyPlan:
    """The plan of notebook 02 with ``params`` (:class:`vlmid.params.pruning.PruningParams`).

    ``n_methods`` runs go the whole schedule with the first seed (``total_steps`` plus a hold of
    ``hold_steps`` at each checkpoint, evaluated at each); every further seed, and each of the
    ``n_extra_runs_at_40`` per seed that only need 40 % (vision only, language only, the
    tower-normalised prior), stop after the 40 % checkpoint. The dense model is evaluated once, the
    dense fine-tune control (as many steps as a run takes to reach 40 %) once more."""
    p = params
    final_keep = 1 - max(p.sparsities)
    to_40 = first_step_below(0.6, p.total_steps, final_keep, p.initial_warmup, 0)
    short = to_40 + p.hold_steps
    n_short = n_methods * (p.n_seeds_at_40 - 1) + n_extra_runs_at_40 * p.n_seeds_at_40
    control = to_40 + p.hold_steps * sum(s <= 0.4 for s in p.sparsities)
    full = p.total_steps + p.hold_steps * len(p.sparsities)
    return StudyPlan(runs=n_methods + n_short + 1,
                     steps=n_methods * full + n_short * short + control,
                     evaluations=n_methods * len(p.sparsities) + n_short + 2,
                     images_per_evaluation=p.n_test, batch_size=p.batch_size)
