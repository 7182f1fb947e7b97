"""The two kinds of example every notebook consumes, whatever the profile."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class CaptionExample:
    """One image with its reference captions (COCO: 5 per image; our scenes: 5 per image)."""
    image_id: int | str
    image: "PIL.Image.Image"  # noqa: F821  (RGB)
    captions: list[str] = field(default_factory=list)


@dataclass
class ZeroShotSet:
    """Images with class labels, the class names, and prompt templates with one ``{}`` each."""
    images: list  # list of RGB PIL images
    labels: np.ndarray
    classnames: list[str]
    templates: list[str]

    def __len__(self) -> int:
        return len(self.labels)
