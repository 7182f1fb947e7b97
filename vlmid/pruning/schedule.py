"""PLATON's cubic schedule of the kept fraction of weights during fine-tuning.

    r_t = r_0                                                 t <  t_i      (initial warm-up)
    r_t = r_T + (r_0 - r_T) * (1 - (t - t_i) / (T - t_i - t_f))^3   t_i <= t < T - t_f
    r_t = r_T                                                 t >= T - t_f  (final fine-tuning)

Pruning is fast at first, while many weights are clearly useless, and slow near the end,
where each further weight costs more and the model needs time to recover.
"""
from __future__ import annotations


def cubic_keep_ratio(step: int, total_steps: int, final_keep: float, initial_warmup: int = 0,
                     final_warmup: int = 0, initial_keep: float = 1.0) -> float:
    """The kept fraction r_t at optimiser step ``step`` (0-based) of ``total_steps``."""
    if not 0.0 <= final_keep <= initial_keep <= 1.0:
        raise ValueError(f"final_keep={final_keep!r}, initial_keep={initial_keep!r}: "
                         f"need 0 <= final_keep <= initial_keep <= 1")
    span = total_steps - initial_warmup - final_warmup
    if initial_warmup < 0 or final_warmup < 0 or span <= 0:
        raise ValueError(f"initial_warmup={initial_warmup}, final_warmup={final_warmup}: both must be >= 0 "
                         f"and leave at least one pruning step in total_steps={total_steps}")
    if step < initial_warmup:
        return float(initial_keep)
    if step >= total_steps - final_warmup:
        return float(final_keep)
    progress = (step - initial_warmup) / span
    return float(final_keep + (initial_keep - final_keep) * (1.0 - progress) ** 3)


def first_step_below(keep: float, total_steps: int, final_keep: float, initial_warmup: int = 0,
                     final_warmup: int = 0) -> int:
    """The first step at which the schedule's kept fraction is <= ``keep`` (for planning checkpoints)."""
    if keep < final_keep:
        raise ValueError(f"keep={keep!r} is never reached: the schedule stops at final_keep={final_keep!r}")
    for t in range(total_steps):
        if cubic_keep_ratio(t, total_steps, final_keep, initial_warmup, final_warmup) <= keep + 1e-12:
            return t
    return total_steps
