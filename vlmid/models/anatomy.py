"""Where a module sits in BLIP or CLIP, read from its name: the one owner of that rule.

Both the ID hooks (``vlmid.id``) and the pruning masks (``vlmid.pruning``) group layers by tower;
they must agree, so the rule lives here:

- ``vision``: the image tower (``vision_model.*``) and CLIP's ``visual_projection``;
- ``fusion``: BLIP's cross-attention sublayers in the text decoder (text attending to the image);
- ``language`` (BLIP's text decoder otherwise) or ``text`` (CLIP's text tower).

BLIP's language-model head ``text_decoder.cls`` is tied to the word embeddings, so neither the
ID hooks nor the pruning masks touch it.
"""
from __future__ import annotations

import re

VISION_PREFIXES = ("vision_model", "visual_projection")
LM_HEAD = "text_decoder.cls"
_BLOCK_RE = re.compile(r"\.(?:layers|layer)\.(\d+)\.")


def module_group(name: str, family: str = "blip") -> str:
    """``vision`` | ``fusion`` | ``language`` (BLIP) or ``vision`` | ``text`` (CLIP) for a module name."""
    if name.startswith(VISION_PREFIXES):
        return "vision"
    if family == "clip":
        return "text"
    return "fusion" if ".crossattention" in name else "language"


def module_block(name: str) -> int | None:
    """The transformer block index in a module name (``...layers.3.mlp.fc1`` -> 3), else None."""
    m = _BLOCK_RE.search(name + ".")
    return int(m.group(1)) if m else None
