"""Compression methods as functions ``adapter -> adapter``: quantization, low rank, layer dropping,
fine-tuning, and their chains. A new method is one small function."""
from __future__ import annotations

from typing import Callable, Iterable

from . import layerdrop, lowrank, quantize
from .adapters import ModelAdapter

def fp32(ad: ModelAdapter) -> ModelAdapter:
    """The uncompressed reference."""
    return ad.with_model(ad.model, layers=[])


def bf16(skip=()) -> Callable:
    def method(ad):
        names = quantize.linear_names(ad.model, skip)
        return ad.with_model(quantize.to_bf16(ad.model), layers=names)
    return method


def int8_dynamic(skip=(), per_channel: bool = True) -> Callable:
    def method(ad):
        names = quantize.linear_names(ad.model, skip)
        return ad.with_model(quantize.quantize_int8_dynamic(ad.model, skip, per_channel), layers=names)
    return method


def bnb(mode: str = "nf4", skip=(), double_quant: bool = False) -> Callable:
    def method(ad):
        names = quantize.linear_names(ad.model, skip)
        return ad.with_model(quantize.quantize_bnb(ad.model, mode, skip, double_quant), layers=names)
    return method


def svd(energy: float | None = 0.8, method: str = "plain", skip=(), ranks_from: dict | None = None,
        n_calib: int = 32) -> Callable:
    """Low-rank factorization. The rank of each layer comes from the retained energy of its *plain*
    spectrum whatever the method, so ``svd(e, "plain")`` and ``svd(e, "whiten")`` have equal size;
    ``ranks_from=`` a plan (name -> {"rank": r}) reuses given ranks instead."""
    def apply(ad):
        plan = ranks_from if ranks_from is not None else lowrank.plan_ranks(ad.model, energy, skip)
        stats = None
        if method != "plain":
            stats = lowrank.collect_input_stats(ad.model, ad.calibration_run(n_calib), list(plan),
                                                gram=(method == "whiten"))
        m, plan = lowrank.factorize(ad.model, method=method, stats=stats, ranks=plan)
        fact, dense = lowrank.plan_params(plan)
        return ad.with_model(m, layers=list(plan), plan=plan, energy=energy, method=method,
                             factor_weights=fact, dense_weights=dense)
    return apply


def layer_drop(drop: Iterable[int] | None = None, finetune_examples=None, steps: int = 0,
               lr: float = 5e-4, batch_size: int = 32, seed: int = 0, path: str | None = None,
               checkpoints: Iterable[int] = ()) -> Callable:
    """Drop decoder layers (default every second, keeping the last), then optionally fine-tune.
    ``checkpoints``: fine-tune steps whose weights are kept in ``notes["checkpoints"]`` ({step: state dict};
    :func:`from_checkpoint` makes an adapter of one), to see whether the fine-tune had converged."""
    def apply(ad):
        p = path or layerdrop.decoder_layers_path(ad.model)
        n = len(ad.model.get_submodule(p))
        idx = layerdrop.every_second(n) if drop is None else list(drop)
        new = ad.with_model(layerdrop.drop_layers(ad.model, idx, p), layers=None, dropped=idx, path=p)
        if steps:
            keep = [k for k in checkpoints if 0 < k < steps]
            out = layerdrop.finetune(new.bundle, finetune_examples, steps, lr, batch_size, seed, checkpoints=keep)
            new.notes["finetune_losses"], new.notes["checkpoints"] = out if keep else (out, {})
        return new
    return apply


def from_checkpoint(base: ModelAdapter, dropped: ModelAdapter, step: int) -> ModelAdapter:
    """The adapter of ``layer_drop``'s model as it was after ``step`` fine-tune steps: ``base`` (the model the
    layers were dropped from) without those layers, with the weights kept at that step. Works after
    ``dropped`` was released (``compare`` on a GPU)."""
    notes = dropped.notes
    model = layerdrop.drop_layers(base.model, notes["dropped"], notes.get("path"))
    model.load_state_dict(notes["checkpoints"][step])
    model.eval()
    new = base.with_model(model, layers=None, **{k: v for k, v in notes.items() if k not in ("checkpoints",)})
    new.notes["step"] = step
    return new


def fine_tuned(examples, steps: int, lr: float = 5e-4, batch_size: int = 32, seed: int = 0) -> Callable:
    """The uncompressed model fine-tuned exactly like a compressed one: the control that separates
    "the fine-tune helped" from "the compression cost nothing"."""
    def apply(ad):
        import copy
        new = ad.with_model(copy.deepcopy(ad.model), layers=[])
        new.notes["finetune_losses"] = layerdrop.finetune(new.bundle, examples, steps, lr, batch_size, seed)
        return new
    return apply


def chain(*methods: Callable) -> Callable:
    """Apply methods one after the other (e.g. low-rank, then int8). Layers: those of the first."""
    def apply(ad):
        out = ad
        for i, m in enumerate(methods):
            nxt = m(out)
            if i > 0:
                nxt.compressed_layers = out.compressed_layers
            out = nxt
        return out
    return apply


def captioner_suite(params, skip=(), train=()) -> dict[str, Callable]:
    """Notebook 05's methods for the captioner, by name, from its parameters
    (:class:`vlmid.params.compression.CompressionParams`): fp32, bf16, bitsandbytes int8 and nf4,
    plain / activation-aware / whitened SVD at every retained energy, every second decoder layer
    dropped (with and without a fine-tune on ``train``, whose weights are kept at ``params.finetune_check_step``
    too), the fp32 fine-tune control, and on a CPU
    torch.ao int8 and the whitened SVD chained with it (torch.ao has CPU kernels only). ``skip``:
    the Linears never factorized."""
    p, cpu = params, params.device == "cpu"
    methods = {"fp32": fp32, "bf16": bf16()}
    if cpu:
        methods["int8 dynamic"] = int8_dynamic()
    methods |= {"bnb int8": bnb("int8"), "bnb nf4": bnb("nf4")}
    for e in p.energies:
        methods[f"svd plain {e:.2f}"] = svd(e, "plain", skip)
        methods[f"svd asvd {e:.2f}"] = svd(e, "asvd", skip, n_calib=p.n_calib)
        methods[f"svd whiten {e:.2f}"] = svd(e, "whiten", skip, n_calib=p.n_calib)
    methods["layer drop"] = layer_drop()
    methods["layer drop + ft"] = layer_drop(finetune_examples=train, steps=p.finetune_steps, lr=p.finetune_lr,
                                            batch_size=p.finetune_batch, seed=p.seed,
                                            checkpoints=[p.finetune_check_step] if p.finetune_check_step else [])
    methods["fp32 + ft (control)"] = fine_tuned(train, p.finetune_steps, lr=p.finetune_lr, batch_size=p.finetune_batch,
                                                seed=p.seed)
    if cpu:
        methods[f"svd whiten {p.mid_energy:.2f} + int8"] = chain(svd(p.mid_energy, "whiten", skip, n_calib=p.n_calib),
                                                                int8_dynamic())
    return methods


def clip_suite(params, captioner_methods: dict[str, Callable]) -> dict[str, Callable]:
    """Notebook 05's methods for CLIP: the captioner's number formats (those of ``captioner_methods``)
    and plain and whitened SVD at ``params.mid_energy``, nothing skipped (CLIP has no LM head)."""
    p = params
    methods = {k: v for k, v in captioner_methods.items() if k in ("fp32", "bf16", "int8 dynamic", "bnb int8", "bnb nf4")}
    methods[f"svd plain {p.mid_energy:.2f}"] = svd(p.mid_energy, "plain")
    methods[f"svd whiten {p.mid_energy:.2f}"] = svd(p.mid_energy, "whiten", n_calib=p.n_calib)
    return methods
