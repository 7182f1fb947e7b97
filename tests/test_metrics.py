"""Caption metrics against pycocoevalcap itself, zero-shot on a fake CLIP whose answer is known,
and the MiniLM semantic similarity."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

from vlmid.data.base import CaptionExample, ZeroShotSet
from vlmid.metrics import captioning
from vlmid.metrics.captioning import (caption_scores, cider_per_image, constant_caption_baseline,
                                      evaluate_captioner, random_caption_baseline)
from vlmid.uncertainty import paired_difference
from vlmid.metrics.zeroshot import class_text_embeddings, zeroshot_predict, zeroshot_top1

REFS = {
    101: ["A man is riding a red bicycle down the street.", "a person cycling on a road",
          "A man rides his bike.", "man on a red bike in the city", "Someone riding a bicycle outdoors."],
    "b": ["Two dogs play in the green grass.", "two puppies running on a lawn",
          "Dogs playing together in a park.", "a pair of dogs on the grass", "Two brown dogs run outside."],
    7: ["A plate of food with broccoli and rice.", "a meal of rice and vegetables on a plate",
        "Broccoli, rice and chicken on a white plate.", "a dish with green vegetables", "Food on a plate."],
}
PREDS = {101: "a man riding a bike on the street", "b": "two dogs playing in the grass",
         7: "a plate of rice and broccoli"}


@pytest.fixture(scope="module")
def meteor():
    """One METEOR process for the whole module (it takes seconds to load its tables)."""
    from pycocoevalcap.meteor.meteor import Meteor

    m = Meteor()
    captioning._meteor = m  # the wrapper reuses this process instead of starting its own
    yield m


def test_wrapper_matches_pycocoevalcap(meteor):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # pycocoevalcap called directly, the way COCOEvalCap does it
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in REFS.items()})
    res = tok.tokenize({k: [{"caption": v}] for k, v in PREDS.items()})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    direct = {"BLEU-1": bleu[0], "BLEU-4": bleu[3],
              "METEOR": meteor.compute_score(gts, res)[0],
              "ROUGE-L": Rouge().compute_score(gts, res)[0],
              "CIDEr": Cider().compute_score(gts, res)[0]}

    ours = caption_scores(REFS, PREDS)
    assert set(ours) == set(captioning.SCORE_KEYS)
    for key, value in direct.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key
    assert 0.2 < ours["CIDEr"] < 10  # pycocoevalcap's scale, not x100
    # the per-sentence token cache gives the same numbers on a second call
    assert caption_scores(REFS, PREDS)["CIDEr"] == pytest.approx(ours["CIDEr"], abs=1e-12)


def test_identical_beats_unrelated_and_spice_is_none_not_zero(meteor, capsys):
    same = {k: v[0] for k, v in REFS.items()}
    unrelated = {k: "a clock tower against a cloudy sky" for k in REFS}
    good, bad = caption_scores(REFS, same), caption_scores(REFS, unrelated)
    for key in ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"):
        assert good[key] > bad[key] + 0.1 * (key != "BLEU-4"), key
    if not captioning.spice_status()[0]:  # the jars are absent on this offline machine
        assert good["SPICE"] is None and bad["SPICE"] is None


def test_empty_prediction_scores_zero_not_crash(meteor):
    with pytest.warns(UserWarning, match="1 of 3 predictions are empty"):
        s = caption_scores(REFS, {**PREDS, 7: ""})
    assert s["CIDEr"] < caption_scores(REFS, PREDS)["CIDEr"]


def test_input_validation():
    with pytest.raises(ValueError, match="same image ids"):
        caption_scores(REFS, {101: "a man"})
    with pytest.raises(ValueError, match="empty"):
        caption_scores({}, {})
    with pytest.raises(ValueError, match="non-empty list"):
        caption_scores({1: []}, {1: "x"})
    with pytest.raises(ValueError, match="one string"):
        caption_scores({1: ["a b"]}, {1: ["a b"]})


def test_java_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(captioning.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="Java"):
        caption_scores(REFS, PREDS)


class FakeCaptioner:
    generation = {"num_beams": 3, "max_length": 20, "min_length": 5}
    prompt = "a picture of "

    def __init__(self, answers):
        self.answers = answers

    def generate(self, images, batch_size=64):
        return [self.answers[im.info["id"]] for im in images]


def _examples():
    out = []
    for k, caps in REFS.items():
        im = Image.new("RGB", (8, 8))
        im.info["id"] = k
        out.append(CaptionExample(k, im, caps))
    return out


def test_evaluate_captioner_and_baselines(meteor):
    ex = _examples()
    r = evaluate_captioner(FakeCaptioner(PREDS), ex, batch_size=2, return_predictions=True)
    assert r["n_images"] == 3 and r["num_beams"] == 3 and r["prompt"] == "a picture of "
    assert r["predictions"] == PREDS
    assert r["CIDEr"] == pytest.approx(caption_scores(REFS, PREDS)["CIDEr"])
    const = constant_caption_baseline(ex, caption="a photo")
    rand = random_caption_baseline(ex, seed=0)
    assert const["caption"] == "a photo"
    assert r["CIDEr"] > rand["CIDEr"] and r["CIDEr"] > const["CIDEr"]


# ----------------------------------------------------------------------------- zero-shot
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


class _Out:  # what transformers 5.x returns from get_text_features: an output object
    def __init__(self, t):
        self.pooler_output = t


class FakeModel(torch.nn.Module):
    """Image embedding = mean RGB; text embedding = the colour named in the text."""

    def get_image_features(self, pixel_values):
        return pixel_values.mean(dim=(2, 3))

    def get_text_features(self, input_ids, attention_mask):
        return _Out(input_ids.float())


class FakeClip:
    model = FakeModel()
    names = list(COLOURS)

    def pixel_values(self, images):
        return torch.stack([torch.tensor(np.asarray(im), dtype=torch.float32).permute(2, 0, 1) / 255
                            for im in images])

    def text_inputs(self, texts):
        # "dark" templates point their sentence half-way to the next colour, with a large norm
        ids = []
        for t in texts:
            v = torch.zeros(3)
            c = next(i for i, n in enumerate(self.names) if n in t)
            v[c] = 1.0
            if "dark" in t:
                v = 10 * (v + 0.5 * torch.roll(v, 1))
            ids.append(v)
        return {"input_ids": torch.stack(ids), "attention_mask": torch.ones(len(ids), 3)}


def test_zeroshot_known_answer():
    names = list(COLOURS)
    labels = np.array([0, 1, 2, 2, 1, 0])
    images = [Image.new("RGB", (4, 4), COLOURS[names[c]]) for c in labels]
    wrong = labels.copy()
    wrong[:2] = [1, 2]  # two labels that the (perfect) fake model will contradict
    templates = ["a photo of {}.", "a dark photo of {}."]
    clip = FakeClip()
    assert zeroshot_top1(clip, ZeroShotSet(images, labels, names, templates), batch_size=4) == 1.0
    zs = ZeroShotSet(images, wrong, names, templates)
    assert zeroshot_top1(clip, zs, batch_size=4) == pytest.approx(4 / 6)
    pred, logits = zeroshot_predict(clip, zs, batch_size=256, return_logits=True)
    assert pred.tolist() == labels.tolist() and logits.shape == (6, 3)

    # ensembling = normalise each prompt, average, normalise again
    t = class_text_embeddings(clip, names, templates)
    a = torch.tensor([1.0, 0, 0])
    b = torch.nn.functional.normalize(torch.tensor([1.0, 0.5, 0]), dim=0)
    expect = torch.nn.functional.normalize((a + b) / 2, dim=0)
    assert torch.allclose(t[0], expect, atol=1e-6)
    assert torch.allclose(t.norm(dim=1), torch.ones(3))


def test_zeroshot_real_clip_output_type():
    """transformers' own CLIPModel (tiny random config): features come out as [B, projection_dim]."""
    from transformers import CLIPConfig, CLIPModel

    from vlmid.models.bundles import embedding_tensor as _features

    cfg = CLIPConfig(
        text_config=dict(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, image_size=16, patch_size=8),
        projection_dim=8)
    model = CLIPModel(cfg).eval()
    with torch.no_grad():
        img = _features(model.get_image_features(pixel_values=torch.randn(2, 3, 16, 16)))
        txt = _features(model.get_text_features(input_ids=torch.tensor([[1, 2, 3]]),
                                                attention_mask=torch.ones(1, 3, dtype=torch.long)))
    assert img.shape == (2, 8) and txt.shape == (1, 8)


# ----------------------------------------------------------------------------- semantic
def test_semantic_paraphrase_beats_unrelated():
    from vlmid.metrics.semantic import semantic_scores, semantic_similarity

    refs = {1: ["A man is riding a bicycle down the street.", "a person cycling on a road"]}
    para = semantic_similarity({1: "a guy rides his bike along the road"}, refs)
    unrelated = semantic_similarity({1: "a bowl of soup on a wooden table"}, refs)
    assert para > unrelated + 0.3
    assert semantic_scores({1: refs[1][0]}, refs)[1] == pytest.approx(1.0, abs=1e-5)
    assert semantic_similarity({1: "a guy rides his bike"}, refs, reduce="mean") <= \
        semantic_similarity({1: "a guy rides his bike"}, refs, reduce="max")


def test_cider_per_image_averages_to_the_corpus_score():
    per = cider_per_image(REFS, PREDS)
    assert len(per) == len(REFS)
    assert np.mean(per) == pytest.approx(caption_scores(REFS, PREDS, spice=False)["CIDEr"], abs=1e-9)
    # the references alone set the document frequencies: one caption changing moves only its own score
    other = cider_per_image(REFS, {**PREDS, 7: "a cat on a sofa"})
    assert other[:2] == pytest.approx(per[:2], abs=1e-12) and other[2] < per[2]


def test_paired_difference_verdicts():
    rng = np.random.default_rng(0)
    b = rng.uniform(0, 2, size=200)
    ahead = paired_difference(b + 0.1 + rng.normal(0, 0.05, 200), b)
    assert ahead["diff"] == pytest.approx(0.1, abs=0.02) and ahead["low"] > 0 and ahead["verdict"] == 1
    noise = paired_difference(b + rng.normal(0, 0.5, 200), b)
    assert noise["low"] < noise["diff"] < noise["high"] and noise["verdict"] == 0
    assert paired_difference(b - 0.1, b)["verdict"] == -1
    assert paired_difference(b + 0.1, b, seed=3) == paired_difference(b + 0.1, b, seed=3)   # seeded
    with pytest.raises(ValueError, match="paired"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="level"):
        paired_difference(b, b, level=95)


def test_zeroshot_top1_from_embeddings_needs_no_model():
    import torch

    from vlmid.metrics import top1_from_embeddings, zeroshot_similarities

    classes = torch.eye(3)                                   # three orthogonal class embeddings
    images = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1, 0], [0, 1, 0.2], [0.9, 0, 1.0], [0, 0, 1]]), dim=-1)
    sims = zeroshot_similarities(images, classes)
    assert sims.shape == (4, 3) and sims.argmax(1).tolist() == [0, 1, 2, 2]
    assert top1_from_embeddings(images, classes, [0, 1, 0, 2]) == 0.75
