"""COCO caption metrics through pycocoevalcap, fast enough to call inside a pruning sweep.

The scores are exactly those of pycocoevalcap 1.2 (the COCO caption evaluation code):
captions are lower-cased and split by Stanford's PTB tokenizer, punctuation is dropped,
then BLEU-1..4, METEOR 1.5, ROUGE-L and CIDEr (which is CIDEr-D: sigma = 6, clipped
counts) are computed, and SPICE when its CoreNLP jars are installed. Scores are on
pycocoevalcap's scale (CIDEr ~1.3 for BLIP on COCO, not 130).

Two things make repeated calls cheap without changing a single score:

- tokenization is a pure function of one line (``-preserveLines``), so each distinct
  sentence is tokenized once per process and cached: the references of a sweep are
  tokenized on the first call only, and each later call starts one Java process for the
  new predictions;
- METEOR runs in a Java process that reads one request per line; one such process is
  kept for the whole Python session and closed at exit.

CIDEr takes its IDF from the references being scored, so a score on a subset is not
comparable with one on the full test set: compare numbers computed on the same images.
"""
from __future__ import annotations

import atexit
import contextlib
import io
import multiprocessing
import multiprocessing.util
import os
import random
import shutil
import threading
import warnings
from collections import Counter
from pathlib import Path
from typing import Hashable, Sequence

from ..data.base import images_of

SCORE_KEYS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SPICE")

# What an empty prediction becomes after tokenization: one word that matches no reference,
# so it scores (about) zero instead of crashing ROUGE-L (which divides by the length).
EMPTY_PREDICTION_TOKEN = "emptycaption"

_token_cache: dict[str, str] = {}
_meteor = None
_meteor_lock = threading.Lock()
_spice_message_shown = False


# ----------------------------------------------------------------------------- checks
def _require_java() -> None:
    if shutil.which("java") is None:
        raise RuntimeError(
            "Java was not found on PATH. pycocoevalcap's PTB tokenizer and METEOR (and SPICE) are "
            "Java programs: install a Java runtime (e.g. `apt-get install default-jre-headless`, "
            "or `conda install openjdk`) and make sure `java -version` works."
        )


def spice_status() -> tuple[bool, str]:
    """Whether SPICE can run here, and if not, why (its CoreNLP 3.6.0 jars are absent)."""
    from pycocoevalcap.spice import spice as spice_module

    lib = Path(spice_module.__file__).parent / "lib"
    needed = [lib / "stanford-corenlp-3.6.0.jar", lib / "stanford-corenlp-3.6.0-models.jar"]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        return False, (
            f"SPICE skipped (reported as None, not 0): {', '.join(missing)} not found in {lib}. "
            "pycocoevalcap downloads them from nlp.stanford.edu on first use, which is impossible "
            "offline; copy stanford-corenlp-3.6.0.jar and stanford-corenlp-3.6.0-models.jar "
            "(from stanford-corenlp-full-2015-12-09.zip) into that folder to enable it."
        )
    return True, "SPICE available"


def _check_inputs(refs: dict, preds: dict) -> None:
    if not isinstance(refs, dict) or not isinstance(preds, dict):
        raise TypeError("caption_scores(refs, preds) takes two dicts: {image_id: [captions]} and "
                        "{image_id: caption}")
    if not refs:
        raise ValueError("caption_scores: refs is empty; there is nothing to score")
    if refs.keys() != preds.keys():
        only_refs = [k for k in refs if k not in preds][:5]
        only_preds = [k for k in preds if k not in refs][:5]
        raise ValueError(
            f"caption_scores: refs and preds must have the same image ids "
            f"({len(refs)} vs {len(preds)} ids; only in refs e.g. {only_refs}, "
            f"only in preds e.g. {only_preds})"
        )
    for k, captions in refs.items():
        if isinstance(captions, str) or not isinstance(captions, (list, tuple)) or not captions:
            raise ValueError(f"caption_scores: refs[{k!r}] must be a non-empty list of strings, "
                             f"got {captions!r}")
        if not all(isinstance(c, str) and c.strip() for c in captions):
            raise ValueError(f"caption_scores: refs[{k!r}] contains an empty or non-string "
                             f"reference: {captions!r}")
    for k, p in preds.items():
        if not isinstance(p, str):
            raise ValueError(f"caption_scores: preds[{k!r}] must be one string (the generated "
                             f"caption), got {type(p).__name__}: {p!r}")


# ----------------------------------------------------------------------------- tokenizer
def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """pycocoevalcap's PTB tokenization (lower case, punctuation removed), cached per sentence.

    The PTB tokenizer runs with ``-preserveLines``: each line is tokenized on its own, so
    caching per sentence gives the same result as tokenizing a whole batch at once.
    """
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # Whitespace runs (and line breaks, which would shift the tokenizer's line-by-line output)
    # become one space: PTB tokens never span whitespace, so the tokens are unchanged.
    keys = [" ".join(s.split()) for s in sentences]
    # Blank lines would shift the output too: they tokenize to "" without asking Java.
    todo = sorted({k for k in keys if k not in _token_cache and k.strip()})
    if todo:
        _require_java()
        out = PTBTokenizer().tokenize({i: [{"caption": s}] for i, s in enumerate(todo)})
        if len(out) != len(todo):
            raise RuntimeError(f"PTB tokenizer returned {len(out)} lines for {len(todo)} sentences")
        for i, s in enumerate(todo):
            _token_cache[s] = out[i][0]
    return [_token_cache.get(k, "") for k in keys]


# ----------------------------------------------------------------------------- METEOR
def _close_meteor() -> None:
    global _meteor
    m, _meteor = _meteor, None
    if m is not None:
        # pycocoevalcap's compute_score keeps its lock if it fails half-way, and its __del__
        # takes that lock: give it a fresh one so garbage collection cannot hang.
        m.lock = threading.Lock()
        with contextlib.suppress(Exception):
            m.meteor_p.stdin.close()
            m.meteor_p.kill()
            m.meteor_p.wait(timeout=5)


atexit.register(_close_meteor)


def _forget_parents_meteor() -> None:
    """In a forked child (e.g. a pruning worker): the parent's METEOR process is not the child's to use
    (two writers on one pipe would mix their requests) nor to close; the child starts its own."""
    global _meteor, _meteor_lock
    _meteor, _meteor_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_parents_meteor)


def _start_meteor():
    """The session's METEOR process, started if needed (call with ``_meteor_lock`` held).

    Starting returns at once; the Java side then spends seconds loading its paraphrase
    tables, so starting it early (see :func:`warm_up`) hides that time.
    """
    global _meteor
    from pycocoevalcap.meteor.meteor import Meteor

    if _meteor is None or _meteor.meteor_p.poll() is not None:
        _close_meteor()
        _require_java()
        _meteor = Meteor()
        if multiprocessing.parent_process() is not None:
            # a worker process exits without atexit: close its METEOR when the worker ends
            multiprocessing.util.Finalize(None, _close_meteor, exitpriority=10)
    return _meteor


def _meteor_score(gts: dict, res: dict) -> float:
    """Corpus METEOR from one Java process kept alive for the session (restarted if it died)."""
    with _meteor_lock:
        for attempt in range(2):
            _start_meteor()
            try:
                score, _ = _meteor.compute_score(gts, res)
                return float(score)
            except (ValueError, BrokenPipeError, OSError):
                # A dead or confused process answers with an empty line: start a fresh one once.
                _close_meteor()
                if attempt == 1:
                    raise


def warm_up(sentences: Sequence[str] = ()) -> threading.Thread:
    """Start METEOR and PTB-tokenize ``sentences`` (e.g. the references) in the background.

    Returns the thread; join it before scoring (caption_scores is correct either way, it
    only repeats work the thread has not finished). Used by :func:`evaluate_captioner`
    to overlap Java start-up with caption generation.
    """
    def work():
        with contextlib.suppress(Exception):  # any real problem resurfaces, clearly, when scoring
            with _meteor_lock:
                _start_meteor()
            ptb_tokenize(list(sentences))

    thread = threading.Thread(target=work, name="vlmid-caption-metrics-warm-up", daemon=True)
    thread.start()
    return thread


# ----------------------------------------------------------------------------- scores
def _tokenized(refs: dict, preds: dict, caller: str) -> tuple[dict, dict]:
    """Check, PTB-tokenize, and re-key to 0..n-1 (in the order of ``refs``) for pycocoevalcap."""
    _check_inputs(refs, preds)
    _require_java()
    # Integer keys 0..n-1: pycocoevalcap sorts ids for SPICE and mixed int/str ids fail there.
    ids = list(refs)
    ref_lists = [list(refs[k]) for k in ids]
    flat = [c for r in ref_lists for c in r] + [preds[k] for k in ids]
    tok = dict(zip(flat, ptb_tokenize(flat)))
    gts = {i: [tok[c] for c in r] for i, r in enumerate(ref_lists)}
    res = {i: [tok[preds[k]] or EMPTY_PREDICTION_TOKEN] for i, k in enumerate(ids)}
    n_empty = sum(not tok[preds[k]] for k in ids)
    if n_empty:
        warnings.warn(f"{caller}: {n_empty} of {len(ids)} predictions are empty after "
                      f"tokenization; they score zero", stacklevel=3)
    return gts, res


def cider_per_image(refs: dict[Hashable, list[str]], preds: dict[Hashable, str]) -> list[float]:
    """CIDEr-D of each prediction, in the order of ``refs`` (their mean is ``caption_scores``' CIDEr).

    CIDEr-D's document frequencies come from the references only, so two captioners scored on
    the same ``refs`` get per-image scores on one scale: a paired comparison is valid.
    """
    from pycocoevalcap.cider.cider import Cider

    gts, res = _tokenized(refs, preds, "cider_per_image")
    return [float(x) for x in Cider().compute_score(gts, res)[1]]


def caption_scores(refs: dict[Hashable, list[str]], preds: dict[Hashable, str],
                   spice: bool = True) -> dict[str, float | None]:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr(-D) and SPICE of ``preds`` against ``refs``.

    refs:  {image_id: [reference captions]} (COCO: 5 or more per image)
    preds: {image_id: generated caption}, with exactly the ids of ``refs``
    spice: set False to skip SPICE even when it is installed (it is slow: ~1 min / 1000 images)

    Returns a dict with the keys ``SCORE_KEYS``; ``"SPICE"`` is None when SPICE cannot run
    here (a one-time message says why). An empty prediction scores zero, not an error.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts, res = _tokenized(refs, preds, "caption_scores")
    scores: dict[str, float | None] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # BLEU prints its n-gram statistics
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        scores[f"BLEU-{n + 1}"] = float(bleu[n])
    scores["METEOR"] = _meteor_score(gts, res)
    scores["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    scores["SPICE"] = _spice_score(gts, res) if spice else None
    return scores


def _spice_score(gts: dict, res: dict) -> float | None:
    global _spice_message_shown
    ok, why = spice_status()
    if not ok:
        if not _spice_message_shown:
            print(why)
            _spice_message_shown = True
        return None
    from pycocoevalcap.spice.spice import Spice

    return float(Spice().compute_score(gts, res)[0])


# ----------------------------------------------------------------------------- captioners
def evaluate_captioner(cap, examples, batch_size: int = 64, return_predictions: bool = False,
                       items: dict | None = None) -> dict:
    """Caption ``examples`` with ``cap.generate`` and score them against their references.

    Returns the scores of :func:`caption_scores`, the decoding settings that produced them
    (``cap.generation``, e.g. num_beams / max_length / min_length, and ``prompt``) and
    ``n_images``; with ``return_predictions=True`` also ``predictions`` {image_id: caption}.
    ``items``: {image_id: the scene's true items} (``vlmid.data.scenes.scene_items``, tiny
    profile only) adds the grounded scores of the same captions (``GROUNDED_KEYS`` of
    :mod:`vlmid.metrics.grounding`: garment_f1, binding_acc, ...); None (COCO) adds none.
    """
    examples = list(examples)
    if not examples:
        raise ValueError("evaluate_captioner: no examples to caption")
    ids = [e.image_id for e in examples]
    if len(set(ids)) != len(ids):
        dup = [k for k, c in Counter(ids).items() if c > 1][:5]
        raise ValueError(f"evaluate_captioner: duplicate image ids, e.g. {dup}")
    if items is not None and any(k not in items for k in ids):  # before the slow part
        missing = [k for k in ids if k not in items][:5]
        raise KeyError(f"evaluate_captioner: items has no true items for image ids e.g. {missing}")
    refs = {e.image_id: list(e.captions) for e in examples}
    warming = warm_up([c for r in refs.values() for c in r])  # Java starts while the model decodes
    captions = cap.generate(images_of(examples), batch_size=batch_size)
    warming.join()
    if len(captions) != len(examples):
        raise RuntimeError(f"cap.generate returned {len(captions)} captions for {len(examples)} images")
    preds = dict(zip(ids, captions))
    out: dict = caption_scores(refs, preds)
    out.update(dict(getattr(cap, "generation", None) or {}))
    out["prompt"] = getattr(cap, "prompt", None)
    out["n_images"] = len(examples)
    if items is not None:
        from .grounding import GROUNDED_KEYS, grounded_scores
        grounded = grounded_scores(preds, items)
        out.update({k: grounded[k] for k in GROUNDED_KEYS})
    if return_predictions:
        out["predictions"] = preds
    return out


# ----------------------------------------------------------------------------- baselines
def constant_caption_baseline(examples, caption: str | None = None) -> dict:
    """Scores of captioning every image with one sentence (the floor a model must clear).

    ``caption=None`` uses the most frequent reference caption among ``examples`` (ties: the
    alphabetically first), the strongest single constant a reader could guess from the
    data. The result includes ``caption``.
    """
    examples = list(examples)
    if caption is None:
        counts = Counter(c for e in examples for c in e.captions)
        caption = min(counts, key=lambda c: (-counts[c], c))
    refs = {e.image_id: list(e.captions) for e in examples}
    out: dict = caption_scores(refs, {k: caption for k in refs})
    out["caption"] = caption
    return out


def random_captions(examples, seed: int = 0) -> dict:
    """{image_id: a reference caption of another, randomly chosen image}: captions that sound like
    the data set but do not look at the image."""
    examples = list(examples)
    if len(examples) < 2:
        raise ValueError("random_caption_baseline needs at least 2 examples")
    rng = random.Random(seed)
    n = len(examples)
    preds = {}
    for i, e in enumerate(examples):
        j = rng.randrange(n - 1)
        j += j >= i  # any index but i
        preds[e.image_id] = rng.choice(list(examples[j].captions))
    return preds


def random_caption_baseline(examples, seed: int = 0) -> dict:
    """Scores of captioning each image with a reference of another, randomly chosen image
    (:func:`random_captions`).

    This measures how much the metric rewards merely sounding like the data set; a model
    must beat it to show it looks at the image.
    """
    examples = list(examples)
    return caption_scores({e.image_id: list(e.captions) for e in examples}, random_captions(examples, seed))
