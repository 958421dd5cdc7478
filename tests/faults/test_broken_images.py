"""Broken and awkward image files in training data and in translate inputs."""

from __future__ import annotations

import json
import logging

import pytest

import corpus
import helpers
from helpers import ONE_THREAD, one_torch_thread  # noqa: F401  (autouse fixture)
from imtrans.engine.trainer import Trainer
from imtrans.errors import ImtransError
from imtrans.recipe import recipe_from_dict


def folder_recipe(tmp_path, folder, name, **train):
    data = helpers.tiny_data(tmp_path, name, **train)
    data["data"]["a"] = {"name": "folder", "path": str(folder)}
    return recipe_from_dict(data)


def test_corpus_kinds():
    assert len(corpus.broken_files()) == 6 and len(corpus.odd_files()) == 7


def test_training_skips_broken_files_once_each_and_counts_them(tmp_path, caplog):
    folder = tmp_path / "mixed"
    broken = corpus.write(folder, corpus.broken_files())
    odd = corpus.write(folder, corpus.odd_files())
    corpus.write(folder, corpus.good_files(5))  # 18 files: one epoch of 9 steps visits every A index
    r = folder_recipe(tmp_path, folder, "mixed", epochs=1, epochs_decay=1, steps_per_epoch=None, log_every=3)
    with caplog.at_level(logging.WARNING, logger="imtrans.data"):
        res = Trainer(r, progress=False).fit()
    assert res.steps == 18 and res.stopped == "finished"  # the odd files (1x1, CMYK, 16-bit, ...) trained
    assert res.skipped_images == len(broken)
    warnings = [rec.getMessage() for rec in caplog.records if rec.name == "imtrans.data"]
    for p in broken:  # one warning per broken file, over two epochs
        assert sum(p.name in w for w in warnings) == 1, (p.name, warnings)
    for p in odd:
        assert not any(p.name in w for w in warnings), p.name
    recs = [json.loads(l) for l in (tmp_path / "mixed" / "metrics.jsonl").read_text().splitlines()]
    data = [x for x in recs if x["kind"] == "data"]
    assert data and data[-1]["skipped"] == len(broken)
    assert sorted(data[-1]["files"]["A"]) == sorted(p.name for p in broken)


def test_a_domain_of_only_broken_files_stops_clearly(tmp_path, caplog):
    folder = tmp_path / "allbad"
    corpus.write(folder, corpus.broken_files())
    with pytest.raises(ImtransError, match=r"no image of domain A could be decoded \(6 tried\)"):
        Trainer(folder_recipe(tmp_path, folder, "allbad", max_steps=2), progress=False).fit()


def test_translate_reports_and_skips_broken_files(tmp_path):
    from imtrans.translate.translator import load_translator

    Trainer(recipe_from_dict(helpers.tiny_data(tmp_path, "tr", max_steps=1)), progress=False).fit()
    folder = tmp_path / "in"
    broken = corpus.write(folder, corpus.broken_files())
    odd = corpus.write(folder, corpus.odd_files())
    t = load_translator(tmp_path / "tr", device="cpu", precision="fp32")
    rep = t.translate_folder(folder, tmp_path / "out", workers=1)
    assert sorted(p.name for p, _ in rep.failed) == sorted(p.name for p in broken)
    assert all(reason for _, reason in rep.failed)
    assert sorted(p.name for p, _ in rep.ok) == sorted(p.name for p in odd)
    assert all(out.exists() for _, out in rep.ok)
