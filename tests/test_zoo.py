"""The model zoo: shipped checkpoints, their manifest and hashes, and which models tiny_folder picks."""
import hashlib
import json
import os
import subprocess

import pytest

from vlmid.models import zoo
from vlmid.models.zoo import CheckpointError, publish, verify
from vlmid.paths import REPO_ROOT
from vlmid.harness.results import constraint_mismatches, constraints_status, parse_constraints, provenance


@pytest.fixture(scope="module")
def smoke_build(tmp_path_factory):
    """One smoke build (seconds) shared by the tests: the folder with blip/, clip/ and build.json."""
    from vlmid.models.build import build

    data = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLMID_DATA", str(data))
        folder = build(seed=0, smoke=True, progress=False)
    return folder


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Checkpoints and data in tmp_path; no model source chosen."""
    monkeypatch.setenv("VLMID_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("VLMID_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("VLMID_MODEL_SOURCE", raising=False)
    return tmp_path


def _publish(smoke_build, root, metrics=None):
    # a smoke build stands in for a real one (publish refuses smoke builds unless told)
    return publish(smoke_build, 0, metrics or {"cider_d": 1.23, "zeroshot_top1": 0.66},
                   dest_root=root, allow_smoke=True)


# ---- publish and verify --------------------------------------------------------------------
def test_publish_writes_a_verified_entry_with_its_manifest(smoke_build, tmp_path):
    root = tmp_path / "checkpoints"
    entry = _publish(smoke_build, root)
    assert entry == root / "tiny-seed0"
    assert sorted(p.name for p in root.iterdir()) == ["tiny-seed0"]  # no temporary folder left
    m = json.loads((entry / "manifest.json").read_text())
    build = json.loads((smoke_build / "build.json").read_text())
    assert m["build"] == build and m["seed"] == m["data_seed"] == 0
    assert m["hyperparameters"] == build["hyperparameters"]
    assert m["cpu_seconds"]["blip"] == build["blip"]["cpu_seconds"]
    assert m["metrics"] == {"cider_d": 1.23, "zeroshot_top1": 0.66}
    assert m["host"]["cpu_capability"] and m["host"]["torch"].startswith("2.13")
    assert m["commit"]
    files = sorted(str(p.relative_to(entry)) for p in entry.rglob("*") if p.is_file())
    assert sorted(m["files"]) == [f for f in files if f != "manifest.json"]
    assert {"blip/model.safetensors", "clip/model.safetensors", "clip/config.json"} <= set(m["files"])
    for rel, rec in m["files"].items():
        data = (entry / rel).read_bytes()
        assert rec == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert verify(entry)["files"] == m["files"]
    assert zoo.shipped_folder(0, root) == entry and zoo.shipped_folder(1, root) is None
    assert zoo.manifest_sha256(0, root) == hashlib.sha256((entry / "manifest.json").read_bytes()).hexdigest()
    assert zoo.manifest_sha256(1, root) is None


def test_publish_refuses_smoke_builds_and_wrong_seeds(smoke_build, tmp_path):
    with pytest.raises(ValueError, match="smoke"):
        publish(smoke_build, 0, {}, dest_root=tmp_path)
    with pytest.raises(ValueError, match="seed 0, not seed 3"):
        publish(smoke_build, 3, {}, dest_root=tmp_path, allow_smoke=True)
    with pytest.raises(FileNotFoundError, match="build.json"):
        publish(tmp_path, 0, {}, dest_root=tmp_path / "out")
    assert not (tmp_path / "tiny-seed0").exists() and not (tmp_path / "tiny-seed3").exists()


def test_a_changed_byte_names_the_file_both_hashes_and_the_fix(smoke_build, tmp_path):
    entry = _publish(smoke_build, tmp_path)
    verify(entry)  # verified once: the cache must not hide a later change
    target = entry / "blip" / "model.safetensors"
    want = json.loads((entry / "manifest.json").read_text())["files"]["blip/model.safetensors"]["sha256"]
    with open(target, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CheckpointError) as e:
        verify(entry)
    msg = str(e.value)
    assert isinstance(e.value, RuntimeError)
    assert "blip/model.safetensors" in msg and want in msg
    assert hashlib.sha256(target.read_bytes()).hexdigest() in msg
    assert "git checkout -- checkpoints/" in msg and "bash run_all.sh --rebuild-models" in msg
    assert [p[0] for p in e.value.problems] == ["blip/model.safetensors"]


def test_a_missing_file_is_named(smoke_build, tmp_path):
    entry = _publish(smoke_build, tmp_path)
    (entry / "clip" / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"clip/config\.json: expected sha256 [0-9a-f]{64}, found missing"):
        verify(entry)


def test_a_file_not_in_the_manifest_is_an_error(smoke_build, tmp_path):
    entry = _publish(smoke_build, tmp_path)
    verify(entry)
    (entry / "blip" / "extra.bin").write_bytes(b"not shipped")
    with pytest.raises(CheckpointError, match=r"blip/extra\.bin: not listed in the manifest"):
        verify(entry)


def test_a_missing_manifest_is_an_error(smoke_build, tmp_path):
    entry = _publish(smoke_build, tmp_path)
    (entry / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="manifest.json: missing"):
        verify(entry)


def test_verification_hashes_once_per_folder(smoke_build, tmp_path, monkeypatch):
    entry = _publish(smoke_build, tmp_path)
    verify(entry)
    calls = []
    real = zoo._sha256
    monkeypatch.setattr(zoo, "_sha256", lambda p: calls.append(p) or real(p))
    verify(entry)
    assert calls == []
    verify(entry, use_cache=False)
    assert len(calls) == len(json.loads((entry / "manifest.json").read_text())["files"])


def test_publish_is_atomic(smoke_build, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "checkpoints"
    real = shutil.copytree
    copied = []

    def failing_copytree(src, dst, *a, **k):
        if copied:  # blip/ is copied, then the copy of clip/ fails
            raise OSError("disk full (simulated)")
        copied.append(src)
        return real(src, dst, *a, **k)

    monkeypatch.setattr(zoo.shutil, "copytree", failing_copytree)
    with pytest.raises(OSError, match="simulated"):
        _publish(smoke_build, root)
    assert not (root / "tiny-seed0").exists()
    assert list(root.iterdir()) == []  # the temporary folder is gone too

    # over an existing entry: a failure keeps the old entry whole
    monkeypatch.setattr(zoo.shutil, "copytree", real)
    entry = _publish(smoke_build, root, metrics={"v": 1})
    copied.clear()
    monkeypatch.setattr(zoo.shutil, "copytree", failing_copytree)
    with pytest.raises(OSError):
        _publish(smoke_build, root, metrics={"v": 2})
    assert verify(entry, use_cache=False)["metrics"] == {"v": 1}
    assert sorted(p.name for p in root.iterdir()) == ["tiny-seed0"]
    monkeypatch.setattr(zoo.shutil, "copytree", real)
    assert verify(_publish(smoke_build, root, metrics={"v": 3}))["metrics"] == {"v": 3}
    assert sorted(p.name for p in root.iterdir()) == ["tiny-seed0"]


# ---- which models tiny_folder uses ---------------------------------------------------------
def _fake_build(calls):
    """Stands in for build(): writes an empty 'build' so nothing trains."""
    from vlmid.models.zoo import models_root

    def fake(seed=0, smoke=False, **kw):
        print(f"FAKE BUILD seed {seed}")
        calls.append((seed, smoke))
        folder = models_root(seed, smoke)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "build.json").write_text(json.dumps({"seed": seed, "smoke": smoke, "fake": True}))
        return folder
    return fake


def test_shipped_models_are_used_by_default_and_never_trained(smoke_build, env, monkeypatch):
    from vlmid.models import model_source, tiny_folder

    entry = _publish(smoke_build, env / "checkpoints")
    calls = []
    monkeypatch.setattr("vlmid.models.build.build", _fake_build(calls))
    assert model_source(0) == "shipped"
    assert tiny_folder(0) == entry
    monkeypatch.setenv("VLMID_MODEL_SOURCE", "shipped")
    assert tiny_folder(0) == entry and calls == []
    info = zoo.tiny_build_info(0)
    assert info["source"] == "shipped" and info["blip"] == json.loads((smoke_build / "build.json").read_text())["blip"]
    assert info["metrics"]["cider_d"] == 1.23


def test_built_source_never_returns_the_shipped_folder(smoke_build, env, monkeypatch, capsys):
    from vlmid.models import model_source, tiny_folder
    from vlmid.models.zoo import models_root

    entry = _publish(smoke_build, env / "checkpoints")
    calls = []
    monkeypatch.setattr("vlmid.models.build.build", _fake_build(calls))
    monkeypatch.setenv("VLMID_MODEL_SOURCE", "built")
    assert model_source(0) == "built"
    folder = tiny_folder(0)
    assert folder == models_root(0) and folder != entry and calls == [(0, False)]
    out = capsys.readouterr().out
    assert "VLMID_MODEL_SOURCE=built" in out and out.index("VLMID_MODEL_SOURCE") < out.index("FAKE BUILD")
    assert tiny_folder(0) == models_root(0) and calls == [(0, False)]  # built once
    assert zoo.tiny_build_info(0) == {"seed": 0, "smoke": False, "fake": True, "source": "built",
                                      "folder": str(models_root(0))}


def test_smoke_models_are_always_built_here(smoke_build, env, monkeypatch):
    from vlmid.models import model_source, tiny_folder
    from vlmid.models.zoo import models_root

    _publish(smoke_build, env / "checkpoints")
    calls = []
    monkeypatch.setattr("vlmid.models.build.build", _fake_build(calls))
    for source in ("shipped", "built"):
        monkeypatch.setenv("VLMID_MODEL_SOURCE", source)
        assert model_source(0, smoke=True) == "smoke"
        assert tiny_folder(0, smoke=True) == models_root(0, smoke=True)
    assert calls == [(0, True)]


def test_a_seed_without_shipped_models_announces_the_build(env, monkeypatch, capsys):
    from vlmid.models import model_source, tiny_folder
    from vlmid.models.zoo import models_root

    calls = []
    monkeypatch.setattr("vlmid.models.build.build", _fake_build(calls))
    assert model_source(5) == "built"
    with pytest.raises(FileNotFoundError):
        tiny_folder(5, build_if_missing=False)
    assert calls == []
    assert tiny_folder(5) == models_root(5) and calls == [(5, False)]
    out = capsys.readouterr().out
    assert "no shipped models for seed 5" in out
    assert f"about {zoo.REBUILD_MINUTES} minutes on 2 cores" in out
    assert "python -m vlmid.models.build --seed 5" in out
    assert out.index("no shipped models") < out.index("FAKE BUILD")  # announced before it trains
    # a local build is used as it is afterwards
    assert tiny_folder(5) == models_root(5) and calls == [(5, False)]


def test_a_damaged_shipped_model_stops_instead_of_training(smoke_build, env, monkeypatch):
    from vlmid.models import tiny_folder

    entry = _publish(smoke_build, env / "checkpoints")
    (entry / "clip" / "tokenizer.json").write_text("{}")
    calls = []
    monkeypatch.setattr("vlmid.models.build.build", _fake_build(calls))
    with pytest.raises(CheckpointError, match="clip/tokenizer.json"):
        tiny_folder(0)
    assert calls == []


def test_an_unknown_model_source_says_what_is_allowed(env, monkeypatch):
    from vlmid.models import model_source

    monkeypatch.setenv("VLMID_MODEL_SOURCE", "downloaded")
    with pytest.raises(ValueError, match="'shipped'.*'built'"):
        model_source(0)


def test_shipped_models_load(smoke_build, env):
    from vlmid.models import load_captioner, load_clip

    entry = _publish(smoke_build, env / "checkpoints")
    cap = load_captioner("tiny", seed=0)
    clip = load_clip("tiny", seed=0)
    assert cap.model.config.vision_config.num_hidden_layers >= 1 and clip.image_size > 0
    assert verify(entry)


# ---- the command line ----------------------------------------------------------------------
def test_cli_verify_prints_ok_or_the_error(smoke_build, env, capsys):
    entry = _publish(smoke_build, env / "checkpoints")
    assert zoo.main(["verify", "--seed", "0"]) == 0
    assert "OK" in capsys.readouterr().out
    assert zoo.main(["verify"]) == 0
    (entry / "blip" / "config.json").write_text("{}")
    assert zoo.main(["verify", "--seed", "0"]) == 1
    err = capsys.readouterr().err
    assert "blip/config.json" in err and "git checkout -- checkpoints/" in err
    assert zoo.main(["verify", "--seed", "7"]) == 1
    assert "no shipped models for seed 7" in capsys.readouterr().err


def test_the_rebuild_time_is_the_shipped_builds_own(monkeypatch, tmp_path):
    """REBUILD_MINUTES, said wherever a build from nothing is announced, is the wall time the shipped
    seed-0 build recorded in its manifest, in minutes; with no shipped build, the 60-minute target."""
    manifest = json.loads((zoo.CHECKPOINTS / "tiny-seed0" / "manifest.json").read_text())
    assert zoo.REBUILD_MINUTES == round(manifest["build_seconds"] / 60)
    assert f"about {zoo.REBUILD_MINUTES} minutes on 2 cores" in zoo.rebuild_notice(3)
    monkeypatch.setattr(zoo, "CHECKPOINTS", tmp_path)
    assert zoo._shipped_build_minutes() == 60


def test_cli_which_says_what_would_be_trained(env, capsys):
    assert zoo.main(["which", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "no shipped models for seed 4" in out and "python -m vlmid.models.build --seed 4" in out


# ---- run_all.sh ----------------------------------------------------------------------------
def test_run_all_help_explains_rebuilds_and_pins():
    r = subprocess.run(["bash", str(REPO_ROOT / "run_all.sh"), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for text in ("--rebuild-models", "--unpinned", "AVX2", "constraints.txt"):
        assert text in r.stdout


def _setup_done() -> bool:
    stamp = REPO_ROOT / ".venv" / ".vlmid-installed"
    want = hashlib.sha256((REPO_ROOT / "pyproject.toml").read_bytes()
                          + (REPO_ROOT / "constraints.txt").read_bytes()).hexdigest()[:16]
    return stamp.exists() and stamp.read_text().strip() == want and not os.environ.get("VLMID_UNPINNED")


def test_run_all_stops_on_a_damaged_checkpoint_before_any_notebook(smoke_build, tmp_path):
    if not _setup_done():
        pytest.skip("run_all.sh's set-up is not done (it would install first)")
    entry = _publish(smoke_build, tmp_path / "checkpoints")
    (entry / "clip" / "model.safetensors").write_bytes(b"damaged")
    results = tmp_path / "results"
    env = {**os.environ, "VLMID_CHECKPOINTS": str(tmp_path / "checkpoints"), "VLMID_DATA": str(tmp_path / "data")}
    env.pop("VLMID_MODEL_SOURCE", None)
    r = subprocess.run(["bash", str(REPO_ROOT / "run_all.sh"), "--seed", "0", "--results", str(results)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert "clip/model.safetensors" in r.stderr and "git checkout -- checkpoints/" in r.stderr
    assert "stopped before any notebook ran" in r.stderr
    assert not results.exists()


# ---- the pinned environment ----------------------------------------------------------------
def test_constraints_parsing_and_mismatches():
    text = """# a comment
-c other.txt
--index-url https://example.invalid/simple
Foo_Bar==1.0   # trailing comment
torch==2.13.0
pkg[extra]==3.1 ; python_version >= "3.10"
ranged>=1.0

PyYAML==6.0.4
"""
    pins = parse_constraints(text)
    assert pins == {"foo-bar": "1.0", "torch": "2.13.0", "pkg": "3.1", "pyyaml": "6.0.4"}
    installed = {"foo.bar": "1.0", "torch": "2.13.0+cpu", "pkg": "3.2", "PyYAML": "6.0.4"}
    assert constraint_mismatches(pins, installed) == [{"package": "pkg", "pinned": "3.1", "installed": "3.2"}]
    assert constraint_mismatches({"absent": "1"}, {}) == [{"package": "absent", "pinned": "1", "installed": "not installed"}]
    # a pin with a local label wants exactly that build
    assert constraint_mismatches({"torch": "2.13.0+cpu"}, {"torch": "2.13.0"})[0]["package"] == "torch"
    assert constraint_mismatches({"torch": "2.13.0+cpu"}, {"torch": "2.13.0+cpu"}) == []


def test_constraints_status_and_provenance(tmp_path):
    f = tmp_path / "constraints.txt"
    f.write_text("pytest==0.0.1\n")
    st = constraints_status(f)
    assert st["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert st["matches"] is False and st["mismatches"][0]["package"] == "pytest"
    assert constraints_status(tmp_path / "absent.txt")["sha256"] is None
    repo = constraints_status()
    assert repo["sha256"] == hashlib.sha256((REPO_ROOT / "constraints.txt").read_bytes()).hexdigest()
    assert isinstance(repo["mismatches"], list) and repo["matches"] == (repo["mismatches"] == [])
    assert provenance("tiny", 0)["constraints"] == repo


def test_constraints_file_pins_torch_and_not_this_package():
    pins = parse_constraints((REPO_ROOT / "constraints.txt").read_text())
    assert pins["torch"] == "2.13.0" and "vlmid" not in pins
    assert len(pins) > 50
    assert not any(" @ " in line for line in (REPO_ROOT / "constraints.txt").read_text().splitlines()
                   if not line.startswith("#"))


@pytest.mark.parametrize("seed", zoo.shipped_seeds() or [0])
def test_the_shipped_models_still_measure_what_their_manifest_recorded(seed):
    """Load every shipped build's models and re-measure the quality gates on the fixed small subset
    (vlmid.models.quality.SUBSET: 100 test scenes, 500 zero-shot photos, 400 probe items).

    On the machine that built them the values are equal; on a CPU with another vector unit an
    argmax may flip, so the tolerance is about one decision in a hundred."""
    from vlmid.models import load_captioner, load_clip, quality

    folder = zoo.shipped_folder(seed)
    assert folder is not None, f"checkpoints/tiny-seed{seed}/ is missing: restore it with `git checkout -- checkpoints/`"
    manifest = verify(folder)
    recorded = manifest["build"]["subset_metrics"]
    now = quality.measure(load_captioner("tiny", folder=folder), load_clip("tiny", folder=folder), seed,
                          cider=False, **quality.SUBSET)
    assert now["n_test"] == recorded["n_test"] == quality.SUBSET["n_test"]
    # the manifest's probes were measured with the probe protocol of this code (re-publish when it changes)
    assert recorded.get("probe_protocol") == manifest["metrics"].get("probe_protocol") == now["probe_protocol"]
    for key in ("blip_garment_f1", "blip_binding_acc", "blip_count_acc", "clip_zeroshot_top1",
                "probe_blip_class", "probe_clip_class"):
        assert now[key] == pytest.approx(recorded[key], abs=0.011), key
