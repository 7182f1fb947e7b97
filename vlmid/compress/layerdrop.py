"""Layer dropping: delete whole decoder layers, then heal the model with a short fine-tune.

The compression slides deleted half of Phi-3.5's 32 decoder layers and fine-tuned on each benchmark. Here
``drop_layers(model, [...])`` removes chosen layers of a transformer's layer stack (BLIP's
text decoder by default), renumbering what the KV cache needs, and ``finetune`` trains the
smaller model for a few steps on the captioning loss ``cap.loss(images, captions)``.
"""
from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch import nn

__all__ = ["decoder_layers_path", "last_layers", "output_head", "every_second", "drop_layers", "finetune"]

# where each model family keeps the layer stack of its language decoder
_DECODER_PATHS = ("text_decoder.bert.encoder.layer",   # BLIP captioning
                  "model.language_model.layers",       # Qwen2-VL (transformers 5)
                  "model.layers", "language_model.model.layers")
# where each family keeps its language-model head (the layers after the last decoder layer)
_HEAD_PREFIXES = ("text_decoder.cls",                   # BLIP: BERT-style transform + vocabulary projection
                  "lm_head", "language_model.lm_head")  # Qwen2-VL and most decoders


def decoder_layers_path(model: nn.Module) -> str:
    """The dotted name of the decoder's ``nn.ModuleList`` of layers."""
    for p in _DECODER_PATHS:
        try:
            if isinstance(model.get_submodule(p), nn.ModuleList):
                return p
        except AttributeError:
            continue
    raise ValueError(f"no decoder layer stack found in {type(model).__name__}; pass path= (tried {_DECODER_PATHS})")


def last_layers(model: nn.Module, k: int = 1, path: str | None = None) -> list[str]:
    """Glob patterns naming the last ``k`` decoder layers (to keep them dense, as the compression slides did)."""
    path = path or decoder_layers_path(model)
    n = len(model.get_submodule(path))
    return [f"{path}.{i}.*" for i in range(max(0, n - k), n)]


def output_head(model: nn.Module) -> list[str]:
    """Module prefixes of the language-model head, the layers after the decoder stack.

    A compression method that keeps "the last layers" dense (the compression slides; ASVD and SVD-LLM never
    factorize the head either) should keep these too: BLIP's head has a 128 x 128 transform in
    front of the vocabulary projection that is not part of any decoder layer.
    """
    found = []
    for p in _HEAD_PREFIXES:
        try:
            model.get_submodule(p)
        except AttributeError:
            continue
        found.append(p)
    return found


def every_second(n_layers: int) -> list[int]:
    """Indices to drop so that every second layer goes and the last layer stays: 4 -> [0, 2]."""
    return list(range(n_layers - 2, -1, -2))[::-1]


def _config_with_layers(model: nn.Module, path: str) -> list:
    """The config objects whose ``num_hidden_layers`` describe the stack at ``path``."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        return []
    if path.startswith("text_decoder") and hasattr(cfg, "text_config"):
        return [cfg.text_config, model.text_decoder.config, model.text_decoder.bert.config]
    sub = getattr(cfg, "text_config", None)
    return [c for c in (sub, cfg) if c is not None and hasattr(c, "num_hidden_layers")]


def drop_layers(model: nn.Module, drop: Iterable[int], path: str | None = None) -> nn.Module:
    """A copy of ``model`` without the layers ``drop`` of the stack at ``path`` (default: the decoder).

    The kept layers' ``layer_idx`` (KV-cache slot) are renumbered 0..k-1 and the config's
    ``num_hidden_layers`` updated, so generation with a cache works on the smaller model.
    """
    path = path or decoder_layers_path(model)
    m = copy.deepcopy(model)
    layers = m.get_submodule(path)
    n = len(layers)
    drop = sorted(set(int(i) for i in drop))
    if not drop or drop[0] < 0 or drop[-1] >= n or len(drop) >= n:
        raise ValueError(f"drop={drop}: indices must lie in [0, {n - 1}] and keep at least one layer")
    kept = [layer for i, layer in enumerate(layers) if i not in drop]
    for new_idx, layer in enumerate(kept):
        for mod in layer.modules():
            if hasattr(mod, "layer_idx"):
                mod.layer_idx = new_idx
    parent, _, child = path.rpartition(".")
    setattr(m.get_submodule(parent), child, nn.ModuleList(kept))
    seen = set()
    for cfg in _config_with_layers(m, path):
        if id(cfg) not in seen:
            seen.add(id(cfg))
            cfg.num_hidden_layers = len(kept)
            if getattr(cfg, "layer_types", None) is not None:
                cfg.layer_types = [t for i, t in enumerate(cfg.layer_types) if i not in drop]
    return m


def finetune(cap, examples, steps: int = 100, lr: float = 5e-4, batch_size: int = 32, seed: int = 0,
             progress: bool = True, checkpoints: Iterable[int] = ()) -> list[float] | tuple[list[float], dict]:
    """Train all of ``cap.model`` for ``steps`` AdamW steps on ``cap.loss`` (batches of
    :func:`vlmid.data.caption_batches`, the sampler of every fine-tune here; cosine-decayed learning
    rate: a short heal of an already trained model, where notebook 02's runs hold theirs constant
    between pruning steps); returns the loss per step. The model is left in eval mode.

    ``checkpoints``: steps after which a copy of the weights is kept (on the CPU); then the return is
    ``(losses, {step: state_dict})``, so that a caller can score the fine-tune part-way (has it
    converged?). Keeping them reads the weights only: the training itself is unchanged."""
    from tqdm.auto import tqdm

    from ..data.base import caption_batches
    from ..optim import optimizer_step

    if steps < 0:
        raise ValueError(f"steps={steps!r} must be >= 0")
    batches = caption_batches(examples, min(batch_size, len(examples)), seed)
    model = cap.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    keep = sorted({int(k) for k in checkpoints})
    if keep and (keep[0] < 0 or keep[-1] > steps):
        raise ValueError(f"checkpoints={keep}: steps must lie in [0, {steps}]")
    saved = {0: _cpu_state(model)} if 0 in keep else {}
    losses = []
    model.train()
    try:
        for step in tqdm(range(1, steps + 1), desc="fine-tune", disable=not progress):
            loss = cap.loss(*next(batches))
            optimizer_step(loss, opt, sched, clip_norm=1.0)
            losses.append(float(loss.detach()))
            if step in keep:
                saved[step] = _cpu_state(model)
    finally:
        model.eval()
    return (losses, saved) if keep else losses


def _cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
