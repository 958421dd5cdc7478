"""Hugging Face Hub models without the network: a fake Hub on 127.0.0.1 (``HF_ENDPOINT``, see
``fakehub.py``) and the upload client checked at its boundary."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, make_dist_plugin, tiny_recipe_data
from fakehub import serve
from imtrans import load_translator, registry
from imtrans.engine import checkpoint as ckpt
from imtrans.errors import ImtransError
from imtrans.eval.features import FeatureExtractor

hf = pytest.importorskip("huggingface_hub")


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """The fake Hub served on 127.0.0.1, ``HF_ENDPOINT`` pointing at it, the Hub cache in tmp, online."""
    from huggingface_hub import constants

    with serve() as (hub, endpoint):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        # huggingface_hub reads HF_HOME / HF_HUB_OFFLINE once, at import: set its resolved values
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        yield hub


def generator_file(seed: int, **params) -> bytes:
    """A generators.safetensors holding one tiny resnet G (translating a2b)."""
    torch.manual_seed(seed)
    g = registry.build("generator", "resnet", ngf=4, n_blocks=1, **params)
    meta = {"nets": {"G": {"kind": "generator", "spec": g.imtrans_part.spec}}, "translators": {"a2b": "G"}}
    return ckpt.weights_bytes({"G": g}, meta)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pull_by_revision_and_the_errors_of_each_miss(fake_hub, monkeypatch, tmp_path):
    from imtrans.zoo import resolve_model

    main, v1 = generator_file(0), generator_file(1)
    fake_hub.publish("me/tiny", {"generators.safetensors": v1}, ref="v1")
    commit = fake_hub.publish("me/tiny", {"generators.safetensors": main, "README.md": b"x"})
    fake_hub.publish("me/notimtrans", {"pytorch_model.bin": b"pickle"})
    got = {r: ckpt.load_weights(resolve_model(f"hf-hub:me/tiny{r}"), "G") for r in ("", "@v1", f"@{commit}")}
    assert _same(got[""], got[f"@{commit}"]) and not _same(got[""], got["@v1"])
    (tmp_path / "v1.safetensors").write_bytes(v1)
    assert _same(got["@v1"], ckpt.load_weights(tmp_path / "v1.safetensors", "G"))
    path = resolve_model("hf-hub:me/tiny")
    assert Path(path).is_relative_to(Path(hf.constants.HF_HUB_CACHE)) and "models--me--tiny" in str(path)
    assert ("HEAD", "/me/tiny/resolve/v1/generators.safetensors") in fake_hub.requests
    assert Path(path).resolve().name == hashlib.sha256(main).hexdigest()  # the blob, named by its sha256
    assert not any("README" in p or "bin" in p for _, p in fake_hub.requests)  # one file, never a pickle
    for ref, direction, msg in (
            ("hf-hub:me/tiny@v9", "a2b", "has no revision 'v9'"),
            ("hf-hub:me/notimtrans", "a2b", "holds no generators.safetensors, so it is not an imtrans model"),
            ("hf-hub:me/absent", "a2b", "'me/absent' was not found"),
            ("hf-hub:me/tiny", "b2a", r"'hf-hub:me/tiny' has no direction 'b2a' \(it has a2b\)"),
            ("hf-hub:noslash", "a2b", "does not name a Hub repository"),
            ("hf-hub:me/tiny@", "a2b", "empty revision"),
            ("hf-hub:me/a--b", "a2b", "'hf-hub:me/a--b' is not a valid Hub repository id")):
        with pytest.raises(ImtransError, match=msg):
            resolve_model(ref, direction=direction)
    # offline with a warm cache: the same file, no request; a model never pulled names the way out
    monkeypatch.setattr(hf.constants, "HF_HUB_OFFLINE", True)
    seen = len(fake_hub.requests)
    assert resolve_model("hf-hub:me/tiny") == path and resolve_model(f"hf-hub:me/tiny@{commit}") == path
    assert len(fake_hub.requests) == seen
    with pytest.raises(ImtransError, match="not in the Hugging Face cache.*HF_HUB_OFFLINE"):
        resolve_model("hf-hub:me/other")


@pytest.fixture(scope="module")
def glow_run(tmp_path_factory):
    """The quickstart recipe, tiny: 32 px, a 4-filter U-Net, 2 steps, samples and the evaluation at step 2."""
    from imtrans.engine.trainer import Trainer
    from imtrans.recipe import load_recipe

    root = tmp_path_factory.mktemp("runs")
    r = load_recipe(ROOT / "recipes" / "quickstart.toml", [
        "data.a.count=4", "data.a.size=32", "data.b.count=4", "data.b.size=32", "data.batch_size=2",
        "model.generator.ngf=4", "model.generator.num_downs=5", "model.discriminator.ndf=4",
        "train.max_steps=2", "train.sample_every=2", "train.eval_images=2", "train.log_every=1",
        f"output.root={json.dumps(str(root))}",
    ])
    Trainer(r, progress=False, handle_signals=False).fit()
    return root / "quickstart"


class ChannelStats(FeatureExtractor):
    """Each channel's mean and deviation: an extractor that costs nothing (eval's plumbing, not FID's value)."""

    dim = 6

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        return image.float()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


def _front_matter(readme: str) -> dict:
    yaml = pytest.importorskip("yaml")
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli(*args: str) -> int:
    from imtrans.cli import main

    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code


def test_push_dry_run_writes_exactly_the_repository(glow_run, tmp_path, capsys):
    from imtrans.engine.report import read_metrics

    out = tmp_path / "repo"
    assert _cli("push", str(glow_run), "me/glow", "--dry-run", "--out", str(out)) == 0
    assert "nothing uploaded" in capsys.readouterr().out
    files = _files(out)
    assert sorted(files) == ["README.md", "generators.safetensors", "recipe.resolved.toml", "samples/step_0000002.png"]
    assert files["samples/step_0000002.png"] == (glow_run / "samples" / "step_0000002.png").read_bytes()
    meta = ckpt.read_meta(out / "generators.safetensors")
    run_meta = ckpt.read_meta(glow_run)
    assert files["recipe.resolved.toml"].decode() == run_meta["recipe"]
    assert meta["translators"] == {"a2b": "G", "b2a": "F"} and set(meta["nets"]) == {"G", "F"}
    assert meta["nets"]["G"] == run_meta["nets"]["G"] and meta["step"] == 2  # architecture + origin kept
    for net in ("G", "F"):
        assert _same(ckpt.load_weights(out / "generators.safetensors", net), ckpt.load_weights(glow_run, net))
    assert not any(k.startswith("D_") for k in ckpt.load_weights(out / "generators.safetensors"))
    card = files["README.md"].decode()
    fm = _front_matter(card)
    last = [r for r in read_metrics(glow_run / "metrics.jsonl") if r.get("kind") == "eval"][-1]
    assert fm["library_name"] == "imtrans" and fm["tags"] == ["image-to-image", "cyclegan", "imtrans"]
    assert fm["datasets"] == ["synthetic-glow"] and fm["imtrans"]["plugins"] == []
    assert fm["imtrans"]["evaluation"] == {"step": 2, **last["metrics"]} and "gt_l1_a2b" in last["metrics"]
    assert "imtrans translate hf-hub:me/glow photos/ -o translated_a2b/\n" in card
    assert "imtrans translate hf-hub:me/glow photos/ -o translated_b2a/ --direction b2a\n" in card
    # again, a2b only: the folder is replaced whole (no F, the same samples)
    assert _cli("push", str(glow_run), "me/glow", "--dry-run", "--out", str(out), "--direction", "a2b") == 0
    assert set(ckpt.load_weights(out / "generators.safetensors")) == {k for k in ckpt.load_weights(glow_run)
                                                                       if k.startswith("G.")}
    assert "--direction b2a" not in (out / "README.md").read_text()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert _cli("push", str(glow_run), "me/glow", "--dry-run", "--out", str(tmp_path / "mine")) == 1
    assert "is not a folder written by `imtrans push`" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    for args, msg in ((["not-a-repo"], "'not-a-repo' does not name a Hub repository"),
                      (["me/glow", "--direction", "b2a"], "--direction 'b2a' is not one of both, a2b")):
        assert _cli("push", str(glow_run), *args, "--dry-run", "--out", str(tmp_path / "x")) == 1
        assert msg in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_push_uploads_that_folder_through_the_hub_client(glow_run, tmp_path, monkeypatch, capsys):
    calls = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, **kw):
        calls.append(("upload_folder", kw["repo_id"], {**kw, "files": _files(Path(kw["folder_path"]))}))
        return hf.CommitInfo(commit_url="https://huggingface.co/me/glow/commit/abc",
                             commit_message=kw["commit_message"], commit_description="", oid="abc", pr_url=None)

    monkeypatch.setattr(hf.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(hf.HfApi, "upload_folder", upload_folder)
    assert _cli("push", str(glow_run), "me/glow", "--private") == 0
    said = capsys.readouterr().out
    assert "pushed" in said and "https://huggingface.co/me/glow/commit/abc" in said and "hf-hub:me/glow" in said
    (_, repo, kw), (_, repo2, up) = calls
    assert repo == repo2 == "me/glow" and kw == {"private": True, "exist_ok": True, "repo_type": "model"}
    assert up["repo_type"] == "model" and up["delete_patterns"] == ["samples/*"] and "step 2" in up["commit_message"]
    assert not Path(up["folder_path"]).exists()  # the staging folder was temporary
    assert _cli("push", str(glow_run), "me/glow", "--dry-run", "--out", str(tmp_path / "dry")) == 0
    assert up["files"] == _files(tmp_path / "dry")  # exactly what --dry-run shows
    assert _cli("push", str(glow_run), "me/glow", "--out", str(tmp_path / "o")) == 1 and len(calls) == 2
    assert "add --dry-run" in capsys.readouterr().err


def test_round_trip_same_pixels_as_the_run(glow_run, tmp_path, fake_hub):
    """push --dry-run, serve that folder, pull by hf-hub id: translate, demo, eval and fine-tuning get
    the run's own generators."""
    from imtrans.demo import DemoModel

    assert _cli("push", str(glow_run), "me/glow", "--dry-run", "--out", str(tmp_path / "repo")) == 0
    fake_hub.publish_folder("me/glow", tmp_path / "repo")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    outs = {}
    for d in ("a2b", "b2a"):
        kw = dict(direction=d, device="cpu", precision="fp32", backend="torch")
        outs[d] = np.asarray(load_translator("hf-hub:me/glow", **kw)(img))
        assert np.array_equal(outs[d], np.asarray(load_translator(glow_run, **kw)(img))), d
    assert not np.array_equal(outs["a2b"], outs["b2a"])  # each direction got its own generator
    src = tmp_path / "in"
    src.mkdir()
    img.save(src / "x.png")
    for model, out in (("hf-hub:me/glow", "hub"), (str(glow_run), "run")):
        assert _cli("translate", model, str(src), "-o", str(tmp_path / out), "--no-progress", "--precision", "fp32",
                    "--backend", "torch", "--direction", "b2a") == 0
    assert (tmp_path / "hub" / "x.png").read_bytes() == (tmp_path / "run" / "x.png").read_bytes()
    assert DemoModel("hf-hub:me/glow", device="cpu", precision="fp32", tile=None).directions == ["a2b", "b2a"]
    # eval: the same FID through the id as through the run (features: channel means and deviations)
    from imtrans.eval.evaluate import evaluate_run

    for side in ("testA", "testB"):
        (tmp_path / "data" / side).mkdir(parents=True)
        for i in range(3):
            shifted = np.roll(np.asarray(img), 7 * i + (side == "testB"), axis=1)
            Image.fromarray(shifted).save(tmp_path / "data" / side / f"{i}.png")
    fids = [evaluate_run(m, "b2a", data_root=tmp_path / "data", extractor=ChannelStats("none", "none"), device="cpu",
                         precision="fp32", kid_subsets=2, use_cache=False) for m in ("hf-hub:me/glow", glow_run)]
    assert np.isfinite(fids[0].fid) and fids[0].fid == fids[1].fid and fids[0].n_fake == 3
    assert "hf-hub:me/glow (b2a)" in fids[0].fake
    # fine-tuning: a generator's `pretrained` takes the id (the a2b generator), and checks the architecture
    # (build_part builds, then loads: a constructor never downloads)
    from imtrans.build import build_part

    spec = dict(ckpt.read_meta(glow_run)["nets"]["G"]["spec"])
    g = build_part("generator", {**spec, "pretrained": "hf-hub:me/glow"})
    assert _same(g.state_dict(), ckpt.load_weights(glow_run, "G"))
    with pytest.raises(ImtransError, match="has ngf=8; use ngf=4"):
        build_part("generator", {**spec, "ngf": 8, "pretrained": "hf-hub:me/glow"})


PLUG = '''
from imtrans import hookimpl
from imtrans.nets.generators import ResnetGenerator


class PlugResnet(ResnetGenerator):
    """The resnet generator under a plugin's name (a test plugin)."""


@hookimpl
def register_generators(register):
    register("plug_resnet", PlugResnet)
'''


def test_a_plugin_generator_travels_with_its_pip_install(tmp_path, fake_hub, fresh_plugins):
    """A run trained with a plugin's generator: the card names the distribution, and pulling it where the
    plugin is missing says which `pip install` brings it."""
    from imtrans.engine.trainer import Trainer
    from imtrans.recipe import recipe_from_dict
    from imtrans.zoo import push

    sys.path.insert(0, str(make_dist_plugin(tmp_path / "site", "imtrans-plug", "imtrans_plug", PLUG, version="0.2")))
    fresh_plugins.load_plugins(reload=True)
    data = tiny_recipe_data(tmp_path / "runs", "plug", max_steps=1, sample_every=0, eval_fid=False, eval_images=2)
    data["model"]["generator"]["name"] = "plug_resnet"
    Trainer(recipe_from_dict(data), progress=False, handle_signals=False).fit()
    push.stage(tmp_path / "runs" / "plug", "me/plug", tmp_path / "repo")
    fm = _front_matter((tmp_path / "repo" / "README.md").read_text())
    assert fm["imtrans"]["plugins"] == ["imtrans-plug==0.2"] and fm["imtrans"]["evaluation"]["step"] == 1
    assert "pip install 'imtrans[hub]' imtrans-plug==0.2\n" in (tmp_path / "repo" / "README.md").read_text()
    fake_hub.publish_folder("me/plug", tmp_path / "repo")
    assert load_translator("hf-hub:me/plug", device="cpu", precision="fp32", backend="torch").multiple == 4
    sys.path.remove(str(tmp_path / "site"))  # uninstall it
    sys.modules.pop("imtrans_plug", None)
    fresh_plugins.load_plugins(reload=True)
    with pytest.raises(ImtransError, match=r"'hf-hub:me/plug' needs generator 'plug_resnet' from the plugin "
                                           r"distribution 'imtrans-plug' 0\.2.*`pip install imtrans-plug==0\.2`"):
        load_translator("hf-hub:me/plug", direction="b2a", device="cpu")


def test_without_huggingface_hub_one_sentence_says_how_to_install_it(monkeypatch, glow_run, tmp_path):
    from imtrans.zoo import push, resolve_model

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    for call in (lambda: resolve_model("hf-hub:me/glow"), lambda: push.push(glow_run, "me/glow")):
        with pytest.raises(ImtransError, match=r"need the huggingface_hub package.*`pip install 'imtrans\[hub\]'`$"):
            call()
    push.stage(glow_run, "me/glow", tmp_path / "dry")  # --dry-run needs no client
    assert (tmp_path / "dry" / "generators.safetensors").is_file()


def test_a_fresh_process_follows_the_hub_environment(glow_run, tmp_path, fake_hub):
    """`imtrans translate hf-hub:...` in a new process: HF_ENDPOINT picks the server, HF_HOME the cache
    (huggingface_hub reads both at import, as users set them)."""
    import os

    from conftest import run_cli

    from imtrans.zoo import push

    push.stage(glow_run, "me/glow", tmp_path / "repo")
    fake_hub.publish_folder("me/glow", tmp_path / "repo")
    (tmp_path / "in").mkdir()
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 40, 3), dtype=np.uint8))
    img.save(tmp_path / "in" / "a.png")
    assert "HF_HUB_CACHE" not in os.environ  # (it would win over HF_HOME)
    env = {"HF_ENDPOINT": os.environ["HF_ENDPOINT"], "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "0",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    r = run_cli("translate", "hf-hub:me/glow", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--no-progress",
                "--precision", "fp32", "--backend", "torch", env=env)
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "home" / "hub" / "models--me--glow" / "snapshots").glob("*/generators.safetensors"))
    t = load_translator(glow_run, device="cpu", precision="fp32", backend="torch")
    want = np.asarray(t(Image.open(tmp_path / "in" / "a.png")))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), want)


def test_a_lone_weights_file_pushes_and_pulls(tmp_path, fake_hub):
    """A .safetensors file without a run around it (e.g. from import-weights, no translators map): its one
    generator goes up as a2b, with a card but no recipe or samples."""
    from imtrans.engine.checkpoint import save_weights
    from imtrans.zoo import push

    torch.manual_seed(0)
    g = registry.build("generator", "resnet", ngf=4, n_blocks=1)
    save_weights(tmp_path / "G.safetensors", {"G": g}, {"nets": {"G": {"kind": "generator", "spec": g.imtrans_part.spec}}})
    push.stage(tmp_path / "G.safetensors", "me/lone", tmp_path / "repo")
    assert sorted(_files(tmp_path / "repo")) == ["README.md", "generators.safetensors"]
    fm = _front_matter((tmp_path / "repo" / "README.md").read_text())
    assert fm["imtrans"]["directions"] == {"a2b": "G"} and "datasets" not in fm and fm["tags"][0] == "image-to-image"
    fake_hub.publish_folder("me/lone", tmp_path / "repo")
    from imtrans.build import build_part

    tuned = build_part("generator", {"name": "resnet", "ngf": 4, "n_blocks": 1, "pretrained": "hf-hub:me/lone"})
    assert _same(tuned.state_dict(), g.state_dict())


def test_card_separates_the_plugins_to_install_from_those_training_used():
    from imtrans.zoo import card

    origins = [{"dist": "imtrans", "version": "0.1.0"}, {"dist": "imtrans-cut", "version": "0.3"}, {}, None]
    assert card.plugin_pins(origins) == ["imtrans-cut==0.3"]
    text = card.model_card({"repo_id": "me/h2z", "scheme": "cut", "step": 7, "directions": {"a2b": "G"},
                            "dataset": "horse2zebra", "plugins": ["imtrans-cut==0.3"],
                            "trained_with": ["imtrans-textures==0.1"], "description": "",
                            "evaluation": {"step": 5, "fid_a2b": 61.5, "kid_a2b": 0.02}, "sample": None})
    fm = _front_matter(text)
    assert fm["tags"] == ["image-to-image", "cut", "imtrans"] and fm["datasets"] == ["horse2zebra"]
    assert fm["imtrans"]["plugins"] == ["imtrans-cut==0.3"] and fm["imtrans"]["evaluation"]["fid_a2b"] == 61.5
    assert "pip install 'imtrans[hub]' imtrans-cut==0.3\n" in text and "(step 5)" in text and "| fid_a2b | 61.5 |" in text
    assert "Training also used `imtrans-textures==0.1` (not needed to translate)." in text
    assert card.finite_metrics({"a": float("nan"), "b": 1, "c": True, "d": "x"}) == {"b": 1.0}
