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


def _features(out) -> torch.Tensor:
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
    emb = _features(model.get_text_features(**inputs)).float()
    emb = torch.nn.functional.normalize(emb, dim=-1).reshape(len(classnames), len(templates), -1)
    return torch.nn.functional.normalize(emb.mean(dim=1), dim=-1)


@torch.no_grad()
def image_embeddings(clip, images: list, batch_size: int = 256, progress: bool = True) -> torch.Tensor:
    """[n_images, dim] unit-norm image embeddings, computed in batches."""
    model, device = clip.model, _device(clip.model)
    chunks = []
    starts = range(0, len(images), batch_size)
    for s in tqdm(starts, desc="zero-shot images", disable=not progress or len(starts) < 3, leave=False):
        pv = clip.pixel_values(images[s:s + batch_size]).to(device)
        chunks.append(_features(model.get_image_features(pixel_values=pv)).float().cpu())
    return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)


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
    sims = image_embeddings(clip, zs.images, batch_size) @ text_embeddings.float().cpu().T
    pred = sims.argmax(dim=1).numpy()
    return (pred, sims.numpy()) if return_logits else pred


def zeroshot_top1(clip, zs, batch_size: int = 256, text_embeddings: torch.Tensor | None = None) -> float:
    """Top-1 accuracy in [0, 1] of prompt-ensembled zero-shot classification on ``zs``."""
    pred = zeroshot_predict(clip, zs, batch_size, text_embeddings)
    return float(np.mean(pred == np.asarray(zs.labels)))
