"""One optimiser step, the same in every training loop of the package.

    loss = model_loss(batch)
    optimizer_step(loss, opt, sched, clip_norm=1.0)

The tiny models' build, notebook 02's prune-fine-tune runs, notebook 05's layer-drop heal and
notebook 04's retrieval models all take this step; they differ only in whether the gradients are
clipped, whether a schedule steps, and (pruning) what looks at the gradients before they are clipped.
"""
from __future__ import annotations

from typing import Callable

import torch


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler=None,
                   clip_norm: float | None = None, after_backward: Callable[[], None] | None = None) -> None:
    """Zero the gradients, backpropagate ``loss``, call ``after_backward()`` (e.g. a pruning scorer that
    reads the gradients), clip the gradients of every parameter ``optimizer`` holds to total norm
    ``clip_norm`` (None or 0: no clipping), step ``optimizer``, then ``scheduler`` (if any)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if after_backward is not None:
        after_backward()
    if clip_norm:
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


__all__ = ["optimizer_step"]
