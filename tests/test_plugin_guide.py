"""docs/plugins.md is executable: every fenced block of the guide is exercised here.

File blocks (```lang title="path"```) are written into a scratch project; command
blocks (title "install", "train", "test") are run, each command mapped to what it
does: ``pip install -e DIR`` becomes a dist-info built from DIR's pyproject.toml
(the metadata an editable install writes, without touching this environment's
site-packages), ``imtrans ...`` runs the real CLI in a subprocess, and ``python -m
pytest DIR`` runs the guide's test functions.  A block this file does not know
fails the test, so the guide cannot grow untested code.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from conftest import ROOT, run_cli

GUIDE = ROOT / "docs" / "plugins.md"
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)
TITLE = re.compile(r'title="([^"]+)"')
COMMAND_BLOCKS = ("install", "train", "test")
TINY_RUN = [
    "data.a.count=4", "data.a.size=32", "data.b.count=4", "data.b.size=32",
    'model.generator={name="resnet", ngf=8, n_blocks=2}', "model.discriminator.ndf=8",
    "data.workers=0", "train.max_steps=2", "train.sample_every=0", "train.eval_images=2",
]


def guide_blocks() -> dict[str, tuple[str, str]]:
    """title -> (language, code) for every fenced block of the guide."""
    out: dict[str, tuple[str, str]] = {}
    for lang, info, code in BLOCK.findall(GUIDE.read_text(encoding="utf-8")):
        m = TITLE.search(info)
        assert m, f"docs/plugins.md has an untitled ```{lang} block; give it title=\"...\" so a test runs it"
        assert m.group(1) not in out, f"two blocks titled {m.group(1)!r}"
        out[m.group(1)] = (lang, code)
    return out


BLOCKS = guide_blocks()
FILE_BLOCKS = {t: c for t, (lang, c) in BLOCKS.items() if t not in COMMAND_BLOCKS}
#: file blocks with their own test below (the others are written into the project and used there)
STANDALONE = ("every_hook.py", "compat.py", "tiny_generator.py", "feature_term.py", "d_augment_noise.py",
              "plugins/imtrans-cut/pyproject.toml")


def commands(title: str) -> list[list[str]]:
    lang, code = BLOCKS[title]
    assert lang == "bash"
    return [shlex.split(line) for line in code.splitlines() if line.strip() and not line.startswith("#")]


def install_dist(project: Path, site: Path) -> tuple[str, dict[str, str]]:
    """What ``pip install -e project`` leaves for importlib.metadata: a dist-info with entry points."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    eps = meta.get("entry-points", {}).get("imtrans", {})
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    (info / "entry_points.txt").write_text("[imtrans]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    # editable: the project folder itself is importable
    (site / f"__editable__{meta['name'].replace('-', '_')}.pth").write_text(str(project) + "\n")
    return meta["name"], eps


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict[str, Path]:
    """The guide's files written into a scratch project, 'installed' into a scratch site dir."""
    work = tmp_path_factory.mktemp("guide")
    for title, code in FILE_BLOCKS.items():
        if title in STANDALONE:
            continue
        dest = work / title
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(code)
    # the guide's recipe extends imtrans:quickstart, which imtrans ships: no copy of it is needed here
    site = work / "_site"
    site.mkdir()
    for cmd in commands("install"):
        if cmd[:3] == ["pip", "install", "-e"]:
            install_dist((work / cmd[3]).resolve(), site)
    return {"work": work, "site": site, "project": work / "imtrans-lowfreq"}


def env_for(p: dict[str, Path]) -> dict[str, str]:
    # a .pth file is only honoured in real site dirs, so list the editable project too
    return {"PYTHONPATH": os.pathsep.join([str(p["site"]), str(p["project"]), str(ROOT)])}


def test_every_block_is_known():
    assert set(COMMAND_BLOCKS) <= set(BLOCKS)
    known_files = {"imtrans-lowfreq/imtrans_lowfreq.py", "imtrans-lowfreq/pyproject.toml",
                   "recipes/lowfreq_quickstart.toml", "imtrans-lowfreq/tests/test_lowfreq.py", *STANDALONE}
    assert set(FILE_BLOCKS) == known_files, "a new guide block needs a test in tests/test_plugin_guide.py"
    loss_lines = [ln for ln in FILE_BLOCKS["imtrans-lowfreq/imtrans_lowfreq.py"].splitlines() if ln.strip()]
    assert len(loss_lines) <= 35  # "a new loss in ~30 lines"


def test_install_block_registers_the_plugin(project):
    names = []
    for cmd in commands("install"):
        if cmd[0] == "pip":
            continue  # done by the fixture
        assert cmd[0] == "imtrans", f"unknown command in the guide's install block: {cmd}"
        proc = run_cli(*cmd[1:], env=env_for(project), cwd=project["work"])
        assert proc.returncode == 0, proc.stderr
        assert "lowfreq" in proc.stdout
        names.append(cmd[1])
    assert names == ["plugins"]
    proc = run_cli("plugins", "--json", env=env_for(project), cwd=project["work"])
    info = {i["name"]: i for i in json.loads(proc.stdout)}["lowfreq"]
    assert info["error"] is None and info["parts"] == {"loss": ["lowfreq"]}
    assert (info["version"], info["distribution"], info["source"]) == ("0.1.0", "imtrans-lowfreq", "entry point")


def test_train_block_trains_with_the_new_loss(project, tmp_path):
    (cmd,) = commands("train")
    assert cmd[:2] == ["imtrans", "run"]
    sets = [x for s in TINY_RUN + [f"output.root={json.dumps(str(tmp_path))}"] for x in ("--set", s)]
    proc = run_cli(*cmd[1:], *sets, "--no-progress", env=env_for(project), cwd=project["work"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recs = [json.loads(x) for x in (tmp_path / "lowfreq_quickstart" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in recs if r["kind"] == "train"][-1]
    assert last["step"] == 2 and "lowfreq" in last["losses"]


def test_test_block_passes(project, fresh_plugins):
    (cmd,) = commands("test")
    assert cmd[:3] == ["python", "-m", "pytest"]
    sys.path[:0] = [str(project["site"]), str(project["project"])]
    fresh_plugins.load_plugins(reload=True)  # load again, now with the 'installed' plugin
    tests = sorted((project["work"] / cmd[3]).glob("test_*.py"))
    assert tests
    ran = 0
    for path in tests:
        spec = importlib.util.spec_from_file_location(f"guide_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for name in dir(mod):
            if name.startswith("test_"):
                getattr(mod, name)()
                ran += 1
    assert ran >= 2
    sys.modules.pop("imtrans_lowfreq", None)


def test_incompatible_plugin_is_skipped_with_one_message(project, tmp_path):
    """The guide's plugin claiming API [99]: one clear line, nothing registered, the rest works."""
    src = project["project"] / "imtrans_lowfreq.py"
    old = tmp_path / "old" / "imtrans-lowfreq"
    old.mkdir(parents=True)
    shutil.copy(project["project"] / "pyproject.toml", old)
    text = src.read_text()
    assert "IMTRANS_API = [1]" in text
    (old / "imtrans_lowfreq.py").write_text(text.replace("IMTRANS_API = [1]", "IMTRANS_API = [99]"))
    site = tmp_path / "site"
    site.mkdir()
    install_dist(old, site)
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(old), str(ROOT)])}
    proc = run_cli("plugins", "--json", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    infos = {i["name"]: i for i in json.loads(proc.stdout)}
    assert infos["lowfreq"]["parts"] == {} and "API [99]" in infos["lowfreq"]["error"]
    assert infos["builtin"]["error"] is None
    lines = [ln for ln in proc.stderr.splitlines() if "lowfreq" in ln]
    assert len(lines) == 1, proc.stderr
    assert "skipped" in lines[0] and "[99]" in lines[0] and "API 1" in lines[0]


def test_every_hook_block(tmp_path, fresh_plugins):
    from conftest import make_dist_plugin
    from imtrans import registry

    make_dist_plugin(tmp_path, "every-hook", "every_hook", FILE_BLOCKS["every_hook.py"], ep_name="every_hook")
    sys.path.insert(0, str(tmp_path))
    fresh_plugins.load_plugins(reload=True)
    info = {i.name: i for i in fresh_plugins.plugin_infos()}["every_hook"]
    assert info.error is None, info.error
    assert info.parts == {
        "generator": ["tiny_resnet"], "discriminator": ["tiny_patchgan"], "loss": ["zero"],
        "augmentation": ["no_flip"], "d_augment": ["diffaugment_again"], "domain": ["flat"],
        "scheme": ["cyclegan_again"],
        "pretrained": ["flat2flat"], "logger": ["lines"],
    }
    assert registry.build("pretrained", "flat2flat").summary == "flat grey -> flat grey (cyclegan_again)"
    assert registry.build("generator", "tiny_resnet").n_blocks == 2
    dom = registry.build("domain", "flat", "train", count=2)
    assert len(dom) == 2 and dom.load(0).mode == "RGB" and dom.name(1) == "train/1.png"
    assert registry.get_registry("loss").get("zero").summary == "Not a useful loss: shows `doc`."
    lines = registry.build("logger", "lines", tmp_path)
    lines.log_train(3, 0, 2e-4, {"G_total": 1.5})
    lines.close()
    assert (tmp_path / "losses.txt").read_text() == "3 G_total=1.5000\n"
    proc = run_cli("hello", env={"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}, cwd=tmp_path)
    assert proc.returncode == 0 and "hello from a plugin" in proc.stdout, proc.stderr
    sys.modules.pop("every_hook", None)


def test_shipped_recipe_block_is_the_cut_plugins_own():
    """The guide's package-data lines are the example plugin's, and that plugin ships its recipes there."""
    block = FILE_BLOCKS["plugins/imtrans-cut/pyproject.toml"].strip()
    assert block in (ROOT / "plugins" / "imtrans-cut" / "pyproject.toml").read_text()
    assert 'extends = "imtrans:' in FILE_BLOCKS["recipes/lowfreq_quickstart.toml"]
    shipped = ROOT / "plugins" / "imtrans-cut" / "imtrans_cut" / "recipes"
    assert (shipped / "cut_horse2zebra.toml").is_file()
    assert 'extends = "imtrans:quickstart"' in (shipped / "cyclegan_patchnce_quickstart.toml").read_text()


def test_compat_block():
    from imtrans.plugins import API_VERSION

    ns: dict = {}
    exec(FILE_BLOCKS["compat.py"], ns)
    assert API_VERSION in ns["IMTRANS_API"]


def block_module(title: str):
    """A guide block executed as a module (a plugin object for ``load_plugins(objects=...)``)."""
    import types

    mod = types.ModuleType(title.removesuffix(".py"))
    exec(compile(FILE_BLOCKS[title], title, "exec"), mod.__dict__)
    return mod


def test_tiny_generator_block_follows_the_generator_contract(fresh_plugins):
    from imtrans import registry
    from imtrans.errors import ImtransError

    fresh_plugins.load_plugins(objects={"tiny": block_module("tiny_generator.py")}, reload=True)
    g = registry.build("generator", "tiny", ngf=8)
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert (g.in_channels, g.out_channels, g.size_multiple) == (3, 3, 2)
    with pytest.raises(ImtransError, match="divisible by 2"):
        g(torch.zeros(1, 3, 31, 32))
    assert [f.shape[1] for f in g.encode(x, [0, 1])] == [3, 8]
    assert 0.01 < float(g.down.weight.std()) < 0.03  # init_weights: normal, gain 0.02


def test_feature_term_block_is_a_translation_term(fresh_plugins, tmp_path):
    from conftest import tiny_recipe_data
    from imtrans import registry
    from imtrans.recipe import recipe_from_dict
    from imtrans.registry import PartParamsError

    fresh_plugins.load_plugins(objects={"tiny": block_module("tiny_generator.py"),
                                        "feat": block_module("feature_term.py")}, reload=True)
    with pytest.raises(PartParamsError, match="'layer'"):
        registry.build("loss", "keep_features", layer=-1)
    data = tiny_recipe_data(tmp_path, "t")
    data["model"]["generator"] = {"name": "tiny", "ngf": 4}
    data["losses"] = {"feat": {"name": "keep_features"}, "pix": {"name": "l1", "weight": 0.5}}
    r = recipe_from_dict(data)
    s = registry.build_spec("scheme", r.scheme.as_dict(), r)
    assert {k: t.kind for k, t in s.extra_terms.items()} == {"feat": "translation", "pix": "pixel"}
    batch = {k: torch.rand(1, 3, 32, 32) * 2 - 1 for k in ("a", "b")}
    s.setup(batch)
    losses = s.train_step(batch)
    assert losses["feat"] > 0 and losses["pix"] > 0


def test_d_augment_block_feeds_back_and_is_resumed(fresh_plugins, tmp_path):
    """The guide's adaptive noise: built from a recipe, G's gradient passes, D's feedback moves its buffer."""
    from conftest import tiny_recipe_data
    from imtrans import registry
    from imtrans.recipe import recipe_from_dict

    fresh_plugins.load_plugins(objects={"noise": block_module("d_augment_noise.py")}, reload=True)
    data = tiny_recipe_data(tmp_path, "t")
    data["model"]["d_augment"] = {"name": "noise", "step": 0.05}
    r = recipe_from_dict(data)
    s = registry.build_spec("scheme", r.scheme.as_dict(), r)
    aug = s.d_augment["D_B"]
    x = torch.zeros(2, 3, 8, 8, requires_grad=True)
    s.update_d_augment("D_B", torch.full((2, 1, 4, 4), 0.9))  # lsgan: 0.9 is "real": D too sure, std rises
    assert float(aug.std) == pytest.approx(0.05)
    y = aug(x)
    assert y.abs().sum() > 0
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    batch = {k: torch.rand(2, 3, 32, 32) * 2 - 1 for k in ("a", "b")}
    s.setup(batch)
    s.train_step(batch)
    state = s.training_state()["d_augment"]
    assert set(state) == {"D_A", "D_B"} and "std" in state["D_B"]
