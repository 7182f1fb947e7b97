"""The tiny BLIP and CLIP: small configs of the real transformers classes, trained here.

Both see 64 px images cut into 8 px patches (64 patch tokens + CLS) and share the
word-level tokenizer of the scene grammar. Sizes are chosen so that the build
(``vlmid.models.build``: vision pre-training, then captioning and contrastive training) fits
in under an hour on two CPU cores, while keeping several transformer layers per tower (so
that per-layer intrinsic dimension and pruning mean something).
"""
from __future__ import annotations

from dataclasses import dataclass


IMAGE_SIZE = 64
# the same normalisation for both models: images are mostly black background
MEAN, STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


@dataclass
class TinyConfig:
    hidden: int = 128
    layers: int = 4          # per tower
    heads: int = 4
    mlp: int = 512
    patch: int = 8
    image_size: int = IMAGE_SIZE
    max_text: int = 32


def blip_config(tok, c: TinyConfig = TinyConfig()):
    from transformers import BlipConfig

    vision = dict(hidden_size=c.hidden, intermediate_size=c.mlp, num_hidden_layers=c.layers,
                  num_attention_heads=c.heads, image_size=c.image_size, patch_size=c.patch,
                  initializer_range=0.02)  # BLIP's default initializer_range is tiny: the tower would not train
    text = dict(vocab_size=len(tok), hidden_size=c.hidden, intermediate_size=c.mlp,
                num_hidden_layers=c.layers, num_attention_heads=c.heads, encoder_hidden_size=c.hidden,
                max_position_embeddings=c.max_text, bos_token_id=tok.cls_token_id,
                eos_token_id=tok.sep_token_id, sep_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id)
    return BlipConfig(vision_config=vision, text_config=text, projection_dim=c.hidden)


def clip_config(tok, c: TinyConfig = TinyConfig()):
    from transformers import CLIPConfig

    vision = dict(hidden_size=c.hidden, intermediate_size=c.mlp, num_hidden_layers=c.layers,
                  num_attention_heads=c.heads, image_size=c.image_size, patch_size=c.patch)
    # CLIP pools the text at the first eos token; eos must not be id 2 (the legacy argmax rule)
    text = dict(vocab_size=len(tok), hidden_size=c.hidden, intermediate_size=c.mlp,
                num_hidden_layers=c.layers, num_attention_heads=c.heads, max_position_embeddings=c.max_text,
                bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id)
    return CLIPConfig(vision_config=vision, text_config=text, projection_dim=c.hidden)


def blip_processor(tok, c: TinyConfig = TinyConfig()):
    from transformers import BlipImageProcessorPil as BlipImageProcessor  # no torchvision here
    from transformers import BlipProcessor

    ip = BlipImageProcessor(size={"height": c.image_size, "width": c.image_size}, image_mean=MEAN, image_std=STD)
    return BlipProcessor(image_processor=ip, tokenizer=tok)


def clip_image_processor(c: TinyConfig = TinyConfig()):
    from transformers import CLIPImageProcessorPil as CLIPImageProcessor  # no torchvision here

    return CLIPImageProcessor(size={"shortest_edge": c.image_size},
                              crop_size={"height": c.image_size, "width": c.image_size},
                              image_mean=MEAN, image_std=STD)


def to_pixels(images_uint8, mean=MEAN, std=STD):
    """uint8 [B, H, W, 3] (already at model size) -> normalised float [B, 3, H, W], as the processors do."""
    import torch

    x = torch.as_tensor(images_uint8).permute(0, 3, 1, 2).float() / 255.0
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s


