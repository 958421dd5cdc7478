"""The plugin contract, made explicit (issue 15): a real plugin package, `imtrans-contract`,
installed as a distribution with an entry point, exercises every rule a plugin author relies on.

1. extra loss terms declare ``term_kind``; a kind that does not fit ``forward`` is refused at
   build time; a term with no gradient path to the generator is warned about once;
2. ``Annotated`` constraints are honoured; an unresolvable hint is reported per parameter;
3. ``extends`` and ``--set`` swap only part tables whole;
4. misspelled hooks, hooks without ``@hookimpl`` and plugins that register nothing are
   reported; ``--verbose`` / ``IMTRANS_DEBUG=1`` show a plugin failure's traceback;
5. checkpoints record each part's distribution and version, and name the ``pip install``;
6. the generator contract (``GeneratorBase``, ``init_weights``) is public and documented;
7. plugins load only when an entry point asks, each into a scratch registry;
8. ``imtrans check`` prints valid TOML at any width, ``--json``, builds every part;
   ``timm_unet`` checkpoints rebuild without their ``pretrained_file``.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
import warnings

import pytest
import torch

from conftest import ROOT, make_dist_plugin, run_cli

CONTRACT = '''
"""imtrans-contract: one part for every rule of the plugin contract."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import torch
from pydantic import Field

from imtrans import hookimpl
from imtrans.errors import ImtransError
from imtrans.nets import GeneratorBase, init_weights

if TYPE_CHECKING:  # a type checker sees it; at run time the name does not exist
    from decimal import Decimal

__version__ = "0.3.1"
IMTRANS_API = [1]


class TinyGen(GeneratorBase):
    """A two-convolution generator that follows the generator contract."""

    part_name = "tiny_gen"
    size_multiple = 2

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: Annotated[int, Field(ge=2)] = 4):
        super().__init__()
        if ngf % 2:
            raise ImtransError(f"tiny_gen ngf must be even, got {ngf}; use e.g. ngf = 4")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.down = torch.nn.Conv2d(in_channels, ngf, 3, stride=2, padding=1)
        self.up = torch.nn.ConvTranspose2d(ngf, out_channels, 4, stride=2, padding=1)
        init_weights(self, "normal", 0.02)

    def encode(self, x, layers):
        self.check_input_size(x.shape[-2], x.shape[-1])
        feats = [x, self.down(x)]
        return [feats[i] for i in layers]

    def forward(self, x):
        self.check_input_size(x.shape[-2], x.shape[-1])
        return torch.tanh(self.up(torch.relu(self.down(x))))


class KeepFeatures(torch.nn.Module):
    """Translation term: keep the source's encoder features."""

    default_weight = 1.0
    term_kind = "translation"

    def forward(self, src, out, generator):
        (fs,) = generator.encode(src, [1])
        (fo,) = generator.encode(out, [1])
        return (fo - fs.detach()).abs().mean()


class TotalVariation(torch.nn.Module):
    """Pixel term: total variation of the prediction (here: the translation)."""

    default_weight = 1.0
    term_kind = "pixel"

    def __init__(self, power: Annotated[int, Field(ge=1, le=2)] = 1):
        super().__init__()
        self.power = power

    def forward(self, pred, target):
        dx = (pred[..., 1:] - pred[..., :-1]).abs() ** self.power
        dy = (pred[..., 1:, :] - pred[..., :-1, :]).abs() ** self.power
        return dx.mean() + dy.mean()


class SourceTV(TotalVariation):
    """The trap of issue 15: a TV term written forward(src, out) but declared a translation term."""

    term_kind = "translation"

    def forward(self, src, out):
        return super().forward(out, src)


class Weighted(torch.nn.Module):
    """forward(pred, target, weight=None) declared a translation term: the generator would be its weight."""

    term_kind = "translation"

    def forward(self, pred, target, weight=None):
        return (pred - target).abs().mean()


class Undeclared(torch.nn.Module):
    """A pixel-style loss that does not say how it is called."""

    def forward(self, pred, target):
        return (pred - target).abs().mean()


class SourceOnly(torch.nn.Module):
    """A translation term that never looks at the translation: no gradient reaches the generator."""

    term_kind = "translation"

    def forward(self, src, out, generator):
        return src.abs().mean()


class Scaled(torch.nn.Module):
    """A pixel term with one hint only a type checker can resolve."""

    term_kind = "pixel"

    def __init__(self, exact: Decimal = 0, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    def forward(self, pred, target):
        return self.scale * (pred - target).abs().mean()


@hookimpl
def register_generators(register):
    register("tiny_gen", TinyGen)


@hookimpl
def register_losses(register):
    for name, cls in {"keep_features": KeepFeatures, "tv": TotalVariation, "source_tv": SourceTV,
                      "weighted": Weighted, "undeclared": Undeclared, "source_only": SourceOnly,
                      "scaled": Scaled}.items():
        register(name, cls)
'''

MISSPELLED = '''
from imtrans import hookimpl

@hookimpl
def register_loss(register):          # not a hook: register_losses
    raise AssertionError("never called")
'''

UNMARKED = '''
def register_losses(register):        # no @hookimpl: pluggy never sees it
    raise AssertionError("never called")
'''

HALF = '''
from imtrans import hookimpl

@hookimpl
def register_generators(register):
    register("half_gen", lambda: None)

@hookimpl
def register_losses(register):
    raise RuntimeError("boom in the second hook")
'''


def install(tmp_path, source=CONTRACT, dist="imtrans-contract", module="imtrans_contract",
            ep="contract", version="0.3.1"):
    return make_dist_plugin(tmp_path / dist / version, dist, module, source, ep_name=ep, version=version)


@pytest.fixture
def contract(tmp_path, fresh_plugins):
    """imtrans-contract installed and loaded in this process."""
    sys.path.insert(0, str(install(tmp_path)))
    with pytest.warns(fresh_plugins.PluginWarning, match="'scaled' parameter 'exact'"):  # item 2, said once
        fresh_plugins.load_plugins(reload=True)
    yield fresh_plugins
    sys.modules.pop("imtrans_contract", None)


def tiny(root, name, **extra):
    from conftest import tiny_recipe_data

    data = tiny_recipe_data(root, name, max_steps=2, sample_every=0, save_every_epochs=0, device="cpu")
    data["model"]["generator"] = {"name": "tiny_gen", "ngf": 4}
    data["data"]["augment"] = {"name": "none"}
    for key, value in extra.items():
        data[key] = value
    return data


def scheme_for(losses, tmp_path):
    from imtrans import registry
    from imtrans.recipe import recipe_from_dict

    r = recipe_from_dict(tiny(tmp_path, "t", losses=losses))
    return registry.build_spec("scheme", r.scheme.as_dict(), r)


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(1, 3, 32, 32, generator=g) * 2 - 1 for k in ("a", "b")}


# -- 1. extra loss terms -----------------------------------------------------------------------

def test_terms_are_called_by_their_declared_kind(contract, tmp_path):
    s = scheme_for({"tv": {"name": "tv"}, "keep": {"name": "keep_features"}}, tmp_path)
    x = batch()
    s.setup(x)
    G = s.nets["G"]
    out = G(x["a"])
    tv = s.extra_terms["tv"]
    assert tv.kind == "pixel" and s.extra_terms["keep"].kind == "translation"
    # the pixel term measures the translation (its `pred`), not the source
    expected = (out[..., 1:] - out[..., :-1]).abs().mean() + (out[..., 1:, :] - out[..., :-1, :]).abs().mean()
    assert torch.allclose(tv(x["a"], out, G), expected)
    losses = s.train_step(x)
    assert losses["tv"] > 0 and losses["keep"] > 0


@pytest.mark.parametrize("loss, words", [
    ("source_tv", ["term_kind = 'translation'", "forward(src, out)"]),
    ("weighted", ["term_kind = 'translation'", "weight=None"]),
    ("undeclared", ["does not declare term_kind", 'term_kind = "pixel"']),
])
def test_a_term_whose_kind_and_signature_disagree_is_refused_at_build(contract, tmp_path, loss, words):
    from imtrans.errors import ImtransError

    with pytest.raises(ImtransError) as e:
        scheme_for({"extra": {"name": loss}}, tmp_path)
    assert "[losses.extra]" in str(e.value) and all(w in str(e.value) for w in words), str(e.value)


def test_a_term_without_gradient_path_is_warned_once(contract, tmp_path):
    from imtrans.schemes.terms import TermWarning

    s = scheme_for({"src": {"name": "source_only"}, "tv": {"name": "tv"}}, tmp_path)
    s.setup(batch())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        s.train_step(batch(1))
        s.train_step(batch(2))
    ours = [w for w in seen if issubclass(w.category, TermWarning)]
    assert len(ours) == 1 and "[losses.src] has no gradient path" in str(ours[0].message)


# -- 2. parameter constraints ----------------------------------------------------------------------

def test_annotated_constraints_and_unresolvable_hints(contract):
    from imtrans import registry
    from imtrans.registry import PartParamsError

    with pytest.raises(PartParamsError, match="'power'"):
        registry.build("loss", "tv", power=0)
    assert registry.build("loss", "tv", power=2).power == 2
    with pytest.raises(PartParamsError, match="'ngf'"):
        registry.build("generator", "tiny_gen", ngf=0)
    # one unresolvable hint is reported, naming part and parameter; the others are still checked
    info = {i.name: i for i in contract.plugin_infos()}["contract"]
    assert any("loss 'scaled' parameter 'exact'" in w and "TYPE_CHECKING" in w for w in info.warnings), info.warnings
    with pytest.raises(PartParamsError, match="'scale'"):
        registry.build("loss", "scaled", scale="lots")


# -- 3. extends and --set ------------------------------------------------------------------------

def test_extends_and_set_swap_only_part_tables(contract, tmp_path):
    from imtrans.recipe import load_recipe

    base = tmp_path / "base.toml"
    base.write_text(
        '[model.generator]\nname = "resnet"\nn_blocks = 2\n[optim]\nname = "adam"\nlr = 0.001\n'
        '[output]\nroot = "elsewhere"\nname = "base"\n'
    )
    child = tmp_path / "child.toml"
    child.write_text('extends = "base.toml"\n[optim]\nname = "adamw"\n[output]\nname = "child"\n'
                     '[model.generator]\nname = "tiny_gen"\n')
    r = load_recipe(child, check_parts=False)
    assert (r.optim.name, r.optim.lr) == ("adamw", 0.001)            # [optim] merged key by key
    assert (r.output.root, r.output.name) == ("elsewhere", "child")    # [output] merged key by key
    assert r.model.generator.as_dict() == {"name": "tiny_gen"}         # another part: replaced whole
    # --set follows the same rule, in any order of the options
    for sets in (["model.generator.name=tiny_gen", "model.generator.ngf=6"],
                 ["model.generator.ngf=6", "model.generator.name=tiny_gen"]):
        r = load_recipe(base, sets, check_parts=False)
        assert r.model.generator.as_dict() == {"name": "tiny_gen", "ngf": 6}


# -- 4. hook mistakes and debugging -------------------------------------------------------------

def test_hook_mistakes_are_reported(tmp_path):
    paths = [install(tmp_path, MISSPELLED, "imtrans-typo", "typo_mod", "typo"),
             install(tmp_path, UNMARKED, "imtrans-bare", "bare_mod", "bare")]
    r = run_cli("plugins", "--json", env={"PYTHONPATH": os.pathsep.join(map(str, paths))})
    assert r.returncode == 0, r.stderr
    infos = {p["name"]: p for p in json.loads(r.stdout)}
    typo, bare = infos["typo"]["warnings"], infos["bare"]["warnings"]
    assert any("'register_loss' is not an imtrans hook; did you mean 'register_losses'" in w for w in typo), typo
    assert any("'register_losses' is not marked @hookimpl" in w for w in bare), bare
    assert all(any("registered no parts" in w for w in ws) for ws in (typo, bare))
    assert r.stderr.count("plugin 'typo':") == 2 and r.stderr.count("plugin 'bare':") == 2  # each once


@pytest.mark.slow  # three CLI runs
def test_verbose_shows_the_traceback_of_a_plugin_failure(tmp_path):
    env = {"PYTHONPATH": str(install(tmp_path, HALF, "imtrans-half", "half_mod", "half"))}
    quiet = run_cli("plugins", env=env)
    assert "Traceback" not in quiet.stderr and "--verbose" in quiet.stderr
    for args, extra in ((["--verbose", "plugins"], {}), (["plugins"], {"IMTRANS_DEBUG": "1"})):
        loud = run_cli(*args, env={**env, **extra})
        assert loud.returncode == 0
        assert "Traceback" in loud.stderr and 'raise RuntimeError("boom in the second hook")' in loud.stderr


# -- 5. provenance ---------------------------------------------------------------------------------

@pytest.fixture
def trained(contract, tmp_path):
    """A 2-step run with the plugin's generator and loss; returns (recipe file, run dir)."""
    import tomli_w

    from imtrans.engine.trainer import Trainer
    from imtrans.recipe import load_recipe

    path = tmp_path / "contract.toml"
    path.write_text(tomli_w.dumps(tiny(tmp_path / "runs", "contract", losses={"tv": {"name": "tv"}})))
    Trainer(load_recipe(path), progress=False, handle_signals=False).fit()
    return path, tmp_path / "runs" / "contract"


def test_checkpoints_record_the_distribution_of_each_part(trained, contract):
    from imtrans.engine.checkpoint import read_meta

    meta = read_meta(trained[1])
    origin = {"plugin": "contract", "dist": "imtrans-contract", "version": "0.3.1"}
    assert meta["nets"]["G"]["origin"] == origin
    assert meta["nets"]["D_A"]["origin"]["dist"] == "imtrans"
    assert meta["parts"]["generator:tiny_gen"] == origin and meta["parts"]["loss:tv"] == origin
    assert meta["parts"]["scheme:cyclegan"]["dist"] == "imtrans"


def test_a_missing_plugin_is_named_with_its_pip_install(trained, contract, tmp_path):
    from imtrans import load_translator
    from imtrans.errors import ImtransError
    from imtrans.engine.checkpointing import check_run

    recipe, run = trained
    sys.path[:] = [p for p in sys.path if "imtrans-contract" not in p]   # uninstall it
    sys.modules.pop("imtrans_contract", None)
    contract.load_plugins(reload=True)
    hint = "pip install imtrans-contract==0.3.1"
    with pytest.raises(ImtransError, match=hint):
        load_translator(run, device="cpu", precision="fp32")
    with pytest.raises(ImtransError, match=hint):
        check_run(recipe, [])                 # what `check` and `run --resume` call first
    resume = run_cli("run", str(recipe), "--resume", "--no-progress")
    assert resume.returncode == 1 and hint in resume.stderr and "Traceback" not in resume.stderr


def test_another_installed_version_is_warned(trained, contract, tmp_path):
    from imtrans import load_translator
    from imtrans.provenance import ProvenanceWarning

    sys.path[:] = [p for p in sys.path if "imtrans-contract" not in p]
    sys.modules.pop("imtrans_contract", None)
    sys.path.insert(0, str(install(tmp_path, CONTRACT.replace('"0.3.1"', '"0.4.0"'), version="0.4.0")))
    with pytest.warns(contract.PluginWarning):
        contract.load_plugins(reload=True)
    with pytest.warns(ProvenanceWarning, match=r"imtrans-contract 0\.3\.1, but imtrans-contract 0\.4\.0"):
        t = load_translator(trained[1], device="cpu", precision="fp32")
    assert t.multiple == 2  # the plugin generator's size_multiple reached the translator


# -- 6. the generator contract ----------------------------------------------------------------------

def test_generator_contract_is_public_and_documented():
    from imtrans.nets import GeneratorBase, init_weights  # what a plugin generator builds on

    assert callable(init_weights) and hasattr(GeneratorBase, "check_input_size")
    guide = (ROOT / "docs" / "plugins.md").read_text()
    assert "CONTRACTS.md" in guide
    for word in ("in_channels", "out_channels", "size_multiple", "check_input_size", "encode(", "init_weights",
                 "GeneratorBase", "term_kind", "Annotated", "IMTRANS_DEBUG", "--verbose", "pip install"):
        assert word in guide, word


# -- 7. explicit loading -------------------------------------------------------------------------

def test_nothing_loads_plugins_behind_the_callers_back(tmp_path):
    code = (
        "from imtrans import registry, plugins\n"
        "from imtrans.errors import ImtransError\n"
        "assert registry.names('generator') == []\n"
        "try:\n    registry.build('generator', 'resnet')\nexcept ImtransError as e:\n    print('refused:', e)\n"
        "plugins.load_plugins()\n"
        "print('built:', type(registry.build('generator', 'resnet', ngf=4, n_blocks=1)).__name__)\n"
    )
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "refused:" in r.stdout and "load_plugins()" in r.stdout and "built: ResnetGenerator" in r.stdout


def test_a_failing_hook_leaves_nothing_of_its_plugin(tmp_path, fresh_plugins):
    from imtrans import registry

    sys.path.insert(0, str(install(tmp_path, HALF, "imtrans-half", "half_mod2", "half")))
    with pytest.warns(fresh_plugins.PluginWarning, match="boom in the second hook"):
        infos = {i.name: i for i in fresh_plugins.load_plugins(reload=True)}
    assert "boom in the second hook" in infos["half"].error and "Traceback" in infos["half"].traceback
    assert "half_gen" not in registry.names("generator") and "resnet" in registry.names("generator")


# -- 8. imtrans check ------------------------------------------------------------------------------

@pytest.mark.slow  # three CLI runs
def test_check_prints_valid_toml_and_json_and_builds_every_part(tmp_path):
    import tomli_w

    site = install(tmp_path)
    path = tmp_path / "r.toml"
    data = tiny(tmp_path / "runs", "r", description="a description long enough to be wrapped at forty columns")
    path.write_text(tomli_w.dumps(data))
    env = {"PYTHONPATH": str(site), "COLUMNS": "40"}
    out = run_cli("check", str(path), env=env)
    assert out.returncode == 0, out.stderr
    resolved = tomllib.loads(out.stdout)  # the whole output is TOML, unwrapped
    assert resolved["description"] == data["description"]
    js = run_cli("check", str(path), "--json", env=env)
    assert json.loads(js.stdout) == resolved
    bad = run_cli("check", str(path), "--set", "model.generator.ngf=5", env=env)   # the constructor refuses it
    assert bad.returncode == 1 and "tiny_gen ngf must be even, got 5" in bad.stderr


def test_timm_unet_checkpoint_rebuilds_without_its_pretrained_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    from imtrans import registry
    from imtrans.build import build_net_from_meta
    from imtrans.engine.checkpoint import save_checkpoint

    f = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet18").state_dict().items()}, str(f))
    g = registry.build("generator", "timm_unet", encoder="resnet18", ngf=8, pretrained_file=str(f))
    save_checkpoint(tmp_path / "ck", {"G": g}, {"nets": {"G": {"kind": "generator", "spec": g.imtrans_part.spec}}}, None)
    f.unlink()
    again = build_net_from_meta(tmp_path / "ck", "G")
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), again.state_dict().values()))
