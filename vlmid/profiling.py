"""Latency, throughput, FLOPs and peak memory of model variants, measured fairly.

    from vlmid.profiling import Variant, profile_variants
    variants = [Variant("baseline", run=lambda: model(px)),
                Variant("evit 0.7", run=lambda: model(px), context=lambda: tokens.patched(model, "evit", keep=0.7))]
    df = profile_variants(variants, batch_size=len(px), repeats=10, warmup=3, threads=1)

Why this protocol (docs/methods.md §10): on a shared machine, timing variants one after
another lets load changes masquerade as speed-ups (a baseline timed first came out 30 %
slower than it is). So all variants are warmed up, then timed round-robin, one call each
per round, starting the round at a different variant each time; we report the median and
the interquartile range over rounds. The thread count is fixed and recorded.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-add; matmuls,
convolutions and attention): exact and noise-free, so FLOP ratios are the reliable cost
numbers when timings are noisy. On CPU, PyTorch's fused attention op has no FLOP formula
in the counter, so we register the standard one (``sdpa_flop_count``) for it.

Peak memory is the peak of bytes held by tensors allocated *during* one call, above what
was allocated before it (activations and temporaries, not weights): on GPU from
``torch.cuda.max_memory_allocated``; on CPU, where PyTorch keeps no such counter, from the
allocation and free events the torch profiler records (``profile_memory=True``), summed in
time order. The method used is written next to every number.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


@dataclass
class Variant:
    """One thing to measure: ``run()`` does one forward; ``context()`` (optional) is
    entered around it but outside the timer (e.g. patching a shared model)."""
    name: str
    run: Callable[[], Any]
    context: Callable[[], ContextManager] | None = None

    def enter(self) -> ContextManager:
        return self.context() if self.context is not None else contextlib.nullcontext()


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# on CPU the counter sees the fused CPU kernel (or, under inference_mode, the composite op
# itself); neither has a formula registered in torch
_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops,
                   torch.ops.aten.scaled_dot_product_attention: _sdpa_cpu_flops}


def count_flops(run: Callable[[], Any]) -> int:
    """FLOPs of one call of ``run()`` (forward only, under ``no_grad``)."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS) as counter:
        run()
    return int(counter.get_total_flops())


def n_parameters(module: torch.nn.Module) -> int:
    """Every parameter of ``module`` (shared tensors counted once, as ``parameters()`` yields them)."""
    return sum(p.numel() for p in module.parameters())


def flops_by_op(run: Callable[[], Any]) -> dict[str, int]:
    """FLOPs of one call of ``run()`` per aten op (e.g. ``addmm``, ``convolution``, attention)."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS) as counter:
        run()
    return {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}


def synchronize(device: torch.device | str | None) -> None:
    """Wait for ``device``'s queued work (CUDA); nothing to wait for on the CPU or with ``None``."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (the profiler's C++ backend prints start/stop lines there)."""
    import os
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor (unusual embedding): just run
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_memory(run: Callable[[], Any], device: torch.device | str | None = None) -> tuple[int, str]:
    """(peak bytes allocated during one call of ``run()`` above the level before it, method)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        with torch.no_grad():
            run()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before), "torch.cuda.max_memory_allocated"
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    level = peak = 0
    for _, nbytes in events:  # +bytes on allocation, -bytes on free
        level += nbytes
        peak = max(peak, level)
    return int(peak), "torch.profiler memory events (CPU)"


def time_variants(variants: list[Variant], repeats: int = 10, warmup: int = 3, device=None,
                  progress: bool = True) -> dict[str, list[float]]:
    """Seconds per call of every variant, ``repeats`` rounds interleaved round-robin."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats={repeats!r} must be >= 1 and warmup={warmup!r} >= 0")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique: {names}")
    device = torch.device(device) if device is not None else None
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    from tqdm.auto import tqdm

    with torch.no_grad():
        for _ in range(warmup):
            for v in variants:
                with v.enter():
                    v.run()
        for rnd in tqdm(range(repeats), desc="timing rounds", disable=not progress, leave=False):
            shift = rnd % len(variants)  # rotate who goes first: no variant always runs after a cold one
            for v in variants[shift:] + variants[:shift]:
                with v.enter():
                    synchronize(device)
                    t0 = time.perf_counter()
                    v.run()
                    synchronize(device)
                    times[v.name].append(time.perf_counter() - t0)
    return times


def profile_variants(variants: list[Variant], batch_size: int, repeats: int = 10, warmup: int = 3,
                     threads: int | None = 1, device=None, flops: bool = True, memory: bool = True,
                     progress: bool = True):
    """One row per variant: latency (median, quartiles; ms per batch), throughput (items/s),
    FLOPs per item, peak memory (MiB), and how each was measured."""
    import pandas as pd

    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        times = time_variants(variants, repeats=repeats, warmup=warmup, device=device, progress=progress)
        rows = []
        for v in variants:
            t = sorted(times[v.name])
            med = statistics.median(t)
            q25, q75 = (t[0], t[-1]) if len(t) < 4 else statistics.quantiles(t, n=4)[0::2]
            row = {"variant": v.name, "latency_ms": 1e3 * med, "latency_ms_q25": 1e3 * q25,
                   "latency_ms_q75": 1e3 * q75, "throughput_per_s": batch_size / med,
                   "batch_size": batch_size, "repeats": repeats, "threads": torch.get_num_threads()}
            with v.enter():
                if flops:
                    row["gflops_per_item"] = count_flops(v.run) / batch_size / 1e9
                if memory:
                    nbytes, how = peak_memory(v.run, device)
                    row["peak_mem_mib"] = nbytes / 2**20
                    row["memory_method"] = how
            rows.append(row)
    finally:
        torch.set_num_threads(old_threads)
    return pd.DataFrame(rows)


def param_bytes(model: torch.nn.Module) -> int:
    """Bytes of a model's parameters and buffers as stored (dtype-aware)."""
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
