"""Forward hooks that collect what every layer of BLIP or CLIP outputs, pooled to one vector per input.

Where an ID is measured (a *site*, named by its module path exactly as ``model.named_modules()``
gives it, so a score per ``nn.Linear`` can be multiplied by the ID of the same name):

- blocks: BLIP's vision encoder layers (``vision``), text-decoder layers (``language``) and the
  cross-attention sublayer inside each decoder layer (``fusion``); CLIP's vision and text encoder
  layers (``vision``, ``text``);
- every ``nn.Linear`` (the granularity of the ID pruning prior), in the group of its tower; the
  cross-attention's Linears are ``fusion``. BLIP's LM head (``text_decoder.cls``) is left out, as
  in the ID pruning code: its decoder weight is tied to the word embeddings, which are never pruned.

A layer outputs one vector per token; TwoNN needs one point per input. Pooling:

- ``"cls"``: the summary token: index 0 (CLS) on the image side; on the text side the last real
  token (EOS / SEP), because the text towers are causal and their first token has seen only itself;
- ``"mean"``: the mean over real tokens (padding excluded);
- ``"flatten"``: the whole sequence as one long vector (padding zeroed), as the ID pruning code does.

    sites = block_sites(cap.model)
    feats = collect(cap.model, blip_batches(cap, examples), sites, pooling="mean")
    feats["vision_model.encoder.layers.3"].shape  # (n_images, hidden)

Hooks live only inside ``collect`` (or a ``LayerRecorder`` ``with`` block) and are removed after.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import nn

from ..models.anatomy import LM_HEAD, module_block, module_group

POOLINGS = ("cls", "mean", "flatten")


@dataclass(frozen=True)
class Site:
    """A module whose output is recorded."""
    name: str    # module path, as in model.named_modules()
    group: str   # vision | language | fusion (BLIP); vision | text (CLIP)
    layer: int   # block index within its tower (projections after the last block: n_layers)
    stream: str  # "image" or "text": whose tokens the output runs over (masking, summary token)
    kind: str    # "block" or "linear"


def model_family(model) -> str:
    """'blip' for BlipForConditionalGeneration-like models, 'clip' for CLIPModel-like ones."""
    if hasattr(model, "vision_model") and hasattr(model, "text_decoder"):
        return "blip"
    if hasattr(model, "vision_model") and hasattr(model, "text_model"):
        return "clip"
    raise ValueError(f"expected a BlipForConditionalGeneration or a CLIPModel, got {type(model).__name__}")


def block_sites(model) -> list[Site]:
    """Every transformer block (and BLIP's cross-attention sublayers), in forward order per tower."""
    sites = []
    for i, _ in enumerate(model.vision_model.encoder.layers):
        sites.append(Site(f"vision_model.encoder.layers.{i}", "vision", i, "image", "block"))
    if model_family(model) == "blip":
        for i, layer in enumerate(model.text_decoder.bert.encoder.layer):
            prefix = f"text_decoder.bert.encoder.layer.{i}"
            if hasattr(layer, "crossattention"):
                sites.append(Site(f"{prefix}.crossattention", "fusion", i, "text", "block"))
            sites.append(Site(prefix, "language", i, "text", "block"))
    else:
        for i, _ in enumerate(model.text_model.encoder.layers):
            sites.append(Site(f"text_model.encoder.layers.{i}", "text", i, "text", "block"))
    return sites


def linear_sites(model) -> list[Site]:
    """Every ``nn.Linear`` of the model (BLIP's tied LM head excepted), grouped by tower."""
    family = model_family(model)
    n_vision = len(model.vision_model.encoder.layers)
    n_text = len(model.text_decoder.bert.encoder.layer if family == "blip" else model.text_model.encoder.layers)
    sites = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or name.startswith(LM_HEAD + "."):
            continue
        group, block = module_group(name, family), module_block(name)
        layer = block if block is not None else (n_vision if group == "vision" else n_text)
        if group == "fusion":
            # the cross-attention's key and value project the image tokens; query and output the text's
            stream = "image" if name.endswith((".self.key", ".self.value")) else "text"
        else:
            stream = "image" if group == "vision" else "text"
        sites.append(Site(name, group, layer, stream, "linear"))
    return sites


def pool(h: torch.Tensor, pooling: str, mask: torch.Tensor | None) -> torch.Tensor:
    """One vector per input from a [batch, tokens, features] output (2-D outputs pass through).

    ``mask`` (batch x tokens, 1 = real token) marks text tokens; None means every token is real
    and the summary token is the first (CLS). With a mask it is the last real token.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}: use one of {POOLINGS}")
    if h.ndim == 2:
        return h
    if h.ndim != 3:
        raise ValueError(f"expected a [batch, tokens, features] output, got shape {tuple(h.shape)}")
    if mask is not None and mask.shape != h.shape[:2]:
        raise ValueError(f"attention mask of shape {tuple(mask.shape)} does not fit an output of shape "
                         f"{tuple(h.shape)}")
    if pooling == "cls":
        if mask is None:
            return h[:, 0]
        last = mask.long().sum(dim=1).clamp(min=1) - 1  # right padding: last real token
        return h[torch.arange(h.shape[0], device=h.device), last]
    if mask is None:
        return h.mean(dim=1) if pooling == "mean" else h.reshape(h.shape[0], -1)
    m = mask.to(h.dtype).unsqueeze(-1)
    if pooling == "mean":
        return (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
    return (h * m).reshape(h.shape[0], -1)


def _first_tensor(out) -> torch.Tensor:
    """A module's main output: blocks return a tensor, a tuple or a ModelOutput, first item first."""
    return out if isinstance(out, torch.Tensor) else out[0]


class LayerRecorder:
    """Forward hooks on ``sites`` that keep each output pooled, on CPU, as float32.

        with LayerRecorder(model, sites, "mean") as rec:
            for batch in batches:
                rec.text_mask = batch.get("attention_mask")
                model(**batch)
        feats = rec.features()   # hooks are gone here

    ``pooling`` may be a list: every pooling is kept from the same forward pass.
    ``text_mask`` is the attention mask of the current batch's text (None: no padding).
    """

    def __init__(self, model: nn.Module, sites: Iterable[Site], pooling: str | Sequence[str] = "mean"):
        self.poolings = (pooling,) if isinstance(pooling, str) else tuple(pooling)
        bad = [p for p in self.poolings if p not in POOLINGS]
        if bad or not self.poolings:
            raise ValueError(f"pooling={pooling!r}: use one (or a list) of {POOLINGS}")
        self.model, self.sites = model, list(sites)
        modules = dict(model.named_modules())
        missing = [s.name for s in self.sites if s.name not in modules]
        if missing:
            raise ValueError(f"no module named {missing[:3]} in {type(model).__name__}")
        self._modules = [modules[s.name] for s in self.sites]
        self._handles: list = []
        self._store = {p: {s.name: [] for s in self.sites} for p in self.poolings}
        self.text_mask: torch.Tensor | None = None

    def _hook(self, site: Site):
        def hook(module, args, output):
            mask = self.text_mask if site.stream == "text" else None
            h = _first_tensor(output).detach()
            for p in self.poolings:
                self._store[p][site.name].append(pool(h, p, mask).float().cpu())
        return hook

    def __enter__(self) -> "LayerRecorder":
        for site, module in zip(self.sites, self._modules):
            self._handles.append(module.register_forward_hook(self._hook(site)))
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def features(self, pooling: str | None = None) -> dict[str, torch.Tensor]:
        """Points x features per site for ``pooling`` (default: the first). Flattened text
        sequences are zero-padded to the longest."""
        pooling = pooling or self.poolings[0]
        out = {}
        for name, parts in self._store[pooling].items():
            if not parts:
                raise RuntimeError(f"nothing was recorded at {name}: was the model run inside the recorder?")
            width = max(p.shape[1] for p in parts)
            out[name] = torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1])) for p in parts])
        return out


@torch.no_grad()
def collect(model: nn.Module, batches: Iterable[dict], sites: Iterable[Site], pooling: str | Sequence[str] = "mean",
            progress: bool = True, total: int | None = None) -> dict:
    """Run ``model(**batch)`` over ``batches`` and return the pooled outputs of ``sites``:
    {module name: points x features}, or with a list of poolings {pooling: {module name: ...}}
    from a single pass.

    Each batch is a dict of model inputs (pixel_values, input_ids, attention_mask); its
    ``attention_mask`` masks the text-side outputs. The model is run in eval mode.
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    try:
        with LayerRecorder(model, sites, pooling) as rec:
            for batch in tqdm(batches, desc="collecting representations", total=total, disable=not progress,
                              leave=False):
                rec.text_mask = batch.get("attention_mask")
                model(**batch)
        if isinstance(pooling, str):
            return rec.features()
        return {p: rec.features(p) for p in rec.poolings}
    finally:
        model.train(was_training)


# --- inputs: the images with one reference caption each, teacher-forced ---------------------------
def blip_batches(cap, examples, batch_size: int = 64, caption_index: int = 0):
    """Batches for a ``Captioner``: each image with its reference caption (after the prompt),
    tokenized as in ``cap.loss`` (``cap.text_inputs``: the decoder's ``[DEC]`` start token, so it
    sees what it saw in training), padded to the longest caption of all ``examples`` so that
    flattened sequences line up."""
    enc = cap.text_inputs([ex.captions[caption_index] for ex in examples])
    for s in range(0, len(examples), batch_size):
        yield dict(pixel_values=cap.pixel_values([ex.image for ex in examples[s:s + batch_size]]),
                   input_ids=enc["input_ids"][s:s + batch_size].to(cap.device),
                   attention_mask=enc["attention_mask"][s:s + batch_size].to(cap.device))


def clip_batches(clip, examples, batch_size: int = 64, caption_index: int = 0):
    """Batches for a ``ClipBundle``: each image and, through the text tower, its reference caption."""
    text = clip.text_inputs([ex.captions[caption_index] for ex in examples])
    for s in range(0, len(examples), batch_size):
        yield dict(pixel_values=clip.pixel_values([ex.image for ex in examples[s:s + batch_size]]),
                   input_ids=text["input_ids"][s:s + batch_size],
                   attention_mask=text["attention_mask"][s:s + batch_size])

