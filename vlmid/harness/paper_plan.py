"""The default paper plan of every notebook, estimated for one 80 GB GPU before anyone has run it.

    python -m vlmid.harness.paper_plan            # the table the README's paper section shows
    python -m vlmid.harness.paper_plan --readme   # rewrite that table in README.md

Each notebook prints its own plan and an estimate from a batch it times on the machine it runs on
(:mod:`vlmid.harness.plan`); that is the figure to trust. This module answers the question a researcher asks
*before* booking the GPU: every notebook's work counted from its default paper parameters (the same
``plan`` methods, on BLIP-base, CLIP ViT-B/16 and Qwen2-VL-2B built on PyTorch's meta device, so
nothing is downloaded or allocated), turned into hours with the per-unit seconds of
:data:`ASSUMED_GPU_SECONDS` and into memory with :func:`peak_memory_gb`. Both are estimates with
the method stated; neither has been measured on a GPU.

Memory follows two standard rules. Weights take 4 bytes a parameter in fp32; training adds the
gradient and AdamW's two moments (16 bytes a parameter in all). Activations kept for the backward
pass follow Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models"
(MLSys 2023): a transformer layer keeps about ``s * b * h * (34 + 5 * a * s / h)`` bytes in 16-bit
for ``s`` tokens, batch ``b``, width ``h`` and ``a`` heads, twice that in fp32; inference keeps
about one layer's worth at a time.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from .plan import Plan

# Seconds per unit on one A100/H100-class GPU in fp32 (TF32 off, as torch's default), assumed from
# FLOPs at an effective 25 TFLOP/s where the GPU is compute-bound, and from the number of sequential
# steps where it is not (beam search). BLIP-base's vision tower at 384 px (577 tokens) is about
# 110 GFLOP an image, CLIP ViT-B/16's image encoder at 224 px about 35 GFLOP.
ASSUMED_GPU_SECONDS = {
    "caption": 0.02,          # ViT 4 ms + 20 beam-search steps (3 beams) at batch 64, + COCO scoring on the CPU
    "blip pass": 0.005,       # the ViT and one teacher-forced pass of the text decoder
    "blip image": 0.004,      # 110 GFLOP at 25 TFLOP/s
    "blip train pair": 0.015, # forward + backward: three times a pass
    "clip pass": 0.002,       # image encoder + text encoder
    "clip image": 0.0015,     # 35 GFLOP at 25 TFLOP/s
    "twonn fit": 0.3,         # 1,000 points of at most 768 dimensions and 200 bootstrap resamples (CPU-side)
    "step": 0.25,             # notebook 02: BLIP-base at batch 16, three passes' FLOPs, AdamW, masks every 10 steps
    "qwen2-vl caption": 0.12, # Qwen2-VL-2B: a few hundred image tokens, 20 greedy steps, batch 8
    "benchmark fit": 2.0,     # notebook 01's TwoNN vs scikit-dimension benchmark (CPU, one thread)
    "known-dimension fit": 0.5,
    "test image": 0.001,      # notebook 04's small matching models (CPU)
}
CPU_STEP_SECONDS = 0.05       # notebook 04 trains its own small models on the CPU (one thread), whatever the GPU


@dataclass(frozen=True)
class Shape:
    """What the memory rules need of a model: parameters, and the widest tower's layers."""
    params: int
    tokens: int
    width: int
    heads: int
    layers: int


def _meta(build):
    import torch

    with torch.device("meta"):
        return build()


def paper_models() -> dict:
    """BLIP-base and CLIP ViT-B/16 from their default configurations, on the meta device."""
    from transformers import BlipConfig, BlipForConditionalGeneration, CLIPConfig, CLIPModel

    blip = _meta(lambda: BlipForConditionalGeneration(BlipConfig()))
    clip_cfg = CLIPConfig(vision_config=dict(patch_size=16, image_size=224), projection_dim=512)
    clip = _meta(lambda: CLIPModel(clip_cfg))
    return {"blip": blip, "clip": clip}


def _shape(model, tokens: int) -> Shape:
    from ..profiling import n_parameters

    v = model.config.vision_config
    return Shape(n_parameters(model), tokens, v.hidden_size, v.num_attention_heads, v.num_hidden_layers)


QWEN2VL_PARAMS = 2_210_000_000   # Qwen2-VL-2B-Instruct's model card: 2.2 B parameters


def activation_bytes(s: Shape, batch: int, bytes_per_value: int = 4) -> float:
    """Activations of one layer for the backward pass (Korthikanti et al. 2023), in fp32 by default."""
    return s.tokens * batch * s.width * (34 + 5 * s.heads * s.tokens / s.width) * bytes_per_value / 2


def peak_memory_gb(held: list[tuple[Shape, float]], train: tuple[Shape, int] | None = None,
                   infer: tuple[Shape, int] | None = None, extra_bytes: float = 0.0) -> float:
    """GB on the GPU: the weights of every model held (``(shape, bytes a parameter)``), plus for
    ``train=(shape, batch)`` gradients, AdamW's moments and every layer's activations, or for
    ``infer=(shape, batch)`` one layer's activations; plus ``extra_bytes``."""
    total = sum(s.params * b for s, b in held) + extra_bytes
    if train is not None:
        s, batch = train
        total += 12 * s.params + s.layers * activation_bytes(s, batch)
    if infer is not None:
        s, batch = infer
        total += activation_bytes(s, batch)
    return total / 1e9


def paper_plans() -> list[tuple[str, Plan, float]]:
    """(notebook, its default paper plan on one GPU, estimated peak GB) for notebooks 00-05."""
    from ..compress.methods import captioner_suite, clip_suite
    from ..id import block_sites, linear_sites
    from ..params.build import BuildParams
    from ..params.compression import CompressionParams
    from ..params.flickr8k import Flickr8kParams
    from ..params.intrinsic_dimension import IntrinsicDimensionParams
    from ..params.pruning import PruningParams
    from ..params.token_pruning import TokenPruningParams
    from ..experiments import pruning, token_pruning

    def on_gpu(cls):
        params = cls(profile="paper", device="cpu")
        params.device = "cuda"   # the counts of a GPU run (e.g. no torch.ao int8, which has CPU kernels only)
        return params

    m = paper_models()
    blip, clip = _shape(m["blip"], 577), _shape(m["clip"], 197)
    with contextlib.redirect_stdout(io.StringIO()):   # its note that 'flatten' is left out of a paper run
        id_params = on_gpu(IntrinsicDimensionParams)
    comp = on_gpu(CompressionParams)
    methods = captioner_suite(comp)
    # on a GPU notebook 05 holds the base model, the copy being scored and the two low-rank copies it probes
    # (bench.compare's keep_models), each at most an fp32 copy; CLIP and Qwen2-VL the base and one copy
    blip_copies = 4.0 * 4
    qwen = Shape(QWEN2VL_PARAMS, 1200, 1536, 12, 28)
    return [
        ("00", on_gpu(BuildParams).plan(), peak_memory_gb([(blip, 4), (clip, 4)], infer=(blip, 64))),
        ("01", id_params.plan(len(block_sites(m["blip"])), len(block_sites(m["clip"])), len(linear_sites(m["blip"]))),
         peak_memory_gb([(blip, 4), (clip, 4)], infer=(blip, id_params.batch_size))),
        ("02", pruning.plan(on_gpu(PruningParams)),
         # + PLATON's two moving averages and a mask per prunable weight, and the dense copy every run restarts from
         peak_memory_gb([(blip, 4)], train=(blip, 16), extra_bytes=(4 + 4 + 1 + 4) * blip.params)),
        ("03", token_pruning.plan(on_gpu(TokenPruningParams)), peak_memory_gb([(clip, 4)], infer=(clip, 256))),
        ("04", Flickr8kParams(profile="paper", device="cpu").plan(n_train=2400, n_test=400, n_models=5), 0.0),
        ("05", comp.plan(len(methods), len(clip_suite(comp, methods))),
         peak_memory_gb([(blip, blip_copies), (clip, 4.0 * 2), (qwen, 4.0 * 2)], train=(blip, 32),
                        infer=(qwen, 8))),
    ]


def plan_hours(plan: Plan) -> float:
    rates = dict(ASSUMED_GPU_SECONDS)
    if plan.notebook == "04":
        rates["step"] = CPU_STEP_SECONDS
    return plan.seconds(rates) / 3600


def markdown_table() -> str:
    """The README's table: per notebook, the work of its default paper plan, hours and peak GB."""
    rows = ["| notebook | default paper plan | est. GPU hours | est. peak GPU memory |", "|---|---|---|---|"]
    total = 0.0
    for nb, plan, gb in paper_plans():
        hours = plan_hours(plan)
        total += hours
        work = "; ".join(f"{n:,} {unit}" for unit, n in plan.totals().items())
        memory = "none (CPU)" if gb == 0 else f"{gb:.0f} GB"
        rows.append(f"| {nb} | {work} | {hours:.2f}{' (CPU)' if nb == '04' else ''} | {memory} |")
    rows.append(f"| all | | {total:.1f} | |")
    return "\n".join(rows)


README_START, README_END = "<!-- paper-plan:start -->", "<!-- paper-plan:end -->"


def readme_section() -> str:
    return ("\n*Generated by `python -m vlmid.harness.paper_plan --readme` (estimates, not measurements; the method is in "
            "`vlmid/harness/paper_plan.py`).*\n\n" + markdown_table() + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vlmid.harness.paper_plan", description=__doc__.splitlines()[0])
    ap.add_argument("--readme", action="store_true", help="rewrite the table in the repository's README.md")
    args = ap.parse_args(argv)
    if not args.readme:
        print(markdown_table())
        return 0
    from ..paths import REPO_ROOT
    from .report import replace_section
    from .results import atomic_write

    readme = Path(REPO_ROOT) / "README.md"
    try:
        new = replace_section(readme.read_text(), readme_section(), (README_START, README_END))
    except ValueError as exc:
        print(f"{readme}: {exc}; nothing written", file=sys.stderr)
        return 2
    atomic_write(readme, lambda f: f.write(new))
    print(f"wrote the paper plan table into {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
