"""Model zoo against a local HTTP server: download, resume, checksums, wrong architecture, mirror, names.

The served files are official-layout state dicts of tiny networks made here;
a test plugin adds the zoo entries through the ``register_pretrained`` hook and
``IMTRANS_PRETRAINED_MIRROR`` points their (unreachable) URLs at the server.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import parts_plugin

from imtrans import load_translator, registry
from imtrans.errors import ImtransError
from imtrans.nets.official import imtrans_to_official, import_weights_file
from imtrans.zoo import Pretrained, fetch, store
from imtrans.zoo.catalogue import PRETRAINED

TINY = {"name": "resnet", "ngf": 4, "n_blocks": 2}
UNET = {"name": "unet", "ngf": 4, "num_downs": 5, "norm": "batch", "dropout": True}
FAR = "http://zoo.invalid/cyclegan/pretrained_models"


def official_bytes(part: str, params: dict, seed: int = 0, drop_step_counters: bool = False) -> bytes:
    torch.manual_seed(seed)
    net = registry.build("generator", part, **params).eval()
    sd = imtrans_to_official(part, net.state_dict())
    if drop_step_counters:  # as saved by PyTorch < 0.4.1
        sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    buf = io.BytesIO()
    torch.save({"module." + k: v for k, v in sd.items()}, buf)  # DataParallel-style keys
    return buf.getvalue()


@pytest.fixture
def server():
    """Serves ``files`` (path -> bytes) with Range support; ``cut_once`` paths stop half-way the first time."""
    state = {"files": {}, "requests": [], "cut_once": set()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            data = state["files"].get(self.path)
            rng = self.headers.get("Range")
            state["requests"].append((self.path, rng))
            if data is None:
                self.send_error(404)
                return
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            body = data[start:]
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path in state["cut_once"]:
                state["cut_once"].discard(self.path)
                body = body[: len(body) // 2]  # the connection drops mid-file
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    state["base"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def zoo(tmp_path, monkeypatch, server, fresh_plugins):
    """A cache in tmp, the mirror at the server, and a plugin adding tiny entries through the hook."""
    monkeypatch.setenv("IMTRANS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("IMTRANS_PRETRAINED_MIRROR", server["base"])
    good = official_bytes("resnet", {"ngf": 4, "n_blocks": 2})
    server["files"]["/cyclegan/pretrained_models/tiny_h2z.pth"] = good
    entries = {
        "tiny_h2z": Pretrained(urls=(f"{FAR}/tiny_h2z.pth",), architecture=TINY, source="horses", target="zebras"),
        "tiny_checked": Pretrained(urls=(f"{FAR}/tiny_h2z.pth",), architecture=TINY, source="a", target="b",
                                   sha256=hashlib.sha256(good).hexdigest()),
        "tiny_badsum": Pretrained(urls=(f"{FAR}/tiny_h2z.pth",), architecture=TINY, source="a", target="b",
                                  sha256="0" * 64),
        "tiny_wrongarch": Pretrained(urls=(f"{FAR}/tiny_h2z.pth",), architecture={**TINY, "n_blocks": 3},
                                     source="a", target="b"),
        "tiny_unet": Pretrained(urls=(f"{FAR}/tiny_unet.pth",), architecture=UNET, source="labels",
                                target="photos", scheme="pix2pix"),
        "tiny_timm": Pretrained(urls=(f"{FAR}/tiny_timm.pth",), architecture={"name": "timm_unet"},
                                source="a", target="b"),
    }
    register_entries(fresh_plugins, entries)
    return {"server": server, "good": good, "home": tmp_path / "home" / "pretrained"}


def register_entries(fresh_plugins, entries: dict, plugin_name: str = "zoo_test_plugin") -> None:
    """Load a plugin whose ``register_pretrained`` hook registers ``entries`` (name -> Pretrained)."""
    fresh_plugins.load_plugins(objects={plugin_name: parts_plugin("register_pretrained", entries)}, reload=True)
    store._verified.clear()  # what an earlier test verified is not this plugin's entry


def _image(seed=0, h=30, w=45):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_builtin_entries_are_both_official_lists():
    cyclegan = ("apple2orange orange2apple summer2winter_yosemite winter2summer_yosemite horse2zebra zebra2horse "
                "monet2photo style_monet style_cezanne style_ukiyoe style_vangogh sat2map map2sat "
                "cityscapes_photo2label cityscapes_label2photo facades_photo2label facades_label2photo "
                "iphone2dslr_flower").split()
    pix2pix = "edges2shoes sat2map map2sat facades_label2photo day2night".split()
    for n in cyclegan:
        e = PRETRAINED[n]
        assert e.urls == (f"http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{n}.pth",)
        assert (e.part, e.params["n_blocks"], e.params["norm"]) == ("resnet", 9, "instance")
    for n in pix2pix:
        e = PRETRAINED[f"pix2pix_{n}"]
        assert e.urls == (f"http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/{n}.pth",)
        assert (e.part, e.params["num_downs"], e.params["norm"], e.params["dropout"]) == ("unet", 8, "batch", True)
    assert len(PRETRAINED) == len(cyclegan) + len(pix2pix)
    for n, e in PRETRAINED.items():  # reverse models point at each other, within one method
        assert e.reverse is None or (PRETRAINED[e.reverse].reverse == n and PRETRAINED[e.reverse].scheme == e.scheme)
    # a resnet_9blocks generator is 11.378 M float32 parameters (the official files are ~45 MB)
    assert PRETRAINED["horse2zebra"].weights_bytes() == 11_378_179 * 4
    # the sizes listed without torch are the sizes of the networks built
    from imtrans.zoo.catalogue import KNOWN_WEIGHTS_BYTES, _weights_bytes

    assert {_weights_bytes(arch, measure=True) for arch in KNOWN_WEIGHTS_BYTES} == set(KNOWN_WEIGHTS_BYTES.values())
    assert {PRETRAINED[n].weights_bytes() for n in PRETRAINED} == set(KNOWN_WEIGHTS_BYTES.values())


def test_plugin_entry_through_hook(zoo):
    from imtrans.registry import get_registry

    assert "tiny_h2z" in store.names() and "horse2zebra" in store.names()
    assert get_registry("pretrained").get("tiny_h2z").plugin == "zoo_test_plugin"
    assert registry.build("pretrained", "tiny_h2z").target == "zebras"
    assert get_registry("pretrained").get("tiny_h2z").summary == "horses -> zebras (CycleGAN)"


def test_download_then_same_pixels_as_import_weights(zoo, tmp_path):
    path = store.ensure("tiny_h2z", progress=False)
    assert path == zoo["home"] / "tiny_h2z" / "weights.safetensors"
    rec = store.read_record("tiny_h2z")
    assert rec["source_sha256"] == hashlib.sha256(zoo["good"]).hexdigest()
    assert rec["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sorted(p.name for p in path.parent.iterdir()) == ["record.json", "weights.safetensors"]

    pth = tmp_path / "by_hand.pth"
    pth.write_bytes(zoo["good"])
    by_hand = import_weights_file(pth, "resnet", {"ngf": 4, "n_blocks": 2}, tmp_path / "G.safetensors")
    img = _image()
    ref = np.asarray(load_translator(by_hand, device="cpu", precision="fp32")(img))
    got = np.asarray(load_translator("tiny_h2z", device="cpu", precision="fp32")(img))
    assert np.array_equal(got, ref)
    assert len(zoo["server"]["requests"]) == 1  # the second use came from the cache

    from imtrans.cli import main

    (tmp_path / "in").mkdir()
    img.save(tmp_path / "in" / "a.png")
    with pytest.raises(SystemExit) as e:
        main(["translate", "tiny_h2z", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--no-progress",
              "--precision", "fp32", "--device", "cpu"])
    assert e.value.code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), ref)


def test_resume_after_dropped_connection(zoo):
    path = "/cyclegan/pretrained_models/tiny_h2z.pth"
    zoo["server"]["cut_once"].add(path)
    with pytest.raises(ImtransError, match="run again to resume"):
        store.ensure("tiny_checked", progress=False)
    part = zoo["home"] / "tiny_checked" / "tiny_checked.pth.part"
    assert part.stat().st_size == len(zoo["good"]) // 2
    store.ensure("tiny_checked", progress=False)
    assert zoo["server"]["requests"][-1] == (path, f"bytes={len(zoo['good']) // 2}-")
    assert not part.exists() and store.is_cached("tiny_checked")


def test_checksum_mismatch_is_refused_and_removed(zoo):
    with pytest.raises(fetch.ChecksumError, match="0{64} was expected"):
        store.ensure("tiny_badsum", progress=False)
    assert [p.name for p in (zoo["home"] / "tiny_badsum").iterdir()] == []


def test_recorded_checksum_guards_later_loads_and_downloads(zoo):
    path = store.ensure("tiny_h2z", progress=False)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in a weight
    path.write_bytes(bytes(data))
    store._verified.clear()  # a new process
    with pytest.raises(fetch.ChecksumError, match="corrupt or was changed"):
        load_translator("tiny_h2z", device="cpu")
    assert not path.exists()
    # the record pins the official file: a different file served later is refused too
    zoo["server"]["files"]["/cyclegan/pretrained_models/tiny_h2z.pth"] = official_bytes("resnet", {"ngf": 4, "n_blocks": 2}, seed=1)
    with pytest.raises(fetch.ChecksumError, match="was expected"):
        store.ensure("tiny_h2z", progress=False)
    assert not path.exists()


def test_wrong_architecture_is_refused_and_removed(zoo):
    with pytest.raises(ImtransError, match=r"refused and removed.*not a resnet\(ngf=4, n_blocks=3\).*missing key 'model.12"):
        store.ensure("tiny_wrongarch", progress=False)
    assert [p.name for p in (zoo["home"] / "tiny_wrongarch").iterdir()] == []


def test_truncated_file_is_refused_and_removed(zoo):
    zoo["server"]["files"]["/cyclegan/pretrained_models/tiny_h2z.pth"] = zoo["good"][: len(zoo["good"]) // 2]
    with pytest.raises(ImtransError, match=r"refused and removed from the cache because it is truncated.*not a state dict"):
        store.ensure("tiny_h2z", progress=False)
    assert [p.name for p in (zoo["home"] / "tiny_h2z").iterdir()] == []


def test_mirror_replaces_scheme_and_host_only():
    url = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/horse2zebra.pth"
    assert fetch.mirrored(url, "https://m.local:8080") == "https://m.local:8080/cyclegan/pretrained_models/horse2zebra.pth"
    assert fetch.mirrored(url, "http://m.local/store/") == "http://m.local/store/cyclegan/pretrained_models/horse2zebra.pth"
    assert fetch.mirrored(url, "") == url
    with pytest.raises(ImtransError, match="IMTRANS_PRETRAINED_MIRROR='m.local' is not a URL"):
        fetch.mirrored(url, "m.local")


def test_offline_names_url_and_where_to_put_the_file(zoo, monkeypatch):
    monkeypatch.setenv("IMTRANS_PRETRAINED_MIRROR", zoo["server"]["base"] + "/nothing-here")
    with pytest.raises(ImtransError) as e:
        store.ensure("tiny_h2z", progress=False)
    where = zoo["home"] / "tiny_h2z" / "tiny_h2z.pth"
    assert "HTTP 404" in str(e.value) and f"save it as {where}" in str(e.value)
    where.write_bytes(zoo["good"])  # placed by hand: converted without a download
    assert store.ensure("tiny_h2z", progress=False).is_file()


def test_names_paths_and_suggestions(zoo, tmp_path):
    with pytest.raises(ImtransError, match="did you mean 'horse2zebra'"):
        store.get("hors2zebra")
    with pytest.raises(ImtransError, match="neither an existing run directory.*did you mean 'tiny_h2z'"):
        load_translator("tiny_h2zz", device="cpu")
    with pytest.raises(ImtransError, match="does not exist"):
        load_translator(str(tmp_path / "no" / "run"), device="cpu")
    assert store.resolve_model(tmp_path) == tmp_path  # an existing path always wins
    with pytest.raises(ImtransError, match=r"translates one way only \(zebras -> horses.*use pretrained 'horse2zebra'"):
        load_translator("zebra2horse", direction="b2a", device="cpu")


def test_unimportable_architecture_says_so_before_downloading(zoo):
    with pytest.raises(ImtransError, match="cannot import the official weights of a 'timm_unet' part yet"):
        store.ensure("tiny_timm", progress=False)
    assert zoo["server"]["requests"] == []


def test_pix2pix_unet_without_step_counters(zoo):
    zoo["server"]["files"]["/cyclegan/pretrained_models/tiny_unet.pth"] = official_bytes(
        "unet", {k: v for k, v in UNET.items() if k != "name"}, drop_step_counters=True)
    t = load_translator("tiny_unet", device="cpu", precision="fp32")
    assert t(_image(h=32, w=64)).size == (64, 32)


def test_fine_tune_from_zoo_and_rebuild_without_fetching(zoo, tmp_path, monkeypatch):
    from imtrans.build import build_net_from_meta, build_part
    from imtrans.engine import checkpoint as ckpt

    def build(name, **params):  # build, then load the zoo weights: a constructor never downloads
        return build_part("generator", {"name": name, **params})

    G = build("resnet", ngf=4, n_blocks=2, pretrained="tiny_h2z")
    ref = ckpt.load_weights(store.ensure("tiny_h2z"), "G")
    assert all(torch.equal(v, ref[k]) for k, v in G.state_dict().items())
    with pytest.raises(ImtransError, match="has n_blocks=3; use n_blocks=2"):
        build("resnet", ngf=4, n_blocks=3, pretrained="tiny_h2z")
    with pytest.raises(ImtransError, match="has norm='batch'; use norm='instance'"):  # a default of the entry
        build("resnet", ngf=4, n_blocks=2, norm="batch", pretrained="tiny_h2z")
    with pytest.raises(ImtransError, match="has 'unet'; use the part 'resnet'"):
        build("unet", ngf=4, num_downs=5, pretrained="tiny_h2z")
    ckpt.save_checkpoint(tmp_path / "ck", {"G": G}, {"nets": {"G": {"kind": "generator", "spec": G.imtrans_part.spec}}}, None)
    monkeypatch.setenv("IMTRANS_HOME", str(tmp_path / "empty"))  # nothing cached, nothing served
    monkeypatch.setenv("IMTRANS_PRETRAINED_MIRROR", "http://127.0.0.1:9")
    G2 = build_net_from_meta(tmp_path / "ck", "G")
    assert all(torch.equal(v, ref[k]) for k, v in G2.state_dict().items())


def test_concurrent_users_download_once(zoo):
    paths, errors = [], []

    def use():
        try:
            paths.append(store.ensure("tiny_h2z", progress=False))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    store.names()  # plugins load once, before the threads (loading itself is not thread-safe)
    threads = [threading.Thread(target=use) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(paths)) == 1
    assert len(zoo["server"]["requests"]) == 1


def test_cli_pretrained_commands(zoo, tmp_path, capsys):
    from imtrans.cli import main

    def run(*args):
        with pytest.raises(SystemExit) as e:
            main(list(args))
        return e.value.code, capsys.readouterr()

    code, out = run("pretrained", "download", "tiny_h2z", "--no-progress")
    assert code == 0 and "ready" in out.out
    code, out = run("pretrained", "path", "tiny_h2z")
    assert code == 0 and out.out.strip() == str(zoo["home"] / "tiny_h2z" / "weights.safetensors")
    code, out = run("pretrained", "info", "tiny_h2z")
    assert code == 0 and "horses -> zebras" in out.out and hashlib.sha256(zoo["good"]).hexdigest() in out.out
    code, out = run("pretrained", "list")
    row = next(line for line in out.out.splitlines() if "tiny_h2z" in line)
    assert code == 0 and "yes" in row and "horse2zebra" in out.out
    code, out = run("pretrained", "download", "tiny_badsum", "--no-progress")
    assert code == 1 and "was expected" in out.err
    # the name resolves to the model (else load_generator would fail first); torchscript is refused naming pt2/onnx
    code, out = run("export", "tiny_h2z", "--format", "torchscript", "-o", str(tmp_path / "g.pt"))
    assert code == 1 and "--format pt2" in out.err and not (tmp_path / "g.pt").exists()


def test_docs_name_every_builtin_model():
    from conftest import ROOT

    doc = (ROOT / "docs" / "pretrained.md").read_text(encoding="utf-8")
    missing = [n for n in PRETRAINED if f"`{n}`" not in doc]
    assert not missing, f"docs/pretrained.md does not list {missing}"


@pytest.mark.slow  # a (one-step) training run
def test_recipe_fine_tunes_g_from_the_zoo(zoo, tmp_path):
    from conftest import tiny_recipe_data

    from imtrans.engine import checkpoint as ckpt
    from imtrans.engine.trainer import Trainer
    from imtrans.recipe import recipe_from_dict

    data = tiny_recipe_data(tmp_path / "runs", "ft", max_steps=1, sample_every=0)
    data["model"]["generator"] = {**TINY, "pretrained": "tiny_h2z"}
    data["model"]["generator_b"] = dict(TINY)
    data["optim"] = {"lr": 1e-12}  # one step that cannot move the weights measurably
    Trainer(recipe_from_dict(data), progress=False).fit()
    zoo_g = ckpt.load_weights(store.ensure("tiny_h2z"), "G")
    run_g, run_f = ckpt.load_weights(tmp_path / "runs" / "ft", "G"), ckpt.load_weights(tmp_path / "runs" / "ft", "F")
    assert all(torch.allclose(run_g[k], v, atol=1e-6) for k, v in zoo_g.items())
    assert not all(torch.allclose(run_f[k], v, atol=1e-3) for k, v in zoo_g.items())  # F kept its own init
    assert ckpt.read_meta(tmp_path / "runs" / "ft")["nets"]["G"]["spec"]["pretrained"] == "tiny_h2z"


def test_cache_without_record_is_adopted_only_if_readable(zoo):
    path = store.ensure("tiny_h2z", progress=False)
    record = path.parent / "record.json"
    record.unlink()
    store._verified.clear()
    assert store.ensure("tiny_h2z", progress=False) == path and "weights_sha256" in store.read_record("tiny_h2z")
    record.unlink()
    path.write_bytes(b"not a safetensors file")
    store._verified.clear()
    with pytest.raises(ImtransError, match="unreadable and removed"):
        store.ensure("tiny_h2z", progress=False)
    assert not path.exists()
    assert len(zoo["server"]["requests"]) == 1


def test_demo_model_takes_a_zoo_name(zoo):
    """`imtrans demo horse2zebra` works like `imtrans translate horse2zebra`: the name is resolved
    (downloaded once) and the page translates with the same pixels as load_translator."""
    from imtrans.demo import DemoModel

    m = DemoModel("tiny_h2z", device="cpu", precision="fp32", tile=None)
    assert m.directions == ["a2b"] and m.source == "tiny_h2z"
    img = _image(3, 32, 32)
    path = zoo["home"].parent / "upload.png"
    img.save(path)
    ref = load_translator("tiny_h2z", device="cpu", precision="fp32")
    assert np.array_equal(np.asarray(m.translate_file(path, "a2b")), np.asarray(ref(img)))
    with pytest.raises(ImtransError, match="tiny_h2"):
        DemoModel("tiny_h2", device="cpu", precision="fp32")  # a typo gets the zoo's suggestion
