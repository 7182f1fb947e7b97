"""The quality gates of the tiny models, measured once where they are built and again wherever
they are used: :func:`measure` at build time and in the tests, and its three steps in notebook 00.

Every gate is one that a shortcut cannot pass: CIDEr-D is reported, but the captioner is judged
by whether its captions name the right garments in the right colours (the grounded score of
:mod:`vlmid.metrics.grounding`); the vision towers by linear probes of the item class on their
CLS feature; CLIP by zero-shot top-1 over the ten garment names.

Each gate is measured by one step, which :func:`measure` and notebook 00 both call:
:func:`caption_gates` (the grounded scores of the captions as ``blip_*`` keys),
:func:`zeroshot_table` / :func:`zeroshot_top1` (zero-shot accuracy per class and overall) and
:func:`vlmid.models.probe.probe_towers` / :func:`~vlmid.models.probe.probe_metrics` (the linear probes).

:data:`SUBSET` is the small fixed subset that the test-suite re-measures on the shipped models
and compares with the values their manifest recorded at build time.
"""
from __future__ import annotations

# a few seconds of work: what tests/test_zoo re-measures on the shipped models
SUBSET = dict(n_test=100, n_zeroshot=500, n_probe=400, n_probe_fit=1000)
# the full evaluation of notebook 00 (beam 3, max 20 tokens: BLIP's decoding)
FULL = dict(n_test=1000, n_zeroshot=None, n_probe=2000, n_probe_fit=5000)
# smoke builds: the same code path in seconds
SMOKE = dict(n_test=8, n_zeroshot=40, n_probe=40, n_probe_fit=40)


def caption_gates(grounded) -> dict:
    """The captioner's gates from :func:`vlmid.metrics.grounding.grounded_scores` of its captions (a dict,
    or a row of a table holding those columns): ``blip_garment_precision``, ``blip_garment_recall``,
    ``blip_garment_f1``, ``blip_binding_acc``, ``blip_count_acc``, ``blip_scene_exact``. ``None``: the
    same keys, all None (COCO has no item labels to ground the captions in)."""
    from ..metrics.grounding import GROUNDED_KEYS

    return {f"blip_{k}": None if grounded is None else float(grounded[k]) for k in GROUNDED_KEYS}


def zeroshot_table(clip, zs):
    """CLIP's zero-shot predictions (prompt ensembling) on ``zs`` counted per class: one row per class with
    ``class``, ``n`` (images), ``correct`` and ``top-1`` (their ratio)."""
    import pandas as pd

    from ..metrics import zeroshot_predict

    pred = zeroshot_predict(clip, zs)
    right = pred == zs.labels
    n = [int((zs.labels == c).sum()) for c in range(len(zs.classnames))]
    correct = [int(right[zs.labels == c].sum()) for c in range(len(zs.classnames))]
    return pd.DataFrame({"class": zs.classnames, "n": n, "correct": correct,
                         "top-1": [k / m if m else float("nan") for k, m in zip(correct, n)]})


def zeroshot_top1(table) -> float:
    """Top-1 over every image of :func:`zeroshot_table` (not the mean of the classes' accuracies)."""
    return int(table["correct"].sum()) / int(table["n"].sum())


def measure(cap, clip, seed: int = 0, smoke: bool = False, n_test: int | None = 1000,
            n_zeroshot: int | None = None, n_probe: int = 2000, n_probe_fit: int = 5000, cider: bool = True) -> dict:
    """The headline quality metrics of a tiny captioner and CLIP on the held-out *test* data.

    Keys: ``blip_garment_f1`` / ``_precision`` / ``_recall``, ``blip_binding_acc``, ``blip_count_acc``,
    ``blip_scene_exact`` (grounded score of the captions of ``n_test`` test scenes), ``blip_cider``,
    ``blip_bleu4`` (with ``cider``; needs Java), ``clip_zeroshot_top1`` (``n_zeroshot`` Fashion-MNIST
    test photos, None: all 10,000), ``probe_blip_class`` / ``probe_clip_class`` / ``_colour``
    (fitted on ``n_probe_fit`` validation items, scored on ``n_probe`` test items:
    :mod:`vlmid.models.probe`), ``probe_protocol``, and the sizes used."""
    from ..data import load_captions, load_zeroshot
    from ..data.scenes import scene_items
    from ..data.base import images_of
    from ..metrics import caption_scores
    from ..metrics.grounding import grounded_scores
    from .probe import probe_metrics, probe_towers

    test = load_captions("tiny", "test", n=n_test, seed=seed, smoke=smoke)
    preds = cap.generate(images_of(test))
    truth = scene_items("test", n=n_test, seed=seed, smoke=smoke)
    out = caption_gates(grounded_scores(preds, [truth[e.image_id] for e in test]))
    if cider:
        s = caption_scores({e.image_id: list(e.captions) for e in test}, dict(zip([e.image_id for e in test], preds)))
        out.update(blip_cider=s["CIDEr"], blip_bleu4=s["BLEU-4"])
    zs = load_zeroshot("tiny", n=n_zeroshot, seed=seed)
    out["clip_zeroshot_top1"] = zeroshot_top1(zeroshot_table(clip, zs))
    probes = probe_towers({"blip": (cap.model.vision_model, cap.pixel_values),
                           "clip": (clip.model.vision_model, clip.pixel_values)}, n_probe_fit, n_probe, seed)
    out.update(probe_metrics(probes))
    out.update(n_test=len(test), n_zeroshot=len(zs))
    return out
