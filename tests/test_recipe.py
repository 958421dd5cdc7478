"""Recipes: extends, overrides, validation messages."""

import pytest

from imtrans.errors import RecipeError
from imtrans.recipe import apply_overrides, load_recipe, parse_override

from conftest import ROOT, run_cli

BASE = """
description = "base"
[model.generator]
name = "resnet"
n_blocks = 9
ngf = 64
[train]
epochs = 100
epochs_decay = 100
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_extends_deep_merges_relative_to_file(tmp_path):
    write(tmp_path, "base/base.toml", BASE)
    child = write(tmp_path, "base/child.toml", 'extends = "base.toml"\n[model.generator]\nn_blocks = 6\n[train]\nepochs = 3\n')
    r = load_recipe(child)
    assert r.model.generator.name == "resnet"          # from base
    assert r.model.generator.params == {"n_blocks": 6, "ngf": 64}  # merged table
    assert (r.train.epochs, r.train.epochs_decay) == (3, 100)
    assert r.description == "base"


def test_extends_chain_and_cycle(tmp_path):
    write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    write(tmp_path, "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "a.toml")
    write(tmp_path, "c.toml", 'extends = "missing.toml"\n')
    with pytest.raises(RecipeError, match=r"c\.toml: extends = 'missing.toml'"):
        load_recipe(tmp_path / "c.toml")


def test_overrides_are_typed_and_reach_part_params(tmp_path):
    p = write(tmp_path, "r.toml", BASE)
    r = load_recipe(p, ["train.epochs=3", "model.generator.ngf=32", "output.name=myrun", "optim.betas=[0.9, 0.99]"])
    assert r.train.epochs == 3 and r.model.generator.params["ngf"] == 32
    assert r.output.name == "myrun" and r.optim.betas == (0.9, 0.99)
    assert parse_override("a.b=true") == (["a", "b"], True)
    assert parse_override("a=hello world") == (["a"], "hello world")


def test_misspelt_key_names_file_key_and_suggestion(tmp_path):
    p = write(tmp_path, "r.toml", BASE + "\n[trian]\nepochs = 3\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert str(p) in msg and "unknown key 'trian'" in msg and "did you mean 'train'" in msg
    p2 = write(tmp_path, "r2.toml", BASE + "\n[train]\nepohcs = 3\n".replace("[train]\n", "") )
    text = BASE.replace("epochs = 100\n", "epochs = 100\nepohcs = 3\n")
    p2.write_text(text)
    with pytest.raises(RecipeError) as e:
        load_recipe(p2)
    assert "train.epohcs" in str(e.value) and "did you mean 'epochs'" in str(e.value)


def test_bad_override_type_names_the_override(tmp_path):
    p = write(tmp_path, "r.toml", BASE)
    with pytest.raises(RecipeError) as e:
        load_recipe(p, ["train.epochs=many"])
    assert "--set train.epochs=many" in str(e.value) and "integer" in str(e.value)
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_recipe(p, ["train.epochs"])
    with pytest.raises(RecipeError, match="is a value, not a table"):
        apply_overrides({"train": {"epochs": 3}}, ["train.epochs.x=1"])


def test_part_parameters_checked_against_registered_part(tmp_path):
    p = write(tmp_path, "r.toml", BASE)
    with pytest.raises(RecipeError) as e:
        load_recipe(p, ["model.generator.ngff=32"])
    msg = str(e.value)
    assert "--set model.generator.ngff=32" in msg and "'ngff'" in msg and "did you mean 'ngf'" in msg
    with pytest.raises(RecipeError) as e:
        load_recipe(p, ["model.generator.name=resnet9"])
    assert "unknown generator 'resnet9'; did you mean 'resnet'?" in str(e.value)
    with pytest.raises(RecipeError) as e:
        load_recipe(p, ["model.generator.norm=layer"])
    assert "'norm'" in str(e.value)


def test_invalid_toml_and_missing_file(tmp_path):
    p = write(tmp_path, "bad.toml", "[train\nepochs = 3")
    with pytest.raises(RecipeError, match="invalid TOML"):
        load_recipe(p)
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.toml")


# the built-in recipes (recipes/ links to imtrans/recipes/) and those the example plugins ship
SHIPPED = sorted((ROOT / "recipes").glob("*.toml")) + sorted((ROOT / "plugins").glob("*/*/recipes/*.toml"))


@pytest.mark.parametrize("recipe", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipes_validate(recipe):
    r = load_recipe(recipe, check_parts=True)
    assert r.scheme.name


SYNTHETIC = '[data.a]\nname = "synthetic"\nside = "a"\ncount = 4\n[data.b]\nname = "synthetic"\nside = "b"\ncount = 4\n'


def test_cli_check_prints_resolved_recipe_and_errors_without_traceback(tmp_path):
    p = write(tmp_path, "r.toml", BASE + SYNTHETIC)  # `check` builds every part, the domains too
    ok = run_cli("check", str(p), "--set", "train.epochs=7")
    assert ok.returncode == 0, ok.stderr
    assert "epochs = 7" in ok.stdout and "is valid" in ok.stdout
    bad = run_cli("check", str(p), "--set", "train.epochs=x")
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr and "--set train.epochs=x" in bad.stderr


def test_every_recipe_key_is_documented():
    from imtrans.recipe import DataConfig, OptimConfig, OutputConfig, Recipe, TrainConfig

    doc = (ROOT / "docs" / "recipes.md").read_text()
    for model in (Recipe, DataConfig, OptimConfig, OutputConfig, TrainConfig):
        for field in model.model_fields:
            assert f"`{field}`" in doc, f"{model.__name__}.{field} is missing from docs/recipes.md"


def test_extends_swapping_a_part_replaces_its_table(tmp_path):
    write(tmp_path, "base.toml", BASE)
    child = write(tmp_path, "child.toml", 'extends = "base.toml"\n[model.generator]\nname = "unet"\nnum_downs = 6\n')
    r = load_recipe(child)
    assert r.model.generator.name == "unet" and r.model.generator.params == {"num_downs": 6}


def test_part_error_names_the_key_that_brought_the_bad_parameter(tmp_path):
    p = write(tmp_path, "r.toml", BASE.replace("ngf = 64\n", "ngf = 64\nnum_downs = 7\n"))
    with pytest.raises(RecipeError) as e:
        load_recipe(p, ["model.generator.ngf=8"])  # a valid override of the same table
    msg = str(e.value)
    assert msg.startswith(f"{p}: model.generator.num_downs:") and "'num_downs'" in msg


def test_cli_check_warns_when_the_data_is_missing(tmp_path):
    p = write(tmp_path, "r.toml", BASE + f'[data]\nroot = "{tmp_path / "nowhere"}"\n')
    out = run_cli("check", str(p))
    assert out.returncode == 0, out.stderr  # the recipe is valid; this machine lacks its data
    assert out.stderr.count("warning:") == 2 and "data.a:" in out.stderr and "nowhere" in out.stderr
    assert "its data is missing here" in out.stdout


def test_negative_loss_weight_is_refused_with_the_key():
    """A negative weight would make training reward the loss (issue #26 item 3); 0 still turns a term off."""
    p = ROOT / "recipes" / "quickstart.toml"
    with pytest.raises(RecipeError, match=r"losses\.cycle\.weight=-1: .*greater than or equal to 0"):
        load_recipe(p, ["losses.cycle.weight=-1"])
    assert load_recipe(p, ["losses.identity.weight=0"]).losses["identity"].weight == 0


def test_a_loss_registered_as_a_discriminator_is_refused_at_check(tmp_path):
    """It used to pass `check` and die at the first step with the optimiser's raw "empty parameter list"."""
    import tomli_w

    from conftest import tiny_recipe_data

    plugdir = tmp_path / "plug"
    plugdir.mkdir()
    (plugdir / "wrongkind.py").write_text(
        "import torch\nfrom imtrans import hookimpl\n\n"
        "@hookimpl\ndef register_discriminators(register):\n    register('l1_as_d', torch.nn.L1Loss)\n")
    data = tiny_recipe_data(tmp_path, "wk")
    data["model"]["discriminator"] = {"name": "l1_as_d"}
    recipe = tmp_path / "wk.toml"
    recipe.write_text(tomli_w.dumps(data))
    r = run_cli("--plugins-dir", str(plugdir), "check", str(recipe))
    assert r.returncode == 1, r.stdout[-1000:]
    msg = " ".join(r.stderr.split())
    assert "discriminator 'l1_as_d' has no trainable parameters" in msg and "imtrans list discriminator" in msg
    assert "Traceback" not in r.stderr
