"""Grounded caption scores: does a caption name the right garments, in the right colours, and count them?

Why. CIDEr-D (like BLEU, METEOR, ROUGE-L) rewards n-grams shared with the references. In a scene
caption most words are colour, count, position and template words ("two items: a red ... and a
blue ... on the left"); the garment is one word in five or six. A captioner that reads colours and
layout but guesses the garments therefore scores well: one that read the colours but not the
garments scored CIDEr-D 1.23 with a garment F1 of 0.14. Captions with every scene's true colours
and count but one fixed garment (:func:`shortcut_captions`) score CIDEr-D 1.39 with a garment F1
of 0.11 on the 1000 test scenes of seed 0. The scores below read each predicted caption back into items with the grammar's own vocabulary (``vlmid.data.scenes``) and
compare them with the items the scene really holds (``vlmid.data.scenes.scene_items``). Tiny
profile only: COCO images come with no item labels.

Reading a caption (:func:`parse_caption`):

- garments are the noun phrases of ``NOUNS`` and their plurals (``PLURAL``, else +"s"), every
  synonym mapped to its class index ("sneaker" and "trainer" are both class 7). Phrases are matched
  longest first, so "ankle boot" is one boot, not "ankle" + "boot", and "t-shirt" is never a
  "shirt". Nothing else is a garment: "top" in "at the top" is a position (the t-shirt's synonym
  is "tee" for exactly this reason).
- a garment's colour is the colour word right before it, after an optional size word ("a small
  red bag"), or "in <colour>" right after it ("a bag in red on the left"); None when neither.
- a plural garment is several items of one class: "two trousers, one red and one blue" is two
  trousers, one red and one blue. Their number is the count word before the plural, else the
  number of "one <colour>" listed after it, at least 2.
- the stated count comes from the first count expression: "<n> items", "<n> things" or
  "<n> [size] [colour] <garment>" with n in one / two / three ("one red bag on a black background"
  states 1). With none, the count is the number of garments read.
- BERT-spaced text ("t - shirt", "items :") reads like detokenized text; other words are ignored.

Scores (:func:`grounded_scores`). Per scene, T is the multiset of the true class indices and P that
of the classes read from the caption; T_pairs and P_pairs the same for (class, colour) pairs. Every
intersection is a multiset intersection (a garment named twice matches twice only if the scene holds
two). Sums run over scenes (micro-averages: a 3-item scene weighs three times a 1-item one); the
keys of the result are ``GROUNDED_KEYS`` and ``n_scenes``:

- ``garment_precision`` = sum |P & T| / sum |P|, ``garment_recall`` = sum |P & T| / sum |T|,
  ``garment_f1`` = 2 P R / (P + R):
  are the garments named those that are there, and are all that are there named?
- ``binding_acc`` = sum |P_pairs & T_pairs| / sum max(|T|, |P|): the right colour on the right
  garment. Dividing by the larger of the two makes a hallucinated item cost as much as a missed
  one; a garment read without a colour binds nothing; a right garment in a wrong colour binds
  nothing (garment F1 still counts it).
- ``count_acc``: the fraction of scenes whose stated count equals their number of items.
- ``scene_exact``: the fraction of scenes whose garments, pairs and count are all right.

A ratio whose denominator is 0 is 0.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..data.scenes import COLOURS, NOUNS, PLURAL

COUNT_WORDS = {"one": 1, "two": 2, "three": 3}
COUNT_NOUNS = ("items", "things")  # "two items: ...", "three things in a row: ..."
SIZE_WORDS = ("small", "large")
GROUNDED_KEYS = ("garment_precision", "garment_recall", "garment_f1", "binding_acc",
                 "count_acc", "scene_exact")

# every garment phrase, as a token tuple -> (class index, is plural): ("ankle", "boot") -> (9, False)
GARMENTS: dict[tuple[str, ...], tuple[int, bool]] = {}
for _cls, _synonyms in enumerate(NOUNS):
    for _s in _synonyms:
        GARMENTS[tuple(_s.split())] = (_cls, False)
        GARMENTS[tuple(PLURAL.get(_s, _s + "s").split())] = (_cls, True)
_LONGEST = max(len(k) for k in GARMENTS)


def tokens(text: str) -> list[str]:
    """Lower-case words (hyphenated words kept whole: "t-shirt") and punctuation marks of ``text``."""
    text = re.sub(r"\s*-\s*", "-", text.lower())  # BERT spacing "t - shirt" -> "t-shirt"
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*|[^\sa-z0-9]", text)


def _garment_at(t: list[str], i: int):
    """(class, plural, length) of the longest garment phrase starting at ``t[i]``, or None."""
    for n in range(_LONGEST, 0, -1):
        hit = GARMENTS.get(tuple(t[i:i + n])) if i + n <= len(t) else None
        if hit is not None:
            return (*hit, n)
    return None


@dataclass
class ParsedCaption:
    """What a caption says: its garments with their colours, in order, and how many items it states."""
    mentions: list[tuple[int, str | None]]  # (class index, colour or None), one per item named
    count: int                              # the stated count, else len(mentions)
    count_stated: bool = False              # True when a count word stated it

    @property
    def garments(self) -> list[int]:
        return [c for c, _ in self.mentions]


def parse_caption(text: str) -> ParsedCaption:
    """Read garments, colours and the count out of ``text`` (the rules are in the module docstring)."""
    t = tokens(text)
    mentions: list[tuple[int, str | None]] = []
    count = None
    i = 0
    while i < len(t):
        hit = _garment_at(t, i)
        if hit is None:
            if count is None and t[i] in COUNT_WORDS and t[i + 1:i + 2] and t[i + 1] in COUNT_NOUNS:
                count = COUNT_WORDS[t[i]]  # "two items"
            i += 1
            continue
        cls, plural, length = hit
        # before the noun the grammar writes [count] [size] [colour]: walk back over them
        j, colour = i - 1, None
        if j >= 0 and t[j] in COLOURS:
            colour, j = t[j], j - 1
        if j >= 0 and t[j] in SIZE_WORDS:
            j -= 1
        number = COUNT_WORDS.get(t[j]) if j >= 0 else None
        if count is None and number is not None:
            count = number  # "one red bag", "two trousers"
        i += length
        if not plural:
            if colour is None and t[i:i + 1] == ["in"] and t[i + 1:i + 2] and t[i + 1] in COLOURS:
                colour, i = t[i + 1], i + 2  # "a bag in red"
            mentions.append((cls, colour))
            continue
        # a plural: its items' colours may follow as ", one red and one blue"
        listed = []
        while True:
            k = i + (i < len(t) and t[i] in (",", "and"))
            if t[k:k + 1] == ["one"] and t[k + 1:k + 2] and t[k + 1] in COLOURS:
                listed.append(t[k + 1])
                i = k + 2
            else:
                break
        n = number or max(len(listed), 2)
        mentions += [(cls, c) for c in (listed + [colour] * n)[:n]]
    return ParsedCaption(mentions, len(mentions) if count is None else count, count is not None)


# ----------------------------------------------------------------------------- scores
def _true_pairs(items) -> list[tuple[int, str]]:
    """A scene's items as (class index, colour): tuples, or ``vlmid.data.scenes.Item`` objects."""
    return [(int(it.label), str(it.colour)) if hasattr(it, "label") else (int(it[0]), str(it[1]))
            for it in items]


def _describe(pairs) -> str:
    return ", ".join(f"{col} {NOUNS[c][0]}" if col else NOUNS[c][0] for c, col in pairs)


def _aligned(predictions, items):
    """(keys, captions, items): dicts are matched by image id (the keys of ``predictions``), lists by position."""
    if isinstance(predictions, Mapping):
        if not isinstance(items, Mapping):
            raise TypeError("predictions is a dict {image_id: caption}: items must be a dict {image_id: items} too")
        missing = [k for k in predictions if k not in items]
        if missing:
            raise KeyError(f"no true items for {len(missing)} image id(s), e.g. {missing[:5]}")
        keys = list(predictions)
        return keys, [predictions[k] for k in keys], [items[k] for k in keys]
    predictions, items = list(predictions), list(items)
    if len(predictions) != len(items):
        raise ValueError(f"{len(predictions)} predictions but {len(items)} scenes of items")
    return list(range(len(predictions))), predictions, items


def _scene(caption: str, items) -> dict:
    """One scene's counts; :func:`grounded_scores` sums them."""
    if not isinstance(caption, str):
        raise TypeError(f"a prediction must be one caption string, got {type(caption).__name__}: {caption!r}")
    read, true = parse_caption(caption), _true_pairs(items)
    n_true, n_read = len(true), len(read.mentions)
    garments_matched = sum((Counter(read.garments) & Counter(c for c, _ in true)).values())
    pairs_matched = sum((Counter(read.mentions) & Counter(true)).values())  # (class, None) matches nothing
    count_ok = read.count == n_true
    return dict(caption=caption, true=_describe(true), read=_describe(read.mentions), n_true=n_true,
                n_read=n_read, garments_matched=garments_matched, pairs_matched=pairs_matched,
                count_true=n_true, count_read=read.count, count_ok=count_ok,
                exact=bool(count_ok and pairs_matched == n_true == n_read))  # all pairs matched => garments too


def _ratio(a: float, b: float) -> float:
    return float(a) / b if b else 0.0


def grounded_per_scene(predictions: Sequence[str] | Mapping, items: Sequence | Mapping):
    """One row per scene (a pandas DataFrame): the caption, the items true and read, the matches and the count.

    ``predictions``: captions; ``items``: each scene's true items as (class index, colour) tuples (or
    ``Item`` objects), a parallel list, or both dicts keyed by image id (``scene_items``)."""
    import pandas as pd

    keys, captions, items = _aligned(predictions, items)
    return pd.DataFrame([{"image_id": k, **_scene(c, it)} for k, c, it in zip(keys, captions, items)])


def grounded_scores(predictions: Sequence[str] | Mapping, items: Sequence | Mapping) -> dict[str, float]:
    """Garment precision / recall / F1, binding accuracy, count accuracy and scene exact (micro-averaged
    over scenes; defined in the module docstring), and ``n_scenes``. Arguments as :func:`grounded_per_scene`."""
    _, captions, items = _aligned(predictions, items)
    rows = [_scene(c, it) for c, it in zip(captions, items)]
    if not rows:
        raise ValueError("grounded_scores: no scenes to score")
    total = lambda key: sum(r[key] for r in rows)
    precision = _ratio(total("garments_matched"), total("n_read"))
    recall = _ratio(total("garments_matched"), total("n_true"))
    return {"garment_precision": precision, "garment_recall": recall,
            "garment_f1": _ratio(2 * precision * recall, precision + recall),
            "binding_acc": _ratio(total("pairs_matched"), sum(max(r["n_true"], r["n_read"]) for r in rows)),
            "count_acc": total("count_ok") / len(rows), "scene_exact": total("exact") / len(rows),
            "n_scenes": len(rows)}


# ----------------------------------------------------------------------------- a baseline
def shortcut_captions(items: Sequence, label: int | None = None) -> list[str]:
    """One caption per scene with the scene's true colours and count, in the grammar's words, but one
    garment for every item: the best a captioner that sees colours and counts but no garments can write.

    "a red bag", "two items: a red bag and a blue bag", "three items: a red bag, a blue bag and a green
    bag". ``label``: the garment said (None: the most frequent class among ``items``, ties to the lowest
    index). Its CIDEr-D is high and its garment F1 about that garment's share of the items: the gap
    between the two is what CIDEr alone cannot see."""
    scenes = [_true_pairs(s) for s in items]
    if label is None:
        counts = Counter(c for s in scenes for c, _ in s)
        label = min(counts, key=lambda c: (-counts[c], c)) if counts else 0
    noun = NOUNS[label][0]
    out = []
    for s in scenes:
        named = [("an " if col[0] in "aeiou" else "a ") + f"{col} {noun}" for _, col in s]
        if len(named) <= 1:
            out.append(named[0] if named else "")
        else:  # the grammar's "two items: a and b" / "three items: a, b and c"
            number = {n: w for w, n in COUNT_WORDS.items()}.get(len(named), str(len(named)))
            out.append(f"{number} items: " + ", ".join(named[:-1]) + " and " + named[-1])
    return out
