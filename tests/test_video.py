"""Videos and GIFs translated frame by frame: counts, size, timing, audio, pixels, broken files, interruption."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

from imtrans import load_translator, registry
from imtrans.engine.checkpoint import save_checkpoint
from imtrans.errors import ImtransError

av = pytest.importorskip("av")

from media import make_clip, make_gif  # noqa: E402  (after the importorskip: it needs PyAV)

from imtrans.translate.video import iter_frames, split_inputs, translate_video  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.manual_seed(0)
    G = registry.build("generator", "resnet", ngf=4, n_blocks=1).eval()
    F = registry.build("generator", "resnet", ngf=4, n_blocks=1).eval()
    root = tmp_path_factory.mktemp("video") / "run"
    meta = {"nets": {n: {"kind": "generator", "spec": g.imtrans_part.spec} for n, g in (("G", G), ("F", F))},
            "translators": {"a2b": "G", "b2a": "F"}}
    save_checkpoint(root / "checkpoints" / "latest", {"G": G, "F": F}, meta, None)
    return root


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=24, size=(48, 32), fps=12)


@pytest.fixture(scope="module")
def t(run_dir):
    return load_translator(run_dir, device="cpu", precision="fp32")


def _reference(t, frame: np.ndarray) -> np.ndarray:
    return t.translate_batch([torch.from_numpy(frame.copy()).permute(2, 0, 1)])[0].astype(np.int16)


def _probe(path):
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], (c.streams.audio[0] if c.streams.audio else None)
        packets = [bytes(p) for p in c.demux(a) if p.size] if a is not None else []
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        info = {"size": (v.codec_context.width, v.codec_context.height), "rate": v.average_rate,
                "audio_codec": a.codec_context.name if a else None,
                "audio_s": float(a.duration * a.time_base) if a is not None and a.duration else None}
    return info, packets


def test_lossless_round_trip_frames_fps_size_audio(t, clip, tmp_path):
    out = tmp_path / "zebra.mp4"
    r = translate_video(t, clip, out, crf=0)
    src_info, src_audio = _probe(clip)
    out_info, out_audio = _probe(out)
    ins, outs = list(iter_frames(clip)), list(iter_frames(out))
    assert r.frames == len(ins) == len(outs) == 24
    assert out_info["size"] == src_info["size"] == (48, 32) and r.size == (48, 32)
    assert out_info["rate"] == src_info["rate"] == Fraction(12)
    # the audio is remuxed: the same AAC packets, byte for byte, and the same duration
    assert r.audio == "copied" and out_info["audio_codec"] == "aac"
    assert out_audio == src_audio and len(out_audio) > 10
    assert out_info["audio_s"] == pytest.approx(src_info["audio_s"], abs=0.03)
    assert out_info["audio_s"] == pytest.approx(24 / 12, abs=0.1)
    # crf 0 = lossless 4:4:4: only RGB<->YUV rounding separates the file from the translator's output
    for a, b in zip(ins, outs):
        assert np.abs(_reference(t, a) - b).max() <= 3


def test_default_quality_keeps_frame_order(t, clip, tmp_path):
    out = tmp_path / "zebra.mkv"
    translate_video(t, clip, out)
    ins, outs = list(iter_frames(clip)), list(iter_frames(out))
    assert len(outs) == len(ins)
    refs = [_reference(t, a) for a in ins]
    for i, b in enumerate(outs):
        err = np.abs(refs[i] - b).mean()
        assert err < 16  # 4:2:0 at crf 18 on the noisy output of an untrained net
        # closer to its own frame's translation than to its neighbours': no frame dropped, doubled or reordered
        for j in (i - 1, i + 1):
            if 0 <= j < len(refs):
                assert err < np.abs(refs[j] - b).mean()


def test_webm_reencodes_audio_it_cannot_hold(t, clip, tmp_path):
    r = translate_video(t, clip, tmp_path / "z.webm", crf=30)
    info, _ = _probe(tmp_path / "z.webm")
    assert r.audio == "re-encoded" and info["audio_codec"] == "opus"
    assert r.frames == 24 and info["size"] == (48, 32)


def test_gif_round_trip(t, tmp_path):
    src, durations = make_gif(tmp_path / "a.gif")
    r = translate_video(t, src, tmp_path / "b.gif")
    out = Image.open(tmp_path / "b.gif")
    assert r.frames == out.n_frames == len(durations) and out.size == (41, 30)
    got = []
    for k in range(out.n_frames):
        out.seek(k)
        got.append(out.info["duration"])
    assert got == durations and out.info.get("loop") == 0
    for a, b in zip(iter_frames(src), iter_frames(tmp_path / "b.gif")):
        assert np.abs(_reference(t, a) - b).mean() < 8  # GIF's 256-colour palette is the codec here


def test_frames_dir_is_exact(t, clip, tmp_path):
    r = translate_video(t, clip, tmp_path / "frames", frames_dir=True)
    files = sorted((tmp_path / "frames").glob("*.png"))
    assert r.frames == len(files) == 24 and files[0].name == "000000.png"
    for a, f in zip(iter_frames(clip), files):
        assert np.array_equal(_reference(t, a), np.asarray(Image.open(f)))


def test_interrupted_job_leaves_nothing_at_target(t, clip, tmp_path):
    out = tmp_path / "out" / "zebra.mp4"

    def stop(done, total):
        if done >= 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        translate_video(t, clip, out, on_progress=stop)
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_broken_and_misnamed(t, clip, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 50)
    with pytest.raises(ImtransError, match="cannot read video .*bad.mp4.*not a video FFmpeg can open"):
        translate_video(t, bad, tmp_path / "o.mp4")
    (tmp_path / "empty.mov").write_bytes(b"")
    with pytest.raises(ImtransError, match="empty"):
        translate_video(t, tmp_path / "empty.mov", tmp_path / "o.mov")
    with pytest.raises(ImtransError, match="wrong extension"):
        translate_video(t, clip, tmp_path / "o.gif")
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".*"))


def test_split_inputs(tmp_path, clip):
    (tmp_path / "f" / "sub").mkdir(parents=True)
    (tmp_path / "f" / "sub" / "c.MP4").write_bytes(b"x")
    (tmp_path / "vids").mkdir()
    (tmp_path / "vids" / "v.webm").write_bytes(b"x")
    Image.new("RGB", (8, 8)).save(tmp_path / "f" / "i.png")
    videos, images = split_inputs([str(clip), str(tmp_path / "f"), str(tmp_path / "vids"), str(tmp_path / "f" / "i.png")])
    assert [(p.name, r.as_posix()) for p, r in videos] == [("clip.mp4", "clip.mp4"), ("c.MP4", "sub/c.MP4"), ("v.webm", "v.webm")]
    # a folder with images stays an image input, a videos-only folder does not, nor a named video
    assert images == [str(tmp_path / "f"), str(tmp_path / "f" / "i.png")]


@pytest.mark.slow  # three CLI processes
def test_cli_folder_with_broken_video_and_single_file_output(run_dir, clip, tmp_path):
    from conftest import run_cli

    src = tmp_path / "in"
    src.mkdir()
    (src / "clip.mp4").write_bytes(clip.read_bytes())
    (src / "broken.mov").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(src / "still.png")
    res = run_cli("translate", str(run_dir), str(src), "-o", str(tmp_path / "out"), "--no-progress", "--precision", "fp32")
    assert res.returncode == 1, res.stderr
    assert "broken.mov" in res.stderr and "Traceback" not in res.stderr
    assert (tmp_path / "out" / "clip.mp4").is_file() and (tmp_path / "out" / "still.png").is_file()
    assert not (tmp_path / "out" / "broken.mov").exists() and not list((tmp_path / "out").glob(".*"))
    # one video, -o names the file
    res = run_cli("translate", str(run_dir), str(clip), "-o", str(tmp_path / "z.mp4"), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert len(list(iter_frames(tmp_path / "z.mp4"))) == 24
    res = run_cli("translate", str(run_dir), str(clip), str(src / "still.png"), "-o", str(tmp_path / "y.mp4"))
    assert res.returncode == 1 and "give -o a folder" in res.stderr
