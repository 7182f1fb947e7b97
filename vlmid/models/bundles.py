"""What a notebook gets back from ``load_captioner`` / ``load_clip``: the transformers model and
processor plus the few conveniences every notebook needs (decoding settings, batching), and how a
tiny model folder becomes one (``load_tiny_captioner`` / ``load_tiny_clip``). ``Qwen2VLBundle`` is the
same for Qwen2-VL (paper profile, notebook 05)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..metrics.zeroshot import embedding_tensor
from .tokenizer import detokenize


def _batches(seq, size):
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


def _sequence(images):
    """``images`` as something with len() and slices: a sequence as it is (a lazy one, e.g.
    :func:`vlmid.data.base.images_of`, then decodes one batch at a time), anything else as a list."""
    return images if isinstance(images, Sequence) else list(images)


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
        images, out = _sequence(images), []
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

    def text_inputs(self, captions) -> dict:
        """The prompt and each caption as BLIP's text decoder reads them, padded to the longest.

        The decoder starts from its bos token, ``[DEC]`` in BLIP-base, where the tokenizer puts
        ``[CLS]``; ``generate`` does the same swap, so the loss and the ID hooks (which call this)
        see what generation sees. In the tiny profile the two tokens coincide."""
        enc = self.tokenizer([self.prompt + c for c in captions], padding=True, return_tensors="pt")
        enc["input_ids"][:, 0] = self.model.config.text_config.bos_token_id
        return enc.to(self.device)

    def loss(self, images, captions) -> torch.Tensor:
        """Teacher-forced LM loss of ``captions`` given ``images`` (prompt tokens are not scored)."""
        enc = self.text_inputs(captions)
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
        feats = [self.model.get_image_features(pixel_values=self.pixel_values(c)) for c in _batches(_sequence(images), batch_size)]
        return torch.cat([embedding_tensor(f) for f in feats])

    @torch.no_grad()
    def text_features(self, texts) -> torch.Tensor:
        return embedding_tensor(self.model.get_text_features(**self.text_inputs(texts)))


def load_tiny_captioner(folder, device: str = "cpu") -> Captioner:
    """The tiny captioner saved in ``folder`` (a build's or zoo entry's ``blip/``), on ``device``, with
    BLIP's decoding (beam 3, at most 20 tokens) and no prompt."""
    from transformers import BlipForConditionalGeneration, BlipProcessor

    model = BlipForConditionalGeneration.from_pretrained(folder, local_files_only=True).eval().to(device)
    proc = BlipProcessor.from_pretrained(folder, local_files_only=True)
    return Captioner(model=model, processor=proc, prompt="",
                     generation=dict(num_beams=3, max_length=20, min_length=5), profile="tiny")


def load_tiny_clip(folder, device: str = "cpu") -> ClipBundle:
    """The tiny CLIP saved in ``folder`` (a build's or zoo entry's ``clip/``), on ``device``."""
    from transformers import BertTokenizer, CLIPImageProcessorPil, CLIPModel

    model = CLIPModel.from_pretrained(folder, local_files_only=True).eval().to(device)
    ip = CLIPImageProcessorPil.from_pretrained(folder, local_files_only=True)
    tok = BertTokenizer.from_pretrained(folder, local_files_only=True)
    return ClipBundle(model=model, image_processor=ip, tokenizer=tok,
                      image_size=int(model.config.vision_config.image_size), profile="tiny")


@dataclass
class Qwen2VLBundle:
    """A ``Qwen2VLForConditionalGeneration`` with its processor and an instruction (paper profile)."""
    model: object
    processor: object
    instruction: str = "Describe the image in one sentence."
    generation: dict = field(default_factory=lambda: dict(max_new_tokens=20, do_sample=False))
    prompt: str = ""

    def inputs(self, images, captions=None, padding_side: str = "left"):
        """The processor's batch for ``images`` (and the chat prompt followed by each caption), padded on
        ``padding_side``: left for generation (a decoder-only model continues every row from its last
        position), right for the loss."""
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.instruction}]}]
        text = self.processor.apply_chat_template(msgs, add_generation_prompt=True)
        texts = [text + (c if captions else "") for c in (captions or [None] * len(images))]
        tok = self.processor.tokenizer
        side, tok.padding_side = tok.padding_side, padding_side
        try:
            enc = self.processor(text=texts, images=list(images), return_tensors="pt", padding=True)
        finally:
            tok.padding_side = side
        return enc.to(next(self.model.parameters()).device)

    @torch.no_grad()
    def generate(self, images, batch_size: int = 8) -> list[str]:
        out = []
        for chunk in _batches(_sequence(images), batch_size):
            enc = self.inputs(chunk, padding_side="left")
            ids = self.model.generate(**enc, **self.generation)
            new = ids[:, enc["input_ids"].shape[1]:]
            out += [t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)]
        return out

    def caption_labels(self, images, captions):
        """(batch, labels) for the caption NLL: the labels are the caption's tokens and its end-of-turn
        token; the system and user turns, the hundreds of image placeholder tokens, the assistant header
        and the padding are -100. The prompt's length is measured per image (its placeholder count
        depends on the image's size) by processing the prompt alone."""
        end = self.processor.tokenizer.eos_token or ""
        prompt = self.inputs(images, None, padding_side="right")
        enc = self.inputs(images, [c + end for c in captions], padding_side="right")
        n_prompt = prompt["attention_mask"].sum(1, keepdim=True)
        position = torch.arange(enc["input_ids"].shape[1], device=n_prompt.device).unsqueeze(0)
        labels = enc["input_ids"].masked_fill((position < n_prompt) | (enc["attention_mask"] == 0), -100)
        return enc, labels

    def loss(self, images, captions):
        enc, labels = self.caption_labels(images, captions)
        return self.model(**enc, labels=labels).loss
