"""vlmid: understanding and compressing vision-language models through intrinsic dimension.

Where each idea lives:

- ``vlmid.data``      Fashion-MNIST, the captioned scenes built from it, COCO / Flickr8k / CIFAR-10 loaders
- ``vlmid.models``    the tiny BLIP and CLIP: their configs (``tiny``), vision pre-training with token labels
                      (``pretrain``), training loops (``train``), the build recipe (``build``), quality gates
                      (``quality``), the shipped checkpoints (``zoo``); and the paper checkpoints (``paper``)
- ``vlmid.metrics``   COCO caption metrics, the grounded caption score (garments, colours, count),
                      zero-shot accuracy, semantic similarity
- ``vlmid.id``        TwoNN intrinsic dimension and the hooks that collect layer representations
- ``vlmid.pruning``   magnitude / gradient / PLATON scores, the ID prior, global masks, cubic schedule
- ``vlmid.tokens``    vision-token pruning and merging patches for CLIP
- ``vlmid.compress``  quantization, low-rank factorization, layer dropping
- ``vlmid.results``   atomic result files with provenance
"""

__version__ = "0.1.0"
