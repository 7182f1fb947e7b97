"""vlmid: understanding and compressing vision-language models through intrinsic dimension.

Where each idea lives:

- ``vlmid.data``      Fashion-MNIST (``fashion_mnist``), the captioned scenes built from it (``scenes``) and the
                      tiny zero-shot set (``zeroshot``); COCO Karpathy, Flickr8k and CIFAR-10 in their on-disk
                      formats (``coco``, ``flickr8k``, ``cifar10``); the example types (``base``)
- ``vlmid.models``    the tiny BLIP and CLIP: their configs (``tiny``), vision pre-training with token labels
                      (``pretrain``), training loops (``train``), the build recipe (``build``), quality gates
                      (``quality``), linear probes of the towers (``probe``), the shipped checkpoints (``zoo``),
                      which tower a module belongs to (``anatomy``), the grammar's word-level tokenizer
                      (``tokenizer``), what a notebook gets back from a loader (``bundles``); and the paper
                      checkpoints (``paper``)
- ``vlmid.metrics``   COCO caption metrics (``captioning``), the grounded caption score: garments, colours,
                      count (``grounding``), zero-shot accuracy (``zeroshot``), semantic similarity (``semantic``)
- ``vlmid.id``        TwoNN intrinsic dimension (``twonn``), the hooks that collect layer representations
                      (``representations``), per-layer profiles and the IDs handed to pruning (``profiles``),
                      our TwoNN timed against scikit-dimension's (``benchmark``)
- ``vlmid.pruning``   magnitude / gradient / PLATON / Wanda scores, the ID prior, global masks, cubic schedule,
                      the effects notebook 02 compares (``effects``), the work it plans (``plan``)
- ``vlmid.tokens``    vision-token pruning and merging for CLIP: the algorithms (``merge``), the one-call patch
                      (``patch``), notebook 03's accuracy and cost grids (``study``)
- ``vlmid.compress``  quantization (``quantize``), low-rank factorization (``lowrank``, ``projections``),
                      layer dropping (``layerdrop``); each model family behind one interface (``adapters``), the
                      methods as functions (``methods``), what scores them (``benchmarks``), the table of all
                      three (``bench``)
- ``vlmid.retrieval`` notebook 04: the baseline and token-pruned matching models (``models``), their objective,
                      training and timing (``train``), recall@K (``recall``), and the Flickr8k report's own
                      models and objective rebuilt as it describes them (``flickr8k_report``)
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
