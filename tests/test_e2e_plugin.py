"""A third-party package of parts, end to end, as its author would use it (issue 26).

``tests/e2e_plugin`` is built into a wheel and installed into a folder of its own (not editable,
not this process: every step is the real command line in a subprocess, which finds the plugin
through its entry point). It adds a perceptual loss on a frozen timm backbone, a spectral-norm
PatchGAN, a discriminator augmentation, an FID feature extractor, a pretrained entry and a recipe
that extends ``imtrans:quickstart``; the steps below are the ones the issue's author had to work
around: install, list, check, train, resume, export, publish on a 127.0.0.1 server, translate by
pretrained name, evaluate with the plugin's extractor, and lose the plugin.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image
from safetensors import safe_open

from conftest import ROOT, build_wheel

PACKAGE = ROOT / "tests" / "e2e_plugin"
TINY = ["--set", "train.max_steps=3", "--no-progress"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example package's wheel, installed with pip into a folder that only these subprocesses see."""
    tmp = tmp_path_factory.mktemp("e2e")
    wheel = build_wheel(tmp, PACKAGE, "imtrans_e2e")
    target = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    return target


def cli(*args: str, cwd: Path, site: Path | None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``imtrans ARGS`` with the installed example package on the path (``site=None``: uninstalled)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("IMTRANS_E2E_")}
    paths = [str(site)] if site else []
    e.update(COLUMNS="200", PYTHONPATH=os.pathsep.join([*paths, str(ROOT)]), IMTRANS_HOME=str(cwd / "home"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "imtrans", *args], capture_output=True, text=True, cwd=cwd, env=e,
                          timeout=600)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"{proc.args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_installed_package_registers_every_part_and_ships_its_recipe(site, tmp_path):
    plugins = json.loads(ok(cli("plugins", "--json", cwd=tmp_path, site=site)))
    (mine,) = [p for p in plugins if p["name"] == "e2e"]
    assert mine["error"] is None and mine["warnings"] == []
    assert mine["parts"] == {"loss": ["perceptual"], "discriminator": ["sn_patchgan"], "d_augment": ["random_shift"],
                             "feature_extractor": ["colour_stats"]}
    recipes = json.loads(ok(cli("recipes", "--json", cwd=tmp_path, site=site)))
    refs = {r["reference"] for r in recipes}
    assert "imtrans_e2e:tiny" in refs and "imtrans:quickstart" in refs
    listed = ok(cli("list", "d_augment", cwd=tmp_path, site=site))
    assert re.search(r"random_shift\s+│\s+e2e", listed) and "diffaugment" in listed


def test_check_builds_the_plugin_parts_and_refuses_their_mistakes(site, tmp_path):
    out = ok(cli("check", "imtrans_e2e:tiny", cwd=tmp_path, site=site))
    assert 'name = "sn_patchgan"' in out and 'name = "random_shift"' in out and 'name = "colour_stats"' in out
    for key, value, words in [
        ("model.d_augment.ratio", "2", "ratio"),                       # the part's own bound (le=0.5)
        ("losses.perceptual.weight", "-1", "weight"),                  # negative weights train the wrong way
        ("train.eval_features.levels", "9", "levels"),                 # the extractor's bound, at check
        ("model.d_augment", '{name="standard"}', "d_augment"),         # a data preset where a D augmentation goes
        ("model.discriminator", '{name="perceptual"}', "perceptual"),  # a loss where a discriminator goes
    ]:
        proc = cli("check", "imtrans_e2e:tiny", "--set", f"{key}={value}", cwd=tmp_path, site=site)
        msg = proc.stderr.strip()
        assert proc.returncode == 1 and "Traceback" not in msg and len(msg.splitlines()) == 1, (key, msg)
        assert words in msg, (key, msg)


def test_train_resume_export_and_translate_by_pretrained_name(site, tmp_path):
    """The package's recipe, by reference: trained 3 steps, resumed to 5, published, translated by name."""
    ok(cli("run", "imtrans_e2e:tiny", *TINY, "--set", "output.root=runs", cwd=tmp_path, site=site))
    ok(cli("run", "imtrans_e2e:tiny", "--set", "train.max_steps=5", "--set", "output.root=runs", "--no-progress",
           "--resume", cwd=tmp_path, site=site))
    run = tmp_path / "runs" / "e2e_tiny"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["kind"] == "resume"] == [3]
    train = [x for x in lines if x["kind"] == "train"]
    assert [x["step"] for x in train] == [1, 2, 3, 4, 5] and all("perceptual" in x["losses"] for x in train)
    with safe_open(str(run / "checkpoints" / "latest" / "weights.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert any(k.startswith("D_A.") and k.endswith("parametrizations.weight.original") for k in keys)  # spectral norm
    backbone = [k for k in keys if k.startswith("loss_perceptual.backbone.")]
    # the frozen backbone's weights are rebuilt from the recipe; only its batch-norm statistics are kept
    assert backbone and all(k.rsplit(".", 1)[1] in ("running_mean", "running_var", "num_batches_tracked")
                            for k in backbone), backbone
    # Inception's weights cannot be here, so an FID in the run's evaluations is the plugin extractor's
    evals = [x["metrics"] for x in lines if x["kind"] == "eval"]
    assert evals and all(m["fid_a2b"] >= 0 and m["fid_b2a"] >= 0 for m in evals)
    # `imtrans eval RUN` measures with the run's own extractor and parameters, as training reported
    for side, colour in (("testA", (90, 90, 90)), ("testB", (220, 220, 220))):
        (tmp_path / "held" / side).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (32, 32), tuple(c + 8 * i for c in colour)).save(tmp_path / "held" / side / f"{i}.png")
    res = json.loads(ok(cli("eval", str(run), "--data", "held", "--json", "--kid-subset-size", "4", cwd=tmp_path,
                            site=site)))
    assert res["extractor"]["extractor"] == "colour_stats" and res["extractor"]["params"]["levels"] == 2
    check_publish_and_translate(site, run, tmp_path)


def check_publish_and_translate(site: Path, run: Path, tmp_path: Path) -> None:
    out = ok(cli("export", str(run), "--direction", "a2b", "-o", str(tmp_path / "e2e_glow.safetensors"),
                 cwd=tmp_path, site=site))
    sha = re.search(r"sha256: ([0-9a-f]{64})", out).group(1)
    assert sha == hashlib.sha256((tmp_path / "e2e_glow.safetensors").read_bytes()).hexdigest()
    (tmp_path / "in").mkdir()
    Image.new("RGB", (48, 40), (200, 60, 30)).save(tmp_path / "in" / "x.png")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/e2e_glow.safetensors"
        env = {"IMTRANS_E2E_URL": url, "IMTRANS_E2E_SHA256": sha}
        ok(cli("translate", "e2e_glow", "in", "-o", "by_name", cwd=tmp_path, site=site, env=env))
        bad = cli("translate", "e2e_glow", "in", "-o", "bad", cwd=tmp_path / "in", site=site,
                  env={**env, "IMTRANS_E2E_SHA256": "0" * 64})
    finally:
        httpd.shutdown()
    ok(cli("translate", str(run), "in", "-o", "from_run", cwd=tmp_path, site=site))
    assert (tmp_path / "by_name" / "x.png").read_bytes() == (tmp_path / "from_run" / "x.png").read_bytes()
    (err,) = [line for line in bad.stderr.splitlines() if line.startswith("error:")]  # after the progress bar
    assert bad.returncode == 1 and "sha256" in err and "0" * 64 in err and "Traceback" not in bad.stderr
    # the plugin uninstalled: the cached model names the distribution to install, not "unknown name"
    gone = cli("translate", "e2e_glow", "in", "-o", "gone", cwd=tmp_path, site=None)
    assert gone.returncode == 1 and "pip install imtrans-e2e-example" in gone.stderr, gone.stderr


def test_eval_with_the_plugin_extractor_and_its_parameters(site, tmp_path):
    for name, colour in (("real", (200, 40, 40)), ("fake", (40, 40, 200))):
        (tmp_path / name).mkdir()
        for i in range(4):
            Image.new("RGB", (40, 40), tuple(c + 10 * i for c in colour)).save(tmp_path / name / f"{i}.png")
    res = json.loads(ok(cli("eval", "--real", "real", "--fake", "fake", "--extractor", "colour_stats",
                            "-p", "levels=3", "--json", "--kid-subset-size", "4", cwd=tmp_path, site=site)))
    assert res["extractor"]["dim"] == 18 and res["extractor"]["params"]["levels"] == 3 and res["fid"] > 1  # red vs blue
    refused = cli("eval", "--real", "real", "--fake", "fake", "--extractor", "colour_stats", "--resize", "clean",
                  cwd=tmp_path, site=site)
    assert refused.returncode == 1 and "resize" in refused.stderr and "colour_stats" in refused.stderr
