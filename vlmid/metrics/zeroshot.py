"""Zero-shot classification with a CLIP model and prompt ensembling.

Each class c gets one text embedding: the templates are filled with its name
("a photo of a {}."), each sentence is embedded and L2-normalised, the embeddings are
averaged and normalised again (Radford et al. 2021). An image is assigned the class whose
embedding has the largest cosine with the image's normalised embedding:

    t_c = normalise( mean_k normalise(f_text(template_k(c))) ),   y_hat = argmax_c <normalise(f_img(x)), t_c>

``clip`` is anything with ``clip.model`` (a transformers ``CLIPModel`` or an object with the
same ``get_image_features`` / ``get_text_features``), ``clip.pixel_values(images)`` and
``clip.text_inputs(texts)``, as returned by ``vlmid.models.load_clip``.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm


def embedding_tensor(out) -> torch.Tensor:
    """The embedding tensor, whether a model returns a tensor or a model-output object.

    transformers 5.x ``CLIPModel.get_image_features`` returns a ``BaseModelOutputWithPooling``
    whose ``pooler_output`` holds the *projected* embedding; 4.x returned the tensor itself.
    """
    if isinstance(out, torch.Tensor):
        return out
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(out, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"cannot find an embedding tensor in {type(out).__name__}")


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


@torch.no_grad()
def class_text_embeddings(clip, classnames: list[str], templates: list[str]) -> torch.Tensor:
    """[n_classes, dim] prompt-ensembled, unit-norm class embeddings (reusable across runs)."""
    if not classnames:
        raise ValueError("class_text_embeddings: classnames is empty")
    templates = list(templates) or ["{}"]
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise ValueError(f"every template needs one '{{}}' for the class name; these have none: {bad}")
    model, device = clip.model, _device(clip.model)
    texts = [t.format(c) for c in classnames for t in templates]
    inputs = {k: v.to(device) for k, v in clip.text_inputs(texts).items()}
    return ensemble_class_embeddings(embedding_tensor(model.get_text_features(**inputs)), len(classnames))


def ensemble_class_embeddings(text_features: torch.Tensor, n_classes: int) -> torch.Tensor:
    """[n_classes, dim] unit-norm class embeddings from the text features of every (class, template)
    sentence, class-major: each sentence normalised, averaged over templates, normalised again."""
    emb = torch.nn.functional.normalize(text_features.float(), dim=-1).reshape(n_classes, -1, text_features.shape[-1])
    return torch.nn.functional.normalize(emb.mean(dim=1), dim=-1)


@torch.no_grad()
def embed_batches(image_features, batches) -> torch.Tensor:
    """[n_images, dim] unit-norm embeddings: ``image_features(batch)`` (a model's ``get_image_features``
    or any function of a batch) on every batch, concatenated on the CPU."""
    chunks = [embedding_tensor(image_features(b)).float().cpu() for b in batches]
    return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)


def image_embeddings(clip, images: list, batch_size: int = 256, progress: bool = True) -> torch.Tensor:
    """[n_images, dim] unit-norm image embeddings, computed in batches."""
    model, device = clip.model, _device(clip.model)
    starts = range(0, len(images), batch_size)
    starts = tqdm(starts, desc="zero-shot images", disable=not progress or len(starts) < 3, leave=False)
    return embed_batches(lambda pv: model.get_image_features(pixel_values=pv),
                         (clip.pixel_values(images[s:s + batch_size]).to(device) for s in starts))


def zeroshot_pixels(clip, zs, batch_size: int = 512) -> torch.Tensor:
    """The zero-shot images as one tensor of pixels on the model's device: encoded once, then reused
    by every variant (preprocessing them for each variant would dominate the run)."""
    pixels = torch.cat([clip.pixel_values(zs.images[s:s + batch_size]).cpu() for s in range(0, len(zs.images), batch_size)])
    return pixels.to(next(clip.model.parameters()).device)


# -- the metric itself: pure functions on embeddings (no model needed) ----------------------
def zeroshot_similarities(image_embeddings: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
    """[n_images, n_classes] cosine similarities of unit-norm image and class embeddings (on CPU, float32)."""
    return image_embeddings.float().cpu() @ class_embeddings.float().cpu().T


def correct_from_embeddings(image_embeddings: torch.Tensor, class_embeddings: torch.Tensor, labels) -> np.ndarray:
    """Per image: is the zero-shot prediction of unit-norm ``image_embeddings`` right? (bool array)."""
    pred = zeroshot_similarities(image_embeddings, class_embeddings).argmax(dim=1).numpy()
    return pred == np.asarray(labels)


def top1_from_embeddings(image_embeddings: torch.Tensor, class_embeddings: torch.Tensor, labels) -> float:
    """Zero-shot top-1 accuracy of unit-norm ``image_embeddings`` against ``class_embeddings``."""
    return float(np.mean(correct_from_embeddings(image_embeddings, class_embeddings, labels)))


# -- thin wrappers for a CLIP bundle ----------------------------------------------------------
def zeroshot_predict(clip, zs, batch_size: int = 256, text_embeddings: torch.Tensor | None = None,
                     return_logits: bool = False):
    """Predicted class index per image of ``zs`` (a ``ZeroShotSet``), as an int numpy array.

    text_embeddings: the output of :func:`class_text_embeddings` to reuse (e.g. when only
    the vision tower changes between runs); computed from ``zs`` when None.
    return_logits: also return the [n_images, n_classes] cosine similarities.
    """
    if len(zs.images) == 0:
        raise ValueError("zero-shot set is empty")
    if len(zs.images) != len(zs.labels):
        raise ValueError(f"zero-shot set has {len(zs.images)} images but {len(zs.labels)} labels")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    if text_embeddings is None:
        text_embeddings = class_text_embeddings(clip, zs.classnames, zs.templates)
    sims = zeroshot_similarities(image_embeddings(clip, zs.images, batch_size), text_embeddings)
    pred = sims.argmax(dim=1).numpy()
    return (pred, sims.numpy()) if return_logits else pred


def zeroshot_top1(clip, zs, batch_size: int = 256, text_embeddings: torch.Tensor | None = None) -> float:
    """Top-1 accuracy in [0, 1] of prompt-ensembled zero-shot classification on ``zs``."""
    pred = zeroshot_predict(clip, zs, batch_size, text_embeddings)
    return float(np.mean(pred == np.asarray(zs.labels)))
