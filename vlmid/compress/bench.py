"""Plug and play: any compression method x any benchmark x any model family, one table.

Seed 004's strength was its plug-and-play launcher. Here three small interfaces do it:

- a **ModelAdapter** wraps one loaded model family (BLIP captioner, CLIP, Qwen2-VL) and
  knows how to swap its ``nn.Module`` (``with_model``), run calibration forwards, and make
  one timed call;
- a **method** is a function ``adapter -> adapter`` (see ``METHODS`` builders below);
- a **Benchmark** has ``applies_to(adapter)`` and ``score(adapter) -> dict``.

``compare(base, methods, benchmarks)`` applies every method to ``base``, measures stored
bytes (whole model, and the replaced layers against their fp32 bytes), latency (warm-up,
interleaved repeats, median) and every applicable benchmark, and returns one DataFrame.
A new compression method or benchmark is one small function or class.
"""
from __future__ import annotations

import dataclasses
import statistics
import weakref
from typing import Callable, Iterable

import torch
from torch import nn

from . import layerdrop, lowrank, quantize

__all__ = ["ModelAdapter", "CaptionerAdapter", "ClipAdapter", "Qwen2VLAdapter", "Benchmark",
           "CaptionBenchmark", "ZeroShotBenchmark", "fp32", "bf16", "int8_dynamic", "bnb",
           "svd", "layer_drop", "fine_tuned", "chain", "compare", "measure_latency", "pareto_front"]


# ===================================================================== model adapters
class ModelAdapter:
    """One model family. Subclasses set ``kind`` and implement the three hooks below."""
    kind = "model"

    def __init__(self, bundle, compressed_layers: list[str] | None = None, notes: dict | None = None):
        self.bundle = bundle
        self.compressed_layers = compressed_layers  # names of layers a method replaced (None: whole model)
        self.notes = dict(notes or {})

    @property
    def model(self) -> nn.Module:
        return self.bundle.model

    def with_model(self, model: nn.Module, layers: Iterable[str] | None = None, **notes) -> "ModelAdapter":
        """A new adapter around ``model`` (same processor, prompt, decoding settings)."""
        new = dataclasses.replace(self.bundle, model=model) if dataclasses.is_dataclass(self.bundle) \
            else _shallow_with(self.bundle, model)
        layers = list(layers) if layers is not None else self.compressed_layers
        return type(self)(new, layers, {**self.notes, **notes})

    # -- hooks ------------------------------------------------------------------------
    def calibration_run(self, n: int = 32) -> Callable[[], None]:
        """A function running forward passes on ``n`` calibration inputs (for activation statistics)."""
        raise NotImplementedError

    def timed_call(self) -> Callable[[], object]:
        """A function making one representative inference call (what latency means for this family)."""
        raise NotImplementedError


def _shallow_with(bundle, model):
    import copy
    new = copy.copy(bundle)
    new.model = model
    return new


class CaptionerAdapter(ModelAdapter):
    """A ``vlmid.models.Captioner`` (BLIP). Calibration: teacher-forced forwards on ``calib`` examples."""
    kind = "captioner"

    def __init__(self, bundle, compressed_layers=None, notes=None, calib=None, timing_images=None):
        super().__init__(bundle, compressed_layers, notes)
        self.calib = calib
        self.timing_images = timing_images

    def with_model(self, model, layers=None, **notes):
        new = super().with_model(model, layers, **notes)
        new.calib, new.timing_images = self.calib, self.timing_images
        return new

    def generate(self, images, batch_size: int = 64) -> list[str]:
        return self.bundle.generate(images, batch_size=batch_size)

    @property
    def generation(self):
        return self.bundle.generation

    def calibration_run(self, n: int = 32):
        ex = list(self.calib or [])[:n]
        if not ex:
            raise ValueError("CaptionerAdapter needs calib= examples for activation-aware methods")

        @torch.no_grad()
        def run():
            for i in range(0, len(ex), 16):
                b = ex[i:i + 16]
                self.bundle.loss([e.image for e in b], [e.captions[0] for e in b])
        return run

    def loss(self, images, captions) -> torch.Tensor:
        """Teacher-forced mean token loss of ``captions`` given ``images``."""
        return self.bundle.loss(images, captions)

    def timed_call(self):
        images = list(self.timing_images or [])
        if not images:
            raise ValueError("CaptionerAdapter needs timing_images= to measure latency")
        return lambda: self.bundle.generate(images, batch_size=len(images))


class ClipAdapter(ModelAdapter):
    """A ``vlmid.models.ClipBundle``. Calibration: image + prompt forwards; latency: image features."""
    kind = "clip"

    def __init__(self, bundle, compressed_layers=None, notes=None, zs=None, timing_images=None):
        super().__init__(bundle, compressed_layers, notes)
        self.zs = zs
        self.timing_images = timing_images

    def with_model(self, model, layers=None, **notes):
        new = super().with_model(model, layers, **notes)
        new.zs, new.timing_images = self.zs, self.timing_images
        return new

    def calibration_run(self, n: int = 32):
        if self.zs is None:
            raise ValueError("ClipAdapter needs zs= (a ZeroShotSet) for activation-aware methods")
        images = list(self.zs.images[-n:])  # the end of the set; benchmarks may use the start
        texts = [t.format(c) for c in self.zs.classnames for t in self.zs.templates[:2]]

        @torch.no_grad()
        def run():
            self.model.get_image_features(pixel_values=self.bundle.pixel_values(images))
            self.model.get_text_features(**self.bundle.text_inputs(texts))
        return run

    def timed_call(self):
        images = list(self.timing_images or [])
        return lambda: self.model.get_image_features(pixel_values=self.bundle.pixel_values(images))


@dataclasses.dataclass
class Qwen2VLBundle:
    """A ``Qwen2VLForConditionalGeneration`` with its processor and an instruction (paper profile)."""
    model: object
    processor: object
    instruction: str = "Describe the image in one sentence."
    generation: dict = dataclasses.field(default_factory=lambda: dict(max_new_tokens=20, do_sample=False))
    prompt: str = ""

    def inputs(self, images, captions=None):
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.instruction}]}]
        text = self.processor.apply_chat_template(msgs, add_generation_prompt=True)
        texts = [text + (c if captions else "") for c in (captions or [None] * len(images))]
        enc = self.processor(text=texts, images=list(images), return_tensors="pt", padding=True)
        return enc.to(next(self.model.parameters()).device)

    @torch.no_grad()
    def generate(self, images, batch_size: int = 8) -> list[str]:
        out = []
        images = list(images)
        for i in range(0, len(images), batch_size):
            enc = self.inputs(images[i:i + batch_size])
            ids = self.model.generate(**enc, **self.generation)
            new = ids[:, enc["input_ids"].shape[1]:]
            out += [t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)]
        return out

    def loss(self, images, captions):
        enc = self.inputs(images, captions)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        return self.model(**enc, labels=labels).loss


class Qwen2VLAdapter(CaptionerAdapter):
    """Qwen2-VL as a captioner: same benchmarks, same methods (wrap a model + processor)."""
    kind = "captioner"

    @classmethod
    def from_model(cls, model, processor, **kwargs):
        return cls(Qwen2VLBundle(model, processor), **kwargs)


# ===================================================================== benchmarks
class Benchmark:
    """Examples + scoring. ``score`` returns a flat dict of numbers (higher is better unless the
    benchmark says otherwise, like ``CaptionBenchmark``'s ``nll``)."""
    name = "benchmark"

    def applies_to(self, adapter: ModelAdapter) -> bool:
        raise NotImplementedError

    def score(self, adapter: ModelAdapter) -> dict[str, float]:
        raise NotImplementedError


class CaptionBenchmark(Benchmark):
    """COCO caption metrics (CIDEr-D, BLEU-4, METEOR, ROUGE-L), a MiniLM semantic score, and the
    reference captions' negative log-likelihood.

    The semantic score is ``vlmid.metrics.semantic``'s (mean over images of the best cosine between
    the caption's and the references' MiniLM embeddings), with every distinct sentence embedded
    once per benchmark: a table of many methods re-embeds neither the references nor repeated captions.

    ``nll`` (lower is better, the one exception to "higher is better") is the teacher-forced
    mean token loss of each image's first reference caption. It does not depend on what beam
    search happens to pick, so it separates two close models far more finely than CIDEr-D on a
    few hundred images; ``paired_cider`` says whether a CIDEr-D difference is beyond that noise.
    Captions are generated once per adapter and kept, so ``paired_cider`` after ``compare``
    generates nothing again.

    ``items``: {image_id: the scene's true items} (``vlmid.data.scenes.scene_items``; tiny profile
    only, COCO has none) adds the grounded scores of the same captions (``vlmid.metrics.grounding``:
    garment_f1, binding_acc, ...). None: no such columns.
    """
    name = "captioning"

    def __init__(self, examples, semantic: bool = True, nll: bool = True, batch_size: int = 64,
                 items: dict | None = None):
        self.examples, self.semantic, self.nll, self.batch_size = list(examples), semantic, nll, batch_size
        if items is not None and any(e.image_id not in items for e in self.examples):
            missing = [e.image_id for e in self.examples if e.image_id not in items][:5]
            raise KeyError(f"CaptionBenchmark: items has no true items for image ids e.g. {missing}")
        self.items = items
        self._emb: dict[str, torch.Tensor] = {}
        self._preds: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def applies_to(self, adapter):
        return adapter.kind == "captioner"

    def predictions(self, adapter) -> dict:
        if adapter not in self._preds:
            caps = adapter.generate([e.image for e in self.examples], batch_size=self.batch_size)
            self._preds[adapter] = {e.image_id: c for e, c in zip(self.examples, caps)}
        return self._preds[adapter]

    def _embed(self, sentences) -> None:
        from ..metrics.semantic import embed_sentences

        new = sorted({s for s in sentences if s not in self._emb})
        if new:
            self._emb.update(zip(new, embed_sentences(new)))

    def semantic_score(self, preds: dict) -> float:
        self._embed(list(preds.values()) + [c for e in self.examples for c in e.captions])
        best = [max(float(self._emb[r] @ self._emb[preds[e.image_id]]) for r in e.captions) for e in self.examples]
        return sum(best) / len(best)

    @torch.no_grad()
    def reference_nll(self, adapter) -> float:
        """Mean over images of the teacher-forced token loss of the first reference caption."""
        total = 0.0
        for i in range(0, len(self.examples), self.batch_size):
            b = self.examples[i:i + self.batch_size]
            total += float(adapter.loss([e.image for e in b], [e.captions[0] for e in b])) * len(b)
        return total / len(self.examples)

    def per_image_cider(self, adapter) -> list[float]:
        from ..metrics import cider_per_image

        return cider_per_image({e.image_id: list(e.captions) for e in self.examples}, self.predictions(adapter))

    def paired_cider(self, a: ModelAdapter, b: ModelAdapter, n_boot: int = 2000, level: float = 0.95,
                     seed: int = 0) -> dict[str, float]:
        """CIDEr-D of ``a`` minus ``b`` on the same images, with a paired bootstrap interval
        (``vlmid.metrics.paired_difference``: verdict +1 / 0 / -1 = ahead / within noise / behind)."""
        from ..metrics import paired_difference

        return paired_difference(self.per_image_cider(a), self.per_image_cider(b), n_boot=n_boot,
                                 level=level, seed=seed)

    def score(self, adapter):
        from ..metrics import caption_scores

        preds = self.predictions(adapter)
        refs = {e.image_id: list(e.captions) for e in self.examples}
        s = caption_scores(refs, preds, spice=False)
        out = {k: s[k] for k in ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L")}
        if self.semantic:
            out["semantic"] = self.semantic_score(preds)
        if self.nll:
            out["nll"] = self.reference_nll(adapter)
        if self.items is not None:
            from ..metrics.grounding import GROUNDED_KEYS, grounded_scores
            grounded = grounded_scores(preds, self.items)
            out.update({k: grounded[k] for k in GROUNDED_KEYS})
        return out


class ZeroShotBenchmark(Benchmark):
    """Zero-shot top-1 accuracy of a CLIP adapter (prompt ensembling over the set's templates)."""
    name = "zeroshot"

    def __init__(self, zs, batch_size: int = 256):
        self.zs, self.batch_size = zs, batch_size

    def applies_to(self, adapter):
        return adapter.kind == "clip"

    def score(self, adapter):
        from ..metrics import zeroshot_top1

        return {"zeroshot_top1": zeroshot_top1(adapter.bundle, self.zs, batch_size=self.batch_size)}


# ===================================================================== methods: adapter -> adapter
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
               lr: float = 5e-4, batch_size: int = 32, seed: int = 0, path: str | None = None) -> Callable:
    """Drop decoder layers (default every second, keeping the last), then optionally fine-tune."""
    def apply(ad):
        p = path or layerdrop.decoder_layers_path(ad.model)
        n = len(ad.model.get_submodule(p))
        idx = layerdrop.every_second(n) if drop is None else list(drop)
        new = ad.with_model(layerdrop.drop_layers(ad.model, idx, p), layers=None, dropped=idx)
        if steps:
            new.notes["finetune_losses"] = layerdrop.finetune(new.bundle, finetune_examples, steps, lr,
                                                              batch_size, seed)
        return new
    return apply


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


def pareto_front(df, cost: str, quality: str):
    """Boolean mask of the rows no other row beats: lower-or-equal ``cost`` and higher-or-equal
    ``quality``, strictly better in one (both columns present)."""
    import numpy as np

    c, q = df[cost].to_numpy(float), df[quality].to_numpy(float)
    ok = ~(np.isnan(c) | np.isnan(q))
    front = np.zeros(len(df), dtype=bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (c <= c[i]) & (q >= q[i]) & ((c < c[i]) | (q > q[i]))
        front[i] = not dominated.any()
    return front


# ===================================================================== the loop
def measure_latency(calls: dict[str, Callable], repeats: int = 5, warmup: int = 1,
                    progress: bool = False) -> dict[str, float]:
    """Median seconds per call: notebook 03's protocol (``vlmid.profiling.time_variants``): warm-up
    rounds, then ``repeats`` rounds interleaved round-robin with a rotating start, so that
    contention on a shared machine hits every variant alike."""
    from ..profiling import Variant, time_variants

    times = time_variants([Variant(k, f) for k, f in calls.items()], repeats=repeats, warmup=warmup,
                          progress=progress)
    return {k: statistics.median(v) for k, v in times.items()}


def compare(base: ModelAdapter, methods: dict[str, Callable], benchmarks: list[Benchmark],
            latency_repeats: int = 5, progress: bool = True, return_adapters: bool = False):
    """One row per method: stored MB, size vs fp32, replaced layers' bytes vs their fp32 bytes,
    latency (median s), and the scores of every benchmark that applies.
    With ``return_adapters``, also the dict name -> compressed adapter."""
    import pandas as pd
    from tqdm.auto import tqdm

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
        rows.append(row)
    if latency_repeats:
        lat = measure_latency({k: a.timed_call() for k, a in adapters.items()}, repeats=latency_repeats)
        for row in rows:
            row["latency_s"] = lat[row["method"]]
    df = pd.DataFrame(rows)
    return (df, adapters) if return_adapters else df
