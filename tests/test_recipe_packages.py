"""Recipes shipped in packages: ``PACKAGE:NAME`` references for run, check and ``extends``.

The built-in recipes are package data of imtrans (``imtrans/recipes/``; a checkout's
``recipes/`` links there), and a plugin ships its own the same way.  Tested from this
checkout, from a scratch plugin package that ships recipes, and from a built wheel
installed outside the checkout (the case an editable install cannot show).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, build_wheel, run_cli
from imtrans import __version__
from imtrans.errors import RecipeError
from imtrans.recipe import load_recipe
from imtrans.recipe_refs import parse_reference, shipped_recipes

# the checkout path that README and docs use (a link to imtrans/recipes/)
BUILTIN = sorted(p.stem for p in (ROOT / "recipes").glob("*.toml"))

PLUGIN = '''
import torch

from imtrans import hookimpl

IMTRANS_API = [1]


class Keep(torch.nn.Module):
    """L1 between a translation and its source (a plugin's loss, used by its shipped recipe)."""

    default_weight = 1.0
    term_kind = "pixel"

    def forward(self, pred, target):
        return (pred - target).abs().mean()


@hookimpl
def register_losses(register):
    register("rp_keep", Keep)
'''

RECIPES = {
    # no `description` key: `imtrans recipes` shows the first comment line
    "h2z_keep": '# horse2zebra with the plugin\'s keep term, on the official CycleGAN defaults.\n'
                'extends = "imtrans:cyclegan_base"\n[data]\nroot = "datasets/horse2zebra"\n'
                '[losses.keep]\nname = "rp_keep"\nweight = 0.25\n',
    "h2z_small": 'extends = "h2z_keep.toml"\ndescription = "A smaller generator."\n[model.generator]\nn_blocks = 6\n',
    "loop_a": 'extends = "rp_demo:loop_b"\n',
    "loop_b": 'extends = "loop_a.toml"\n',
    "escape": 'extends = "../outside.toml"\n',
}


def make_recipe_package(tmp: Path) -> Path:
    """A plugin distribution 'rp-demo' (package rp_demo) that ships recipes, as an install leaves it."""
    pkg = tmp / "rp_demo"
    (pkg / "recipes").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""A plugin package that ships recipes."""\n')
    (pkg / "plugin.py").write_text(PLUGIN)
    for name, text in RECIPES.items():
        (pkg / "recipes" / f"{name}.toml").write_text(text)
    info = tmp / "rp_demo-0.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rp-demo\nVersion: 0.2.0\n")
    (info / "entry_points.txt").write_text("[imtrans]\nrp = rp_demo.plugin\n")
    return tmp


@pytest.fixture
def recipe_package(tmp_path, fresh_plugins):
    site = make_recipe_package(tmp_path / "site")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    fresh_plugins.load_plugins(reload=True)
    yield site
    for mod in [m for m in sys.modules if m == "rp_demo" or m.startswith("rp_demo.")]:
        del sys.modules[mod]


@pytest.mark.parametrize("text,expected", [
    ("imtrans:quickstart", ("imtrans", "quickstart")),
    ("imtrans:quickstart.toml", ("imtrans", "quickstart")),
    ("imtrans_cut:cut_horse2zebra", ("imtrans_cut", "cut_horse2zebra")),
    ("my.pkg:base", ("my.pkg", "base")),
    ("C:\\x.toml", None),  # Windows paths: a drive letter is one character, never a package
    ("C:x.toml", None),
    ("c:/recipes/x.toml", None),
    ("D:\\runs\\imtrans:quickstart", None),
    ("./imtrans:quickstart", None),  # how to name a file whose name looks like a reference
    ("recipes/quickstart.toml", None),
    ("quickstart.toml", None),
])
def test_which_strings_are_references(text, expected):
    assert parse_reference(text) == expected


def test_a_windows_path_is_read_as_a_file():
    for text in ("C:\\x.toml", "C:x.toml"):
        with pytest.raises(RecipeError, match=r"^recipe file .* does not exist; check the path$"):
            load_recipe(text)


def test_packaged_recipe_equals_the_checkout_file_and_says_where_it_came_from():
    r = load_recipe("imtrans:quickstart")
    assert r.to_dict() == load_recipe(ROOT / "recipes" / "quickstart.toml").to_dict()
    assert r.source == "imtrans:quickstart" and r.run_name() == "quickstart"
    (origin,) = r.origins
    assert origin.startswith("imtrans:quickstart = ") and "quickstart.toml" in origin and "(imtrans " in origin
    # a packaged recipe's relative `extends` resolves inside its package
    facades = load_recipe("imtrans:pix2pix_facades")
    assert [o.split(" = ")[0] for o in facades.origins] == ["imtrans:pix2pix_facades", "imtrans:pix2pix_base"]
    assert facades.to_dict() == load_recipe(ROOT / "recipes" / "pix2pix_facades.toml").to_dict()


def test_a_file_extends_a_packaged_recipe(tmp_path):
    child = tmp_path / "mine.toml"
    child.write_text('extends = "imtrans:cyclegan_base"\n[data]\nroot = "horses"\n[model.generator]\nngf = 32\n')
    r = load_recipe(child)
    base = load_recipe("imtrans:cyclegan_base")
    assert r.model.generator.params["ngf"] == 32 and r.data.root == "horses"
    assert r.model.generator.params["n_blocks"] == base.model.generator.params["n_blocks"] == 9
    assert r.losses == base.losses and r.optim == base.optim
    assert r.run_name() == "mine" and r.origins[0] == str(child.resolve())
    assert r.origins[1].startswith("imtrans:cyclegan_base = ")
    assert r.origin_comment().splitlines()[1].startswith("# extends: imtrans:cyclegan_base = ")


@pytest.mark.parametrize("ref,pattern", [
    ("imtrnas:quickstart", r"^recipe 'imtrnas:quickstart': no package 'imtrnas' is installed here; "
                           r"`pip install` the package that ships it or check the spelling; did you mean 'imtrans'"),
    ("imtrans:quikstart", r"^recipe 'imtrans:quikstart': the package 'imtrans' ships no recipe 'quikstart' "
                          r"\(it ships cyclegan_apple2orange, .*quickstart\); did you mean 'quickstart'"),
    ("imtrans:zzz", r"ships no recipe 'zzz' .*; `imtrans recipes` lists every installed recipe$"),
    ("imtrans-cut:cut_horse2zebra", r"'imtrans-cut' is a distribution name, not an importable package; "
                                    r"use the package's import name, e.g. 'imtrans_cut'$"),
    ("json:x", r"^recipe 'json:x': the package 'json' ships no recipes \(it has no recipes/ folder\)"),
    ("shlex:x", r"'shlex' is a module, not a package, so it ships no recipes"),
])
def test_reference_errors_are_one_sentence(ref, pattern):
    with pytest.raises(RecipeError, match=pattern) as e:
        load_recipe(ref)
    assert "\n" not in str(e.value)


def test_an_extends_naming_a_missing_packaged_recipe(tmp_path):
    child = tmp_path / "c.toml"
    child.write_text('extends = "imtrans:cyclegan_bas"\n')
    with pytest.raises(RecipeError, match=r"c.toml: extends = 'imtrans:cyclegan_bas': the package 'imtrans' ships no "
                                          r"recipe 'cyclegan_bas' .* did you mean 'cyclegan_base'"):
        load_recipe(child)
    child.write_text('extends = "imtrnas:cyclegan_base"\n')
    with pytest.raises(RecipeError, match=r"c.toml: extends = 'imtrnas:cyclegan_base': no package 'imtrnas' is installed"):
        load_recipe(child)


def test_a_plugin_package_ships_a_recipe_that_extends_a_builtin(recipe_package):
    r = load_recipe("rp_demo:h2z_keep")
    base = load_recipe("imtrans:cyclegan_base")
    assert r.losses["keep"].name == "rp_keep" and r.losses["keep"].weight == 0.25
    assert {k: v for k, v in r.losses.items() if k != "keep"} == base.losses
    assert r.model == base.model and r.run_name() == "h2z_keep"  # not 'rp_demo:h2z_keep'
    assert r.origins[0].startswith("rp_demo:h2z_keep = ") and "(rp-demo 0.2.0)" in r.origins[0]
    small = load_recipe("rp_demo:h2z_small")  # relative extends inside the plugin's package
    assert small.model.generator.params["n_blocks"] == 6 and small.losses == r.losses
    assert [o.split(" = ")[0] for o in small.origins] == ["rp_demo:h2z_small", "rp_demo:h2z_keep",
                                                          "imtrans:cyclegan_base"]
    with pytest.raises(RecipeError, match=r"`extends` forms a cycle \(rp_demo:loop_a -> rp_demo:loop_b -> rp_demo:loop_a\)"):
        load_recipe("rp_demo:loop_a")
    with pytest.raises(RecipeError, match=r"^rp_demo:escape: extends = '../outside.toml' leads outside the package's "
                                          r"recipes folder"):
        load_recipe("rp_demo:escape")
    with pytest.raises(RecipeError, match=r"the package 'rp_demo' ships no recipe 'h2z' "
                                          r"\(it ships escape, h2z_keep, h2z_small, loop_a, loop_b\); did you mean"):
        load_recipe("rp_demo:h2z")
    listed = {x.reference: x for x in shipped_recipes()}
    assert [k for k in listed if k.startswith("rp_demo:")] == [f"rp_demo:{n}" for n in sorted(RECIPES)]
    keep = listed["rp_demo:h2z_keep"]
    assert (keep.distribution, keep.version, keep.extends) == ("rp-demo", "0.2.0", "imtrans:cyclegan_base")
    assert keep.description == "horse2zebra with the plugin's keep term, on the official CycleGAN defaults."
    assert listed["rp_demo:h2z_small"].description == "A smaller generator."


def test_cli_check_and_recipes_with_a_plugin_package(tmp_path):
    site = make_recipe_package(tmp_path / "site")
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    r = run_cli("check", "rp_demo:h2z_small", "--set", "train.epochs=3", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("# recipe: rp_demo:h2z_small = ") and lines[2].startswith("# extends: imtrans:cyclegan_base = ")
    assert "epochs = 3" in r.stdout and 'name = "rp_keep"' in r.stdout and "n_blocks = 6" in r.stdout
    assert "# ok: rp_demo:h2z_small is valid (run directory: runs/h2z_small)" in r.stdout
    table = run_cli("recipes", env=env, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    for ref in ("imtrans:quickstart", "imtrans:cyclegan_base", "rp_demo:h2z_keep"):
        assert ref in table.stdout
    assert "rp-demo 0.2.0" in table.stdout and "Small CycleGAN on the built-in synthetic glow task" in table.stdout
    rows = json.loads(run_cli("recipes", "--json", env=env, cwd=tmp_path).stdout)
    assert [x["reference"] for x in rows if x["package"] == "imtrans"] == [f"imtrans:{n}" for n in BUILTIN]
    assert all(Path(x["location"]).is_file() for x in rows)


@pytest.mark.skipif("imtrans-cut" not in {d.metadata["Name"] for d in md.distributions()},
                    reason="the imtrans-cut example plugin is not installed")
def test_the_cut_plugin_ships_its_recipes(tmp_path):
    """The example plugin's recipes come from its package; its PatchNCE quickstart extends imtrans:quickstart."""
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "plugins" / "imtrans-cut"), str(ROOT)])}
    r = run_cli("check", "imtrans_cut:cyclegan_patchnce_quickstart", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "# extends: imtrans:quickstart = " in r.stdout and 'name = "patchnce"' in r.stdout
    rows = {x["reference"]: x for x in json.loads(run_cli("recipes", "--json", env=env, cwd=tmp_path).stdout)}
    for name in ("cut_horse2zebra", "fastcut_horse2zebra", "cyclegan_patchnce_quickstart"):
        assert rows[f"imtrans_cut:{name}"]["distribution"] == "imtrans-cut"
        assert f"imtrans:{name}" not in rows  # they need the plugin: imtrans itself does not ship them


def test_run_a_packaged_recipe_records_where_it_came_from(tmp_path):
    sets = ["data.a.count=4", "data.a.size=32", "data.b.count=4", "data.b.size=32", "model.generator.num_downs=5",
            "train.max_steps=1", "train.eval_images=2", "train.sample_every=0", f"output.root={json.dumps(str(tmp_path))}"]
    r = run_cli("run", "imtrans:quickstart", "--no-progress", *(x for s in sets for x in ("--set", s)),
                cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    resolved = (tmp_path / "quickstart" / "recipe.resolved.toml").read_text()
    first = resolved.splitlines()[0]
    assert first.startswith("# recipe: imtrans:quickstart = ") and first.endswith(")")
    assert Path(first.split(" = ", 1)[1].rsplit(" (", 1)[0]).resolve() == (ROOT / "imtrans" / "recipes" / "quickstart.toml").resolve()


def test_the_cut_plugins_wheel_ships_its_recipes(tmp_path):
    wheel = build_wheel(tmp_path, ROOT / "plugins" / "imtrans-cut", "imtrans_cut")
    with zipfile.ZipFile(wheel) as z:
        shipped = {n for n in z.namelist() if n.startswith("imtrans_cut/recipes/")}
    assert shipped == {f"imtrans_cut/recipes/{n}.toml"
                       for n in ("cut_horse2zebra", "fastcut_horse2zebra", "cyclegan_patchnce_quickstart")}


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory) -> dict[str, Path]:
    """The wheel installed into a folder of its own, and a working folder outside any checkout.

    Not a venv: this machine's site-packages holds the editable install (a finder that
    Python consults after ``sys.path``), so ``PYTHONPATH=INSTALLED`` alone, without this
    checkout, makes ``import imtrans`` take the wheel's copy (asserted below).
    """
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(tmp)
    target = tmp / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    away = tmp / "elsewhere"
    away.mkdir()
    (away / "mine.toml").write_text('extends = "imtrans:cyclegan_base"\n[data]\nroot = "horses"\n'
                                    '[model.generator]\nngf = 32\n')
    return {"wheel": wheel, "target": target, "away": away, "recipes": target / "imtrans" / "recipes"}


def _from_wheel(p: dict[str, Path], *args: str) -> subprocess.CompletedProcess:
    """``python ARGS`` with only the wheel's install on the path, in a folder outside the checkout."""
    env = {**os.environ, "PYTHONPATH": str(p["target"]), "COLUMNS": "200"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=p["away"], env=env, timeout=300)


def test_a_built_wheel_ships_the_recipes_and_resolves_references(wheel_install):
    """Not the editable install: the wheel, installed on its own, used from outside any checkout."""
    p = wheel_install
    with zipfile.ZipFile(p["wheel"]) as z:
        shipped = sorted(n.removeprefix("imtrans/recipes/").removesuffix(".toml")
                         for n in z.namelist() if n.startswith("imtrans/recipes/"))
    assert shipped == BUILTIN
    code = ("import json, imtrans; from imtrans.recipe_files import read_chain; data, chain = read_chain('mine.toml'); "
            "print(json.dumps([imtrans.__file__, data['model']['generator'], [s.describe() for s in chain]]))")
    proc = _from_wheel(p, "-c", code)
    assert proc.returncode == 0, proc.stderr
    where, generator, origins = json.loads(proc.stdout)
    assert Path(where).resolve().is_relative_to(p["target"].resolve())  # the wheel's imtrans, not this checkout's
    assert generator["ngf"] == 32 and generator["n_blocks"] == 9  # merged over the wheel's cyclegan_base
    assert origins[1] == f"imtrans:cyclegan_base = {p['recipes'] / 'cyclegan_base.toml'} (imtrans {__version__})"
    proc = _from_wheel(p, "-m", "imtrans", "recipes", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [x for x in json.loads(proc.stdout) if x["package"] == "imtrans"]
    assert [x["reference"] for x in rows] == [f"imtrans:{n}" for n in BUILTIN]
    assert {Path(x["location"]).parent for x in rows} == {p["recipes"]}


@pytest.mark.slow  # two CLI runs that build every part (torch imports): ~15 s on 2 busy cores
def test_cli_check_from_a_built_wheel(wheel_install):
    p = wheel_install
    r = _from_wheel(p, "-m", "imtrans", "check", "imtrans:quickstart")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"# recipe: imtrans:quickstart = {p['recipes'] / 'quickstart.toml'} (imtrans {__version__})"
    r = _from_wheel(p, "-m", "imtrans", "check", "mine.toml")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1] == f"# extends: imtrans:cyclegan_base = {p['recipes'] / 'cyclegan_base.toml'} (imtrans {__version__})"
    assert "ngf = 32" in r.stdout and "n_blocks = 9" in r.stdout and 'root = "horses"' in r.stdout
