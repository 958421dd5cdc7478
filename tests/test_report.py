"""The run report: sample grids, the loss panels and the evaluation table of index.html."""

import html
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from imtrans import registry
from imtrans.engine.report import describe_eval, grid_image, save_png, write_index
from imtrans.engine.svgplot import nice_ticks
from imtrans.recipe import recipe_from_dict

LOSSES = {"G_total": (9.8, 3.0), "G_gan_b": (0.45, 0.30), "cycle_a": (2.9, 0.5), "D_A": (0.35, 0.14)}
EVAL0 = {"gt_l1_a2b": 0.1475, "copy_l1_a2b": 0.0475, "gt_l1_b2a": 0.1371, "copy_l1_b2a": 0.0466}
EVAL1 = {"gt_l1_a2b": 0.0210, "copy_l1_a2b": 0.0475, "gt_l1_b2a": 0.0180, "copy_l1_b2a": 0.0466}


def write_run(run_dir, n=40):
    """A run folder with a loss history falling linearly from each loss's start to its end value."""
    recs = [{"kind": "eval", "step": 0, "epoch": 0, "metrics": EVAL0}]
    for i in range(1, n + 1):
        f = i / n
        recs.append({"kind": "train", "step": 25 * i, "epoch": 0, "lr": 2e-4,
                     "losses": {k: a + (b - a) * f for k, (a, b) in LOSSES.items()}})
    recs.append({"kind": "eval", "step": 25 * n, "epoch": 1, "metrics": EVAL1, "final": True})
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def panels(page):
    return re.findall(r'<svg class="panel".*?</svg>', page, flags=re.S)


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0.14, 9.8) == [0, 2, 4, 6, 8, 10]
    for lo, hi in [(0.28, 0.36), (0.0123, 0.0567), (3, 3), (-1.5, 7.2)]:
        t = nice_ticks(lo, hi)
        assert t[0] <= lo and t[-1] >= hi and 2 <= len(t) <= 8
        steps = {round(b - a, 12) for a, b in zip(t, t[1:])}
        assert len(steps) == 1  # evenly spaced
        mant = steps.pop() / 10 ** np.floor(np.log10(t[1] - t[0]))
        assert round(mant, 6) in (1, 2, 5)


def test_each_loss_gets_its_own_panel_with_its_own_ticks(tmp_path):
    write_run(tmp_path)
    write_index(tmp_path, "run")
    page = (tmp_path / "index.html").read_text()
    loss_part = page.split("<h2>Losses</h2>")[1].split("<h2>")[0]
    found = panels(loss_part)
    assert len(found) == len(LOSSES)
    for svg, (name, (a, b)) in zip(found, LOSSES.items()):
        assert name in svg
        ticks = [float(x) for x in re.findall(r'class="ytick"[^>]*>([^<]+)<', svg)]
        lo, hi = min(a, b), max(a, b)
        # the panel's axis follows this loss alone: it covers the data and not much more
        assert len(ticks) >= 3 and min(ticks) <= lo and max(ticks) >= hi
        assert max(ticks) - min(ticks) < 2.5 * (hi - lo), (name, ticks)


def test_eval_table_has_a_header_and_the_copy_baseline_is_labelled(tmp_path):
    write_run(tmp_path)
    write_index(tmp_path, "run")
    page = (tmp_path / "index.html").read_text()
    head = re.search(r"<thead>(.*?)</thead>", page, flags=re.S).group(1)
    assert re.findall(r"<th>([^<]+)</th>", head) == ["step", *EVAL0]
    assert "copying the input scores 0.0475" in page and "copying the input scores 0.0466" in page
    # the evaluation over steps, with the baseline drawn as a reference line
    ev = panels(page.split("<h2>Evaluation</h2>")[1])
    assert len(ev) == 2 and all("copying the input" in svg for svg in ev)


def test_describe_eval_states_baseline_and_ratio():
    lines = describe_eval(EVAL1, EVAL0)
    assert lines[0] == ("a2b: ground-truth error 0.0210 (before training 0.1475); "
                        "copying the input scores 0.0475 (error / copy = 0.44)")
    assert lines[1].startswith("b2a: ground-truth error 0.0180")
    assert describe_eval({"fid": 12.5}) == ["fid: 12.5000"]


def test_grid_is_scaled_with_nearest_neighbour_labelled_and_listed(tmp_path):
    torch.manual_seed(0)
    a, b, c = (torch.rand(2, 3, 32, 32) * 2 - 1 for _ in range(3))
    labels = [["A: input", "G(A): translated", "F(G(A)): reconstructed"], ["B: input", "F(B): translated"]]
    img = grid_image([[a, b, c], [b, a]], labels=labels, pad=2)
    s, head = 4, 20  # 32 px tiles are scaled 4x to reach 128 px; a 20 px header per row group
    cell = 32 * s + 2
    assert img.size == (2 + 3 * cell, 2 * (head + 2 + 2 * cell))
    arr = np.asarray(img).astype(int)
    # sample 1 of `b` in row group 0, column 1: every source pixel became an s x s block
    y0, x0 = head + 2 + cell, 2 + cell
    tile = arr[y0:y0 + 32 * s, x0:x0 + 32 * s]
    src = ((b[1].clamp(-1, 1) + 1) / 2 * 255).round().permute(1, 2, 0).numpy().astype(int)
    assert np.array_equal(tile, src.repeat(s, 0).repeat(s, 1))
    # each labelled column has text (dark pixels) in its header; the missing third label does not
    second = head + 2 + 2 * cell
    for g, y in ((0, 0), (1, second)):
        for col in range(3):
            strip = arr[y:y + head, 2 + col * cell:(col + 1) * cell]
            assert (strip.min() < 100) == (col < len(labels[g])), (g, col)
    # the short second row is padded with a white tile
    assert arr[second + head + 2:, 2 + 2 * cell:].min() == 255
    save_png(img, tmp_path / "samples" / "step_0000010.png")
    with Image.open(tmp_path / "samples" / "step_0000010.png") as im:
        assert json.loads(im.info["imtrans:labels"]) == labels
    write_run(tmp_path)
    write_index(tmp_path, "run")
    page = (tmp_path / "index.html").read_text()
    assert "A: input | G(A): translated | F(G(A)): reconstructed" in page
    assert '<h3>step_0000010</h3><img src="samples/step_0000010.png"' in page


@pytest.mark.parametrize("scheme", ["cyclegan"])
def test_scheme_sample_labels_match_its_sample_rows(scheme):
    r = recipe_from_dict({
        "model": {"generator": {"name": "resnet", "ngf": 4, "n_blocks": 1},
                  "discriminator": {"name": "patchgan", "ndf": 4, "n_layers": 1}},
        "scheme": {"name": scheme}, "train": {"precision": "fp32"},
    })
    s = registry.build_spec("scheme", r.scheme.as_dict(), r)
    x = torch.zeros(1, 3, 16, 16)
    rows = s.sample_rows(x, x)
    assert [len(r) for r in rows] == [len(lab) for lab in s.sample_labels]
    assert s.sample_labels[0][0] == "A: input" and "translated" in s.sample_labels[0][1]


@pytest.mark.slow  # a subprocess that imports torch and trains two steps
def test_run_summary_prints_the_copy_baseline(tmp_path):
    import tomli_w
    from conftest import run_cli, tiny_recipe_data

    p = tmp_path / "tiny.toml"
    p.write_text(tomli_w.dumps(tiny_recipe_data(tmp_path, "tiny", max_steps=2)))
    r = run_cli("run", str(p), "--no-progress", env={"COLUMNS": "80"})  # as in a log file: 80 columns
    assert r.returncode == 0, r.stderr
    lines = [x.strip() for x in r.stdout.splitlines()]
    for d in ("a2b", "b2a"):
        line = next(x for x in lines if x.startswith(f"{d}: ground-truth error"))
        assert "before training" in line and "copying the input scores" in line
    assert not any(x.startswith("copy_l1") for x in lines)  # the baseline sits next to the result


def test_report_lists_the_final_evaluation_once_and_says_when_the_run_was_interrupted(tmp_path):
    write_run(tmp_path)
    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    last = recs.pop()  # an evaluation at the last step, then the final one at the same step
    recs[21:21] = [{"kind": "stop", "step": 500, "epoch": 0, "reason": "SIGINT"},
                   {"kind": "resume", "step": 500, "epoch": 0, "text": "..."}]
    recs[30:30] = [{"kind": "resume", "step": 600, "epoch": 0, "text": "..."}]  # after a kill -9
    recs += [dict(last, final=False), last]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    write_index(tmp_path, "run")
    page = (tmp_path / "index.html").read_text()
    rows = re.findall(r"<tr><td>([^<]+)</td>", page)
    assert rows == ["0", "1000 (final)"]
    assert "Stopped by SIGINT at step 500 (in epoch 1), with a checkpoint." in page
    assert "Resumed from the checkpoint at step 500 (in epoch 1)." in page
    assert "killed or crashed" in page.split("step 500 (in epoch 1).")[-1]
    assert "Resumed from the checkpoint at step 600" in page
    from imtrans.engine.report import run_history

    extended = run_history([{"kind": "finish", "step": 9, "epoch": 3}, {"kind": "resume", "step": 9, "epoch": 3}])
    assert extended == ["Trained further: continued from the end of the finished run at step 9 (in epoch 4)."]


@pytest.mark.parametrize("scheme, d_in", [("cyclegan", 3), ("pix2pix", 6)])
def test_every_loss_a_scheme_logs_is_explained_on_the_report_page(tmp_path, scheme, d_in):
    r = recipe_from_dict({
        "model": {"generator": {"name": "resnet", "ngf": 4, "n_blocks": 1},
                  "discriminator": {"name": "patchgan", "ndf": 4, "n_layers": 1, "in_channels": d_in}},
        "scheme": {"name": scheme}, "train": {"precision": "fp32"},
    })
    s = registry.build_spec("scheme", r.scheme.as_dict(), r)
    batch = {"a": torch.zeros(1, 3, 16, 16), "b": torch.zeros(1, 3, 16, 16)}
    s.setup(batch)
    losses = s.train_step(batch)
    assert set(losses) <= set(s.loss_labels), set(losses) - set(s.loss_labels)
    recs = [{"kind": "legend", "losses": s.loss_labels},
            {"kind": "train", "step": 1, "epoch": 0, "lr": 2e-4, "losses": {k: float(v) for k, v in losses.items()}}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs))
    write_index(tmp_path, "run")
    page = (tmp_path / "index.html").read_text().split("<h2>Losses</h2>")[1].split("<h2>")[0]
    for k in losses:
        assert f"<li><b>{k}</b>: {html.escape(s.loss_labels[k])}</li>" in page
