"""Benchmarks: ``applies_to(adapter)`` and ``score(adapter) -> dict`` (captioning, zero-shot)."""
from __future__ import annotations

import weakref

import torch

from ..data.base import images_of
from .adapters import ModelAdapter

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
            caps = adapter.generate(images_of(self.examples), batch_size=self.batch_size)
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
