"""vlmid: understanding and compressing vision-language models through intrinsic dimension.

Where each idea lives. The science first, in the order a reader meets it:

- ``vlmid.data``        Fashion-MNIST (``fashion_mnist``), the captioned scenes built from it (``scenes``) and the
                        tiny zero-shot set (``zeroshot``); COCO Karpathy, Flickr8k and CIFAR-10 in their on-disk
                        formats (``coco``, ``flickr8k``, ``cifar10``); the example types (``base``)
- ``vlmid.models``      the tiny BLIP and CLIP: their configs (``tiny``), vision pre-training with token labels
                        (``pretrain``), training loops (``train``), the build recipe (``build``), the shipped
                        checkpoints and where models come from (``zoo``), quality gates (``quality``), linear probes
                        (``probe``), which tower a module belongs to (``anatomy``), the grammar's tokenizer
                        (``tokenizer``), what a loader returns (``bundles``); and the paper checkpoints (``paper``)
- ``vlmid.metrics``     COCO caption metrics (``captioning``), the grounded caption score (``grounding``), zero-shot
                        accuracy (``zeroshot``), semantic similarity (``semantic``)
- ``vlmid.id``          TwoNN (``twonn``), intervals that resample images (``bootstrap``), the hooks that collect
                        layer representations (``representations``), per-layer profiles and the IDs handed to
                        pruning (``profiles``), our TwoNN timed against scikit-dimension's (``benchmark``)
- ``vlmid.pruning``     magnitude / gradient / PLATON / Wanda scores (``scores``), the ID prior and global masks
                        (``masks``), the cubic schedule (``schedule``), prune-while-fine-tuning (``finetune``), the
                        layer-level score (``layer_score``), the effects notebook 02 compares (``effects``)
- ``vlmid.tokens``      vision-token pruning and merging for CLIP: the algorithms (``merge``), the one-call patch
                        (``patch``)
- ``vlmid.compress``    quantization (``quantize``), low-rank factorization (``lowrank``, ``projections``), layer
                        dropping (``layerdrop``), each model family behind one interface (``adapters``), the methods
                        as functions (``methods``), what scores and times them (``benchmarks``, ``bench``)
- ``vlmid.retrieval``   notebook 04's matching models (``models``), their training (``train``), recall@K
                        (``recall``), and the Flickr8k report's own models rebuilt (``flickr8k_report``)
- ``vlmid.experiments`` one module per notebook: the steps it calls, the ``headline`` it writes and the claims it
                        decides (``models_and_data``, ``intrinsic_dimension``, ``pruning``, ``token_pruning``,
                        ``flickr8k``, ``compression``)

The evidence: ``vlmid.uncertainty`` (paired and hierarchical bootstraps: items, seeds, model builds),
``vlmid.verdict`` (a claim and how its verdict is decided), ``vlmid.claims`` (every claim, gathered and
checked against the headlines), ``vlmid.pareto`` (the front of a trade-off), ``vlmid.profiling`` (the
timing protocol, FLOPs, memory, parameter counts), ``vlmid.optim`` (the one optimiser step),
``vlmid.params`` (each notebook's parameters as a dataclass), ``vlmid.paths`` (where things live).

The machinery, out of the way in ``vlmid.harness``: result files with provenance (``results``), the
report and README table (``report``), the headless notebook runner (``pipeline``), the work a
notebook plans and its time (``plan``, ``paper_plan``), a paper run's input check (``paper_inputs``),
real-format stand-ins of the paper checkpoints (``standins``), the course on nbgrader (``course``).

The methods, the anchor numbers and the study's source documents are described in ``docs/``.
"""

__version__ = "0.1.0"
