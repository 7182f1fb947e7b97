"""Every shipped build of the recipe, listed and read (vlmid.models.zoo.shipped_seeds / build_records), on a
temporary checkpoints folder of hand-written manifests."""
from __future__ import annotations

import json

import pytest

from vlmid.models import zoo


def write_manifest(root, seed, f1, cpu="AVX2", bf16=False, seconds=3000.0):
    """A zoo entry of ``seed`` holding only its manifest (no model files: none are read)."""
    folder = root / f"tiny-seed{seed}"
    folder.mkdir(parents=True)
    manifest = {"format": 1, "seed": seed, "commit": f"c{seed}", "build_seconds": seconds,
                "host": {"cpu_capability": cpu, "torch": "2.13.0"}, "build": {"bf16": bf16},
                "metrics": {"blip_garment_f1": f1, "clip_zeroshot_top1": 0.85, "n_test": 1000}, "files": {}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "checkpoints"
    for seed, f1 in ((10, 0.81), (2, 0.76), (0, 0.83)):     # written out of order; 10 sorts before 2 as text
        write_manifest(root, seed, f1, cpu="AVX512" if seed == 0 else "AVX2", bf16=seed == 0, seconds=2000.0 + seed)
    (root / "tiny-seed3").mkdir()                           # no manifest: an interrupted publish, not a build
    write_manifest(root, 4, 0.9).rename(root / ".tiny-seed4.x.tmp")   # publish's temporary folder
    write_manifest(root, 5, 0.9).rename(root / "tiny-seed5-old")
    (root / "tiny-seed6").write_text("a file, not a folder")
    return root


def test_shipped_seeds_are_every_entry_with_a_manifest_sorted_as_numbers(root):
    assert zoo.shipped_seeds(root) == [0, 2, 10]


def test_shipped_seeds_follow_vlmid_checkpoints_and_an_empty_root_has_none(root, tmp_path, monkeypatch):
    monkeypatch.setenv("VLMID_CHECKPOINTS", str(root))
    assert zoo.shipped_seeds() == [0, 2, 10]
    assert zoo.shipped_seeds(tmp_path / "nowhere") == []     # an explicit root wins over the variable


def test_build_records_carry_the_host_the_recipe_and_every_metric_sorted_by_seed(root):
    records = zoo.build_records(root)
    assert [r["seed"] for r in records] == [0, 2, 10]
    assert [r["blip_garment_f1"] for r in records] == [0.83, 0.76, 0.81]   # the build below 0.80 is there
    assert [r["cpu_capability"] for r in records] == ["AVX512", "AVX2", "AVX2"]
    assert [r["bf16"] for r in records] == [True, False, False]
    assert [r["build_seconds"] for r in records] == [2000.0, 2002.0, 2010.0]
    assert records[1]["commit"] == "c2" and records[1]["n_test"] == 1000 and records[1]["torch"] == "2.13.0"


def test_an_unreadable_manifest_stops_instead_of_leaving_its_build_out(root):
    (root / "tiny-seed2" / "manifest.json").write_text("{not json")
    with pytest.raises(zoo.CheckpointError, match="tiny-seed2"):
        zoo.build_records(root)


def test_cli_verify_goes_through_the_builds_in_seed_order(root, monkeypatch, capsys):
    monkeypatch.setenv("VLMID_CHECKPOINTS", str(root))
    assert zoo.main(["verify"]) == 0                          # the fake entries list no files: all match
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("OK")]
    assert [line.split()[1].rsplit("/", 1)[1].rstrip(":") for line in lines] == ["tiny-seed0", "tiny-seed2",
                                                                                  "tiny-seed10"]
