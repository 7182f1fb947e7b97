"""The work notebook 02 is about to do, counted from its parameters, and how long it will take here.

Notebook 02 is the study's expensive part: every method prunes and fine-tunes the captioner along the
cubic schedule and is scored on the test images at each checkpoint. :func:`pruning_plan` counts the
optimiser steps and the test-set evaluations its parameters imply (before anything runs), as a
:class:`vlmid.harness.plan.Plan`; the notebook turns it into hours with seconds per step and per test image
measured on this machine by its own first runs (the dense fine-tune control, and the evaluation
after it: the first evaluation also pays the COCO scorers' one-off start-up, which on the tiny
profile made the estimate twice the real time), so the estimate holds for a laptop CPU and a GPU alike.
"""
from __future__ import annotations

from ..harness.plan import Plan, Work
from .schedule import first_step_below


def final_sparsity(params) -> float:
    """Where the schedule ends: ``params.final_sparsity``, else the largest checkpoint sparsity."""
    return getattr(params, "final_sparsity", None) or max(params.sparsities)


def dense_finetune_steps(params) -> int:
    """Optimiser steps of the dense fine-tune control: as many as a first-seed run takes to finish its 40 %
    checkpoint (the schedule's steps to 40 % plus a hold at every checkpoint up to 40 %)."""
    p = params
    to_40 = first_step_below(1 - 0.4, p.total_steps, 1 - final_sparsity(p), p.initial_warmup, 0)
    return to_40 + p.hold_steps * sum(s <= 0.4 for s in p.sparsities)


def pruning_plan(params, n_methods: int, n_extra_runs_at_40: int = 3) -> Plan:
    """The plan of notebook 02 with ``params`` (:class:`vlmid.params.pruning.PruningParams`).

    ``n_methods`` runs go the whole schedule with the first seed (``total_steps`` plus a hold of
    ``hold_steps`` at each checkpoint, evaluated at each); every further seed, and each of the
    ``n_extra_runs_at_40`` per seed that only need 40 % (vision only, language only, the
    tower-normalised prior), stop after the 40 % checkpoint. The dense model is evaluated once, the
    dense fine-tune control (as many steps as a run takes to reach 40 %) once more."""
    p = params
    final_keep = 1 - final_sparsity(p)
    to_40 = first_step_below(0.6, p.total_steps, final_keep, p.initial_warmup, 0)
    short = to_40 + p.hold_steps
    n_short = n_methods * (p.n_seeds_at_40 - 1) + n_extra_runs_at_40 * p.n_seeds_at_40
    control = dense_finetune_steps(p)
    # a first-seed run stops after its last checkpoint (the whole schedule when that is the final sparsity)
    full = first_step_below(1 - max(p.sparsities), p.total_steps, final_keep, p.initial_warmup, 0) \
        + p.hold_steps * len(p.sparsities)
    runs, evaluations = n_methods + n_short + 1, n_methods * len(p.sparsities) + n_short + 2
    return Plan("02", (Work(n_methods * full + n_short * short + control, "step",
                            f"optimiser steps at batch {p.batch_size} in {runs} prune-fine-tune runs "
                            f"(mask updates included)"),
                       Work(evaluations * p.n_test, "caption",
                            f"test images captioned and scored: {evaluations} evaluations of {p.n_test:,}")))
