"""Evaluating folders and runs: cached reference features, bad files, sizes, the CLI."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from imtrans import registry
from imtrans.engine.checkpoint import save_checkpoint
from imtrans.errors import ImtransError
from imtrans.eval.evaluate import ImageSource, evaluate_run, evaluate_sets, fid_kid_for_run
from imtrans.eval.features import InceptionFeatures
from imtrans.eval.inception import FIDInceptionV3


@pytest.fixture(scope="module")
def ext():
    # The real architecture at its smallest input (75 px): fast; FID proper runs at 299.
    return InceptionFeatures(FIDInceptionV3().random_init(2), "random-init", "clean", input_size=75)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("IMTRANS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _folder(path, n, seed, size=(32, 32)):
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path / f"{i:02d}.png")
    return path


def _src(path):
    from imtrans.data.folder import FolderDomain

    return ImageSource(FolderDomain("test", str(path)), str(path))


def test_reference_features_are_cached_by_content(tmp_path, ext):
    real, fake = _folder(tmp_path / "real", 4, 0), _folder(tmp_path / "fake", 4, 1)
    first = evaluate_sets(_src(real), _src(fake), ext, kid_subsets=10)
    second = evaluate_sets(_src(real), _src(fake), ext, kid_subsets=10)
    assert not first.reference_cached and second.reference_cached
    assert (second.fid, second.kid_mean, second.kid_std) == (first.fid, first.kid_mean, first.kid_std)
    assert first.fid > 0 and np.isfinite(first.kid_mean) and first.n_real == first.n_fake == 4
    assert first.extractor == {"extractor": "InceptionFeatures", "weights_sha256": "random-init",
                               "resize": "clean", "dim": 2048}
    assert any("random weights" in n for n in first.notes) and any("full rank" in n for n in first.notes)
    # Editing one file changes the key: the reference is recomputed.
    Image.new("RGB", (32, 32), (9, 9, 9)).save(real / "00.png")
    assert not evaluate_sets(_src(real), _src(fake), ext, kid_subsets=10).reference_cached


def test_same_set_gives_zero_and_order_does_not_matter(tmp_path, ext):
    a = _folder(tmp_path / "a", 4, 3)
    same = evaluate_sets(_src(a), _src(a), ext, kid_subsets=5, use_cache=False)
    assert 0 <= same.fid <= 1e-6 * 1e3  # (the unbiased KID of a set with itself is not 0: its diagonal is left out)
    # The same images under other names (another order) give the same numbers.
    b = tmp_path / "b"
    b.mkdir()
    for i, p in enumerate(sorted(a.iterdir())):
        (b / f"{9 - i:02d}.png").write_bytes(p.read_bytes())
    c = _folder(tmp_path / "c", 5, 4)
    r1 = evaluate_sets(_src(c), _src(a), ext, kid_subsets=5, kid_subset_size=3, use_cache=False)
    r2 = evaluate_sets(_src(c), _src(b), ext, kid_subsets=5, kid_subset_size=3, use_cache=False)
    assert r1.fid == pytest.approx(r2.fid, rel=1e-9) and r1.kid_mean == pytest.approx(r2.kid_mean, rel=1e-9, abs=1e-12)


def test_broken_files_are_skipped_and_listed_mixed_sizes_noted(tmp_path, ext):
    real = _folder(tmp_path / "real", 3, 0)
    _folder(real, 1, 5, size=(48, 40))  # overwrites 00.png with another size
    (real / "broken.png").write_bytes(b"\x89PNG not really")
    fake = _folder(tmp_path / "fake", 3, 1, size=(64, 64))
    res = evaluate_sets(_src(real), _src(fake), ext, kid_subsets=5)
    assert [name for name, _ in res.skipped] == ["broken.png"] and "cannot read image" in res.skipped[0][1]
    assert res.n_real == 3 and np.isfinite(res.fid)
    assert any("2 sizes" in n for n in res.notes) and any("32x32 but translated ones 64x64" in n for n in res.notes)
    # A partly unreadable reference is not cached (it would hide the problem next time).
    assert not evaluate_sets(_src(real), _src(fake), ext, kid_subsets=5).reference_cached


def test_too_few_readable_images_is_a_clear_error(tmp_path, ext):
    real = _folder(tmp_path / "real", 1, 0)
    (real / "bad.jpg").write_bytes(b"")
    with pytest.raises(ImtransError, match="only 1 real image"):
        evaluate_sets(_src(real), _src(_folder(tmp_path / "fake", 3, 1)), ext)


@pytest.fixture
def run(tmp_path):
    torch.manual_seed(0)
    G = registry.build("generator", "resnet", ngf=4, n_blocks=1).eval()
    F = registry.build("generator", "resnet", ngf=4, n_blocks=1).eval()
    data = tmp_path / "data"
    _folder(data / "testA", 3, 10)
    _folder(data / "testB", 4, 11)
    meta = {"nets": {n: {"kind": "generator", "spec": g.imtrans_part.spec} for n, g in (("G", G), ("F", F))},
            "translators": {"a2b": "G", "b2a": "F"}, "recipe": f'[data]\nroot = "{data.as_posix()}"\n'}
    save_checkpoint(tmp_path / "run" / "checkpoints" / "latest", {"G": G, "F": F}, meta, None)
    return tmp_path / "run", data


def test_evaluate_run_translates_the_held_out_split(run, tmp_path, ext):
    run_dir, data = run
    save = tmp_path / "saved"
    res = evaluate_run(run_dir, "a2b", save=save, extractor=ext, device="cpu", precision="fp32", kid_subsets=5)
    assert res.n_fake == 3 and res.n_real == 4 and res.direction == "a2b"
    assert sorted(p.name for p in save.iterdir()) == ["00.png", "01.png", "02.png"]
    # The saved translations, evaluated as a folder, give the same numbers (PNG is lossless).
    again = evaluate_run(None, real=data / "testB", fake=save, extractor=ext, kid_subsets=5)
    assert again.fid == pytest.approx(res.fid, rel=1e-6) and again.reference_cached
    b2a = evaluate_run(run_dir, "b2a", data_root=data, extractor=ext, device="cpu", precision="fp32", kid_subsets=5)
    assert (b2a.n_fake, b2a.n_real) == (4, 3)


def test_evaluate_run_reads_the_test_split_of_the_training_domains(tmp_path, ext):
    """A run trained on [data.a]/[data.b] domains (the quickstart's synthetic task) is evaluated on
    their test split, as training evaluated it (it used to say the run named no held-out split)."""
    G = registry.build("generator", "resnet", ngf=4, n_blocks=1).eval()
    recipe = ('[data.a]\nname = "synthetic"\ntask = "glow"\nside = "a"\ncount = 6\nsize = 32\n'
              '[data.b]\nname = "synthetic"\ntask = "glow"\nside = "b"\ncount = 5\nsize = 32\n')
    meta = {"nets": {"G": {"kind": "generator", "spec": G.imtrans_part.spec}}, "translators": {"a2b": "G"},
            "recipe": recipe}
    save_checkpoint(tmp_path / "run" / "checkpoints" / "latest", {"G": G}, meta, None)
    want_src = registry.build("domain", "synthetic", "test", task="glow", side="a", count=6, size=32)
    want_dst = registry.build("domain", "synthetic", "test", task="glow", side="b", count=5, size=32)
    res = evaluate_run(tmp_path / "run", "a2b", extractor=ext, device="cpu", precision="fp32", kid_subsets=5)
    assert (res.n_fake, res.n_real) == (len(want_src), len(want_dst)) and res.fid > 0


def test_fid_kid_for_run_takes_any_translate_function(run, ext):
    from imtrans.data.folder import layout

    _, data = run
    src, real = layout("test", str(data), "a"), layout("test", str(data), "b")

    def identity(images):
        return [x.permute(1, 2, 0).numpy() for x in images]

    out = fid_kid_for_run(identity, src, real, ext, kid_subsets=5)
    assert out["n_fake"] == 3 and out["extractor"]["weights_sha256"] == "random-init" and out["fid"] > 0


def test_cli_errors_are_one_line(tmp_path, home):
    r = run_cli("eval")
    assert r.returncode == 1 and "give a RUN" in r.stderr and "Traceback" not in r.stderr
    real, fake = _folder(tmp_path / "r", 2, 0), _folder(tmp_path / "f", 2, 1)
    r = run_cli("eval", "--real", str(real), "--fake", str(fake), "--weights", str(tmp_path / "nope.pth"))
    assert r.returncode == 1 and "nope.pth' does not exist" in r.stderr


@pytest.mark.slow
def test_cli_json_with_the_full_size_network(tmp_path):
    real, fake = _folder(tmp_path / "r", 3, 0), _folder(tmp_path / "f", 3, 1)
    r = run_cli("eval", "--real", str(real), "--fake", str(fake), "--weights", "random", "--json", "--kid-subsets", "5")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n_real"] == out["n_fake"] == 3 and out["extractor"]["extractor"] == "inception_v3_fid"
    assert out["kid_subset_size"] == 3 and out["fid"] > 0
