"""Files from others: no pickle, strict shapes, and every corrupted checkpoint is one CheckpointError."""

from __future__ import annotations

import ast
import errno
import json
import random
import shutil
import struct
from pathlib import Path

import pytest
import torch

import helpers
from helpers import ONE_THREAD, one_torch_thread  # noqa: F401  (autouse fixture)
from imtrans import registry
from imtrans.build import build_net_from_meta
from imtrans.engine import checkpoint as ckpt
from imtrans.engine.trainer import Trainer
from imtrans.errors import ImtransError
from imtrans.recipe import recipe_from_dict

from conftest import ROOT, run_cli

# --------------------------------------------------------------------------- no pickle anywhere

def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            dotted = []
            while isinstance(f, ast.Attribute):
                dotted.append(f.attr)
                f = f.value
            if isinstance(f, ast.Name):
                dotted.append(f.id)
            yield ".".join(reversed(dotted)), node


# torch.export.load rebuilds a program from the file; allowed only where the file is our own, just written
EXPORT_LOAD_OK = {"imtrans/translate/export.py": "reloads the export it has just written, to check it"}


def test_no_unsafe_deserialisation_in_the_code_base():
    files = sorted((ROOT / "imtrans").rglob("*.py")) + sorted((ROOT / "plugins").rglob("*.py"))
    assert len(files) > 20
    bad = []
    for f in files:
        tree = ast.parse(f.read_text(encoding="utf-8"), str(f))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve"} & {m.split(".")[0] for m in mods if m}:
                    bad.append(f"{f}:{node.lineno} imports a pickle module")
        for name, call in _calls(tree):
            kw = {k.arg: k.value for k in call.keywords}
            if name.endswith("torch.load"):
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                if not ok:
                    bad.append(f"{f}:{call.lineno} torch.load without weights_only=True")
            if name.split(".")[-1] in ("loads", "load") and name.split(".")[0] in ("pickle", "dill", "marshal"):
                bad.append(f"{f}:{call.lineno} {name}")
            if name.endswith("np.load") or name.endswith("numpy.load"):
                v = kw.get("allow_pickle")
                if v is not None and not (isinstance(v, ast.Constant) and v.value is False):
                    bad.append(f"{f}:{call.lineno} np.load(allow_pickle=...)")
            if name.endswith("jit.load"):
                bad.append(f"{f}:{call.lineno} torch.jit.load runs code from the file")
            if name.endswith("export.load") and f.relative_to(ROOT).as_posix() not in EXPORT_LOAD_OK:
                bad.append(f"{f}:{call.lineno} torch.export.load of a file that is not our own")
    assert not bad, "\n".join(bad)
    # the text search the brief asks for, too: every torch.load( names weights_only=True
    for f in files:
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if "torch.load(" in line and "weights_only" not in line and "``" not in line:
                bad.append(f"{f}:{i}")
            if "pickle.load" in line:
                bad.append(f"{f}:{i}")
    assert not bad, "\n".join(bad)


def test_official_pth_with_code_is_refused_and_not_run(tmp_path):
    from imtrans.nets.official import load_official_pth

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bad = tmp_path / "latest_net_G_A.pth"
    torch.save({"w": Evil()}, bad)  # torch.save pickles: this file would run code under weights_only=False
    with pytest.raises(ImtransError, match="could not read"):
        load_official_pth(bad)
    assert not marker.exists()


# --------------------------------------------------------------------------- a real checkpoint to damage

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: set up before the per-test one_torch_thread fixture
    try:
        Trainer(recipe_from_dict(helpers.tiny_data(root, "src", max_steps=2, checkpoint_every=1)), progress=False).fit()
    finally:
        torch.set_num_threads(before)
    return root / "src" / "checkpoints" / "latest"


def load_everything(path: Path) -> None:
    """Everything a consumer does with a checkpoint."""
    meta = ckpt.read_meta(path)
    for net in meta["nets"]:
        build_net_from_meta(path, net)
    ckpt.load_state(path)


def expect_checkpoint_error(path: Path, label: str) -> str:
    """Loading ``path`` raises one CheckpointError sentence that names the checkpoint; returns it."""
    with pytest.raises(ckpt.CheckpointError) as ei:
        load_everything(path)
    msg = str(ei.value)
    assert "\n" not in msg and str(path) in msg, f"{label}: {msg}"
    return msg


def _copy(trained: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(trained, dst)
    return dst


def _header_len(data: bytes) -> int:
    return 8 + struct.unpack("<Q", data[:8])[0]


def _metadata_span(data: bytes) -> tuple[int, int]:
    """Byte range of the header's ``"__metadata__"`` object (the free text: no checksum covers it)."""
    header = data[8:_header_len(data)].decode("ascii")
    start = header.index('"__metadata__":') + len('"__metadata__":')
    _, end = json.JSONDecoder().raw_decode(header, start)
    return 8 + start, 8 + end


def _flip(data: bytes, pos: int, bit: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 1 << bit
    return bytes(b)


def _flip_in(data: bytes, text: str, offset: int, bit: int) -> bytes:
    """Flip one bit of the ``offset``-th byte of the first ``text`` in the header's metadata."""
    lo, hi = _metadata_span(data)
    pos = data.index(text.encode(), lo, hi) + offset
    return _flip(data, pos, bit)


def test_architecture_mismatch_names_keys_and_shapes(trained):
    wide = registry.build("generator", "resnet", ngf=8, n_blocks=1)
    with pytest.raises(ckpt.CheckpointError, match=r"key '[\w.]+' has shape \[4, 3, 7, 7\] in the file but \[8, 3, 7, 7\]"):
        ckpt.load_into(wide, ckpt.load_weights(trained, "G"), "G")
    deep = registry.build("generator", "resnet", ngf=4, n_blocks=2)
    with pytest.raises(ckpt.CheckpointError, match=r"missing key '[\w.]+' \(shape \[\d+, \d+, 3, 3\]\)"):
        ckpt.load_into(deep, ckpt.load_weights(trained, "G"), "G")
    d = registry.build("discriminator", "patchgan", ndf=4, n_layers=1)
    with pytest.raises(ckpt.CheckpointError, match="unexpected key|missing key"):
        ckpt.load_into(d, ckpt.load_weights(trained, "G"), "G")


def test_resume_with_another_architecture_is_one_error(tmp_path, trained):
    run = tmp_path / "other"
    _copy(trained, run / "checkpoints" / "latest")
    data = helpers.tiny_data(tmp_path, "other", max_steps=4)
    data["model"]["generator"]["ngf"] = 8
    with pytest.raises(ckpt.CheckpointError, match=r"has shape .* in the file but"):
        Trainer(recipe_from_dict(data), resume=True, progress=False).fit()


def test_framing_damage_truncation_and_tensor_table_flips_are_always_detected(tmp_path, trained):
    """Every damage outside the free-text metadata is a CheckpointError naming the checkpoint.

    safetensors' header records every tensor's dtype, shape and byte range, and the ranges must tile
    the data exactly, so no cut, appended byte, length-field change or bit flip in the tensor table
    (names, dtypes, shapes, offsets, padding) can load: each of the 2 x 44 cases below is an error.
    """
    for which in (ckpt.WEIGHTS, ckpt.STATE):
        rng = random.Random(7 if which == ckpt.WEIGHTS else 8)
        orig = (trained / which).read_bytes()
        hlen = _header_len(orig)
        lo, hi = _metadata_span(orig)
        table = [i for i in range(8, hlen) if not lo <= i < hi]  # tensor table, JSON framing, padding
        cases = [("zero-length", b""), ("7 bytes", orig[:7]), ("header only", orig[:hlen]),
                 ("one byte short", orig[:-1]), ("header cut", orig[: hlen // 2]),
                 ("length field huge", struct.pack("<Q", 2**62) + orig[8:]),
                 ("length field 0", struct.pack("<Q", 0) + orig[8:]),
                 ("not safetensors", b"PK\x03\x04 a zip file perhaps" * 10),
                 ("appended junk", orig + b"\x00junk")]
        cases += [(f"truncated at {i}", orig[: rng.randrange(1, len(orig))]) for i in range(15)]
        for i in range(20):
            data = orig
            for _ in range(rng.randint(1, 4)):
                data = _flip(data, rng.choice(table), rng.randrange(8))
            cases.append((f"tensor-table flip {i}", data))
        assert len(cases) == 44
        for label, data in cases:
            d = _copy(trained, tmp_path / "c")
            (d / which).write_bytes(data)
            expect_checkpoint_error(d, f"{which}: {label}")


def test_metadata_flips_detected_exactly_when_they_change_what_loads(tmp_path, trained):
    """A flip inside the metadata text is an error when it breaks the JSON, the key, a network's shape or
    a tensor reference; one that leaves a well-formed, informational value (a scheme name, a step count)
    loads as written, because safetensors has no checksum (docs/reliability.md)."""
    w, s = (trained / ckpt.WEIGHTS).read_bytes(), (trained / ckpt.STATE).read_bytes()
    errors = {
        "weights: metadata key 'imtrans' renamed": (ckpt.WEIGHTS, _flip_in(w, '"imtrans"', 1, 0), "no imtrans metadata"),
        "weights: JSON brace broken": (ckpt.WEIGHTS, _flip_in(w, '"{', 1, 1), "not valid JSON"),
        "weights: ngf 4 -> 5": (ckpt.WEIGHTS, _flip_in(w, 'ngf\\": 4', 7, 0), "does not fit"),
        "weights: generator name resnet -> resnmt": (ckpt.WEIGHTS, _flip_in(w, '\\"resnet\\"', 6, 3), "cannot be rebuilt"),
        "state: skeleton brace broken": (ckpt.STATE, _flip_in(s, '"{', 1, 1), "cannot be loaded"),
        "state: tensor reference to a missing tensor": (ckpt.STATE, _flip_in(s, 's.3.0.0.0.0', 10, 3), "skeleton is corrupt"),
    }
    for label, (which, data, reason) in errors.items():
        d = _copy(trained, tmp_path / "e")
        (d / which).write_bytes(data)
        assert reason in expect_checkpoint_error(d, label), label
    # undetectable by design: the file loads, with the flipped value and bit-identical tensors
    d = _copy(trained, tmp_path / "u")
    (d / ckpt.WEIGHTS).write_bytes(_flip_in(w, "cyclegan", 7, 0))  # 'n' -> 'o'
    (d / ckpt.STATE).write_bytes(_flip_in(s, 'step\\", 2', 8, 0))  # step 2 -> 3
    load_everything(d)
    assert ckpt.read_meta(d)["scheme"] == "cyclegao" and ckpt.load_state(d)["step"] == 3
    for name in ("G", "F", "D_A", "D_B"):
        got, want = ckpt.load_weights(d, name), ckpt.load_weights(trained, name)
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_garbage_metadata(tmp_path, trained):
    from safetensors.torch import load_file, save_file

    w = load_file(str(trained / ckpt.WEIGHTS))
    s_t = load_file(str(trained / ckpt.STATE))
    meta_cases = ["", "{not json", "[]", "42", '{"nets": []}', '{"nets": {"G": 1}}', '{"nets": {"G": {"kind": 5}}}',
                  '{"nets": {"G": {"kind": "generator", "spec": {"name": "no_such_net"}}}}',
                  '{"nets": {"G": {"kind": "generator", "spec": {"name": "resnet", "ngf": "wide"}}}}',
                  '{"nets": {"G": {"kind": "generator", "spec": {"name": "resnet", "ngf": 8}}}}']
    for m in meta_cases:
        d = _copy(trained, tmp_path / "m")
        save_file(w, str(d / ckpt.WEIGHTS), metadata={"imtrans": m})
        with pytest.raises(ImtransError):
            load_everything(d)
    d = _copy(trained, tmp_path / "m")
    save_file(w, str(d / ckpt.WEIGHTS), metadata={"other": "x"})
    with pytest.raises(ckpt.CheckpointError, match="no imtrans metadata"):
        load_everything(d)
    state_cases = ["", "{", "[1, 2]", '{"__t__": "missing"}', '{"__d__": [[1]]}', '{"__d__": 5}', "null"]
    for m in state_cases:
        d = _copy(trained, tmp_path / "s")
        save_file(s_t, str(d / ckpt.STATE), metadata={"imtrans_state": m})
        with pytest.raises(ckpt.CheckpointError):
            ckpt.load_state(d)
    # a well-formed state of another shape: resuming says it does not fit, no KeyError traceback
    d = _copy(trained, tmp_path / "run" / "checkpoints" / "latest")
    tensors, skel = ckpt.pack({"step": 1, "epoch": 0, "step_in_epoch": 1, "optimizers": {}, "rng": {}})
    save_file(tensors or {"_": torch.zeros(1)}, str(d / ckpt.STATE), metadata={"imtrans_state": json.dumps(skel)})
    with pytest.raises(ckpt.CheckpointError, match="does not fit"):
        Trainer(recipe_from_dict(helpers.tiny_data(tmp_path, "run", max_steps=3)), resume=True, progress=False).fit()


def test_corrupt_latest_falls_back_to_latest_old(tmp_path, trained):
    run = tmp_path / "fb"
    _copy(trained, run / "checkpoints" / "latest")
    _copy(trained, run / "checkpoints" / "latest.old")
    (run / "checkpoints" / "latest" / ckpt.STATE).write_bytes(b"")
    res = Trainer(recipe_from_dict(helpers.tiny_data(tmp_path, "fb", max_steps=3)), resume=True, progress=False).fit()
    assert res.steps == 3 and ckpt.load_state(run)["step"] == 3


def test_cli_resume_from_corrupt_checkpoint_is_one_line(tmp_path, trained):
    run = tmp_path / "cli"
    d = _copy(trained, run / "checkpoints" / "latest")
    data = (d / ckpt.WEIGHTS).read_bytes()
    (d / ckpt.WEIGHTS).write_bytes(data[: len(data) // 2])
    toml = helpers.write_toml(tmp_path / "tiny.toml", helpers.tiny_data(tmp_path, "cli", max_steps=3))
    r = run_cli("run", str(toml), "--resume", str(run), "--no-progress", env=ONE_THREAD, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "weights.safetensors" in lines[0] and "corrupt" in lines[0], r.stderr


# --------------------------------------------------------------------------- failed writes

@pytest.mark.parametrize("where", ["weights", "state", "rename"])
def test_failed_checkpoint_write_keeps_previous(tmp_path, monkeypatch, where):
    data = helpers.tiny_data(tmp_path, "full", max_steps=4, checkpoint_every=1)
    calls = {"n": 0}
    real_save, real_rename = ckpt.save_file, ckpt.os.rename

    def save_file(tensors, path, metadata=None):
        is_w = ckpt.WEIGHTS in Path(path).name  # written as a temp file beside it, then renamed
        if (where == "weights") == is_w and where != "rename":
            calls["n"] += 1
            if calls["n"] == 3:  # the third checkpoint write fails
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(tensors, path, metadata=metadata)

    def rename(src, dst):
        if where == "rename" and Path(src).name.startswith("."):
            calls["n"] += 1
            if calls["n"] == 3:
                raise PermissionError(errno.EACCES, "Permission denied")
        return real_rename(src, dst)

    monkeypatch.setattr(ckpt, "save_file", save_file)
    monkeypatch.setattr(ckpt.os, "rename", rename)
    with pytest.raises(ImtransError) as ei:
        Trainer(recipe_from_dict(data), progress=False).fit()
    msg = str(ei.value)
    reason = "Permission denied" if where == "rename" else "No space left on device"
    assert reason in msg and "previous checkpoint is kept" in msg and "\n" not in msg, msg
    monkeypatch.undo()
    cdir = tmp_path / "full" / "checkpoints"
    assert ckpt.load_state(cdir / "latest")["step"] == 2
    load_everything(cdir / "latest")
    assert not [p for p in cdir.iterdir() if p.name.startswith(".")]  # no half-written temp dir left behind
    assert not (tmp_path / "full" / ".lock").exists()
