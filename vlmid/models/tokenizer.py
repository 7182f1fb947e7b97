"""A word-level BERT tokenizer whose vocabulary is exactly the caption grammar's words.

Every grammar word is one token, so a caption is a short sequence and the models spend no
capacity on sub-words. The tokenizer is an ordinary ``BertTokenizer`` (so ``BlipProcessor``
accepts it); it is built from a ``vocab.txt`` in a folder because in transformers 5
``BertTokenizer(vocab_file=...)`` silently ignores the file, while ``from_pretrained(folder)``
reads it.
"""
from __future__ import annotations

import os
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4; [CLS] is BLIP's bos, [SEP] the eos


def build_tokenizer(folder: str | os.PathLike, words: list[str] | None = None):
    """Write ``vocab.txt`` (specials + ``words``, default: the scene grammar's) to ``folder`` and load it."""
    from transformers import BertTokenizer

    if words is None:
        from ..data.scenes import grammar_words
        words = grammar_words()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + [w for w in words if w not in SPECIALS]) + "\n")
    tok = BertTokenizer.from_pretrained(str(folder), do_lower_case=True, model_max_length=32)
    assert len(tok) == len(SPECIALS) + len(words), "vocab.txt was not read"
    return tok


def detokenize(text: str) -> str:
    """Undo the word-piece spacing of decoded text: "t - shirt" -> "t-shirt", "items :" -> "items:"."""
    import re

    text = re.sub(r"\s*-\s*", "-", text)
    return re.sub(r"\s+([,.:])", r"\1", text).strip()
