"""Grounded caption scores (vlmid.metrics.grounding) on hand-written captions whose scores are worked out
by hand, and their hook into evaluate_captioner and bench.CaptionBenchmark."""
import pytest
from PIL import Image

from vlmid.data.base import CaptionExample
from vlmid.data.scenes import Item
from vlmid.metrics import GROUNDED_KEYS, grounded_per_scene, grounded_scores, parse_caption

# class indices: 0 t-shirt, 1 trouser, 3 dress, 4 coat, 5 sandal, 6 shirt, 8 bag, 9 ankle boot
SHIRT, BAG, COAT = 6, 8, 4


def test_every_template_is_read():
    cases = {
        "a red bag in the top left corner": ([(BAG, "red")], 1, False),
        "a small red bag": ([(BAG, "red")], 1, False),
        "a bag in red on the left": ([(BAG, "red")], 1, False),
        "there is a large white handbag at the bottom": ([(BAG, "white")], 1, False),
        "one red bag on a black background": ([(BAG, "red")], 1, True),
        "a picture of a large green t-shirt": ([(0, "green")], 1, False),
        "two items: a red bag and a blue coat": ([(BAG, "red"), (COAT, "blue")], 2, True),
        "a red bag above a blue jacket": ([(BAG, "red"), (COAT, "blue")], 2, False),
        "an orange sandal on top and a white ankle boot at the bottom": ([(5, "orange"), (9, "white")], 2, False),
        "two trousers, one red and one blue": ([(1, "red"), (1, "blue")], 2, True),
        "two dresses, one green and one green": ([(3, "green"), (3, "green")], 2, True),
        "three things in a row: a red bag, a blue tee and a green ankle boot": (
            [(BAG, "red"), (0, "blue"), (9, "green")], 3, True),
        "a blue coat between a red bag and a green dress": ([(COAT, "blue"), (BAG, "red"), (3, "green")], 3, False),
    }
    for text, (mentions, count, stated) in cases.items():
        got = parse_caption(text)
        assert (got.mentions, got.count, got.count_stated) == (mentions, count, stated), text


def test_bert_spacing_and_what_is_not_a_garment():
    assert parse_caption("two items : a red t - shirt and a blue ankle boot").mentions == [(0, "red"), (9, "blue")]
    assert parse_caption("a red tee at the top").mentions == [(0, "red")]  # "top" is the place, one tee
    assert parse_caption("a red shirt").mentions == [(SHIRT, "red")]      # not the "shirt" of t-shirt
    assert parse_caption("a bag").mentions == [(BAG, None)]               # no colour said
    empty = parse_caption("")
    assert empty.mentions == [] and empty.count == 0 and not empty.count_stated
    assert parse_caption("a black background on the left").mentions == []  # black is the canvas, not a colour


def test_perfect_captions_score_one():
    items = [[(SHIRT, "green")], [(BAG, "red"), (COAT, "blue")], [(1, "red"), (1, "blue")]]
    preds = ["a picture of a large green shirt", "two items: a red bag and a blue coat",
             "two trousers, one red and one blue"]
    s = grounded_scores(preds, items)
    assert s == {**{k: 1.0 for k in GROUNDED_KEYS}, "n_scenes": 3}


def test_wrong_garment_wrong_colour_and_hallucination():
    green_shirt = [(SHIRT, "green")]
    # a sandal for a shirt: nothing right but the count
    s = grounded_scores(["a picture of a large green sandal"], [green_shirt])
    assert s["garment_precision"] == s["garment_recall"] == s["garment_f1"] == 0.0
    assert s["binding_acc"] == 0.0 and s["count_acc"] == 1.0 and s["scene_exact"] == 0.0
    # the right garment in the wrong colour: garments perfect, binding none
    s = grounded_scores(["a small blue shirt"], [green_shirt])
    assert s["garment_f1"] == 1.0 and s["binding_acc"] == 0.0 and s["scene_exact"] == 0.0
    # an extra, hallucinated bag: precision 1/2, recall 1, F1 2/3, binding 1 / max(1, 2), count 2 != 1
    s = grounded_scores(["two items: a green shirt and a red bag"], [green_shirt])
    assert s["garment_precision"] == 0.5 and s["garment_recall"] == 1.0
    assert s["garment_f1"] == pytest.approx(2 / 3) and s["binding_acc"] == 0.5
    assert s["count_acc"] == 0.0
    # a colourless garment binds nothing; the empty caption reads nothing and counts 0
    assert grounded_scores(["a shirt"], [green_shirt])["binding_acc"] == 0.0
    s = grounded_scores([""], [green_shirt])
    assert s["garment_f1"] == 0.0 and s["binding_acc"] == 0.0 and s["count_acc"] == 0.0


def test_multisets_and_micro_averages():
    # one bag in the scene, two named: only one matches (multiset intersection)
    s = grounded_scores(["two items: a red bag and a red bag"], [[(BAG, "red")]])
    assert s["garment_precision"] == 0.5 and s["garment_recall"] == 1.0 and s["binding_acc"] == 0.5
    # scene 1: three items, all right; scene 2: a coat read as a bag in the right colour
    preds = ["a red bag, a blue coat and a green dress", "a white bag"]
    items = [[(BAG, "red"), (COAT, "blue"), (3, "green")], [(COAT, "white")]]
    s = grounded_scores(preds, items)
    assert s["garment_precision"] == 3 / 4 and s["garment_recall"] == 3 / 4  # summed: 3 matched of 4 / 4
    assert s["binding_acc"] == 3 / 4                                    # (3 + 0) / (3 + 1)
    assert s["count_acc"] == 1.0 and s["scene_exact"] == 0.5 and s["n_scenes"] == 2


def test_inputs_dicts_items_and_per_scene_table():
    preds = {12: "a red bag", 10: "two items: a blue coat and a green tee"}
    items = {10: [Item(COAT, "blue", 24, 20, 20), Item(0, "green", 24, 44, 44)], 12: [(BAG, "red")], 99: []}
    s = grounded_scores(preds, items)
    assert s["scene_exact"] == 1.0 and s["n_scenes"] == 2  # matched by id; extra ids in items are ignored
    df = grounded_per_scene(preds, items)
    assert df.image_id.tolist() == [12, 10] and df.n_true.tolist() == [1, 2] and df.exact.all()
    assert df.read.tolist() == ["red bag", "blue coat, green t-shirt"]
    with pytest.raises(KeyError, match="no true items"):
        grounded_scores({1: "a bag"}, items)
    with pytest.raises(ValueError, match="2 predictions but 1"):
        grounded_scores(["a bag", "a coat"], [[(BAG, "red")]])
    with pytest.raises(TypeError, match="one caption string"):
        grounded_scores([["a bag"]], [[(BAG, "red")]])
    with pytest.raises(TypeError, match="dict"):
        grounded_scores(preds, [[(BAG, "red")]])
    with pytest.raises(ValueError, match="no scenes"):
        grounded_scores([], [])


# ------------------------------------------------------------------ where captions are scored
class FakeCaptioner:
    """Answers a fixed caption per image (read from the PIL image's info)."""
    generation = {"num_beams": 3}
    prompt = ""
    kind = "captioner"  # also serves as a bench adapter

    def __init__(self, answers):
        self.answers = answers

    def generate(self, images, batch_size=64):
        return [self.answers[im.info["id"]] for im in images]


def _scene_examples():
    refs = {5: ["a red bag on the left", "a small red bag", "a red handbag", "one red bag on a black background",
                "a picture of a small red bag"],
            6: ["two items: a blue coat and a green tee", "a blue coat and a green tee", "a blue coat above a green tee",
                "a green tee below a blue coat", "a blue jacket on top and a green t-shirt at the bottom"]}
    out = []
    for k, caps in refs.items():
        im = Image.new("RGB", (8, 8))
        im.info["id"] = k
        out.append(CaptionExample(k, im, caps))
    items = {5: [(BAG, "red")], 6: [(COAT, "blue"), (0, "green")]}
    # image 6 captioned with the wrong garment: CIDEr-style words right, garment and binding half wrong
    answers = {5: "a small red bag", 6: "two items: a blue coat and a green dress"}
    return out, items, answers


def test_evaluate_captioner_adds_grounded_scores_of_the_same_captions():
    from vlmid.metrics import evaluate_captioner

    ex, items, answers = _scene_examples()
    r = evaluate_captioner(FakeCaptioner(answers), ex, return_predictions=True, items=items)
    want = grounded_scores(r["predictions"], items)
    assert {k: r[k] for k in GROUNDED_KEYS} == {k: want[k] for k in GROUNDED_KEYS}
    assert r["garment_f1"] == pytest.approx(2 / 3) and r["binding_acc"] == pytest.approx(2 / 3)
    plain = evaluate_captioner(FakeCaptioner(answers), ex)  # COCO: no items, no such keys
    assert not set(GROUNDED_KEYS) & set(plain) and plain["CIDEr"] == r["CIDEr"]
    with pytest.raises(KeyError, match="no true items"):
        evaluate_captioner(FakeCaptioner(answers), ex, items={5: items[5]})


def test_caption_benchmark_adds_grounded_scores_without_generating_again():
    from vlmid.compress import bench

    ex, items, answers = _scene_examples()
    ad, calls = FakeCaptioner(answers), []
    generate = ad.generate
    ad.generate = lambda images, batch_size=64: calls.append(1) or generate(images, batch_size)
    b = bench.CaptionBenchmark(ex, semantic=False, nll=False, items=items)
    s = b.score(ad)
    assert s["garment_f1"] == pytest.approx(2 / 3) and s["binding_acc"] == pytest.approx(2 / 3)
    assert s["count_acc"] == 1.0 and "CIDEr" in s
    b.paired_cider(ad, ad)
    assert len(calls) == 1  # one set of captions serves CIDEr, the grounded scores and the pairing
    assert not set(GROUNDED_KEYS) & set(bench.CaptionBenchmark(ex, semantic=False, nll=False).score(ad))
    with pytest.raises(KeyError, match="no true items"):
        bench.CaptionBenchmark(ex, items={6: items[6]})


def test_shortcut_captions_say_colours_and_count_but_one_garment():
    from vlmid.metrics import shortcut_captions

    items = [[(BAG, "red")], [(COAT, "orange"), (BAG, "blue")], [(1, "red"), (BAG, "green"), (3, "white")]]
    caps = shortcut_captions(items)
    assert caps == ["a red bag", "two items: an orange bag and a blue bag",
                    "three items: a red bag, a green bag and a white bag"]  # bag: the most frequent class
    s = grounded_scores(caps, items)
    # 3 of the 6 items are bags: precision = recall = F1 = binding = 1/2; every count right
    assert s["garment_f1"] == 0.5 and s["binding_acc"] == 0.5 and s["count_acc"] == 1.0 and s["scene_exact"] == 1 / 3
    assert shortcut_captions([[(COAT, "red")]], label=SHIRT) == ["a red shirt"]


def test_result_keys_are_the_ones_notebook_00_and_the_quality_gates_read():
    s = grounded_scores(["a red bag"], [[(BAG, "red")]])
    assert set(s) == {"garment_precision", "garment_recall", "garment_f1", "binding_acc", "count_acc",
                      "scene_exact", "n_scenes"} == set(GROUNDED_KEYS) | {"n_scenes"}
