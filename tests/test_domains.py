"""Folder and layout domains, and their registration through the registry."""

import pytest
from PIL import Image

from imtrans.data import DOMAINS, FolderDomain
from imtrans.errors import ImtransError


def _img(path, color=(10, 20, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), color).save(path)


def test_folder_lists_loads_and_names(tmp_path):
    _img(tmp_path / "b.png")
    _img(tmp_path / "sub" / "a.jpg")
    d = DOMAINS["folder"]("train", path=str(tmp_path))
    assert len(d) == 2 and [d.name(i) for i in range(2)] == ["b.png", "sub/a.jpg"]
    assert d.load(0).mode == "RGB" and d.load(0).getpixel((0, 0)) == (10, 20, 30)
    assert len(DOMAINS["folder"]("train", path=str(tmp_path), recursive=False)) == 1


def test_folder_errors(tmp_path):
    with pytest.raises(ImtransError, match="does not exist"):
        DOMAINS["folder"]("train", path=str(tmp_path / "nope"))
    with pytest.raises(ImtransError, match="no images"):
        DOMAINS["folder"]("train", path=str(tmp_path))


@pytest.mark.parametrize("spelling", ["trainA", "train_A", "train_a"])
def test_layout_spellings(tmp_path, spelling):
    _img(tmp_path / spelling / "x.png")
    d = DOMAINS["layout"]("train", root=str(tmp_path), side="a")
    assert isinstance(d, FolderDomain) and len(d) == 1


def test_layout_missing_names_folder_and_download(tmp_path):
    root = tmp_path / "horse2zebra"
    with pytest.raises(ImtransError) as e:
        DOMAINS["layout"]("test", root=str(root), side="b", dataset="horse2zebra")
    msg = str(e.value)
    assert "testB" in msg and f"imtrans data download horse2zebra --root {tmp_path.as_posix()}" in msg


def test_limit_keeps_the_first_images_in_sorted_order(tmp_path):
    from imtrans import registry
    from imtrans.registry import PartParamsError

    for name in ("c.png", "a.png", "b.png", "d.png"):
        _img(tmp_path / "trainA" / name)
    d = registry.build("domain", "layout", "train", root=str(tmp_path), side="a", limit=2)
    assert [d.name(i) for i in range(len(d))] == ["a.png", "b.png"]
    assert len(registry.build("domain", "folder", "train", path=str(tmp_path), limit=10)) == 4
    with pytest.raises(PartParamsError, match="limit"):
        registry.build("domain", "folder", "train", path=str(tmp_path), limit=0)


def test_registry_builds_domains(tmp_path):
    from imtrans import registry

    reg = registry.get_registry("domain")
    assert "synthetic" in reg
    d = reg.build("synthetic", "test", count=3, size=16)
    assert len(d) == 3 and d.imtrans_part.spec["task"] == "stripes"
    with pytest.raises(ImtransError):
        reg.build("synthetic", "train", task="zebra")


# -- UnpairedDataset / make_loader ------------------------------------------------

import logging  # noqa: E402

import torch  # noqa: E402

from imtrans.augment import AUGMENTATIONS  # noqa: E402
from imtrans.data.synthetic import SyntheticDomain  # noqa: E402
from imtrans.data.unpaired import UnpairedDataset, make_loader, set_loader_epoch  # noqa: E402


def _ds(count_a=6, count_b=4, seed=0, **kw):
    prep = AUGMENTATIONS["resize"](size=16).prepare
    a = SyntheticDomain("train", side="a", count=count_a, size=16)
    b = SyntheticDomain("train", side="b", count=count_b, size=16)
    return UnpairedDataset(a, b, prep, prep, seed=seed, **kw)


def test_unpaired_items_and_reproducible_pairing():
    ds = _ds()
    assert len(ds) == 6
    item = ds[7 % 6]
    assert item["a"].dtype == torch.uint8 and item["a"].shape == (3, 16, 16) and item["a_index"] == 1
    picks0 = [ds[(0, i)]["b_index"] for i in range(6)]
    assert picks0 == [_ds()[(0, i)]["b_index"] for i in range(6)]  # same seed, same pairs
    epochs = {tuple(ds[(e, i)]["b_index"] for i in range(6)) for e in range(5)}
    assert len(epochs) > 1  # the pairing changes with the epoch
    ds.set_epoch(3)
    assert [ds[i]["b_index"] for i in range(6)] == [ds[(3, i)]["b_index"] for i in range(6)]


def test_unpaired_skips_bad_files(tmp_path, caplog):
    for n in ("0.png", "2.png"):
        Image.new("RGB", (4, 4), (1, 2, 3)).save(tmp_path / n)
    (tmp_path / "1.png").write_bytes(b"broken")
    dom = DOMAINS["folder"]("train", path=str(tmp_path))
    prep = AUGMENTATIONS["none"]().prepare
    ds = UnpairedDataset(dom, dom, prep, prep, cache=True)
    with caplog.at_level(logging.WARNING, logger="imtrans.data"):
        items = [ds[i] for i in range(3)]
    assert [it["a_index"] for it in items] == [0, 2, 2]  # 1 is replaced by the next good one
    assert ds.skipped >= 1
    assert sum("1.png" in r.getMessage() for r in caplog.records) == ds.skipped  # one warning per file


def test_unpaired_all_bad_and_empty(tmp_path):
    (tmp_path / "x.png").write_bytes(b"broken")
    dom = DOMAINS["folder"]("train", path=str(tmp_path))
    prep = AUGMENTATIONS["none"]().prepare
    with pytest.raises(ImtransError, match="could be decoded"):
        UnpairedDataset(dom, dom, prep, prep)[0]

    class Empty:
        def __len__(self):
            return 0

    with pytest.raises(ImtransError, match="no images"):
        UnpairedDataset(Empty(), dom, prep, prep)


def test_loader_order_is_function_of_seed_and_epoch():
    ds = _ds(count_a=8, count_b=5)

    def run(loader):
        return [(b["a_index"].tolist(), b["b_index"].tolist()) for b in loader]

    l1 = make_loader(ds, batch_size=3, workers=0, seed=1, epoch=2)
    l2 = make_loader(_ds(count_a=8, count_b=5), batch_size=3, workers=0, seed=1, epoch=2)
    r1 = run(l1)
    assert r1 == run(l2) and len(r1) == 2  # drop_last
    set_loader_epoch(l1, 3)
    assert run(l1) != r1
    set_loader_epoch(l1, 2)
    assert run(l1) == r1
    with pytest.raises(ImtransError):
        make_loader(ds, batch_size=100, workers=0, seed=0, epoch=0)


def test_loader_with_workers_sees_epochs():
    """Persistent workers hold their own dataset copy; the epoch must still reach them."""
    ds = _ds(count_a=4, count_b=4)
    loader = make_loader(ds, batch_size=2, workers=1, seed=0, epoch=0)
    assert loader.persistent_workers
    list(loader)  # start the workers on epoch 0
    set_loader_epoch(loader, 1)
    got = [b["b_index"].tolist() for b in loader]
    order = loader.sampler.order()
    want = [[ds[(1, i)]["b_index"] for i in order[k:k + 2]] for k in (0, 2)]
    assert got == want


def test_loader_does_not_consume_global_rng():
    loader = make_loader(_ds(count_a=4, count_b=4), batch_size=2, workers=0, seed=0, epoch=0)
    torch.manual_seed(5)
    list(loader)
    after = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(1))


def test_epoch_sampler_shards_are_disjoint_and_interleave_like_a_bigger_batch():
    from imtrans.data.unpaired import EpochSampler

    full = EpochSampler(11, seed=3, epoch=2).order()
    shards = [list(EpochSampler(11, seed=3, epoch=2, rank=r, world=2)) for r in range(2)]
    assert all(len(s) == 5 for s in shards)
    got = [i for _, i in shards[0]] + [i for _, i in shards[1]]
    assert len(set(got)) == 10 and set(got) <= set(full)
    # step k of a 2-process run sees the items of step k of one process with batch 2
    assert [i for _, i in shards[0]] == full[0:10:2] and [i for _, i in shards[1]] == full[1:10:2]
    resumed = EpochSampler(11, seed=3, epoch=2, rank=1, world=2, start=2)
    assert list(resumed) == shards[1][2:]
