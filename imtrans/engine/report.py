"""Run outputs a person looks at: sample grids (PNG), metrics.jsonl and index.html."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo
from torchvision.utils import make_grid

from imtrans.atomic import atomic_write_bytes, atomic_write_text
from imtrans.engine.svgplot import Panel, small_multiples


GRID_TILE = 128  # sample tiles are scaled up (nearest neighbour) to at least this many pixels
LABELS_KEY = "imtrans:labels"  # PNG text chunk holding the grid's column labels as JSON


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # scalable font, Pillow >= 10.1
    except TypeError:  # pragma: no cover - older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _group_tensor(row: list[torch.Tensor], cols: int, scale: int) -> torch.Tensor:
    """One row of ``[B,C,H,W]`` tensors in [-1,1] -> ``[B*cols,3,H*s,W*s]`` in [0,1], sample-major."""
    tiles = []
    for t in row:
        t = t.detach().float().cpu()[:, :3]
        if t.shape[1] == 1:
            t = t.expand(-1, 3, -1, -1)
        tiles.append((t.clamp(-1, 1) + 1) / 2)
    blank = torch.ones_like(tiles[0])  # short rows are padded with white tiles
    tiles += [blank] * (cols - len(tiles))
    out = torch.stack(tiles, dim=1).flatten(0, 1)  # [B, cols, ...] -> sample by sample
    if scale > 1:  # nearest neighbour keeps every pixel a crisp square
        out = torch.nn.functional.interpolate(out, scale_factor=scale, mode="nearest")
    return out


def grid_image(rows: list[list[torch.Tensor]], labels: Sequence[Sequence[str]] | None = None,
               pad: int = 2, min_tile: int = GRID_TILE) -> Image.Image:
    """Rows of ``[B,C,H,W]`` tensors in [-1,1] -> one RGB image, each sample on its own line.

    Row ``k`` of ``rows`` (e.g. ``a, G(a), F(G(a))``) becomes a group of ``B`` lines under a
    header naming its columns (``labels[k]``, e.g. a scheme's ``sample_labels``).  Tiles
    are scaled up by a whole factor with nearest-neighbour so small images stay readable.
    The labels are also stored in the PNG's ``imtrans:labels`` text chunk.
    """
    h = rows[0][0].shape[-2]
    scale = max(1, min_tile // h)
    cols = max(len(r) for r in rows)
    groups = [make_grid(_group_tensor(r, cols, scale), nrow=cols, padding=pad, pad_value=1.0) for r in rows]
    font = _font(12)
    head = 20 if labels else 0
    cell = rows[0][0].shape[-1] * scale + pad  # make_grid: pad, tile, pad, tile, ..., pad
    canvas = Image.new("RGB", (groups[0].shape[-1], sum(g.shape[-2] + head for g in groups)), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for k, g in enumerate(groups):
        if labels and k < len(labels):
            for c, text in enumerate(labels[k][:cols]):
                # centred by measuring (anchors need FreeType; the bitmap fallback font has none)
                x = pad + c * cell + (cell - pad - draw.textlength(text, font=font)) / 2
                draw.text((max(0.0, x), y + 4), text, fill="black", font=font)
        arr = (g * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        canvas.paste(Image.fromarray(arr), (0, y + head))
        y += head + g.shape[-2]
    canvas.info[LABELS_KEY] = json.dumps([list(r) for r in labels or []])
    return canvas


def save_png(img: Image.Image, path: Path) -> None:
    """Write ``img`` as PNG atomically, keeping its ``imtrans:labels`` text chunk if it has one."""
    buf = io.BytesIO()
    meta = PngInfo()
    if LABELS_KEY in img.info:
        meta.add_text(LABELS_KEY, img.info[LABELS_KEY])
    img.save(buf, format="PNG", pnginfo=meta)
    atomic_write_bytes(path, buf.getvalue())


class MetricsLog:
    """Append-only JSON lines; each line is flushed so a crash loses at most the last one."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record, allow_nan=True) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    out = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash
    return out


def truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop records logged after the checkpoint's step (they will be logged again)."""
    if not path.exists():
        return
    keep = [r for r in read_metrics(path) if int(r.get("step", 0)) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


def baseline_pairs(metrics: dict[str, float]) -> list[tuple[str, float, float | None]]:
    """``(direction, error, copy_error)`` for each ``gt_l1_<direction>`` metric, in order.

    ``copy_l1_<direction>`` is the error of returning the input unchanged: the baseline a
    translation has to beat (``None`` where a metric has no such baseline).
    """
    return [(k[len("gt_l1_"):], v, metrics.get("copy_l1_" + k[len("gt_l1_"):]))
            for k, v in metrics.items() if k.startswith("gt_l1_")]


def describe_eval(after: dict[str, float], before: dict[str, float] | None = None) -> list[str]:
    """One line per direction for a person: the error, where it started, and the copy baseline."""
    lines, shown = [], set()
    for d, v, copy in baseline_pairs(after):
        shown |= {"gt_l1_" + d, "copy_l1_" + d}
        text = f"{d}: ground-truth error {v:.4f}"
        if before and "gt_l1_" + d in before:
            text += f" (before training {before['gt_l1_' + d]:.4f})"
        if copy:
            text += f"; copying the input scores {copy:.4f} (error / copy = {v / copy:.2f})"
        lines.append(text)
    lines += [f"{k}: {v:.4f}" for k, v in after.items() if k not in shown]
    return lines


def _loss_plots(records: list[dict[str, Any]]) -> str:
    train = [r for r in records if r.get("kind") == "train"]
    if not train:
        return "<p>No training metrics yet.</p>"
    keys = list(dict.fromkeys(k for r in train for k in r["losses"]))
    panels = [Panel(k, {k: [(r["step"], float(r["losses"][k])) for r in train if k in r["losses"]
                            and abs(float(r["losses"][k])) < 1e6]}) for k in keys]
    return small_multiples(panels) + _loss_legend(records, keys)


def _loss_legend(records: list[dict[str, Any]], keys: list[str]) -> str:
    """What each panel's loss name means, as the scheme describes it (its ``loss_labels``)."""
    legends = [r["losses"] for r in records if r.get("kind") == "legend" and isinstance(r.get("losses"), dict)]
    if not legends:
        return ""
    items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(legends[-1][k]))}</li>"
                    for k in keys if k in legends[-1])
    return f'<ul class="note">{items}</ul>' if items else ""


def run_history(records: list[dict[str, Any]]) -> list[str]:
    """Sentences on the run's interruptions and resumes, in order (``stop``/``finish``/``resume`` records)."""
    lines, ended = [], None  # how the last session ended: ("stop" | "finish", step)
    for r in records:
        kind, step = r.get("kind"), r.get("step")
        where = f"step {step} (in epoch {int(r.get('epoch', 0)) + 1})"
        if kind == "stop":
            lines.append(f"Stopped by {r.get('reason') or 'a request'} at {where}, with a checkpoint.")
        elif kind == "resume" and ended == ("finish", step):
            lines.append(f"Trained further: continued from the end of the finished run at {where}.")
        elif kind == "resume":
            how = "" if ended == ("stop", step) else (
                "Interrupted without a clean stop (killed or crashed): the steps after its last checkpoint were "
                "trained again. ")
            lines.append(f"{how}Resumed from the checkpoint at {where}.")
        if kind in ("stop", "finish", "resume"):
            ended = (kind, step)
    return lines


def _eval_plot(evals: list[dict[str, Any]]) -> str:
    if len(evals) < 2:
        return ""
    panels = []
    for d, _, copy in baseline_pairs(evals[-1]["metrics"]):
        pts = [(r["step"], r["metrics"]["gt_l1_" + d]) for r in evals if "gt_l1_" + d in r["metrics"]]
        panels.append(Panel(f"{d}: ground-truth error", {d: pts}, {"copying the input": copy} if copy else {}))
    for k in [k for k in evals[-1]["metrics"] if k.startswith("fid_")]:  # FID/KID runs (imtrans.eval)
        pts = [(r["step"], r["metrics"][k]) for r in evals if k in r["metrics"]]
        panels.append(Panel(f"FID {k[len('fid_'):]} (lower is better)", {k: pts}))
    return small_multiples(panels, width=320, height=170)


def _eval_table(evals: list[dict[str, Any]]) -> str:
    if not evals:
        return "<p>No evaluation yet.</p>"
    by_step: dict[Any, dict[str, Any]] = {}
    for r in evals:  # one row per step: an evaluation repeated at a step (the final one) replaces the earlier
        final = r.get("final") or by_step.get(r["step"], {}).get("final")
        by_step.pop(r["step"], None)
        by_step[r["step"]] = {**r, "final": bool(final)}
    evals = list(by_step.values())
    keys = list(dict.fromkeys(k for r in evals for k in r["metrics"]))
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        f"<tr><td>{r['step']}{' (final)' if r.get('final') else ''}</td>"
        + "".join(f"<td>{r['metrics'][k]:.4f}</td>" if k in r["metrics"] else "<td></td>" for k in keys)
        + "</tr>"
        for r in evals
    )
    return f"<table><thead><tr><th>step</th>{head}</tr></thead><tbody>{body}</tbody></table>"


def _grid_labels(path: Path) -> list[list[str]]:
    try:
        with Image.open(path) as im:
            return json.loads(im.info.get(LABELS_KEY, "[]"))
    except (OSError, ValueError):
        return []  # a grid being replaced or from an older version: no legend


_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}
h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
img{image-rendering:pixelated} figure{margin:1em 0} .plots{display:flex;flex-wrap:wrap;gap:6px}
table{border-collapse:collapse} th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2} .result{font-size:1.1em} .note{color:#666;font-size:.9em}"""


def write_index(run_dir: Path, title: str) -> None:
    """index.html: result against the copy baseline, loss panels, evaluation table, sample grids."""
    records = read_metrics(run_dir / "metrics.jsonl")
    evals = [r for r in records if r.get("kind") == "eval"]
    samples = sorted((run_dir / "samples").glob("*.png"), reverse=True)
    result = ""
    if evals:
        lines = describe_eval(evals[-1]["metrics"], evals[0]["metrics"] if len(evals) > 1 else None)
        items = "".join(f"<li>{html.escape(x)}</li>" for x in lines)
        result = (f"<h2>Result at step {evals[-1]['step']}</h2><ul class=\"result\">{items}</ul>"
                  "<p class=\"note\">Ground-truth error: mean |translation - truth| over held-out images, "
                  "in [0, 1] pixel units (lower is better).</p>")
    history = "".join(f"<p class=\"note\">{html.escape(x)}</p>" for x in run_history(records))
    legend = ""
    if samples and (labels := _grid_labels(samples[0])):
        legend = "<p>Each block of rows shows " + "; ".join(
            " | ".join(html.escape(x) for x in row) for row in labels) + ".</p>"
    imgs = "".join(
        f'<figure><h3>{html.escape(p.stem)}</h3><img src="samples/{html.escape(p.name)}" '
        f'alt="sample grid {html.escape(p.stem)}"></figure>'
        for p in samples
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head><body><h1>{html.escape(title)}</h1>
{history}{result}
<h2>Losses</h2>{_loss_plots(records)}
<h2>Evaluation</h2>{_eval_plot(evals)}{_eval_table(evals)}
<h2>Samples (newest first)</h2>{legend}{imgs or "<p>No samples yet.</p>"}
</body></html>"""
    atomic_write_text(run_dir / "index.html", page)
