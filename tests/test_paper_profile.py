"""The paper profile offline: every notebook's paper branch in smoke mode on real-format stand-ins.

``vlmid.harness.standins`` saves BLIP-base and CLIP ViT-B/16 as the same transformers classes at their real
width and image size (two layers, random weights), with a bert-base-uncased WordPiece tokenizer that
has ``[DEC]``, a CLIP BPE tokenizer and the checkpoints' ``preprocessor_config.json`` files, a narrow
Qwen2-VL with its processor files (preprocessor config, chat template, Qwen2-format tokenizer), and COCO
Karpathy, Flickr8k and CIFAR-10 fixtures in their on-disk formats. The notebooks then run exactly as
``run_all.sh --profile paper --smoke`` would (on CUDA with ``scripts/gpu_check.sh``).
"""
import json

import pytest
import torch

from vlmid.harness import pipeline, standins

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def paper_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    env = standins.write(root)
    env.update(VLMID_DATA=str(root / "vlmid-data"), HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(root / "no-cache"))
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    yield root
    mp.undo()


def test_stand_ins_have_the_checkpoints_conventions(paper_env):
    from vlmid.data import load_captions
    from vlmid.id.representations import blip_batches
    from vlmid.models import load_captioner, load_clip

    cap = load_captioner("paper", device="cpu")
    assert cap.tokenizer.bos_token == "[DEC]" and cap.tokenizer.convert_tokens_to_ids("[DEC]") == 30522
    assert cap.model.config.text_config.bos_token_id == 30522
    test = load_captions("paper", "test", n=2)
    enc = cap.text_inputs([e.captions[0] for e in test])
    assert (enc["input_ids"][:, 0] == 30522).all()          # the loss teacher-forces from [DEC]
    batch = next(blip_batches(cap, test, 2))                  # and so do the ID hooks
    assert (batch["input_ids"][:, 0] == 30522).all()
    assert batch["pixel_values"].shape == (2, 3, 384, 384)
    with torch.no_grad():
        assert cap.model.vision_model(pixel_values=batch["pixel_values"]).last_hidden_state.shape[1] == 577
        ids = cap.model.generate(pixel_values=batch["pixel_values"], **cap.generation)
    assert ids.shape[1] <= cap.generation["max_length"] == 20  # nothing decoded beyond the limit
    clip = load_clip("paper", device="cpu")
    pv = clip.pixel_values([e.image for e in test])
    assert pv.shape == (2, 3, 224, 224)
    with torch.no_grad():
        assert clip.model.vision_model(pixel_values=pv).last_hidden_state.shape[1] == 197
    assert clip.tokenizer.bos_token == "<|startoftext|>" and clip.tokenizer.eos_token == "<|endoftext|>"


def test_qwen2vl_stand_in_loads_its_real_processor_files(paper_env):
    """Qwen2-VL's processor from the checkpoint's own files (without torchvision: the same processor for
    images and text only): the chat template's turns, one <|image_pad|> per merged 2x2 patch, left
    padding to generate, and a loss over the caption and its <|im_end|> only."""
    from vlmid.data import load_captions
    from vlmid.models import load_qwen2vl

    qwen = load_qwen2vl("cpu")
    tok = qwen.processor.tokenizer
    test = load_captions("paper", "test", n=2)
    images = [e.image for e in test]
    enc = qwen.inputs(images)
    text = tok.decode(enc["input_ids"][0]).replace("<|image_pad|>", "").replace(tok.pad_token, "")
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                           "<|vision_start|><|vision_end|>" + qwen.instruction)
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    pads = (enc["input_ids"] == tok.convert_tokens_to_ids("<|image_pad|>")).sum(1)
    assert pads.tolist() == (enc["image_grid_thw"].prod(1) // 4).tolist()
    assert (enc["input_ids"][:, -1] != tok.pad_token_id).all()           # padded on the left to generate
    batch, labels = qwen.caption_labels(images, [e.captions[0] for e in test])
    for row, e in zip(labels, test):
        assert tok.decode(row[row >= 0]) == e.captions[0] + "<|im_end|>"
    out = qwen.generate(images)
    assert len(out) == 2 and all(isinstance(c, str) for c in out)


@pytest.fixture(scope="module")
def paper_smoke(paper_env):
    status = pipeline.run("paper", 0, results=str(paper_env / "results"), smoke=True,
                          extra_parameters={"device": "cpu"})
    return status, paper_env / "results"


def test_every_notebook_runs_its_paper_branch(paper_smoke):
    status, results = paper_smoke
    manifest = json.loads((results / "manifest.json").read_text())
    failed = {k: v["error"] for k, v in manifest["notebooks"].items() if v["exit_status"] != "ok"}
    assert status == 0 and not failed, failed
    assert len(manifest["notebooks"]) == len(pipeline.notebooks())
    for nb in pipeline.notebooks():
        metrics = json.loads((results / nb.stem / "metrics.json").read_text())
        assert metrics["profile"] == "paper", nb.name
    assert json.loads((results / "05_quantization_lowrank" / "metrics.json").read_text())["qwen2vl_section"] == "run"
    assert (results / "05_quantization_lowrank" / "qwen2vl_table.csv").is_file()


def test_paper_profile_without_its_files_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMID_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("VLMID_PAPER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VLMID_DATA", str(tmp_path / "vlmid-data"))
    status = pipeline.run("paper", 0, only="02", results=str(tmp_path / "results"), smoke=True,
                          extra_parameters={"device": "cpu"})
    manifest = json.loads((tmp_path / "results" / "manifest.json").read_text())
    error = manifest["notebooks"]["02_pruning_blip"]["error"]
    assert status != 0 and "Salesforce/blip-image-captioning-base" in error and "VLMID_MODELS" in error
    assert not (tmp_path / "results" / "02_pruning_blip" / "metrics.json").exists()


def test_the_first_cell_lists_every_missing_input_at_once(paper_env, monkeypatch):
    from vlmid.harness import paper_inputs
    from vlmid.params.compression import CompressionParams
    from vlmid.params.pruning import PruningParams

    assert paper_inputs.missing(sorted(paper_inputs.INPUTS)) == []          # the stand-ins hold all of them
    qwen = paper_env / "models" / "Qwen" / "Qwen2-VL-2B-Instruct"
    qwen.rename(paper_env / "qwen.away")
    try:
        assert paper_inputs.params_from(CompressionParams, {"profile": "paper", "qwen2vl": False}).profile == "paper"
        with pytest.raises(FileNotFoundError, match="Qwen/Qwen2-VL-2B-Instruct"):   # asked for, not there
            paper_inputs.params_from(CompressionParams, {"profile": "paper"})
    finally:
        (paper_env / "qwen.away").rename(qwen)
    (paper_env / "data" / "cifar-10-batches-py" / "test_batch").rename(paper_env / "test_batch.away")
    monkeypatch.setenv("VLMID_MODELS", str(paper_env / "nowhere"))
    try:
        lines = paper_inputs.missing(["blip", "clip", "coco", "cifar10", "flickr8k"])
        assert len(lines) == 3                               # two checkpoints and CIFAR-10; COCO, Flickr8k are there
        assert "Salesforce/blip-image-captioning-base" in lines[0] and "VLMID_MODELS" in lines[0]
        assert "openai/clip-vit-base-patch16" in lines[1] and "test_batch" in lines[2]
        with pytest.raises(FileNotFoundError) as err:
            paper_inputs.params_from(PruningParams, {"profile": "paper", "smoke": True})
        assert "blip-image-captioning-base" in str(err.value) and "CIFAR" not in str(err.value)  # only its own needs
    finally:
        (paper_env / "test_batch.away").rename(paper_env / "data" / "cifar-10-batches-py" / "test_batch")
    with pytest.raises(ValueError, match="unknown paper inputs"):
        paper_inputs.missing(["imagenet"])
