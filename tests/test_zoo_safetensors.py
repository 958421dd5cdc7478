"""The zoo takes imtrans generator files: `export -o model.safetensors` writes one, a Pretrained entry points at it.

A tiny run is trained once; its generator file is served from a local HTTP
server (the `server` fixture of test_zoo.py) and registered by a test plugin
through ``register_pretrained``; ``IMTRANS_HOME`` keeps the cache in tmp.
"""

from __future__ import annotations

import hashlib
import re
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_dist_plugin, tiny_recipe_data
from test_zoo import TINY, official_bytes, register_entries, server  # noqa: F401  (server: a fixture used here)

from imtrans import load_translator, registry
from imtrans.engine import checkpoint as ckpt
from imtrans.errors import ImtransError
from imtrans.zoo import Pretrained, fetch, store

FAR = "http://zoo.invalid/models"
FAST = {"device": "cpu", "precision": "fp32", "backend": "torch"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A CycleGAN run of one step (4-filter ResNet generators, 32 px)."""
    from imtrans.engine.trainer import Trainer
    from imtrans.recipe import recipe_from_dict

    root = tmp_path_factory.mktemp("runs")
    data = tiny_recipe_data(root, "tiny", max_steps=1, sample_every=0, eval_fid=False, eval_images=2)
    Trainer(recipe_from_dict(data), progress=False, handle_signals=False).fit()
    return root / "tiny"


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from imtrans.cli import main

    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def _export(capsys, model, out, *extra: str) -> str:
    """Export ``model`` to ``out`` through the CLI; returns the sha256 it printed."""
    code, text, err = _cli(capsys, "export", str(model), "-o", str(out), *extra)
    assert code == 0, err
    return re.search(r"^sha256: ([0-9a-f]{64})$", text, re.M).group(1)


@pytest.fixture
def home(tmp_path, monkeypatch, server):  # noqa: F811
    """The cache in tmp and the mirror at the local server (entries keep their far-away URLs)."""
    monkeypatch.setenv("IMTRANS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("IMTRANS_PRETRAINED_MIRROR", server["base"])
    return tmp_path / "home" / "pretrained"


def test_export_writes_one_generator_with_its_sha256_and_entry(run, tmp_path, capsys):
    sha = _export(capsys, run, tmp_path / "g.safetensors", "--direction", "b2a")
    data = (tmp_path / "g.safetensors").read_bytes()
    assert sha == hashlib.sha256(data).hexdigest()
    meta, run_meta = ckpt.read_meta(tmp_path / "g.safetensors"), ckpt.read_meta(run)
    assert meta["translators"] == {"a2b": "G"} and list(meta["nets"]) == ["G"]
    assert meta["nets"]["G"] == run_meta["nets"]["F"]  # architecture and origin of the b2a network
    assert meta["nets"]["G"]["origin"]["dist"] == "imtrans" and meta["exported"] == {"direction": "b2a", "net": "F"}
    got, want = ckpt.load_weights(tmp_path / "g.safetensors", "G"), ckpt.load_weights(run, "F")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    code, out, _ = _cli(capsys, "export", str(run), "-o", str(tmp_path / "a.safetensors"))
    assert code == 0 and f'sha256="{hashlib.sha256((tmp_path / "a.safetensors").read_bytes()).hexdigest()}"' in out
    got = {}  # the printed entry is Python to paste into a register_pretrained hook
    exec(out[out.index('register("a"'):], {"register": got.__setitem__, "Pretrained": Pretrained})
    assert got["a"].sha256 == hashlib.sha256((tmp_path / "a.safetensors").read_bytes()).hexdigest()
    assert got["a"].format == "imtrans" and got["a"].scheme == "cyclegan"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # written atomically: no temp file left


def test_export_errors_are_one_sentence(run, tmp_path, capsys):
    code, _, err = _cli(capsys, "export", str(run), "-o", str(tmp_path / "g.safetensors"), "--direction", "x2y")
    assert code == 1 and "no direction 'x2y'" in err and not (tmp_path / "g.safetensors").exists()
    code, _, err = _cli(capsys, "export", str(run), "-o", str(tmp_path / "g.bin"))
    assert code == 1 and "--format onnx, pt2 or safetensors" in err


def test_translate_by_name_is_translating_the_run(run, tmp_path, capsys, server, home, fresh_plugins):  # noqa: F811
    sha = _export(capsys, run, tmp_path / "tiny.safetensors")
    server["files"]["/models/tiny.safetensors"] = (tmp_path / "tiny.safetensors").read_bytes()
    register_entries(fresh_plugins, {
        "tiny_st": Pretrained(urls=(f"{FAR}/tiny.safetensors",), source="stripes", target="other", sha256=sha),
        "tiny_st_arch": Pretrained(urls=(f"{FAR}/tiny.safetensors",), source="a", target="b",
                                   architecture={"name": "resnet", "ngf": 4, "n_blocks": 1}),
    })
    assert store.get("tiny_st").format == "imtrans" and store.get("tiny_st").architecture is None
    (tmp_path / "in").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (36, 44, 3), dtype=np.uint8)).save(tmp_path / "in/x.png")
    for model, out in ((run, "from_run"), ("tiny_st", "by_name")):
        code, _, err = _cli(capsys, "translate", str(model), str(tmp_path / "in"), "-o", str(tmp_path / out),
                            "--no-progress", "--precision", "fp32", "--backend", "torch")
        assert code == 0, err
    assert (tmp_path / "by_name/x.png").read_bytes() == (tmp_path / "from_run/x.png").read_bytes()
    cached = home / "tiny_st" / "weights.safetensors"
    assert cached.read_bytes() == (tmp_path / "tiny.safetensors").read_bytes()  # used as published
    assert store.read_record("tiny_st")["weights_sha256"] == sha
    img = Image.open(tmp_path / "in/x.png")
    assert load_translator("tiny_st", **FAST)(img).tobytes() == load_translator(run, **FAST)(img).tobytes()
    assert store.ensure("tiny_st_arch").is_file()  # a declared architecture that fits the file is accepted
    code, out, _ = _cli(capsys, "pretrained", "info", "tiny_st")
    assert code == 0 and re.search(r"resnet\(.*ngf=4.*n_blocks=1.*\) \(from the file\)", out) and sha in out
    with pytest.raises(ImtransError, match=r"translates one way only"):
        load_translator("tiny_st", direction="b2a", **FAST)
    # fine-tuning from it: the generator starts from the file's weights; another ngf is refused by name
    from imtrans.build import build_part

    g = build_part("generator", {"name": "resnet", "ngf": 4, "n_blocks": 1, "pretrained": "tiny_st"})
    want = ckpt.load_weights(run, "G")
    assert all(torch.equal(v, want[k]) for k, v in g.state_dict().items())
    with pytest.raises(ImtransError, match=r"needs a resnet\(.*ngf=4.*has ngf=8; use ngf=4"):
        build_part("generator", {"name": "resnet", "ngf": 8, "n_blocks": 1, "pretrained": "tiny_st"})


def test_wrong_sha256_and_wrong_architecture_are_refused(run, tmp_path, capsys, server, home, fresh_plugins):  # noqa: F811
    _export(capsys, run, tmp_path / "tiny.safetensors")
    server["files"]["/models/tiny.safetensors"] = (tmp_path / "tiny.safetensors").read_bytes()
    register_entries(fresh_plugins, {
        "tiny_badsum": Pretrained(urls=(f"{FAR}/tiny.safetensors",), source="a", target="b", sha256="0" * 64),
        "tiny_wrongarch": Pretrained(urls=(f"{FAR}/tiny.safetensors",), source="a", target="b",
                                     architecture={"name": "resnet", "n_blocks": 3}),
        "tiny_notgen": Pretrained(urls=(f"{FAR}/tiny.pth",), source="a", target="b", format="imtrans"),
    })
    server["files"]["/models/tiny.pth"] = official_bytes("resnet", {"ngf": 4, "n_blocks": 1})
    with pytest.raises(fetch.ChecksumError, match=r"has sha256 [0-9a-f]{64} but 0{64} was expected"):
        store.ensure("tiny_badsum", progress=False)
    with pytest.raises(ImtransError, match=r"declares architecture resnet\(n_blocks=3\) but the file holds "
                                           r"resnet\(.*\) \(n_blocks=1\); correct the entry's architecture"):
        load_translator("tiny_wrongarch", **FAST)
    with pytest.raises(ImtransError, match=r"it is not an imtrans generator file .*imtrans export"):
        store.ensure("tiny_notgen", progress=False)
    for name in ("tiny_badsum", "tiny_wrongarch", "tiny_notgen"):  # nothing refused stays in the cache
        assert not [p for p in (home / name).iterdir() if p.name != ".lock"] if (home / name).exists() else True
        assert not store.is_cached(name)


def test_a_new_sha256_in_the_entry_replaces_the_cached_file(run, tmp_path, capsys, server, home, fresh_plugins):  # noqa: F811
    """A plugin release that publishes a retrained model under the same name: the cache follows the entry."""
    old = _export(capsys, run, tmp_path / "a2b.safetensors")
    new = _export(capsys, run, tmp_path / "b2a.safetensors", "--direction", "b2a")
    for sha, file in ((old, "a2b"), (new, "b2a")):
        server["files"]["/models/m.safetensors"] = (tmp_path / f"{file}.safetensors").read_bytes()
        register_entries(fresh_plugins, {"m": Pretrained(urls=(f"{FAR}/m.safetensors",), source="a", target="b", sha256=sha)})
        assert store.ensure("m", progress=False).read_bytes() == (tmp_path / f"{file}.safetensors").read_bytes()
    assert store.read_record("m")["source_sha256"] == new


def test_an_entry_needs_architecture_unless_it_is_a_generator_file():
    with pytest.raises(ImtransError, match=r"architecture needs a part name.*only an imtrans \.safetensors entry"):
        Pretrained(urls=("http://x.invalid/m.pth",), source="a", target="b")
    with pytest.raises(ImtransError, match=r"format must be one of official, imtrans; got 'onnx'"):
        Pretrained(urls=("http://x.invalid/m.onnx",), source="a", target="b", format="onnx", architecture=TINY)
    assert Pretrained(urls=("http://x.invalid/m.safetensors?dl=1",), source="a", target="b").format == "imtrans"


def test_official_conversions_record_the_builtin_origin(server, home, fresh_plugins, tmp_path, capsys):  # noqa: F811
    server["files"]["/models/tiny_h2z.pth"] = official_bytes("resnet", {"ngf": 4, "n_blocks": 2})
    register_entries(fresh_plugins, {"tiny_off": Pretrained(urls=(f"{FAR}/tiny_h2z.pth",), architecture=TINY,
                                                     source="a", target="b")})
    meta = ckpt.read_meta(store.ensure("tiny_off", progress=False))
    assert meta["nets"]["G"]["origin"] == registry.part_origin("generator", "resnet")
    assert meta["nets"]["G"]["origin"]["dist"] == "imtrans"
    # export takes a zoo name too: the official model becomes a generator file with the same weights
    sha = _export(capsys, "tiny_off", tmp_path / "off.safetensors")
    assert sha == hashlib.sha256((tmp_path / "off.safetensors").read_bytes()).hexdigest()
    got, want = ckpt.load_weights(tmp_path / "off.safetensors", "G"), ckpt.load_weights(store.weights_path("tiny_off"), "G")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)


PLUG = '''
from imtrans import hookimpl
from imtrans.nets.generators import ResnetGenerator
from imtrans.zoo import Pretrained


class GlowResnet(ResnetGenerator):
    """The resnet generator under a plugin's name (a test plugin)."""


@hookimpl
def register_generators(register):
    register("glow_resnet", GlowResnet)


@hookimpl
def register_pretrained(register):
    register("glow_zoo", Pretrained(urls=("http://zoo.invalid/models/glow.safetensors",), source="day", target="glow"))
'''


def _uninstall(site, fresh_plugins) -> None:
    sys.path.remove(str(site))
    sys.modules.pop("imtrans_glowzoo", None)
    fresh_plugins.load_plugins(reload=True)
    store._verified.clear()


def test_a_missing_plugin_is_named_with_its_pip_install(tmp_path, capsys, server, home, fresh_plugins):  # noqa: F811
    """The generator file keeps the plugin's distribution; translating by name where it is missing says
    which `pip install` brings it, whether the entry itself is still registered or went with the plugin."""
    from imtrans.provenance import net_origin

    site = make_dist_plugin(tmp_path / "site", "imtrans-glowzoo", "imtrans_glowzoo", PLUG, version="0.3")
    sys.path.insert(0, str(site))
    fresh_plugins.load_plugins(reload=True)
    torch.manual_seed(0)
    g = registry.build("generator", "glow_resnet", ngf=4, n_blocks=1).eval()
    meta = {"nets": {"G": {"kind": "generator", "spec": g.imtrans_part.spec, "origin": net_origin(g)}},
            "translators": {"a2b": "G"}}
    ckpt.save_checkpoint(tmp_path / "ck", {"G": g}, meta, None)  # what a run's checkpoint records
    _export(capsys, tmp_path / "ck", tmp_path / "glow.safetensors")
    assert ckpt.read_meta(tmp_path / "glow.safetensors")["nets"]["G"]["origin"]["dist"] == "imtrans-glowzoo"
    server["files"]["/models/glow.safetensors"] = (tmp_path / "glow.safetensors").read_bytes()
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    assert load_translator("glow_zoo", **FAST)(img).size == (32, 32)  # downloaded and cached while installed
    _uninstall(site, fresh_plugins)
    hint = r"pretrained 'glow_zoo'.* from the plugin distribution 'imtrans-glowzoo' 0\.3.*`pip install imtrans-glowzoo==0\.3`"
    with pytest.raises(ImtransError, match=hint):
        load_translator("glow_zoo", **FAST)
    code, _, err = _cli(capsys, "translate", "glow_zoo", str(tmp_path), "-o", str(tmp_path / "out"))
    assert code == 1 and "pip install imtrans-glowzoo==0.3" in err and "neither" not in err
    code, _, err = _cli(capsys, "pretrained", "info", "glow_zoo")
    assert code == 1 and "pip install imtrans-glowzoo==0.3" in err
    # the entry registered elsewhere (a model-only package) while the generator's plugin is missing
    register_entries(fresh_plugins, {"glow_elsewhere": Pretrained(urls=(f"{FAR}/glow.safetensors",), source="a", target="b")})
    with pytest.raises(ImtransError, match=r"pretrained 'glow_elsewhere' needs generator 'glow_resnet' from the plugin "
                                           r"distribution 'imtrans-glowzoo' 0\.3.*`pip install imtrans-glowzoo==0\.3`"):
        load_translator("glow_elsewhere", **FAST)
