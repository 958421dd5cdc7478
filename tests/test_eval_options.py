"""Feature-extractor options are never dropped: --resize, --feature-param, the recipe's eval_features at check
(issue #26 item 3)."""

import json
import textwrap

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli, tiny_recipe_data
from imtrans.errors import ImtransError
from imtrans.recipe import recipe_from_dict

# A plugin extractor with its own parameters and no resize parameter: it sizes its input itself.
PLUGIN = '''
from typing import Annotated

import torch.nn.functional as F
from pydantic import Field

from imtrans import hookimpl
from imtrans.errors import ImtransError
from imtrans.eval import FeatureExtractor

IMTRANS_API = [1]


class GridMeans(FeatureExtractor):
    """Mean colour of each cell of a grid x grid split of the image (a tiny extractor for tests)."""

    def __init__(self, grid: Annotated[int, Field(ge=1, le=8)] = 2, gain: float = 1.0, max_dim: int = 48):
        super().__init__("none", "adaptive-pool")
        if 3 * grid * grid > max_dim:
            raise ImtransError(f"grid_means grid = {grid} gives {3 * grid * grid} features, more than max_dim = "
                               f"{max_dim}; lower grid or raise max_dim")
        self.grid, self.gain, self.dim = grid, gain, 3 * grid * grid

    def preprocess(self, image):
        return F.adaptive_avg_pool2d(image.float()[None] / 255, self.grid)[0] * self.gain

    def features(self, x):
        return x.flatten(1)


@hookimpl
def register_feature_extractors(register):
    register("grid_means", GridMeans)
'''


@pytest.fixture
def plugdir(tmp_path):
    d = tmp_path / "plugs"
    d.mkdir()
    (d / "gridfeat.py").write_text(textwrap.dedent(PLUGIN))
    return d


@pytest.fixture
def folders(tmp_path):
    out = []
    for name, seed in (("real", 0), ("fake", 1)):
        d = tmp_path / name
        d.mkdir()
        rng = np.random.default_rng(seed)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(d / f"{i}.png")
        out.append(str(d))
    return out


def _eval(plugdir, folders, tmp_path, *args):
    return run_cli("--plugins-dir", str(plugdir), "eval", "--real", folders[0], "--fake", folders[1],
                   "--extractor", "grid_means", "--kid-subsets", "3", "--json", *args,
                   env={"IMTRANS_HOME": str(tmp_path / "home")})


def test_resize_for_an_extractor_without_a_resize_parameter_is_refused(plugdir, folders, tmp_path):
    """It was silently dropped: the numbers came out as if --resize had not been given."""
    r = _eval(plugdir, folders, tmp_path, "--resize", "legacy_pytorch")
    assert r.returncode == 1, r.stdout
    assert ("--resize legacy_pytorch cannot apply: feature extractor 'grid_means' has no 'resize' parameter "
            "(its parameters: gain, grid, max_dim); leave --resize out") in r.stderr
    assert "Traceback" not in r.stderr


def test_feature_params_reach_the_extractor_from_the_command_line(plugdir, folders, tmp_path):
    r = _eval(plugdir, folders, tmp_path, "--feature-param", "grid=1", "-p", "gain=2")
    assert r.returncode == 0, r.stderr
    ident = json.loads(r.stdout)["extractor"]
    assert ident["dim"] == 3 and ident["params"] == {"grid": 1, "gain": 2.0, "max_dim": 48}


def test_feature_params_are_validated_by_name(grid_plugin):
    from imtrans.cli.eval import extractor_params

    assert extractor_params("grid_means", None, None, ["grid=3", "gain=0.5"]) == {"grid": 3, "gain": 0.5}
    with pytest.raises(ImtransError, match=r"feature extractor 'grid_means' parameter 'grid': .*greater than or equal to 1"):
        extractor_params("grid_means", None, None, ["grid=0"])
    with pytest.raises(ImtransError, match=r"does not accept parameter 'gird'; did you mean 'grid'\?"):
        extractor_params("grid_means", None, None, ["gird=2"])
    with pytest.raises(ImtransError, match=r"--weights w.pth cannot apply: feature extractor 'grid_means' has no 'weights'"):
        extractor_params("grid_means", "w.pth", None, [])
    with pytest.raises(ImtransError, match=r"--feature-param 'grid' is not KEY=VALUE"):
        extractor_params("grid_means", None, None, ["grid"])
    # the built-in extractor: --resize is its resize parameter, and the two spellings must agree
    assert extractor_params("inception_v3_fid", "random", "legacy_pytorch", []) == {
        "resize": "legacy_pytorch", "weights": "random"}
    with pytest.raises(ImtransError, match=r"--resize clean and --feature-param resize=legacy_pytorch disagree"):
        extractor_params("inception_v3_fid", None, "clean", ["resize=legacy_pytorch"])


def test_parameters_that_keep_the_dimension_still_key_the_cached_features(grid_plugin, folders, tmp_path, monkeypatch):
    from imtrans.eval import build_extractor, evaluate_run

    monkeypatch.setenv("IMTRANS_HOME", str(tmp_path / "home"))

    def run(**params):
        return evaluate_run(None, real=folders[0], fake=folders[1], extractor=build_extractor("grid_means", **params),
                            kid_subsets=3, device="cpu")

    first, second = run(grid=1), run(grid=1, gain=2.0)
    assert second.extractor["dim"] == first.extractor["dim"] and not second.reference_cached
    assert second.extractor["params"]["gain"] == 2.0 and second.fid != first.fid
    assert run(grid=1, gain=2.0).reference_cached  # the same parameters do reuse them


def test_missing_folders_are_named_before_the_extractor_is_built(tmp_path, folders):
    """The weights file would be resolved (or downloaded) first, for folders that are not there."""
    r = run_cli("eval", "--real", str(tmp_path / "nowhere"), "--fake", folders[1],
                "--weights", str(tmp_path / "nope.pth"), env={"IMTRANS_HOME": str(tmp_path / "home")})
    assert r.returncode == 1
    assert f"--real {tmp_path / 'nowhere'} does not exist; give a folder of real target-domain images" in r.stderr
    assert "nope.pth" not in r.stderr


@pytest.fixture
def grid_plugin(fresh_plugins, tmp_path):
    import importlib.util

    f = tmp_path / "gridfeat_mod.py"
    f.write_text(textwrap.dedent(PLUGIN))
    spec = importlib.util.spec_from_file_location("gridfeat_mod", f)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fresh_plugins.load_plugins(objects={"gridfeat": mod}, reload=True)


def _recipe(tmp_path, **train):
    return recipe_from_dict(tiny_recipe_data(tmp_path, "r", eval_fid=True, **train))


def test_check_builds_the_feature_extractor(tmp_path, grid_plugin):
    from imtrans.check import build_parts

    built = build_parts(_recipe(tmp_path, eval_features={"name": "grid_means", "grid": 3, "max_dim": 27}))
    assert built["eval_features"].dim == 27
    with pytest.raises(ImtransError, match=r"^train\.eval_features: grid_means grid = 5 gives 75 features"):
        build_parts(_recipe(tmp_path, eval_features={"name": "grid_means", "grid": 5}))
    off = recipe_from_dict(tiny_recipe_data(tmp_path, "r", eval_fid=False,
                                            eval_features={"name": "grid_means", "grid": 5}))
    assert "eval_features" not in build_parts(off)  # no FID during training: nothing to build


def test_check_never_downloads_the_fid_weights(tmp_path, monkeypatch):
    from imtrans.check import build_parts
    from imtrans.eval import weights

    monkeypatch.setenv("IMTRANS_HOME", str(tmp_path / "home"))

    def no_download(*a, **k):
        raise AssertionError("imtrans check downloaded the FID weights")

    monkeypatch.setattr(weights, "download_weights", no_download)
    notes: list[str] = []
    built = build_parts(_recipe(tmp_path), notes=notes)  # the default extractor, inception_v3_fid
    assert "eval_features" not in built
    assert len(notes) == 1 and notes[0].startswith("train.eval_features: FID/KID will be skipped during training: ")
    assert "downloads are off" in notes[0]
    random = build_parts(_recipe(tmp_path, eval_features={"name": "inception_v3_fid", "weights": "random"}))
    assert random["eval_features"].dim == 2048 and next(random["eval_features"].parameters()).is_meta
