"""Run outputs a person looks at: sample grids (PNG), metrics.jsonl and index.html."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from imtrans.engine.checkpoint import atomic_write_bytes, atomic_write_text


def grid_image(rows: list[list[torch.Tensor]], pad: int = 2) -> Image.Image:
    """Rows of [B,C,H,W] tensors in [-1,1] -> one RGB image; each sample gets its own row."""
    lines = []
    for row in rows:
        for i in range(row[0].shape[0]):
            lines.append([t[i] for t in row])
    h, w = lines[0][0].shape[-2:]
    cols = max(len(r) for r in lines)
    canvas = torch.ones(3, len(lines) * (h + pad) + pad, cols * (w + pad) + pad)
    for r, line in enumerate(lines):
        for c, img in enumerate(line):
            img = img.detach().float().cpu()
            if img.shape[0] == 1:
                img = img.expand(3, -1, -1)
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            canvas[:, y : y + h, x : x + w] = (img[:3].clamp(-1, 1) + 1) / 2
    arr = (canvas * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr)


def save_png(img: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
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


def _svg_plot(records: list[dict[str, Any]], width: int = 720, height: int = 260, kind: str = "train",
              field: str = "losses", prefix: str = "") -> str:
    """Curves of ``record[field][key]`` over steps as inline SVG (no plotting dependency).

    Defaults: the training losses; ``kind="eval", field="metrics", prefix="fid_"`` plots FID.
    """
    train = [r for r in records if r.get("kind") == kind and any(k.startswith(prefix) for k in r.get(field, {}))]
    if not train:
        return "<p>No training metrics yet.</p>"
    keys = list(dict.fromkeys(k for r in train for k in r[field] if k.startswith(prefix)))
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    xs = [r["step"] for r in train]
    x0, x1 = min(xs), max(xs) or 1
    vals = [v for r in train for k, v in r[field].items() if k in keys and v == v and abs(v) < 1e6]
    y0, y1 = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if y1 - y0 < 1e-9:
        y1 = y0 + 1
    m = 40

    def px(x: float, y: float) -> str:
        fx = m + (x - x0) / max(1e-9, x1 - x0) * (width - 2 * m)
        fy = height - m - (y - y0) / (y1 - y0) * (height - 2 * m)
        return f"{fx:.1f},{fy:.1f}"

    lines, legend = [], []
    for i, k in enumerate(keys):
        pts = [px(r["step"], r[field][k]) for r in train if k in r[field] and r[field][k] == r[field][k]]
        c = colors[i % len(colors)]
        lines.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{" ".join(pts)}"/>')
        legend.append(f'<span style="color:{c}">&#9632; {html.escape(k)}</span>')
    axes = (
        f'<line x1="{m}" y1="{height - m}" x2="{width - m}" y2="{height - m}" stroke="#888"/>'
        f'<line x1="{m}" y1="{m}" x2="{m}" y2="{height - m}" stroke="#888"/>'
        f'<text x="{m}" y="{height - 10}" font-size="11">step {x0}</text>'
        f'<text x="{width - m - 60}" y="{height - 10}" font-size="11">step {x1}</text>'
        f'<text x="2" y="{m}" font-size="11">{y1:.3g}</text><text x="2" y="{height - m}" font-size="11">{y0:.3g}</text>'
    )
    return f'<svg width="{width}" height="{height}">{axes}{"".join(lines)}</svg><div>{" ".join(legend)}</div>'


def write_index(run_dir: Path, title: str) -> None:
    """index.html: loss plot, evaluation results and every sample grid, newest first."""
    records = read_metrics(run_dir / "metrics.jsonl")
    evals = [r for r in records if r.get("kind") == "eval"]
    samples = sorted((run_dir / "samples").glob("*.png"), reverse=True)
    ev_rows = "".join(
        f"<tr><td>{r['step']}</td>" + "".join(f"<td>{html.escape(k)} = {v:.4f}</td>" for k, v in r["metrics"].items()) + "</tr>"
        for r in evals
    )
    has_fid = any(k.startswith("fid_") for r in evals for k in r["metrics"])
    fid_plot = _svg_plot(records, kind="eval", field="metrics", prefix="fid_") if has_fid else ""
    imgs = "".join(
        f'<figure><figcaption>{html.escape(p.stem)}</figcaption><img src="samples/{html.escape(p.name)}"></figure>'
        for p in samples
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} img{{image-rendering:pixelated;max-width:100%}} figure{{margin:1em 0}}</style>
</head><body><h1>{html.escape(title)}</h1>
<p>Sample rows: a | G(a) | F(G(a)) and b | F(b) | G(F(b)).</p>
<h2>Losses</h2>{_svg_plot(records)}
<h2>Evaluation</h2>{fid_plot}<table>{ev_rows or "<tr><td>none yet</td></tr>"}</table>
<h2>Samples</h2>{imgs}
</body></html>"""
    atomic_write_text(run_dir / "index.html", page)
