"""vlmid: understanding and compressing vision-language models through intrinsic dimension.

Where each idea lives:

- ``vlmid.data``      Fashion-MNIST, the captioned scenes built from it, COCO / Flickr8k / CIFAR-10 loaders
- ``vlmid.models``    the tiny BLIP and CLIP: their configs (``tiny``), vision pre-training with token labels
                      (``pretrain``), training loops (``train``), the build recipe (``build``), quality gates
                      (``quality``), the shipped checkpoints (``zoo``), which tower a module belongs to (``anatomy``);
                      and the paper checkpoints (``paper``)
- ``vlmid.metrics``   COCO caption metrics, the grounded caption score (garments, colours, count),
                      zero-shot accuracy, semantic similarity
- ``vlmid.id``        TwoNN intrinsic dimension and the hooks that collect layer representations
- ``vlmid.pruning``   magnitude / gradient / PLATON / Wanda scores, the ID prior, global masks, cubic schedule,
                      the effects notebook 02 compares (``effects``), the work it plans (``plan``)
- ``vlmid.tokens``    vision-token pruning and merging patches for CLIP
- ``vlmid.compress``  quantization, low-rank factorization, layer dropping
- ``vlmid.retrieval`` notebook 04: the Flickr8k-style baseline and token-pruned matching models, recall@K
- ``vlmid.results``   atomic result files with provenance; ``vlmid.profiling`` the round-robin timing protocol,
                      FLOPs, memory and parameter counts; ``vlmid.pareto`` the Pareto front of a trade-off table
- ``vlmid.params``    each notebook's parameters as a dataclass: per-profile defaults, range checks, smoke sizes,
                      and the work they imply (``plan()``); ``vlmid.plan`` that work counted in units and timed
                      on one batch per unit; ``vlmid.paper_plan`` the default paper plans' GPU hours and memory
- ``vlmid.claims``    every claim of the study and target of this repository, defined once: keys, rule, wording;
                      ``vlmid.uncertainty`` the paired bootstrap behind each comparison's 95 % interval;
                      ``vlmid.report`` results/REPORT.md and the README table from them
- ``vlmid.pipeline``  runs the numbered notebooks headless (papermill); ``vlmid.paths`` where things live;
                      ``vlmid.standins`` the paper checkpoints and data sets as small real-format stand-ins
                      and ``vlmid.paper_inputs`` the check that a paper run has them all before it starts
- ``vlmid.course``    course tooling: student handouts and the autograder

The methods, the anchor numbers and the study's source documents are described in ``docs/``.
"""

__version__ = "0.1.0"
