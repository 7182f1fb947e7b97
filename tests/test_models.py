"""The model zoo: paper checkpoints (tiny-config stand-ins, offline) and the smoke build of the tiny models."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _images(n=2, size=64):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def _save_paper_stand_ins(root):
    """Tiny-config instances of the paper's classes, saved where $VLMID_MODELS says the paper ones live."""
    from transformers import BlipForConditionalGeneration, CLIPModel

    from vlmid.models import BLIP_ID, CLIP_ID
    from vlmid.models.tiny import TinyConfig, blip_config, blip_processor, clip_config, clip_image_processor
    from vlmid.models.tokenizer import build_tokenizer

    tok = build_tokenizer(root / "tok", words=["a", "picture", "of", "dog", "cat", "red"])
    cfg = TinyConfig(hidden=32, layers=1, heads=2, mlp=64, patch=16, image_size=32)
    torch.manual_seed(0)
    blip = BlipForConditionalGeneration(blip_config(tok, cfg))
    blip.save_pretrained(root / BLIP_ID)
    blip_processor(tok, cfg).save_pretrained(root / BLIP_ID)
    clip = CLIPModel(clip_config(tok, cfg))
    clip.save_pretrained(root / CLIP_ID)
    clip_image_processor(cfg).save_pretrained(root / CLIP_ID)
    tok.save_pretrained(root / CLIP_ID)
    return blip, clip


def test_paper_round_trip(tmp_path, monkeypatch):
    from vlmid.models import load_captioner, load_clip

    blip, clip = _save_paper_stand_ins(tmp_path)
    monkeypatch.setenv("VLMID_MODELS", str(tmp_path))
    cap = load_captioner("paper")
    assert cap.prompt == "a picture of "
    assert cap.generation == dict(num_beams=3, max_length=20, min_length=5)
    assert torch.equal(cap.model.text_decoder.cls.predictions.decoder.weight,
                       blip.text_decoder.cls.predictions.decoder.weight)
    out = cap.generate(_images(), max_length=8)
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    assert torch.isfinite(cap.loss(_images(), ["a red dog", "a cat"]))
    cb = load_clip("paper")
    assert cb.image_size == 32
    pv = cb.pixel_values(_images())
    assert pv.shape == (2, 3, 32, 32)
    ti = cb.text_inputs(["a dog", "a red cat"])
    with torch.no_grad():
        ref = clip(pixel_values=pv, **ti).logits_per_image
        got = cb.model(pixel_values=pv, **ti).logits_per_image
    torch.testing.assert_close(got, ref)


def test_paper_missing_gives_one_clear_error(tmp_path, monkeypatch):
    from vlmid.models import BLIP_ID, CLIP_ID, ModelNotAvailable, load_captioner, load_clip

    monkeypatch.setenv("VLMID_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotAvailable) as e:
        load_captioner("paper")
    msg = str(e.value)
    assert BLIP_ID in msg and str(tmp_path / "models") in msg and str(tmp_path / "cache") in msg
    assert "download" in msg
    assert e.value.__cause__ is None and e.value.__context__ is None  # no chained traceback wall
    with pytest.raises(FileNotFoundError, match=CLIP_ID):
        load_clip("paper")


def test_unknown_profile():
    from vlmid.models import load_captioner

    with pytest.raises(ValueError, match="profile"):
        load_captioner("huge")


def test_tokenizer_reads_its_vocabulary(tmp_path):
    from vlmid.models.tokenizer import SPECIALS, build_tokenizer, detokenize

    tok = build_tokenizer(tmp_path, words=["a", "red", "t", "-", "shirt", ","])
    assert len(tok) == len(SPECIALS) + 6
    ids = tok("a red t-shirt, a blue")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.unk_token_id in ids  # "blue" is not in this vocabulary
    assert detokenize(tok.decode(ids, skip_special_tokens=True)) == "a red t-shirt, a"


def test_cosine_schedule():
    from vlmid.models.train import cosine_lr

    assert cosine_lr(0, 100, 10) == pytest.approx(0.1)
    assert cosine_lr(10, 100, 10) == pytest.approx(1.0)
    assert cosine_lr(55, 100, 10) == pytest.approx(0.5)
    assert cosine_lr(100, 100, 10) == pytest.approx(0.0, abs=1e-12)


def test_smoke_build_loads_and_generates(tmp_path, monkeypatch):
    from vlmid.data import load_captions, load_zeroshot
    from vlmid.models import load_captioner, load_clip
    from vlmid.models.build import build, build_info

    monkeypatch.setenv("VLMID_DATA", str(tmp_path))
    build(seed=0, smoke=True, progress=False)
    info = build_info(0, smoke=True)
    assert info["build_seconds"] > 0 and info["blip"]["params"] > 1e5 and len(info["blip"]["loss_curve"]) >= 1
    # both stages ran, and the quality gates were measured at build time
    assert info["blip"]["pretrain_steps"] >= 1 and len(info["clip"]["pretrain_curve"]) >= 1
    assert info["commit"] and info["host"]["cpu_capability"]
    for key in ("blip_garment_f1", "blip_binding_acc", "blip_count_acc", "blip_cider", "clip_zeroshot_top1",
                "probe_blip_class", "probe_clip_class"):
        assert 0.0 <= info["metrics"][key] <= 10.0, key
    assert info["subset_metrics"]["n_test"] >= 1
    cap = load_captioner("tiny", seed=0, smoke=True)
    ex = load_captions("tiny", "test", n=3, seed=0, smoke=True)
    out = cap.generate([e.image for e in ex])
    assert len(out) == 3 and all(isinstance(s, str) and s for s in out)
    assert cap.model.config.vision_config.num_hidden_layers >= 4
    loss = cap.loss([e.image for e in ex], [e.captions[0] for e in ex])
    assert loss.ndim == 0 and torch.isfinite(loss)
    clip = load_clip("tiny", seed=0, smoke=True)
    zs = load_zeroshot("tiny", n=4)
    assert clip.pixel_values(zs.images).shape == (4, 3, clip.image_size, clip.image_size)
    ti = clip.text_inputs([t.format(c) for t in zs.templates[:1] for c in zs.classnames])
    assert (ti["input_ids"] != clip.tokenizer.unk_token_id).all()  # prompts use only known words
    with torch.no_grad():
        logits = clip.model(pixel_values=clip.pixel_values(zs.images), **ti).logits_per_image
    assert logits.shape == (4, 10)


def test_linear_probe_separates_only_what_is_encoded_and_chooses_its_penalty_on_held_out_rows():
    from vlmid.models.probe import CS, linear_probe

    rng = np.random.default_rng(0)
    y_fit, y_test = rng.integers(0, 3, 300), rng.integers(0, 3, 200)
    informative = lambda y: np.eye(3)[y] * 3 + rng.normal(size=(len(y), 3)) * 0.1
    noise = lambda y: rng.normal(size=(len(y), 3))
    accuracy, c = linear_probe(informative(y_fit), y_fit, informative(y_test), y_test)
    assert accuracy > 0.95 and c in CS
    assert linear_probe(noise(y_fit), y_fit, noise(y_test), y_test)[0] < 0.6
    # a penalty so strong that every prediction is one class loses on the held-out fifth
    assert linear_probe(informative(y_fit), y_fit, informative(y_test), y_test, cs=(1e-7, 1.0))[1] == 1.0


def test_render_labelled_draws_the_scene_exactly_and_labels_the_patches_under_each_item():
    from vlmid.data.fashion_mnist import load_fashion_mnist
    from vlmid.data.scenes import Item, render
    from vlmid.models.pretrain import BACKGROUND, render_labelled

    photos, labels = load_fashion_mnist("test")
    items = [Item(int(labels[0]), "red", 24, 12, 12), Item(int(labels[1]), "blue", 20, 50, 50)]
    img, patch_labels = render_labelled([photos[0], photos[1]], items, np.random.default_rng(3))
    assert np.array_equal(img, render([photos[0], photos[1]], items, rng=np.random.default_rng(3)))
    grid = patch_labels.reshape(8, 8)  # row-major, as the ViT orders its patches
    assert grid[1, 1] == labels[0] and grid[6, 6] == labels[1]   # under each item's centre
    assert grid[0, 7] == BACKGROUND and grid[7, 0] == BACKGROUND  # the empty corners
    assert set(np.unique(grid)) <= {int(labels[0]), int(labels[1]), BACKGROUND}


def test_labelled_scenes_mark_the_classes_present():
    from vlmid.data.fashion_mnist import load_fashion_mnist
    from vlmid.models.pretrain import BACKGROUND, labelled_scenes

    photos, labels = load_fashion_mnist("test")
    d = labelled_scenes(photos[:200], labels[:200], 40, np.random.default_rng(0), captions=True)
    assert d["images"].shape == (40, 64, 64, 3) and d["patch_labels"].shape == (40, 64)
    assert len(d["captions"]) == 40 and all(len(c) == 5 for c in d["captions"])
    for present, patches, first in zip(d["present"], d["patch_labels"], d["first"]):
        seen = set(np.unique(patches)) - {BACKGROUND}
        assert seen <= set(np.flatnonzero(present))  # every labelled patch belongs to an item present
        assert 1 <= present.sum() <= 3
        assert first == -100 or present[first] == 1


@pytest.mark.parametrize("family", ["blip", "clip"])
def test_token_drop_shows_the_cls_and_the_garment_patches_first_and_only_inside_its_block(family):
    """Pre-training's token dropping: inside ``subset`` the tower runs on the CLS plus ``keep`` patches,
    every garment patch among them, and the labels returned are those of the kept patches in order;
    outside it (validation, the task stage) it sees all 64 again, and after ``remove`` the hook is gone."""
    from transformers import BlipVisionConfig, BlipVisionModel, CLIPVisionConfig, CLIPVisionModel

    from vlmid.models.pretrain import BACKGROUND, TokenDrop

    kw = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=64,
              patch_size=8)
    torch.manual_seed(0)
    tower = (BlipVisionModel(BlipVisionConfig(**kw)) if family == "blip" else CLIPVisionModel(CLIPVisionConfig(**kw))).eval()
    pixels = torch.randn(2, 3, 64, 64)
    labels = torch.full((2, 64), BACKGROUND)
    labels[0, [3, 10, 40]] = torch.tensor([1, 2, 3])
    labels[1, :12] = 7                                         # more garment patches than kept
    drop = TokenDrop(tower, keep=8, seed=0)
    full = tower(pixel_values=pixels).last_hidden_state
    with torch.no_grad(), drop.subset(labels) as kept:
        part = tower(pixel_values=pixels).last_hidden_state
        emb_part = tower.embeddings(pixels)
    assert part.shape == (2, 9, 32) and kept.shape == (2, 8)
    with torch.no_grad():
        emb = tower.embeddings(pixels)
    assert torch.equal(emb_part[:, 0], emb[:, 0])              # the CLS always, first
    for patch in (3, 10, 40):                                  # the garment patches, at their own positions
        assert any(torch.equal(row, emb[0, patch + 1]) for row in emb_part[0])
    assert {1, 2, 3} <= set(kept[0].tolist()) and (kept[0] == BACKGROUND).sum() == 5
    assert (kept[1] == 7).all()                                # only garment patches when they outnumber keep
    assert emb.shape[1] == 65 and tower(pixel_values=pixels).last_hidden_state.shape == full.shape  # all again
    drop.remove()
    assert not tower.embeddings._forward_hooks


def test_parameter_groups_scale_the_learning_rate():
    from vlmid.models.train import _optimizer

    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt, _ = _optimizer([{"params": [a], "lr_scale": 0.5}, {"params": [b]}], 1e-3, 10, 1)
    assert [g["initial_lr"] for g in opt.param_groups] == [5e-4, 1e-3]


def test_the_build_is_deterministic_on_one_machine(tmp_path, monkeypatch):
    """Two smoke builds from nothing, in two folders, give byte-identical weights: what lets a
    rebuild on the same kind of CPU reproduce the shipped models."""
    import hashlib

    from vlmid.models.build import build

    digests = []
    for name in ("a", "b"):
        monkeypatch.setenv("VLMID_DATA", str(tmp_path / name))
        folder = build(seed=0, smoke=True, progress=False, measure=False)
        digests.append([hashlib.sha256((folder / part / "model.safetensors").read_bytes()).hexdigest()
                        for part in ("blip", "clip")])
    assert digests[0] == digests[1]


def test_the_recipe_in_the_code_is_the_one_that_trained_the_shipped_models():
    import json
    from dataclasses import asdict

    from vlmid.models.build import FULL
    from vlmid.models.zoo import shipped_folder

    manifest = json.loads((shipped_folder(0) / "manifest.json").read_text())
    assert asdict(FULL) == manifest["hyperparameters"]


def test_the_decoder_starts_from_dec_in_the_loss_and_the_id_hooks(tmp_path, monkeypatch):
    # BLIP-base's tokenizer puts [CLS] first but its decoder was trained from [DEC] (its bos):
    # a stand-in whose bos differs from [CLS] shows that the loss and the ID hooks feed [DEC]
    from vlmid.data.base import CaptionExample
    from vlmid.id import blip_batches
    from vlmid.models import load_captioner

    _save_paper_stand_ins(tmp_path)
    monkeypatch.setenv("VLMID_MODELS", str(tmp_path))
    cap = load_captioner("paper")
    dec = cap.tokenizer.convert_tokens_to_ids("red")  # any id that is not [CLS] plays [DEC]
    assert dec != cap.tokenizer.cls_token_id
    cap.model.config.text_config.bos_token_id = dec
    enc = cap.text_inputs(["a red dog", "a cat"])
    assert enc["input_ids"][:, 0].tolist() == [dec, dec]
    examples = [CaptionExample(image_id=str(i), image=im, captions=["a red dog"]) for i, im in enumerate(_images())]
    batch = next(blip_batches(cap, examples, batch_size=2))
    assert batch["input_ids"][:, 0].tolist() == [dec, dec]
    raw = cap.tokenizer([cap.prompt + "a red dog"] * 2, padding=True, return_tensors="pt")["input_ids"]
    assert batch["input_ids"][:, 1:].tolist() == raw[:, 1:].tolist()  # only the start token is swapped
