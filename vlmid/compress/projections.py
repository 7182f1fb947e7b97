"""The CLIP token report's Extension B, evaluated: CLIP's image and text projections made low-rank.

The report proposed (and never ran) low-rank "cross-modal fusion": replace the projections that map
each tower into the shared embedding space by low-rank factors. Here each projection ``W`` of shape
``[p, d]`` becomes truncated-SVD factors of rank ``r`` (``r (d + p)`` weights instead of ``d p``),
without fine-tuning, and zero-shot top-1 is measured at each rank (notebook 03).
"""
from __future__ import annotations

import torch

from ..profiling import param_bytes


@torch.no_grad()
def lowrank_projections(clip, zs, ranks: list[int], batch_size: int = 256, progress: bool = True):
    """The CLIP token report's Extension B, evaluated: the image and text projections (``W`` of shape
    ``[p, d]``) replaced by truncated-SVD factors of rank ``r`` (``r (d + p)`` weights
    instead of ``d p``), no fine-tuning. Zero-shot top-1 (``vlmid.metrics.zeroshot``, on both towers' pooled outputs
    computed once),
    stored bytes and the relative Frobenius error of each factorised projection; rank
    ``"full"`` is the dense original. Model bytes count the whole model with the factors."""
    import pandas as pd
    from tqdm.auto import tqdm

    from ..compress.lowrank import factorize_linear
    from ..metrics.zeroshot import embed_batches, ensemble_class_embeddings, top1_from_embeddings, zeroshot_pixels

    model = clip.model
    pixels = zeroshot_pixels(clip, zs)
    # only the projections change between ranks: both towers' pooled outputs are computed once
    pooled = torch.cat([model.vision_model(pixel_values=pixels[s:s + batch_size]).pooler_output
                        for s in range(0, len(pixels), batch_size)])
    texts = [t.format(c) for c in zs.classnames for t in (list(zs.templates) or ["{}"])]
    text_inputs = {k: v.to(pixels.device) for k, v in clip.text_inputs(texts).items()}
    text_pooled = model.text_model(**text_inputs).pooler_output
    dense_bytes = param_bytes(model)
    rows = []
    for rank in tqdm([None] + list(ranks), desc="low-rank projections", disable=not progress):
        proj, errors = {}, {}
        for name in ("visual_projection", "text_projection"):
            dense = getattr(model, name)
            if rank is None:
                proj[name], errors[name] = dense, 0.0
                continue
            low = factorize_linear(dense, rank=rank)
            eye = torch.eye(dense.in_features, dtype=dense.weight.dtype, device=dense.weight.device)
            w_r = low(eye).T  # the factorised matrix, [p, d]
            proj[name], errors[name] = low, float((dense.weight - w_r).norm() / dense.weight.norm())
        images = embed_batches(proj["visual_projection"], (pooled[s:s + batch_size] for s in range(0, len(pooled), batch_size)))
        classes = ensemble_class_embeddings(proj["text_projection"](text_pooled), len(zs.classnames))
        proj_bytes = sum(param_bytes(m) for m in proj.values())
        dense_proj = param_bytes(model.visual_projection) + param_bytes(model.text_projection)
        rows.append({"rank": "full" if rank is None else rank,
                     "projection_params": sum(p.numel() for m in proj.values() for p in m.parameters()),
                     "projection_bytes": proj_bytes,
                     "model_bytes": dense_bytes - dense_proj + proj_bytes,
                     "rel_error_visual": errors["visual_projection"], "rel_error_text": errors["text_projection"],
                     "top1": top1_from_embeddings(images, classes, zs.labels)})
    return pd.DataFrame(rows)
