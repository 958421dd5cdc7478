"""The video part of `imtrans translate`: one progress bar per video (frames and frames/s), a summary table."""

from __future__ import annotations

import time
from pathlib import Path

from imtrans.cli._console import console, err_console


def run_videos(
    t, videos: list[tuple[Path, Path]], out: Path, *, suffix: str, frames_dir: bool, crf: int,
    skip_existing: bool, progress: bool, images_too: bool, rank: int = 0, world: int = 1,
) -> list[tuple[Path, str]]:
    """Translate every video; returns the ``(video, reason)`` failures (already printed)."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from imtrans.engine.distributed import shard
    from imtrans.errors import ImtransError
    from imtrans.translate.video import plan_jobs, require_av, translate_video

    jobs = shard(plan_jobs(videos, out, suffix=suffix, frames_dir=frames_dir, images_too=images_too), rank, world)
    if any(not s.suffix.lower() == ".gif" for s, _ in jobs):
        require_av()
    failed: list[tuple[Path, str]] = []
    table = Table(title="imtrans translate (videos)", show_header=True)
    for col, just in (("video", "left"), ("frames", "right"), ("size", "right"), ("audio", "left"), ("frames/s", "right")):
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    for src, dst in jobs:
        if skip_existing and dst.exists():
            table.add_row(escape(str(dst)), "-", "-", "-", "exists")
            continue
        try:
            if progress:
                with Progress(TextColumn(f"[bold]{escape(src.name)}"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("frames {task.fields[rate]}"), TimeRemainingColumn(),
                              console=err_console, transient=True) as bar:
                    task = bar.add_task("video", total=None, rate="")
                    t0 = time.perf_counter()

                    def on_progress(done: int, total: int | None) -> None:
                        dt = time.perf_counter() - t0
                        bar.update(task, completed=done, total=total, rate=f"{done / dt:.1f} fps" if dt > 0 else "")

                    r = translate_video(t, src, dst, frames_dir=frames_dir, crf=crf, on_progress=on_progress)
            else:
                r = translate_video(t, src, dst, frames_dir=frames_dir, crf=crf)
        except (ImtransError, RuntimeError, OSError) as e:  # one video's failure (bad file, encoder, memory)
            reason = str(e) if isinstance(e, ImtransError) else f"'{src}' failed: {type(e).__name__}: {e}"
            failed.append((src, reason))
            err_console.print(f"[red]failed[/] {escape(reason)}", highlight=False, soft_wrap=True)
            table.add_row(escape(str(src)), "-", "-", "-", "[red]failed[/]")
            continue
        table.add_row(escape(str(r.dst)), str(r.frames), f"{r.size[0]}x{r.size[1]}", r.audio, f"{r.frames_per_second:.2f}")
    console.print(table)
    return failed
