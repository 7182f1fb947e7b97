"""Model adapters: one loaded model family (BLIP captioner, CLIP, Qwen2-VL) behind one interface.

An adapter knows how to swap its ``nn.Module`` (``with_model``), run calibration forwards and
make one timed call; the compression methods (``vlmid.compress.methods``) and the benchmarks
(``vlmid.compress.benchmarks``) only talk to adapters.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

import torch
from torch import nn

from ..models.bundles import Qwen2VLBundle

class ModelAdapter:
    """One model family. Subclasses set ``kind`` and implement the three hooks below."""
    kind = "model"
    extras: tuple[str, ...] = ()  # constructor arguments of a subclass that ``with_model`` carries over

    def __init__(self, bundle, compressed_layers: list[str] | None = None, notes: dict | None = None):
        self.bundle = bundle
        self.compressed_layers = compressed_layers  # names of layers a method replaced (None: whole model)
        self.notes = dict(notes or {})

    @property
    def model(self) -> nn.Module:
        return self.bundle.model

    def with_model(self, model: nn.Module, layers: Iterable[str] | None = None, **notes) -> "ModelAdapter":
        """A new adapter around ``model`` (same processor, prompt, decoding settings)."""
        new = _bundle_with(self.bundle, model)
        layers = list(layers) if layers is not None else self.compressed_layers
        adapter = type(self)(new, layers, {**self.notes, **notes})
        for name in self.extras:  # the subclass's own inputs (calibration set, timing images) carry over
            setattr(adapter, name, getattr(self, name))
        return adapter

    def release(self) -> None:
        """Drop this adapter's reference to its model, to free its memory; what benchmarks cached
        about it (captions, scores) stays, and ``model`` is None from now on."""
        self.bundle = _bundle_with(self.bundle, None)

    # -- hooks ------------------------------------------------------------------------
    def calibration_run(self, n: int = 32) -> Callable[[], None]:
        """A function running forward passes on ``n`` calibration inputs (for activation statistics)."""
        raise NotImplementedError

    def timed_call(self) -> Callable[[], object]:
        """A function making one representative inference call (what latency means for this family)."""
        raise NotImplementedError


def _bundle_with(bundle, model):
    """A copy of ``bundle`` (a dataclass or any object with a ``model``) holding ``model`` instead."""
    if dataclasses.is_dataclass(bundle):
        return dataclasses.replace(bundle, model=model)
    import copy
    new = copy.copy(bundle)
    new.model = model
    return new


class CaptionerAdapter(ModelAdapter):
    """A ``vlmid.models.Captioner`` (BLIP). Calibration: teacher-forced forwards on ``calib`` examples."""
    kind = "captioner"
    extras = ("calib", "timing_images")

    def __init__(self, bundle, compressed_layers=None, notes=None, calib=None, timing_images=None):
        super().__init__(bundle, compressed_layers, notes)
        self.calib = calib
        self.timing_images = timing_images

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
        """Captioning the timing images at the longest length the decoding settings allow, whatever the
        model would say: every method does the same work, so its time measures the model, not how long
        its captions happen to be (a damaged model that stops early would look fast)."""
        images = list(self.timing_images or [])
        if not images:
            raise ValueError("CaptionerAdapter needs timing_images= to measure latency")
        timed = _bundle_with_generation(self.bundle, fixed_length(self.generation))
        return lambda: timed.generate(images, batch_size=len(images))


def fixed_length(generation: dict) -> dict:
    """Decoding settings whose captions are all as long as ``generation`` allows: the minimum length set to
    the maximum (``min_length`` / ``min_new_tokens``, as the settings give it), everything else kept."""
    g = dict(generation)
    if "max_length" in g:
        g["min_length"] = g["max_length"]
    if "max_new_tokens" in g:
        g["min_new_tokens"] = g["max_new_tokens"]
    return g


def _bundle_with_generation(bundle, generation: dict):
    """A copy of ``bundle`` (same model) that decodes with ``generation``."""
    if dataclasses.is_dataclass(bundle):
        return dataclasses.replace(bundle, generation=generation)
    import copy
    new = copy.copy(bundle)
    new.generation = generation
    return new


class ClipAdapter(ModelAdapter):
    """A ``vlmid.models.ClipBundle``. Calibration: image + prompt forwards; latency: image features."""
    kind = "clip"
    extras = ("zs", "timing_images")

    def __init__(self, bundle, compressed_layers=None, notes=None, zs=None, timing_images=None):
        super().__init__(bundle, compressed_layers, notes)
        self.zs = zs
        self.timing_images = timing_images

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


class Qwen2VLAdapter(CaptionerAdapter):
    """Qwen2-VL as a captioner: same benchmarks, same methods (wrap a model + processor)."""
    kind = "captioner"

    @classmethod
    def from_model(cls, model, processor, **kwargs):
        return cls(Qwen2VLBundle(model, processor), **kwargs)
