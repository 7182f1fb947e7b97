"""Compression of a trained VLM, the compression slides' comparison on one model and one evaluation.

- :mod:`vlmid.compress.quantize`   bf16, torch.ao int8 dynamic, bitsandbytes LLM.int8 / nf4 / fp4,
                                   and ``stored_bytes`` (the real bytes of what a model stores)
- :mod:`vlmid.compress.lowrank`    Linear -> two Linears by SVD, rank by retained spectral energy;
                                   plain, ASVD-scaled and SVD-LLM-whitened; save / load with shape metadata
- :mod:`vlmid.compress.layerdrop`  delete decoder layers (every second one), then a short fine-tune
- :mod:`vlmid.compress.adapters`   one interface per model family (BLIP captioner, CLIP, Qwen2-VL)
- :mod:`vlmid.compress.methods`    compression methods as functions adapter -> adapter
- :mod:`vlmid.compress.benchmarks` captioning and zero-shot scores of an adapter
- :mod:`vlmid.compress.projections` the CLIP token report's Extension B: CLIP's projections made low-rank
- :mod:`vlmid.compress.bench`      plug and play: adapter x method x benchmark -> one table, and
                                   the functions that read it (Pareto fronts, paired SVD table, headline)

    from vlmid.compress import bench
    ad = bench.CaptionerAdapter(cap, calib=train_examples, timing_images=images[:8])
    df = bench.compare(ad, {"fp32": bench.fp32, "nf4": bench.bnb("nf4")}, [bench.CaptionBenchmark(test)])
"""
from .layerdrop import decoder_layers_path, drop_layers, every_second, finetune, last_layers
from .lowrank import (LowRankLinear, collect_input_stats, factorize, factorize_linear, load_lowrank, plan_ranks,
                      plan_params, retained_energy_rank, save_lowrank)
from .quantize import (bnb_from_pretrained, layers_bytes, linear_names, quantize_bnb, quantize_int8_dynamic,
                       stored_bytes, to_bf16)

__all__ = [
    "to_bf16", "quantize_int8_dynamic", "quantize_bnb", "bnb_from_pretrained", "stored_bytes",
    "layers_bytes", "linear_names", "LowRankLinear", "retained_energy_rank", "factorize_linear",
    "collect_input_stats", "plan_ranks", "factorize", "plan_params", "save_lowrank", "load_lowrank",
    "decoder_layers_path", "last_layers", "every_second", "drop_layers", "finetune",
]
