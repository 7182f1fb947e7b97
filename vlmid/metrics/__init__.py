"""How good is a captioner or a CLIP model: COCO caption metrics, zero-shot accuracy, semantic similarity.

- :mod:`vlmid.metrics.captioning`  pycocoevalcap's BLEU / METEOR / ROUGE-L / CIDEr-D (/ SPICE), per-image CIDEr-D,
                                   trivial baselines (the paired bootstrap lives in :mod:`vlmid.uncertainty`)
- :mod:`vlmid.metrics.grounding`   tiny scenes only: garments, colours and counts read back out of a caption
                                   and compared with the scene's true items (what CIDEr cannot see)
- :mod:`vlmid.metrics.zeroshot`    zero-shot top-1 with prompt ensembling: pure functions on embeddings
                                   (``top1_from_embeddings``) and thin wrappers for a CLIP bundle
- :mod:`vlmid.metrics.semantic`    a BERTScore-style similarity with the pretrained all-MiniLM-L6-v2
"""
from .captioning import (SCORE_KEYS, caption_scores, cider_per_image, constant_caption_baseline, evaluate_captioner,
                         random_caption_baseline, spice_status, warm_up)
from .grounding import (GROUNDED_KEYS, ParsedCaption, grounded_per_scene, grounded_scores, parse_caption,
                        shortcut_captions)
from .semantic import semantic_scores, semantic_similarity
from ..uncertainty import paired_difference  # re-exported: the metrics' users compare two models
from .zeroshot import (class_text_embeddings, image_embeddings, top1_from_embeddings, zeroshot_predict,
                       zeroshot_similarities, zeroshot_top1)

__all__ = [
    "SCORE_KEYS", "caption_scores", "cider_per_image", "paired_difference", "evaluate_captioner", "constant_caption_baseline",
    "random_caption_baseline", "spice_status", "warm_up", "zeroshot_top1", "zeroshot_predict",
    "class_text_embeddings", "image_embeddings", "zeroshot_similarities", "top1_from_embeddings",
    "semantic_similarity", "semantic_scores",
    "GROUNDED_KEYS", "ParsedCaption", "parse_caption", "grounded_scores", "grounded_per_scene", "shortcut_captions",
]

