"""torch.distributed: 2 CPU processes on gloo, launched the way users do (torchrun / --nproc)."""

import json
import os
import subprocess
import sys

import pytest
import torch
import tomli_w

from imtrans.build import build_net_from_meta
from imtrans.engine import checkpoint as ckpt

from conftest import ROOT, run_cli

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")


def recipe(tmp_path, name, batch, pool, augment, optim=None, **train):
    optim = optim or {}
    data = {
        "data": {
            "a": {"name": "synthetic", "task": "stripes", "side": "a", "count": 8, "size": 32},
            "b": {"name": "synthetic", "task": "stripes", "side": "b", "count": 8, "size": 32},
            "augment": augment,
            "batch_size": batch,
            "workers": 0,
        },
        "model": {"generator": {"name": "resnet", "ngf": 4, "n_blocks": 1},
                  "discriminator": {"name": "patchgan", "ndf": 4, "n_layers": 1}},
        "scheme": {"name": "cyclegan", "pool_size": pool},
        # a large learning rate: a wrong gradient would move outputs far beyond the test's tolerance
        "optim": {"lr": 0.005, **optim},
        "train": {"precision": "fp32", "epochs": 1, "epochs_decay": 1, "log_every": 1, "sample_every": 0,
                  "eval_images": 2, **train},
        "output": {"root": str(tmp_path), "name": name},
    }
    p = tmp_path / f"{name}.toml"
    p.write_text(tomli_w.dumps(data))
    return p


def torchrun(*args, nproc=2, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                           "-m", "imtrans", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def metrics(run):
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


def test_ddp_equals_single_process_with_batch_two_and_replicas_agree(tmp_path):
    """Two processes of batch 1 take the same first step as one process of batch 2.

    What DDP guarantees is the same averaged gradient up to float rounding, whose size depends on
    the CPU's kernels (AVX2 and AVX-512 convolutions sum in different orders).  Adam's first step is
    lr * g / (|g| + eps): with the default eps = 1e-8 a parameter whose gradient is rounding noise
    (a conv bias before instance norm) moves by +-lr either way, and later steps amplify that
    (0.014 after 3 steps on an AVX2-only EPYC).  With eps = 1e-3 a gradient difference d moves a
    parameter by at most lr / eps * d = 5 d, so the bound below holds by design on every CPU; the
    control run (other data) shows the bound can tell runs apart.
    """
    none = {"name": "none", "flip": False}
    optim = {"eps": 1e-3}
    ddp = recipe(tmp_path, "ddp", 1, 0, none, optim, max_steps=1)
    r = torchrun("run", str(ddp), "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    single = recipe(tmp_path, "single", 2, 0, none, optim, max_steps=1)
    r1 = run_cli("run", str(single), "--no-progress")
    assert r1.returncode == 0, r1.stderr[-3000:]
    control = recipe(tmp_path, "control", 1, 0, none, optim, max_steps=1)  # one process, batch 1: other data
    assert run_cli("run", str(control), "--no-progress").returncode == 0
    x = torch.rand(2, 3, 32, 32) * 2 - 1

    def outputs(name):
        with torch.no_grad():
            return {n: build_net_from_meta(tmp_path / name, n)(x) for n in ("G", "F", "D_A", "D_B")}

    o_ddp, o_one, o_ctl = outputs("ddp"), outputs("single"), outputs("control")
    for n in o_one:
        assert (o_ddp[n] - o_one[n]).abs().max() < 1e-3, n
        assert (o_ctl[n] - o_one[n]).abs().max() > 1e-2, n  # the tolerance can tell runs apart
    checks = [m for m in metrics(tmp_path / "ddp") if m["kind"] == "replicas"]
    assert checks and all(c["identical"] for c in checks) and checks[-1]["world"] == 2
    # rank 0 alone writes: one metrics line per logged step
    steps = [m["step"] for m in metrics(tmp_path / "ddp") if m["kind"] == "train"]
    assert steps == [1]


@pytest.mark.slow  # two torchrun launches; the equality test above keeps DDP in CI
def test_ddp_resume_continues_from_checkpoint(tmp_path):
    aug = {"name": "resize_and_crop", "load_size": 32, "crop_size": 28, "flip": True}
    p = recipe(tmp_path, "res", 1, 2, aug, max_steps=2)
    r = torchrun("run", str(p), "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    st = ckpt.load_state(tmp_path / "res")
    assert st["step"] == 2 and len(st["ranks"]) == 2  # per-rank RNG streams and pools are kept
    r = torchrun("run", str(p), "--set", "train.max_steps=4", "--resume", "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    assert ckpt.load_state(tmp_path / "res")["step"] == 4
    checks = [m for m in metrics(tmp_path / "res") if m["kind"] == "replicas"]
    assert checks[-1]["identical"] and checks[-1]["step"] == 4


@pytest.mark.slow  # two more torchrun launches through the CLI
def test_run_nproc_convenience_and_failure_exits_nonzero(tmp_path):
    p = recipe(tmp_path, "np", 1, 0, {"name": "none"}, max_steps=1)
    r = run_cli("run", str(p), "--nproc", "2", "--no-progress", env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert ckpt.load_state(tmp_path / "np")["step"] == 1
    # the same run again is refused on rank 0; no rank hangs and the launcher exits non-zero
    r = run_cli("run", str(p), "--nproc", "2", "--no-progress", env={"OMP_NUM_THREADS": "1"}, timeout=180)
    assert r.returncode != 0
    assert "already holds a checkpoint" in r.stderr


def test_translate_sharding_covers_every_input_once(tmp_path):
    from PIL import Image

    from imtrans import registry
    from imtrans.translate import Translator

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i in range(7):
        Image.new("RGB", (16 + 4 * (i % 2), 16), (i * 30, 0, 0)).save(src / ("sub" if i % 3 == 0 else "") / f"im{i}.png")
    torch.manual_seed(0)
    G = registry.build("generator", "resnet", ngf=4, n_blocks=1)
    t = Translator(G, device="cpu", precision="fp32")
    done = []
    for rank in range(3):
        rep = t.translate_folder(src, tmp_path / "out", rank=rank, world=3)
        done.extend(str(s) for s, _ in rep.ok)
    assert sorted(done) == sorted(str(p) for p in src.rglob("*.png"))
    assert len(done) == len(set(done)) == 7
    # and through the CLI with two processes
    ckpt.save_checkpoint(tmp_path / "model", {"G": G},
                         {"nets": {"G": {"kind": "generator", "spec": G.imtrans_part.spec}}, "translators": {"a2b": "G"}}, None)
    r = run_cli("translate", str(tmp_path / "model"), str(src), "-o", str(tmp_path / "out2"), "--nproc", "2",
                "--no-progress", "--precision", "fp32", env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.relative_to(tmp_path / "out2").as_posix() for p in (tmp_path / "out2").rglob("*.png")) == \
        sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))
