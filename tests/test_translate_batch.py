"""The folder pipeline's stages one by one, and the folder edge cases end to end."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imtrans import registry
from imtrans.errors import ImtransError
from imtrans.translate import Translator, batch
from imtrans.translate.batch import Item, Job, TranslateReport


def _img(h: int, w: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def translator():
    torch.manual_seed(0)
    return Translator(registry.build("generator", "resnet", ngf=4, n_blocks=1).eval(), device="cpu", precision="fp32")


def _item(name: str, h: int, w: int) -> Item:
    return Item(Job(Path(name), Path(name + ".png")), torch.zeros(3, h, w, dtype=torch.uint8), None)


# ---------------------------------------------------------------------------- the report


def test_report_drives_progress_and_errors():
    events = []
    rep = TranslateReport(total=3, on_progress=lambda d, t: events.append(("p", d, t)),
                          on_error=lambda s, r: events.append(("e", s.name, r)))
    rep.progress()
    rep.add_skipped(Path("a"))
    rep.add_failed(Path("b"), "broken")
    rep.add_ok(Path("c"), Path("c.png"))
    assert events == [("p", 0, 3), ("p", 1, 3), ("e", "b", "broken"), ("p", 2, 3), ("p", 3, 3)]
    assert rep.done == 3 and rep.failed == [(Path("b"), "broken")] and rep.ok == [(Path("c"), Path("c.png"))]


# ---------------------------------------------------------------------------- batch_by_size


def test_batch_by_size_groups_same_sizes_and_sends_tiles_alone():
    sizes = [(8, 8), (8, 12), (8, 8), (40, 40), (8, 8), (8, 12), (8, 8)]
    items = [_item(f"f{i}", h, w) for i, (h, w) in enumerate(sizes)]
    out = list(batch.batch_by_size(items, 2, needs_tiles=lambda h, w: max(h, w) > 32))
    names = [[it.job.src.name for it in b] for b in out]
    assert names == [["f0", "f2"], ["f3"], ["f1", "f5"], ["f4", "f6"]]
    # every item exactly once, each batch one size
    assert sorted(n for b in names for n in b) == sorted(f"f{i}" for i in range(len(sizes)))
    assert all(len({tuple(it.image.shape) for it in b}) == 1 for b in out)


def test_batch_by_size_bounds_waiting_images():
    # all sizes different: never more than 2 * batch_size images wait
    items = [_item(f"f{i}", 8, 8 + 4 * i) for i in range(9)]
    waiting_max = 0
    pulled = 0

    def source():
        nonlocal pulled
        for it in items:
            pulled += 1
            yield it

    seen = 0
    for b in batch.batch_by_size(source(), 3, needs_tiles=lambda h, w: False):
        seen += len(b)
        waiting_max = max(waiting_max, pulled - seen)
        assert len(b) == 1
    assert seen == 9 and waiting_max <= 6


# ---------------------------------------------------------------------------- decode


def test_decode_keeps_input_order_and_records_failures():
    jobs = [Job(Path(f"f{i}"), Path(f"o{i}")) for i in range(8)]
    live, peak, lock = 0, 0, threading.Lock()

    def load(src: Path):
        nonlocal live, peak
        with lock:
            live += 1
            peak = max(peak, live)
        time.sleep(0.02 * ((7 - int(src.name[1:])) % 3))  # finish out of order
        with lock:
            live -= 1
        i = int(src.name[1:])
        if i == 3:
            raise ImtransError(f"cannot read image '{src}': it is truncated")
        if i == 5:
            raise ValueError("odd")
        return torch.full((3, 2, 2), i, dtype=torch.uint8), None

    rep = TranslateReport(total=8)
    got = [int(it.image[0, 0, 0]) for it in batch.decode(jobs, load, rep, workers=3, prefetch=4)]
    assert got == [0, 1, 2, 4, 6, 7]
    assert rep.failed == [(Path("f3"), "it is truncated"), (Path("f5"), "ValueError: odd")]
    assert peak <= 3


# ---------------------------------------------------------------------------- run and write


class _FailsOnWidth(torch.nn.Module):
    """Negates the image; a RuntimeError (like out-of-memory) for one width."""

    def __init__(self, bad_width: int):
        super().__init__()
        self.bad_width = bad_width

    def forward(self, x):
        if x.shape[-1] == self.bad_width:
            raise RuntimeError("out of memory")
        return -x


def test_run_fails_only_the_batch_that_fails():
    t = Translator(_FailsOnWidth(12), device="cpu", precision="fp32")
    items = [_item("a", 8, 8), _item("b", 8, 12), _item("c", 8, 8)]
    items[0].image.fill_(255)
    rep = TranslateReport(total=3)
    out = list(batch.run([[items[0], items[2]], [items[1]]], t, rep))
    assert [it.job.src.name for it, _ in out] == ["a", "c"]
    assert out[0][1].shape == (8, 8, 3) and int(out[0][1].max()) == 0  # 255 -> +1 -> -1 -> 0
    assert out[1][1].min() == 255  # 0 -> -1 -> +1 -> 255
    assert rep.failed == [(Path("b"), "translation failed (out of memory)")]


def test_write_failure_is_one_files_failure(tmp_path):
    (tmp_path / "taken").mkdir()  # a folder where a file should go: that write fails
    jobs = [Job(Path("a"), tmp_path / "a.png"), Job(Path("b"), tmp_path / "taken"), Job(Path("c"), tmp_path / "c.png")]
    results = [(Item(j, torch.zeros(1), None), np.zeros((2, 2, 3), np.uint8)) for j in jobs]
    rep = TranslateReport(total=3)
    batch.write(results, lambda arr, alpha: b"data", rep, workers=2, max_pending=1)
    assert [s.name for s, _ in rep.ok] == ["a", "c"] and (tmp_path / "c.png").read_bytes() == b"data"
    assert len(rep.failed) == 1 and rep.failed[0][0] == Path("b") and "could not write" in rep.failed[0][1]


# ---------------------------------------------------------------------------- plan and the edge cases


def test_same_stem_inputs_are_all_kept(translator, tmp_path, capsys):
    from imtrans.cli import main

    src = tmp_path / "in"
    (src / "d").mkdir(parents=True)
    for name, seed in (("x.jpg", 1), ("x.png", 2), ("y.jpg", 3), ("d/x.webp", 4), ("d/x.jpeg", 5)):
        _img(12, 16, seed).save(src / name)
    p = batch.plan(src, tmp_path / "out")
    dst = {j.src.relative_to(src).as_posix(): j.dst.relative_to((tmp_path / "out").resolve()).as_posix() for j in p.jobs}
    assert dst == {"x.jpg": "x.jpg.png", "x.png": "x.png", "y.jpg": "y.png",
                   "d/x.jpeg": "d/x.png", "d/x.webp": "d/x.webp.png"}
    assert sorted(s.name for s, _ in p.renamed) == ["x.jpg", "x.webp"]
    # with --format jpg the .jpg input keeps the plain name
    p = batch.plan(src, tmp_path / "out", format="jpg")
    assert {j.src.name: j.dst.name for j in p.jobs if j.src.parent == src}["x.png"] == "x.png.jpg"

    rep = translator.translate_folder(src, tmp_path / "out")
    assert len(rep.ok) == 5 and not rep.failed and len(rep.renamed) == 2
    # each output is the translation of its own input (different inputs, different outputs)
    a, b = (np.asarray(Image.open(tmp_path / "out" / n)) for n in ("x.png", "x.jpg.png"))
    assert not np.array_equal(a, b)
    assert np.array_equal(a, np.asarray(translator(Image.open(src / "x.png"))))

    with pytest.raises(SystemExit) as e:
        main(["translate", str(_model(tmp_path, translator)), str(src), "-o", str(tmp_path / "o2"), "--no-progress"])
    assert e.value.code == 0
    err = capsys.readouterr().err
    assert "x.jpg.png" in err and "same name" in err


def test_explicit_files_of_one_name_are_still_refused(translator, tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        _img(8, 8).save(tmp_path / d / "x.png")
    with pytest.raises(ImtransError, match="would all be written to"):
        batch.plan([tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"], tmp_path / "out")


def test_dangling_symlink_is_reported_like_an_unreadable_file(translator, tmp_path, capsys):
    from imtrans.cli import main

    src = tmp_path / "in"
    src.mkdir()
    _img(12, 16).save(src / "good.png")
    (src / "gone.png").symlink_to(tmp_path / "deleted.png")
    rep = translator.translate_folder(src, tmp_path / "out")
    assert [s.name for s, _ in rep.ok] == ["good.png"]
    assert [(s.name, "symbolic link" in r and "does not exist" in r) for s, r in rep.failed] == [("gone.png", True)]
    # named explicitly, too
    rep = translator.translate_folder([src / "gone.png", src / "good.png"], tmp_path / "out2")
    assert [s.name for s, _ in rep.failed] == ["gone.png"] and len(rep.ok) == 1
    with pytest.raises(SystemExit) as e:
        main(["translate", str(_model(tmp_path, translator)), str(src), "-o", str(tmp_path / "o3"), "--no-progress"])
    assert e.value.code == 1
    assert "gone.png" in capsys.readouterr().err


def test_folder_without_images_says_so_and_exits_non_zero(translator, tmp_path, capsys):
    from imtrans.cli import main

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no pictures here")
    with pytest.raises(ImtransError, match="no image files found"):
        translator.translate_folder(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(SystemExit) as e:
        main(["translate", str(_model(tmp_path, translator)), str(tmp_path / "empty"), "-o", str(tmp_path / "out"),
              "--no-progress"])
    assert e.value.code == 1
    assert "no image files found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _model(tmp_path: Path, translator: Translator) -> Path:
    from imtrans.engine.checkpoint import save_weights

    G = translator.net
    path = tmp_path / "model.safetensors"
    if not path.exists():
        save_weights(path, {"G": G}, {"nets": {"G": {"kind": "generator", "spec": G.imtrans_part.spec}},
                                      "translators": {"a2b": "G"}})
    return path
