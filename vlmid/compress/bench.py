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

Reading the table (notebook 05): ``method_family`` and ``pareto_table`` (the fronts of quality per
byte and per second), ``svd_variants`` and ``paired_svd_table`` (plain against activation-aware SVD
at equal size, with a paired bootstrap), and ``headline_metrics`` (the numbers of ``metrics.json``).
"""
from __future__ import annotations

import statistics
from typing import Callable, Iterable

from . import quantize
from .adapters import CaptionerAdapter, ClipAdapter, ModelAdapter, Qwen2VLAdapter
from .benchmarks import Benchmark, CaptionBenchmark, ZeroShotBenchmark
from .methods import bf16, bnb, captioner_suite, chain, clip_suite, fine_tuned, fp32, int8_dynamic, layer_drop, svd

__all__ = ["ModelAdapter", "CaptionerAdapter", "ClipAdapter", "Qwen2VLAdapter", "Benchmark",
           "CaptionBenchmark", "ZeroShotBenchmark", "fp32", "bf16", "int8_dynamic", "bnb",
           "svd", "layer_drop", "fine_tuned", "chain", "captioner_suite", "clip_suite", "compare", "measure_latency", "method_family",
           "pareto_table", "svd_variants", "paired_svd_table", "headline_metrics"]


# ===================================================================== the loop
def measure_latency(calls: dict[str, Callable], repeats: int = 5, warmup: int = 1,
                    progress: bool = False, device=None) -> dict[str, float]:
    """Median seconds per call: notebook 03's protocol (``vlmid.profiling.time_variants``): warm-up
    rounds, then ``repeats`` rounds interleaved round-robin with a rotating start, so that
    contention on a shared machine hits every variant alike. On a CUDA ``device`` every call is
    timed between two synchronisations (kernels run asynchronously)."""
    from ..profiling import Variant, time_variants

    times = time_variants([Variant(k, f) for k, f in calls.items()], repeats=repeats, warmup=warmup,
                          progress=progress, device=device)
    return {k: statistics.median(v) for k, v in times.items()}


def compare(base: ModelAdapter, methods: dict[str, Callable], benchmarks: list[Benchmark],
            latency_repeats: int = 5, progress: bool = True, return_adapters: bool = False,
            keep_models: bool | Iterable[str] = True):
    """One row per method: stored MB, size vs fp32, replaced layers' bytes vs their fp32 bytes,
    latency (median s), and the scores of every benchmark that applies.
    With ``return_adapters``, also the dict name -> compressed adapter.

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
    adapters, rows = {}, []
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
                row["latency_s"] = measure_latency({name: ad.timed_call()}, repeats=latency_repeats,
                                                   device=device)[name]
            if name not in keep and ad is not base:
                ad.release()
                _free_cached_memory()
        rows.append(row)
    if keep_all and latency_repeats:
        lat = measure_latency({k: a.timed_call() for k, a in adapters.items()}, repeats=latency_repeats, device=device)
        for row in rows:
            row["latency_s"] = lat[row["method"]]
    df = pd.DataFrame(rows)
    return (df, adapters) if return_adapters else df


def _free_cached_memory() -> None:
    """Hand the CUDA caching allocator's free blocks back (after a model was released)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ===================================================================== reading the table
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


def headline_metrics(caption_table, clip_table, paired, svd_rows, mid_energy: float) -> dict:
    """Notebook 05's headline numbers (its ``metrics.json``) from the caption and CLIP tables of ``compare``,
    ``paired_svd_table`` and ``svd_variants``; ``mid_energy``: the low-rank size reported. The int8-dynamic
    keys appear only when that method ran (CPU), the grounded ones only when the table has them (tiny profile)."""
    def row(name, df=caption_table):
        return df[df["method"] == name].iloc[0]

    fp = row("fp32")
    mid = f"{mid_energy:.2f}"
    whiten = paired[paired.variant == "whiten"]
    headline = {
        "int8_bytes_ratio": row("bnb int8")["layers_ratio"], "nf4_bytes_ratio": row("bnb nf4")["layers_ratio"],
        "int8_cider": row("bnb int8")["CIDEr"], "nf4_cider": row("bnb nf4")["CIDEr"], "fp32_cider": fp["CIDEr"],
        "svd_plain_cider": row(f"svd plain {mid}")["CIDEr"], "svd_aware_cider": row(f"svd whiten {mid}")["CIDEr"],
        "svd_asvd_cider": row(f"svd asvd {mid}")["CIDEr"], "svd_mid_energy": mid_energy,
        "svd_mid_size_ratio": row(f"svd plain {mid}")["size_ratio"],
        "svd_plain_nll": row(f"svd plain {mid}")["nll"], "svd_aware_nll": row(f"svd whiten {mid}")["nll"],
        # at how many sizes whitening (SVD-LLM) is ahead of / behind plain SVD in CIDEr-D beyond the noise
        # (paired bootstrap, 95 %), and at how many its reference NLL is lower
        "svd_aware_wins": int((whiten.verdict == "ahead").sum()),
        "svd_aware_losses": int((whiten.verdict == "behind").sum()),
        "svd_aware_nll_wins": int((whiten.nll_aware_minus_plain < 0).sum()),
        "svd_sizes": svd_rows.energy.nunique(),
        "layerdrop_cider": row("layer drop + ft")["CIDEr"], "layerdrop_noft_cider": row("layer drop")["CIDEr"],
        "fp32_ft_cider": row("fp32 + ft (control)")["CIDEr"],
        "fp32_semantic": fp["semantic"], "fp32_nll": fp["nll"], "fp32_latency_s": fp["latency_s"],
        "fp32_zeroshot": row("fp32", clip_table)["zeroshot_top1"], "nf4_zeroshot": row("bnb nf4", clip_table)["zeroshot_top1"],
    }
    if (caption_table["method"] == "int8 dynamic").any():
        headline |= {"int8_dynamic_bytes_ratio": row("int8 dynamic")["layers_ratio"],
                     "int8_dynamic_cider": row("int8 dynamic")["CIDEr"],
                     "int8_dynamic_latency_ratio": row("int8 dynamic")["latency_s"] / fp["latency_s"]}
    if "garment_f1" in caption_table:  # tiny profile only: garments read back from the captions (COCO has no labels)
        headline |= {f"{k}_garment_f1": row(m)["garment_f1"] for k, m in (("fp32", "fp32"), ("int8", "bnb int8"), ("nf4", "bnb nf4"))}
        headline["fp32_binding_acc"] = fp["binding_acc"]
    return headline


# the compressions the layer-drop claim is compared with (at the reported low-rank size)
def _rivals(mid: str) -> tuple[str, ...]:
    return ("bnb int8", "bnb nf4", f"svd plain {mid}", f"svd whiten {mid}")


def compression_effects(benchmark: CaptionBenchmark, adapters: dict, caption_table, paired, mid_energy: float,
                        seed: int = 0) -> dict:
    """The effects notebook 05's claims are decided on, each with its paired-bootstrap 95 % interval over the
    test scenes (:mod:`vlmid.uncertainty`): int8 minus 95 % of fp32 (does quantization keep the quality?),
    layer drop + fine-tune minus the best of the other compressions, and whitened minus plain SVD at the
    reported size. Keys ``<effect>``, ``<effect>_ci_low``, ``<effect>_ci_high``, plus ``best_other_method``."""
    from ..uncertainty import paired_effect

    mid = f"{mid_energy:.2f}"
    per_image = lambda m: benchmark.per_image_cider(adapters[m])  # noqa: E731 (cached captions: no new decoding)
    out = paired_effect(per_image("bnb int8"), per_image("fp32"), 0.95, seed=seed).as_dict("int8_vs_95pct_fp32")
    cider = caption_table.set_index("method")["CIDEr"]
    rival = max((m for m in _rivals(mid) if m in cider.index), key=lambda m: cider[m])
    out |= paired_effect(per_image("layer drop + ft"), per_image(rival), seed=seed).as_dict("layerdrop_vs_best_other")
    out["best_other_method"] = rival
    at_mid = paired[(paired.variant == "whiten") & (paired.energy.round(2) == round(mid_energy, 2))].iloc[0]
    out |= {"svd_aware_minus_plain": float(at_mid.CIDEr_aware_minus_plain),
            "svd_aware_minus_plain_ci_low": float(at_mid.ci_low), "svd_aware_minus_plain_ci_high": float(at_mid.ci_high)}
    return out
