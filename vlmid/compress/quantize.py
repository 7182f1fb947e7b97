"""Post-training weight quantization, and the bytes a model really stores.

Four ways to store a ``nn.Linear`` weight in fewer bits, each a one-call function that
returns a compressed *copy* of the model (the original is never touched):

- ``to_bf16``: every floating tensor in bfloat16 (2 bytes instead of 4).
- ``quantize_int8_dynamic``: PyTorch's ``torch.ao.quantization.quantize_dynamic``: int8
  weights with one scale per output row (per-channel); activations are quantized on the
  fly at each call. torchao is not installed here, so this is the int8 path we use; it is
  deprecated in torch 2.13 but works, and it is the one CPU kernel that is *faster* than fp32.
- ``quantize_bnb(model, "int8")``: bitsandbytes LLM.int8 (``Linear8bitLt``): int8 rows with
  one absmax scale per row (``SCB``).
- ``quantize_bnb(model, "nf4")``: bitsandbytes 4-bit NormalFloat (``Linear4bit``): 4-bit codes
  packed two per byte, one absmax per block of 64 weights, plus the 16-entry code book.

``bnb_from_pretrained`` is the ``BitsAndBytesConfig`` route for checkpoints on disk (the
paper profile); ``quantize_bnb`` replaces layers of a model already in memory (the tiny one).

``stored_bytes`` counts what is really stored: every tensor of the state dict once
(tied weights once), int8/uint8 codes at one byte, quantization scales, code books and
bitsandbytes' packed metadata included -- not ``n_params * 4``.
"""
from __future__ import annotations

import copy
import fnmatch
import warnings
from typing import Iterable

import torch
from torch import nn

__all__ = ["linear_names", "to_bf16", "quantize_int8_dynamic", "quantize_bnb",
           "bnb_from_pretrained", "stored_bytes", "layers_bytes", "BNB_MODES"]

BNB_MODES = ("int8", "nf4", "fp4")


# -- which layers -----------------------------------------------------------------------
def _matches(name: str, patterns: Iterable[str]) -> bool:
    """``name`` matches a glob pattern (``text_decoder.cls.*``) or equals / starts a pattern's prefix."""
    return any(fnmatch.fnmatchcase(name, p) or name == p or name.startswith(p + ".") for p in patterns)


def _tied_linears(model: nn.Module) -> set[str]:
    """Linear layers whose weight is shared with another module (e.g. an LM head tied to the embeddings).

    Replacing such a layer would untie it and store the weight twice, so it is left alone.
    """
    owners: dict[int, list[str]] = {}
    for mname, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            owners.setdefault(id(p), []).append(mname)
    tied = set()
    for mname, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and len(owners.get(id(mod.weight), [])) > 1:
            tied.add(mname)
    return tied


def linear_names(model: nn.Module, skip: Iterable[str] = (), include_tied: bool = False) -> list[str]:
    """Qualified names of the ``nn.Linear`` layers a compression method would replace.

    ``skip``: glob patterns or module-name prefixes to leave alone (e.g. ``"text_decoder.cls.*"``).
    Tied layers (weight shared with an embedding) are skipped unless ``include_tied``.
    """
    skip = list(skip)
    tied = set() if include_tied else _tied_linears(model)
    return [n for n, m in model.named_modules()
            if type(m) is nn.Linear and n not in tied and not _matches(n, skip)]


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


# -- bf16 -------------------------------------------------------------------------------
def _cast_inputs_hook(dtype):
    def hook(module, args, kwargs):
        cast = lambda t: t.to(dtype) if torch.is_tensor(t) and t.is_floating_point() else t  # noqa: E731
        return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}
    return hook


def to_bf16(model: nn.Module) -> nn.Module:
    """A bfloat16 copy. Floating inputs (pixel values) are cast on the way in, so callers
    that build float32 tensors keep working."""
    m = copy.deepcopy(model).to(torch.bfloat16)
    m.register_forward_pre_hook(_cast_inputs_hook(torch.bfloat16), with_kwargs=True)
    return m


# -- int8 dynamic (torch.ao) --------------------------------------------------------------
def quantize_int8_dynamic(model: nn.Module, skip: Iterable[str] = (), per_channel: bool = True) -> nn.Module:
    """A copy with the chosen Linear layers as ``torch.ao`` dynamic int8 layers (CPU only)."""
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    names = linear_names(model, skip)
    m = copy.deepcopy(model).float().cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        return quantize_dynamic(m, {n: qconfig for n in names}, dtype=torch.qint8, inplace=False)


# -- bitsandbytes ------------------------------------------------------------------------
def _bnb_linear(lin: nn.Linear, mode: str, double_quant: bool, device) -> nn.Module:
    import bitsandbytes as bnb

    w = lin.weight.data.detach().float().cpu().clone()
    b = None if lin.bias is None else lin.bias.data.detach().float().clone()
    if mode == "int8":
        # has_fp16_weights=False: store int8 only; threshold=0: no fp16 outlier columns (pure int8)
        q = bnb.nn.Linear8bitLt(lin.in_features, lin.out_features, bias=b is not None,
                                has_fp16_weights=False, threshold=0.0)
        q.weight = bnb.nn.Int8Params(w, requires_grad=False, has_fp16_weights=False)
    else:
        q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=b is not None,
                              compute_dtype=torch.float32, quant_type=mode,
                              compress_statistics=double_quant)
        q.weight = bnb.nn.Params4bit(w, requires_grad=False, quant_type=mode,
                                     compress_statistics=double_quant)
    if b is not None:
        q.bias = nn.Parameter(b, requires_grad=False)
    return q.to(device)  # the move to a device is what quantizes the weight


def quantize_bnb(model: nn.Module, mode: str = "nf4", skip: Iterable[str] = (),
                 double_quant: bool = False, device: str | torch.device | None = None) -> nn.Module:
    """A copy with the chosen Linear layers replaced by bitsandbytes layers.

    ``mode``: ``"int8"`` (LLM.int8, ``Linear8bitLt``), ``"nf4"`` or ``"fp4"`` (``Linear4bit``,
    block size 64). ``double_quant`` also quantizes the absmax scales (QLoRA's trick); it
    pays only for large layers, since it adds a 256-entry code book per layer.
    Runs on CPU with bitsandbytes >= 0.45 (slower than fp32 there) and on CUDA.
    """
    if mode not in BNB_MODES:
        raise ValueError(f"mode={mode!r}: allowed {BNB_MODES}")
    names = linear_names(model, skip)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    m = copy.deepcopy(model)
    for n in names:
        _set_module(m, n, _bnb_linear(m.get_submodule(n), mode, double_quant, device))
    return m


def bnb_from_pretrained(model_class, path, mode: str = "nf4", skip: Iterable[str] = (),
                        double_quant: bool = False, **kwargs):
    """Load a checkpoint folder quantized by transformers' ``BitsAndBytesConfig`` (paper profile)."""
    from transformers import BitsAndBytesConfig

    if mode not in BNB_MODES:
        raise ValueError(f"mode={mode!r}: allowed {BNB_MODES}")
    if mode == "int8":
        cfg = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(skip) or None)
    else:
        cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=mode,
                                 bnb_4bit_use_double_quant=double_quant,
                                 bnb_4bit_compute_dtype=kwargs.pop("compute_dtype", torch.float32),
                                 llm_int8_skip_modules=list(skip) or None)
    return model_class.from_pretrained(path, quantization_config=cfg, local_files_only=True, **kwargs)


# -- memory accounting -------------------------------------------------------------------
def _tensor_bytes(t) -> tuple[tuple, int]:
    """(identity key, bytes) of one stored tensor, quantized tensors included."""
    if t.is_quantized:
        n = t.numel() * t.element_size()
        if t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric,
                           torch.per_channel_affine_float_qparams):
            n += t.q_per_channel_scales().nbytes + t.q_per_channel_zero_points().nbytes
        else:
            n += 16  # one float64 scale + one int64 zero point
        return ("q", id(t)), n
    st = t.untyped_storage()
    return (st.data_ptr(), t.storage_offset(), t.nbytes), t.nbytes


def stored_bytes(model: nn.Module) -> int:
    """Bytes of everything in ``model.state_dict()``, each shared tensor counted once.

    Works for fp32/bf16 modules, ``torch.ao`` dynamic int8 layers (packed weights unpacked
    to count their int8 codes and per-row scales), and bitsandbytes layers (codes, absmax,
    code book and packed quant-state metadata are all state-dict tensors).
    """
    seen: dict[tuple, int] = {}

    def visit(v):
        if torch.is_tensor(v):
            k, n = _tensor_bytes(v)
            seen[k] = n
        elif isinstance(v, (tuple, list)):
            for x in v:
                visit(x)
        elif hasattr(v, "_weight_bias"):  # a packed-params object
            visit(v._weight_bias())

    for v in model.state_dict(keep_vars=False).values():
        visit(v)
    return int(sum(seen.values()))


def layers_bytes(model: nn.Module, names: Iterable[str]) -> int:
    """Stored bytes of the named sub-modules (e.g. the layers a method quantized)."""
    return int(sum(stored_bytes(model.get_submodule(n)) for n in names))
