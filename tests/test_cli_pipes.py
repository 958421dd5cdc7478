"""Listings sent to a pipe or file keep every name whole (users grep them and type the names)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def _piped(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # xdist workers inherit COLUMNS=80
    r = subprocess.run([sys.executable, "-m", "imtrans", *args], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_pretrained_list_keeps_names_whole_in_a_pipe():
    out = _piped("pretrained", "list")
    rows = [ln for ln in out.splitlines() if "summer2winter_yosemite" in ln]
    assert rows, out[-2000:]  # at 80 columns rich cut it to "summer2winter_yose…"
    assert "…" not in out
    # one row per model: the summary is not folded onto a second line
    assert any("Yosemite in summer -> in winter" in ln for ln in rows)


def test_eval_json_reports_a_failure_as_json():
    import json

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    r = subprocess.run([sys.executable, "-m", "imtrans", "eval", "--json"], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 1
    err = json.loads(r.stdout)["error"]  # plain text here broke scripts that parse stdout
    assert err and err in r.stderr.replace("\n", " ")


def test_cache_lists_and_clears_each_kind(tmp_path):
    import json

    home = tmp_path / "home"
    (home / "onnx").mkdir(parents=True)
    (home / "onnx" / "g.onnx").write_bytes(b"x" * 2048)
    (home / "onnx" / "keep.txt").write_text("not ours")
    (home / "pretrained" / "horse2zebra").mkdir(parents=True)
    (home / "pretrained" / "horse2zebra" / "G.safetensors").write_bytes(b"y" * 4096)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "IMTRANS_ONNX_CACHE")}
    env["IMTRANS_HOME"] = str(home)

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "imtrans", "cache", *args], capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout

    rows = {r["kind"]: r for r in json.loads(cli("--json"))}
    assert rows["onnx"]["files"] == 2 and rows["pretrained"]["bytes"] == 4096 and rows["fid"]["files"] == 0
    assert "horse2zebra" not in cli() and str(home / "pretrained") in cli()  # the table names whole folders
    assert "cleared onnx: 1 files" in cli("clear", "onnx")
    assert [p.name for p in (home / "onnx").iterdir()] == ["keep.txt"] and (home / "pretrained").exists()
    cli("clear", "all")
    assert not (home / "pretrained").exists()
    r = subprocess.run([sys.executable, "-m", "imtrans", "cache", "clear", "models"], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 1 and "'models' is not one of onnx, pretrained, fid, all" in r.stderr


def test_listings_for_scripts_have_json():
    import json

    models = json.loads(_piped("pretrained", "list", "--json"))
    assert {"summer2winter_yosemite", "horse2zebra"} <= {m["name"] for m in models}
    assert all(isinstance(m["cached"], bool) for m in models)
    parts = json.loads(_piped("list", "generator", "--json"))
    resnet = next(p for p in parts if p["name"] == "resnet")
    assert resnet["kind"] == "generator" and resnet["defaults"]["n_blocks"] == 9
