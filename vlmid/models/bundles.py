"""What a notebook gets back from ``load_captioner`` / ``load_clip``: the transformers model and
processor plus the few conveniences every notebook needs (decoding settings, batching)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .tokenizer import detokenize


def _batches(seq, size):
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


@dataclass
class Captioner:
    """A ``BlipForConditionalGeneration`` with its ``BlipProcessor``, prompt and decoding settings."""
    model: object
    processor: object
    prompt: str = ""
    generation: dict = field(default_factory=lambda: dict(num_beams=3, max_length=20, min_length=5))
    profile: str = "tiny"

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def device(self):
        return next(self.model.parameters()).device

    def pixel_values(self, images) -> torch.Tensor:
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"].to(self.device)

    @torch.no_grad()
    def generate(self, images, batch_size: int = 64, progress: bool = False, **overrides) -> list[str]:
        """Captions of ``images`` (PIL) with ``self.generation`` (overridden by keyword arguments)."""
        kwargs = {**self.generation, **overrides}
        images, out = list(images), []
        chunks = list(_batches(images, batch_size))
        if progress:
            from tqdm.auto import tqdm
            chunks = tqdm(chunks, desc="captioning")
        for chunk in chunks:
            pv = self.pixel_values(chunk)
            extra = {}
            if self.prompt:
                enc = self.tokenizer([self.prompt] * len(chunk), return_tensors="pt")
                extra = dict(input_ids=enc["input_ids"].to(self.device))
            ids = self.model.generate(pixel_values=pv, **extra, **kwargs)
            for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True):
                text = text.strip()
                if self.prompt and text.startswith(self.prompt.strip()):
                    text = text[len(self.prompt.strip()):]  # BLIP's evaluation strips the prompt
                out.append(detokenize(text))
        return out

    def loss(self, images, captions) -> torch.Tensor:
        """Teacher-forced LM loss of ``captions`` given ``images`` (prompt tokens are not scored)."""
        enc = self.tokenizer([self.prompt + c for c in captions], padding=True, return_tensors="pt").to(self.device)
        # BLIP decodes from its bos token ([DEC] in BLIP-base, not the tokenizer's [CLS]): train the same way
        enc["input_ids"][:, 0] = self.model.config.text_config.bos_token_id
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        if self.prompt:
            n_prompt = len(self.tokenizer(self.prompt.strip())["input_ids"]) - 1  # [CLS] + prompt words
            labels[:, :n_prompt] = -100
        return self.model(pixel_values=self.pixel_values(images), input_ids=enc["input_ids"],
                          attention_mask=enc["attention_mask"], labels=labels).loss


@dataclass
class ClipBundle:
    """A ``CLIPModel`` with its image processor and tokenizer."""
    model: object
    image_processor: object
    tokenizer: object
    image_size: int
    profile: str = "tiny"

    @property
    def device(self):
        return next(self.model.parameters()).device

    def pixel_values(self, images) -> torch.Tensor:
        return self.image_processor(images=list(images), return_tensors="pt")["pixel_values"].to(self.device)

    def text_inputs(self, texts) -> dict:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}

    @torch.no_grad()
    def image_features(self, images, batch_size: int = 256) -> torch.Tensor:
        feats = [self.model.get_image_features(pixel_values=self.pixel_values(c)) for c in _batches(list(images), batch_size)]
        return _as_tensor(torch.cat([_as_tensor(f) for f in feats]))

    @torch.no_grad()
    def text_features(self, texts) -> torch.Tensor:
        return _as_tensor(self.model.get_text_features(**self.text_inputs(texts)))


def _as_tensor(x):
    # transformers 5 may return a model output object from get_*_features
    if isinstance(x, torch.Tensor):
        return x
    return getattr(x, "pooler_output", None) if getattr(x, "pooler_output", None) is not None else x[0]
