"""Plug and play: any compression method x any benchmark x any model family, one table.

The compression slides' strength was their plug-and-play launcher. Here three small interfaces do it:

- a **ModelAdapter** (``vlmid.compress.adapters``) wraps one loaded model family (BLIP captioner,
  CLIP, Qwen2-VL) and knows how to swap its ``nn.Module`` (``with_model``), run calibration
  forwards, and make one timed call;
- a **method** (``vlmid.compress.methods``) is a function ``adapter -> adapter``;
- a **Benchmark** (``vlmid.compress.benchmarks``) has ``applies_to(adapter)`` and ``score(adapter) -> dict``.

This module holds the loop that crosses them and the functions that read its table; it
re-exports the three kinds above, so ``bench.CaptionerAdapter``, ``bench.svd`` ... work as one
namespace in the notebook.

``compare(base, methods, benchmarks)`` applies every method to ``base``, measures stored
bytes (whole model, and the replaced layers against their fp32 bytes), latency (warm-up,
interleaved repeats, median) and every applicable benchmark, and returns one DataFrame.
A new compression method or benchmark is one small function or class.

Reading the table: ``method_family`` and ``pareto_table`` (the fronts of quality per byte and per
second), ``latency_rounds`` (every timing round of every method), ``svd_variants`` and
``paired_svd_table`` (plain against activation-aware SVD at equal size, with a paired bootstrap).
Notebook 05's headline, and the rules its claims are decided by, are :mod:`vlmid.experiments.compression`'s.
"""
from __future__ import annotations

import statistics
from typing import Callable, Iterable

from . import quantize
from .adapters import CaptionerAdapter, ClipAdapter, ModelAdapter, Qwen2VLAdapter
from .benchmarks import Benchmark, CaptionBenchmark, ZeroShotBenchmark
from .methods import (bf16, bnb, captioner_suite, chain, clip_suite, fine_tuned, fp32, from_checkpoint, int8_dynamic,
                      layer_drop, svd)

__all__ = ["ModelAdapter", "CaptionerAdapter", "ClipAdapter", "Qwen2VLAdapter", "Benchmark",
           "CaptionBenchmark", "ZeroShotBenchmark", "fp32", "bf16", "int8_dynamic", "bnb",
           "svd", "layer_drop", "from_checkpoint", "fine_tuned", "chain", "captioner_suite", "clip_suite", "compare", "time_rounds", "measure_latency",
           "latency_rounds", "method_family", "pareto_table", "svd_variants", "paired_svd_table"]


# ===================================================================== the loop
def time_rounds(calls: dict[str, Callable], repeats: int = 5, warmup: int = 1,
                progress: bool = False, device=None) -> dict[str, list[float]]:
    """Seconds per call in each timing round: notebook 03's protocol (``vlmid.profiling.time_variants``):
    warm-up rounds, then ``repeats`` rounds interleaved round-robin with a rotating start, so that
    contention on a shared machine hits every variant alike. On a CUDA ``device`` every call is
    timed between two synchronisations (kernels run asynchronously)."""
    from ..profiling import Variant, time_variants

    return time_variants([Variant(k, f) for k, f in calls.items()], repeats=repeats, warmup=warmup,
                         progress=progress, device=device)


def measure_latency(calls: dict[str, Callable], repeats: int = 5, warmup: int = 1,
                    progress: bool = False, device=None) -> dict[str, float]:
    """Median seconds per call over :func:`time_rounds`' rounds."""
    times = time_rounds(calls, repeats=repeats, warmup=warmup, progress=progress, device=device)
    return {k: statistics.median(v) for k, v in times.items()}


def compare(base: ModelAdapter, methods: dict[str, Callable], benchmarks: list[Benchmark],
            latency_repeats: int = 5, progress: bool = True, return_adapters: bool = False,
            keep_models: bool | Iterable[str] = True):
    """One row per method: stored MB, size vs fp32, replaced layers' bytes vs their fp32 bytes,
    latency (median s), and the scores of every benchmark that applies.
    With ``return_adapters``, also the dict name -> compressed adapter. The seconds of every timing
    round are kept in the table's ``attrs["latency_rounds"]`` ({method: [s, ...]}, read them with
    :func:`latency_rounds`): a comparison of speeds needs the rounds' spread, not only their medians.

    ``keep_models``: True (on a CPU) keeps every compressed model alive until all are scored, then
    times them interleaved round-robin, so that contention on a shared machine hits every variant
    alike. On a GPU, which nobody shares, pass the names of the models to keep (or ()): each method is
    then timed alone right after it is scored and its model released (:meth:`ModelAdapter.release`)
    unless named, so that at most one compressed copy besides the kept ones is in memory at a time.
    The released adapters keep what the benchmarks cached (captions, hence paired comparisons)."""
    import pandas as pd
    from tqdm.auto import tqdm

    keep_all = keep_models is True
    keep = set() if keep_all else set(keep_models or ())
    device = next(base.model.parameters()).device
    base_bytes = quantize.stored_bytes(base.model)
    adapters, rows, rounds = {}, [], {}
    for name, method in tqdm(list(methods.items()), desc="methods", disable=not progress):
        ad = method(base)
        adapters[name] = ad
        b = quantize.stored_bytes(ad.model)
        row = {"method": name, "stored_MB": b / 1e6, "size_ratio": b / base_bytes}
        layers = ad.compressed_layers
        if layers:
            row["layers_ratio"] = quantize.layers_bytes(ad.model, layers) / quantize.layers_bytes(base.model, layers)
            row["n_layers"] = len(layers)
        for bench in benchmarks:
            if bench.applies_to(ad):
                row.update(bench.score(ad))
        if not keep_all:
            if latency_repeats:
                rounds[name] = time_rounds({name: ad.timed_call()}, repeats=latency_repeats, device=device)[name]
                row["latency_s"] = statistics.median(rounds[name])
            if name not in keep and ad is not base:
                ad.release()
                _free_cached_memory()
        rows.append(row)
    if keep_all and latency_repeats:
        rounds = time_rounds({k: a.timed_call() for k, a in adapters.items()}, repeats=latency_repeats, device=device)
        for row in rows:
            row["latency_s"] = statistics.median(rounds[row["method"]])
    df = pd.DataFrame(rows)
    df.attrs["latency_rounds"] = rounds
    return (df, adapters) if return_adapters else df


def _free_cached_memory() -> None:
    """Hand the CUDA caching allocator's free blocks back (after a model was released)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ===================================================================== reading the table
def latency_rounds(table):
    """The seconds of every timing round of every method of ``compare``'s table, one row per method and
    round (``method``, ``round``, ``latency_s``): within a round the methods ran one after another."""
    import pandas as pd

    return pd.DataFrame([{"method": m, "round": r, "latency_s": s}
                         for m, secs in table.attrs.get("latency_rounds", {}).items() for r, s in enumerate(secs)],
                        columns=["method", "round", "latency_s"])


def method_family(m: str) -> str:
    """The kind of a method, for colours: 'svd whiten 0.85' -> 'svd whiten', 'bnb nf4' -> 'bitsandbytes',
    'layer drop + ft' -> 'layer drop', 'svd whiten 0.80 + int8' -> 'low rank + int8', 'fp32 + ft (control)' -> 'fp32'."""
    if m.endswith("+ int8"):
        return "low rank + int8"
    if m.startswith("svd"):
        return " ".join(m.split()[:2])
    return {"bnb": "bitsandbytes", "layer": "layer drop"}.get(m.split()[0], m.split(" +")[0])


def pareto_table(df, x: str, quality: str = "CIDEr"):
    """A copy of ``compare``'s table with ``family`` (``method_family``) and ``pareto``: on the front of
    ``quality`` (higher is better) against ``x`` (``stored_MB`` or ``latency_s``, lower is better)."""
    from ..pareto import pareto_mask

    d = df.copy()
    d["family"] = d["method"].map(method_family)
    d["pareto"] = pareto_mask(d, higher=[quality], lower=[x])
    return d


def svd_variants(table):
    """The low-rank rows of a caption table (methods ``svd <variant> <energy>``, combinations with int8
    left out), with ``variant`` ('plain', 'asvd', 'whiten') and ``energy`` (float) columns added."""
    rows = table[table["method"].str.startswith("svd") & ~table["method"].str.contains("int8")].copy()
    rows["variant"] = rows["method"].str.split().str[1]
    rows["energy"] = rows["method"].str.split().str[2].astype(float)
    return rows


VERDICTS = {1.0: "ahead", 0.0: "within noise", -1.0: "behind"}


def paired_svd_table(benchmark: CaptionBenchmark, adapters: dict, svd_rows, seed: int = 0,
                     variants: Iterable[str] = ("whiten", "asvd")):
    """Each activation-aware variant against plain SVD at the same energy (hence the same ranks and bytes),
    from the largest energy down: CIDEr-D difference with its paired-bootstrap interval
    (``CaptionBenchmark.paired_cider``), the verdict ('ahead' / 'within noise' / 'behind') and the
    difference in reference NLL. ``adapters``: ``compare(..., return_adapters=True)``'s; ``svd_rows``:
    ``svd_variants``'s. A DataFrame."""
    import pandas as pd

    by_method = svd_rows.set_index("method")
    paired = []
    for e in sorted(svd_rows.energy.unique(), reverse=True):
        plain = f"svd plain {e:.2f}"
        for variant in variants:
            aware = f"svd {variant} {e:.2f}"
            d = benchmark.paired_cider(adapters[aware], adapters[plain], seed=seed)
            paired.append({"energy": e, "variant": variant, "size_ratio": by_method.at[plain, "size_ratio"],
                           "CIDEr_aware_minus_plain": d["diff"], "ci_low": d["low"], "ci_high": d["high"],
                           "verdict": VERDICTS[d["verdict"]],
                           "nll_aware_minus_plain": by_method.at[aware, "nll"] - by_method.at[plain, "nll"]})
    return pd.DataFrame(paired)
