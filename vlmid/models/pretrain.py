"""Vision pre-training: teach the ViT the garments before it learns to caption or to match text.

The real BLIP and CLIP do not learn to see from their captions alone: BLIP starts from an
ImageNet-pretrained ViT, CLIP from hundreds of millions of image-text pairs. A tiny tower
trained from nothing on captions learns the cheapest signal first, the colour, and names
garments at chance (measured here before: item-class probe 0.18, colour 1.00). So each tiny
tower is first trained as a classifier of the garments it sees:

- **token labels** (the idea of LV-ViT, Jiang et al., NeurIPS 2021): every patch token predicts
  the garment drawn under it, or "background", through a linear head. A scene gives 64 labels
  instead of one, and each token learns the local shape that the captioner later reads through
  cross-attention;
- **the CLS token** predicts which garments the image holds (one-vs-rest, binary cross-entropy:
  one to three of the ten classes), as the pooled feature that CLIP aligns with text and the
  linear probes read.

- **foreground tokens only** (token dropping, the idea of MAE, He et al., CVPR 2022, and of FLIP,
  Li et al., "Scaling Language-Image Pre-training via Masking", CVPR 2023, which drops half of
  CLIP's patch tokens at random while training): a scene is mostly black background (about 17 of
  its 64 patches hold a garment), so the tower sees the CLS token, every garment patch and random
  background patches up to ``keep`` tokens (:class:`TokenDrop`). Here that is 24 of 64, a step costs
  less than half, and in equal time the tower learns faster (measured in ``vlmid.models.build``). The
  last pre-training steps, and the task stage after them, see every token (FLIP's unmasked tuning).

The two heads are thrown away after training (they are not part of the transformers models).
The images are scenes of the same distribution as the captioned ones (one to three tinted
Fashion-MNIST *train* photos, random colour, size and place), rendered with a label map.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from ..data.scenes import CANVAS, COLOURS, captions_for, sample_layout, tint  # noqa: F401

N_CLASSES = 10
# how a scene's patches are labelled with the garment under them: one rule, owned by the data layer (the
# harder zero-shot set of notebook 03 marks its foreground with it too)
from ..data.scenes import BACKGROUND, FOREGROUND_LEVEL, MIN_FOREGROUND, render_labelled  # noqa: E402,F401


def labelled_scenes(photos: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator,
                    p_items=(0.4, 0.35, 0.25), white_p: float = 0.0, captions: bool = False,
                    progress: bool = False) -> dict:
    """``n`` scenes drawn from ``photos`` with their labels: ``images`` uint8 [n, C, C, 3],
    ``patch_labels`` int64 [n, 64], ``present`` float32 [n, 10] (1 where the class is in the scene),
    ``first`` int64 [n] (the class of a single item, -100 in multi-item scenes) and, with
    ``captions``, five grammar captions per scene. ``white_p``: single items drawn white (as the
    zero-shot photos are shown) with this probability."""
    from tqdm.auto import tqdm

    out = dict(images=np.zeros((n, CANVAS, CANVAS, 3), dtype=np.uint8),
               patch_labels=np.zeros((n, (CANVAS // 8) ** 2), dtype=np.int64),
               present=np.zeros((n, N_CLASSES), dtype=np.float32), first=np.full(n, -100, dtype=np.int64))
    caps = []
    for i in tqdm(range(n), desc="rendering labelled scenes", disable=not progress):
        k = int(rng.choice([1, 2, 3], p=p_items))
        pick = rng.integers(0, len(labels), size=k)
        items, arrangement = sample_layout(k, [int(labels[j]) for j in pick], rng)
        if k == 1 and white_p and rng.random() < white_p:
            items[0].colour = "white"
        out["images"][i], out["patch_labels"][i] = render_labelled([photos[j] for j in pick], items, rng)
        out["present"][i, [it.label for it in items]] = 1.0
        if k == 1:
            out["first"][i] = items[0].label
        if captions:
            caps.append(captions_for(items, arrangement, rng))
    if captions:
        out["captions"] = caps
    return out


class VisionHeads(torch.nn.Module):
    """The two throw-away heads of pre-training: garment-or-background per patch token, and the
    garments present from the CLS feature."""

    def __init__(self, hidden: int):
        super().__init__()
        self.tokens = torch.nn.Linear(hidden, N_CLASSES + 1)
        self.cls = torch.nn.Linear(hidden, N_CLASSES)

    def loss(self, vision_output, patch_labels: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Token-label cross-entropy (mean over patches) + the CLS's binary cross-entropy summed over
        the classes (mean over images: on the scale of one cross-entropy)."""
        patches = vision_output.last_hidden_state[:, 1:]
        token = torch.nn.functional.cross_entropy(self.tokens(patches).float().flatten(0, 1), patch_labels.flatten())
        cls = torch.nn.functional.binary_cross_entropy_with_logits(
            self.cls(vision_output.pooler_output).float(), present, reduction="sum") / len(present)
        return token + cls

    @torch.no_grad()
    def predict(self, vision_output) -> torch.Tensor:
        """The most likely garment of each image (for single-item images)."""
        return self.cls(vision_output.pooler_output).argmax(-1)


class TokenDrop:
    """Show a ViT only some of its patch tokens (always the CLS): a forward hook on its embeddings
    keeps, inside :meth:`subset`, the CLS plus ``keep`` patches of each image, every garment patch
    first (a random subset where more than ``keep`` hold one), then random background patches.
    Works for any tower whose embeddings module returns [batch, 1 + patches, width] (BLIP, CLIP)."""

    def __init__(self, vision_model, keep: int, seed: int = 0):
        self.k, self._idx = keep, None
        self.generator = torch.Generator().manual_seed(seed)
        self._handle = vision_model.embeddings.register_forward_hook(self._gather)

    def _gather(self, module, args, out):
        if self._idx is None:
            return out
        return out.gather(1, self._idx[..., None].expand(-1, -1, out.shape[-1]))

    @contextmanager
    def subset(self, patch_labels: torch.Tensor):
        """Within the block, the tower sees the kept tokens; yields their patch labels ([batch, keep])."""
        score = (patch_labels != BACKGROUND).float() + torch.rand(patch_labels.shape, generator=self.generator)
        keep = score.topk(self.k, dim=1).indices.sort(1).values
        self._idx = torch.cat([torch.zeros(len(keep), 1, dtype=keep.dtype), keep + 1], 1)
        try:
            yield patch_labels.gather(1, keep)
        finally:
            self._idx = None

    def remove(self):
        self._handle.remove()
