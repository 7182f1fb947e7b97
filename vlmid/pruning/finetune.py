"""Iterative pruning during fine-tuning: the loop of the study (and of PLATON).

Every optimiser step: loss, backward, the scorer observes the gradients, AdamW steps and
the masks are re-applied. Every ``delta_t`` steps the masks are recomputed from the scores
(times the ID prior, if asked) at the kept fraction the cubic schedule gives for that step.
Wanda instead sees the inputs of every Linear in the training forward passes (hooks), so each
mask update uses the activations of the steps since the previous one, and its masks are chosen
row by row (:func:`~vlmid.pruning.masks.wanda_masks`; the ID prior sets each matrix's budget).

One schedule can serve several sparsities: when the pruned fraction first passes a
*checkpoint* (e.g. 0.2, 0.4, 0.6, 0.8) the masks are set to exactly that sparsity, held for
``hold_steps`` steps of recovery, and ``on_checkpoint(sparsity, model)`` is called (e.g. to
compute CIDEr); then the schedule goes on. That is how notebook 02 scores every sparsity of a
method in one run.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.base import caption_batches
from ..optim import optimizer_step
from .masks import (GROUPS, Masks, global_masks, layerwise_masks, prunable_linears, rowwise_masks, sparsity_report,
                    wanda_masks)
from .schedule import cubic_keep_ratio
from .scores import apply_id_prior, make_scorer

METHODS = ("magnitude", "gradient", "platon", "wanda", "layer")


@dataclass
class PruneConfig:
    method: str = "magnitude"        # magnitude | gradient (Taylor) | platon | wanda (row-wise) | layer (asymmetric,
                                     # magnitude inside)
    id_prior: bool = False           # multiply every weight's score by the ID of its Linear
    allocation: str | None = None    # None: the method's own rule (one global threshold; Wanda: uniform per row);
                                     # "uniform" / "id": each layer's sparsity allocated, then pruned within it
                                     # by the method's score (vlmid.pruning.allocation)
    allocation_spread: float = 0.2   # "id": sparsities within target +- spread * min(target, 1 - target)
    tower_matched: bool = False      # with id_prior: the prior's count per tower, chosen by the base score inside
                                     # each tower (a control: the tower shift alone; vlmid.pruning.controls)
    final_sparsity: float = 0.8      # the schedule's end point r_T = 1 - final_sparsity
    total_steps: int = 100           # schedule length T (hold steps come on top)
    initial_warmup: int = 5          # t_i: dense fine-tuning first
    final_warmup: int = 10           # t_f: fine-tuning at the final sparsity
    delta_t: int = 10                # masks recomputed every delta_t steps
    lr: float = 1e-4
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    beta1: float = 0.85              # PLATON sensitivity EMA
    beta2: float = 0.95              # PLATON uncertainty EMA
    min_keep: int = 4                # every matrix keeps at least this many weights
    groups: tuple = GROUPS           # which parts may be pruned (modality sensitivity: ("vision",))
    checkpoints: tuple = ()          # sparsities at which on_checkpoint is called
    hold_steps: int = 0              # recovery steps at a checkpoint before on_checkpoint
    stop_after_last_checkpoint: bool = True
    bf16: bool = False               # bfloat16 autocast for the forward/backward (CPU with avx512_bf16)

    def validate(self) -> "PruneConfig":
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is unknown: use one of {METHODS} (gradient = Taylor |w g|, "
                             f"wanda = |w| x input norm compared within rows, layer = per-layer sparsities)")
        if self.method == "layer" and self.id_prior:
            raise ValueError("id_prior=True with method='layer': the layer score already contains the ID")
        if self.tower_matched and (not self.id_prior or self.method not in ("magnitude", "gradient", "platon")):
            raise ValueError(f"tower_matched=True with method={self.method!r}, id_prior={self.id_prior}: the tower "
                             "control matches the ID prior's split under one global threshold, so it needs "
                             "id_prior=True and a magnitude, gradient or PLATON score")
        if self.allocation is not None:
            from .allocation import ALLOCATIONS
            if self.allocation not in ALLOCATIONS or self.method == "layer" or self.id_prior:
                raise ValueError(f"allocation={self.allocation!r} with method={self.method!r}, id_prior={self.id_prior}: "
                                 f"an allocation is one of {ALLOCATIONS}, for a base score without the ID prior "
                                 "(the allocation is where the ID acts)")
        if not 0.0 <= self.final_sparsity < 1.0:
            raise ValueError(f"final_sparsity={self.final_sparsity!r} is out of range: it must lie in [0, 1)")
        if self.delta_t < 1 or self.total_steps < 1:
            raise ValueError(f"delta_t={self.delta_t}, total_steps={self.total_steps}: both must be >= 1")
        for c in self.checkpoints:
            if not 0.0 < c <= self.final_sparsity:
                raise ValueError(f"checkpoint sparsity {c!r} is out of range: it must lie in (0, final_sparsity="
                                 f"{self.final_sparsity}]")
        cubic_keep_ratio(0, self.total_steps, 1 - self.final_sparsity, self.initial_warmup, self.final_warmup)
        return self

    @property
    def label(self) -> str:
        """The method's name in tables: :func:`method_label`."""
        return method_label(self.method, self.id_prior, self.allocation, self.tower_matched)


@dataclass
class PruneRun:
    config: PruneConfig
    checkpoints: list = field(default_factory=list)   # one dict per checkpoint (sparsity, step, metrics...)
    reports: dict = field(default_factory=dict)       # {target sparsity: SparsityReport}
    history: pd.DataFrame | None = None               # step, loss, keep target, mask sparsity


def method_label(method: str, id_prior: bool = False, allocation: str | None = None,
                 tower_matched: bool = False) -> str:
    """The name of a pruning method in every table, figure and progress bar: ``magnitude``,
    ``magnitude + ID`` (with the ID prior), ``layer score`` (the layer-level score, which holds the ID
    already), ``wanda, ID-allocated`` / ``magnitude, uniform`` (a per-layer allocation), ``magnitude, ID's
    tower split`` (the tower control)."""
    if method == "layer":
        if id_prior:
            raise ValueError("the layer score already contains the ID: it has no '+ ID' variant")
        return "layer score"
    if allocation is not None:
        return f"{method}, {'ID-allocated' if allocation == 'id' else allocation}"
    if tower_matched:
        return f"{method}, ID's tower split"
    return f"{method} + ID" if id_prior else method


def mask_rule(cfg: PruneConfig, ids: Mapping[str, float] | None = None,
              layer_allocation: Callable[[float], Mapping[str, float]] | None = None
              ) -> Callable[[float, Mapping[str, torch.Tensor]], dict]:
    """``(sparsity, scores) -> masks`` of the method in ``cfg``: one global threshold over the scores (times
    the ID prior, if asked), Wanda's row-by-row masks, or the layer score's per-module sparsities."""
    if cfg.id_prior and ids is None:
        raise ValueError("id_prior=True needs ids={module name: ID} (notebook 01's linear_ids_blip.csv)")
    if (cfg.method == "layer" or cfg.allocation is not None) and layer_allocation is None:
        raise ValueError(f"method={cfg.method!r}, allocation={cfg.allocation!r} needs layer_allocation (target "
                         "sparsity -> per-module sparsities; vlmid.pruning.allocation.allocation_for)")

    def new_masks(sparsity: float, scores: Mapping[str, torch.Tensor]):
        if cfg.method == "layer":
            return layerwise_masks(scores, layer_allocation(sparsity), cfg.min_keep)
        if cfg.allocation is not None:   # each layer at its allocated sparsity; Wanda within rows, the others within the matrix
            within = rowwise_masks if cfg.method == "wanda" else layerwise_masks
            return within(scores, layer_allocation(sparsity), cfg.min_keep)
        if cfg.method == "wanda":
            return wanda_masks(scores, sparsity, ids if cfg.id_prior else None, cfg.min_keep)
        if cfg.tower_matched:
            from .controls import tower_matched_masks
            return tower_matched_masks(scores, ids, sparsity, cfg.min_keep)
        if cfg.id_prior:
            scores = apply_id_prior(scores, ids)
        return global_masks(scores, sparsity, cfg.min_keep)
    return new_masks


@dataclass
class _PruneLoop:
    """One run's state: the masked model and its optimiser, the scorer, the checkpoints still ahead,
    the sparsity the masks hold and the history of every step."""
    model: nn.Module
    loss_fn: Callable[[Any], torch.Tensor]
    batches: Iterator
    cfg: PruneConfig
    opt: torch.optim.Optimizer       # with the masks attached: pruned weights stay zero through every step
    masks: Masks
    scorer: Any                      # make_scorer(...): observes every step's gradients (Wanda: inputs)
    new_masks: Callable              # mask_rule(...)
    on_checkpoint: Callable | None
    run: PruneRun = field(init=False)
    pending: list = field(init=False)   # checkpoint sparsities not reached yet, in order
    history: list = field(init=False, default_factory=list)
    current: float = field(init=False, default=0.0)   # the sparsity the masks hold now

    def __post_init__(self):
        self.run = PruneRun(config=self.cfg)
        self.pending = sorted(self.cfg.checkpoints)

    def train_step(self) -> float:
        """Loss, backward, the scorer sees the gradients, clipping, AdamW (its hook re-applies the masks)."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.bf16):
            loss = self.loss_fn(next(self.batches))
        optimizer_step(loss, self.opt, clip_norm=self.cfg.grad_clip, after_backward=self.scorer.observe)
        return float(loss.detach())

    def passed_checkpoint(self, keep: float) -> bool:
        return bool(self.pending) and 1 - keep >= self.pending[0] - 1e-9

    def checkpoint(self, target: float, step: int) -> None:
        """At a checkpoint sparsity: ``hold_steps`` recovery steps, then the report and the evaluation."""
        cfg, model = self.cfg, self.model
        for _ in range(cfg.hold_steps):
            self.history.append(dict(step=step, loss=self.train_step(), keep=1 - target, sparsity=target))
        self.run.reports[target] = rep = sparsity_report(model, cfg.groups)
        was_training = model.training
        model.eval()
        with _paused(self.scorer):  # Wanda: the evaluation's forward passes are not training activations
            metrics = dict(self.on_checkpoint(target, model)) if self.on_checkpoint else {}
        model.train(was_training)
        self.run.checkpoints.append(dict(sparsity=target, step=step, actual_sparsity=rep.overall,
                                         **{f"sparsity_{g}": v for g, v in rep.per_group.items()}, **metrics))

    def prune_to(self, keep: float, step: int) -> None:
        """A mask update: every checkpoint the schedule has passed, in order, then the schedule's sparsity."""
        scores = self.scorer.scores()
        while self.passed_checkpoint(keep):
            target = self.pending.pop(0)
            self.masks.update(self.new_masks(target, scores))
            self.current = target
            self.checkpoint(target, step)
            if self.cfg.hold_steps:  # held steps moved the weights: fresh scores for what follows
                scores = self.scorer.scores()
        if 1 - keep > self.current + 1e-9:
            self.masks.update(self.new_masks(1 - keep, scores))
            self.current = 1 - keep

    def follow_schedule(self, bar=None) -> None:
        """Steps 1..T of the cubic schedule, a mask update every ``delta_t`` steps (and where the schedule
        ends or passes a checkpoint); stops after the last checkpoint when the config says so."""
        cfg = self.cfg
        T, t_i, t_f = cfg.total_steps, cfg.initial_warmup, cfg.final_warmup
        for step in range(1, T + 1):
            loss = self.train_step()
            keep = cubic_keep_ratio(step, T, 1 - cfg.final_sparsity, t_i, t_f)
            if step >= t_i and (step % cfg.delta_t == 0 or step == T - t_f or self.passed_checkpoint(keep)):
                self.prune_to(keep, step)
            self.history.append(dict(step=step, loss=loss, keep=keep, sparsity=self.current))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", sparsity=f"{self.current:.2f}")
            if cfg.checkpoints and not self.pending and cfg.stop_after_last_checkpoint:
                break


def prune_finetune(model: nn.Module, loss_fn: Callable[[Any], torch.Tensor], batches: Iterator,
                   config: PruneConfig, ids: Mapping[str, float] | None = None,
                   layer_allocation: Callable[[float], Mapping[str, float]] | None = None,
                   on_checkpoint: Callable[[float, nn.Module], Mapping[str, Any]] | None = None,
                   progress: bool = True, desc: str | None = None) -> PruneRun:
    """Fine-tune ``model`` on ``loss_fn(next(batches))`` while pruning it on the cubic schedule.

    ``ids``: ``{module name: ID}``, needed when ``config.id_prior``. ``layer_allocation``:
    ``target sparsity -> {module name: sparsity}``, needed for ``method='layer'`` (see
    :mod:`vlmid.pruning.layer_score`). The masks are detached (and Wanda's input hooks removed)
    when the run ends; the pruned weights stay zero in ``model``. Wanda counts only the training
    forward passes: its hooks are paused during ``on_checkpoint``.
    """
    cfg = config.validate()
    linears = prunable_linears(model, cfg.groups)
    if cfg.allocation is not None and layer_allocation is None:
        from .allocation import allocation_for
        layer_allocation = allocation_for(cfg.allocation, linears, ids, cfg.allocation_spread)
    new_masks = mask_rule(cfg, ids, layer_allocation)
    weights = {n: m.weight for n, m in linears.items()}
    masks = Masks(weights)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    masks.attach(opt)   # the masks' post-step hook zeroes pruned weights again
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.total_steps, desc=desc or cfg.label, leave=False)
    # built last, right before the try: Wanda's hooks must not outlive an error above
    scorer = make_scorer("magnitude" if cfg.method == "layer" else cfg.method, weights, modules=linears,
                         **({"beta1": cfg.beta1, "beta2": cfg.beta2} if cfg.method == "platon" else {}))
    loop = _PruneLoop(model, loss_fn, batches, cfg, opt, masks, scorer, new_masks, on_checkpoint)
    model.train()
    try:
        loop.follow_schedule(bar)
    finally:
        scorer.close()
        masks.detach()
        if bar is not None:
            bar.close()
        model.eval()
    loop.run.history = pd.DataFrame(loop.history)
    return loop.run


def _paused(scorer):
    """``scorer.paused()`` where the scorer has one (Wanda), else a no-op context."""
    return scorer.paused() if hasattr(scorer, "paused") else nullcontext()


def config_dict(cfg: PruneConfig) -> dict:
    """The configuration as plain values, for result tables and provenance."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}


# -- the same loop on a captioner (notebook 02) -------------------------------------------------
def prune_captioner(cap, train: Sequence, config: PruneConfig, dense_state: Mapping[str, torch.Tensor],
                    evaluate: Callable[[Any], Mapping[str, Any]], seed: int = 0, batch_size: int = 32,
                    label: str | None = None, **kwargs) -> PruneRun:
    """Start from ``dense_state``, prune-fine-tune ``cap.model`` with ``cap.loss`` on ``train`` and call
    ``evaluate(cap)`` at every checkpoint; its numbers (and per-item numpy arrays, such as per-scene
    CIDEr-D for paired comparisons) land in ``run.checkpoints``.

    ``kwargs`` go to :func:`prune_finetune` (``ids``, ``layer_allocation``, ``progress``).
    """
    cap.model.load_state_dict(dense_state)
    torch.manual_seed(seed)

    def on_checkpoint(sparsity, model):
        scores = evaluate(cap)
        # numbers for the tables; per-item arrays (e.g. "per_image_cider") for the paired comparisons
        return {k: v for k, v in scores.items() if isinstance(v, (int, float, np.ndarray)) or v is None}

    label = label or config.label
    run = prune_finetune(cap.model, lambda b: cap.loss(*b), caption_batches(train, batch_size, seed), config,
                         on_checkpoint=on_checkpoint, desc=f"{label} (seed {seed})", **kwargs)
    for c in run.checkpoints:
        c.update(method=label, seed=seed)
    return run


@dataclass(frozen=True)
class PruneJob:
    """One run of :func:`prune_captioners`: its schedule, fine-tuning seed and table label, and the IDs of
    its prior where they are not the ones every run shares (e.g. a normalised prior)."""
    config: PruneConfig
    seed: int
    label: str
    ids: Mapping[str, float] | None = None


_SHARED: dict = {}  # what forked workers read (set just before they start, cleared when they are done)


def _run_job(job: PruneJob) -> PruneRun:
    cap, train, dense_state, evaluate, batch_size, kwargs = _SHARED["runs"]
    kwargs = dict(kwargs)
    allocations = kwargs.pop("allocations", None) or {}
    if job.ids is not None:
        kwargs["ids"] = job.ids
    if job.config.allocation is not None:   # each allocation its own rule: a run reads the one its config names
        if job.config.allocation not in allocations:
            raise KeyError(f"{job.label}: allocation={job.config.allocation!r} needs allocations="
                           "{name: target -> per-module sparsities} (vlmid.pruning.allocation_for)")
        kwargs["layer_allocation"] = allocations[job.config.allocation]
    return prune_captioner(cap, train, job.config, dense_state, evaluate, seed=job.seed, batch_size=batch_size,
                           label=job.label, **kwargs)


def _start_worker() -> None:
    torch.set_num_threads(1)  # one core each: the runs, not the matrix products, share the machine


def prune_captioners(cap, train: Sequence, jobs: Sequence[PruneJob], dense_state: Mapping[str, torch.Tensor],
                     evaluate: Callable[[Any], Mapping[str, Any]], batch_size: int = 32, workers: int = 1,
                     progress: bool = True, desc: str = "pruning runs", **kwargs) -> list[PruneRun]:
    """:func:`prune_captioner` for every job, in the jobs' order; ``workers`` > 1 runs that many at once,
    each in a process of its own on one CPU core.

    Every run starts from ``dense_state`` with its own seed, so a run's result does not depend on which
    runs come before it. On a small model the runs share a few cores far better than one run's small
    matrix products do. The workers are forked, so ``evaluate`` may be any function, a notebook's own
    included; nothing is pickled but the jobs and the runs. Use 1 on a GPU: a model per process would
    not share one GPU well. ``kwargs`` go to :func:`prune_finetune` through :func:`prune_captioner`
    (``ids``, ``layer_allocation``); ``allocations={"uniform": ..., "id": ...}`` gives each job whose config
    names an ``allocation`` that rule as its ``layer_allocation``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    jobs = list(jobs)
    _SHARED["runs"] = (cap, train, dense_state, evaluate, batch_size, {**kwargs, "progress": False})
    pool = None
    if workers > 1 and len(jobs) > 1:
        pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("fork"),
                                   initializer=_start_worker)
    try:
        done = pool.map(_run_job, jobs) if pool else map(_run_job, jobs)
        return list(tqdm(done, total=len(jobs), desc=desc, disable=not progress))
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)  # the workers exit normally: their scorers' processes close
        _SHARED.clear()


def per_layer_table(run: PruneRun) -> pd.DataFrame:
    """Per-Linear sparsity (counted zeros) at every checkpoint of ``run``, one row per module and target."""
    label = run.checkpoints[0].get("method") if run.checkpoints else None
    seed = run.checkpoints[0].get("seed") if run.checkpoints else None
    frames = [rep.per_layer.assign(target=t, method=label, seed=seed) for t, rep in run.reports.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
