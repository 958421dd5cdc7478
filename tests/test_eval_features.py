"""The FID Inception: published weights layout, resize modes, batch independence, weights download."""

import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch
import torchvision

from imtrans.errors import ImtransError
from imtrans.eval import weights as W
from imtrans.eval.features import (
    InceptionFeatures,
    clean_resize,
    extract_features,
    inception_v3_fid,
    legacy_pytorch_resize,
)
from imtrans.eval.inception import FIDInceptionV3


def _published_layout(num_classes=1008, drop_counters=True):
    """A state dict laid out like pt_inception-2015-12-05: pytorch-fid loads that file into exactly this
    torchvision model (1008 classes, no auxiliary head), so torchvision is the independent oracle."""
    tv = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=num_classes, init_weights=False)
    sd = tv.state_dict()
    if drop_counters:  # files saved by old PyTorch versions carry no num_batches_tracked
        sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    g = torch.Generator().manual_seed(0)
    return {k: (torch.randn(v.shape, generator=g) * 0.05 if v.is_floating_point() else v) for k, v in sd.items()}


def test_published_layout_loads_unchanged(tmp_path, monkeypatch):
    sd = _published_layout()
    assert tuple(sd["fc.weight"].shape) == (1008, 2048)
    assert tuple(sd["Mixed_7c.branch_pool.conv.weight"].shape) == (192, 2048, 1, 1)
    assert tuple(sd["Conv2d_1a_3x3.conv.weight"].shape) == (32, 3, 3, 3)
    path = tmp_path / "pt_inception.pth"
    torch.save(sd, path)
    hashed = []
    real_sha = W._sha256
    monkeypatch.setattr(W, "_sha256", lambda p: hashed.append(p) or real_sha(p))
    with pytest.warns(W.WeightsWarning, match="not the published") as caught:
        ext = inception_v3_fid(weights=str(path))
    # the 95 MB file is hashed once, and its warning printed once, per extractor
    assert len(hashed) == 1 and len([w for w in caught if issubclass(w.category, W.WeightsWarning)]) == 1
    assert ext.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ext.identity()["resize"] == "clean" and ext.identity()["dim"] == 2048
    mine = ext.net.state_dict()
    for k, v in sd.items():
        assert torch.equal(mine[k], v), k


def test_wrong_layouts_are_named(tmp_path):
    bad = tmp_path / "imagenet1000.pth"
    torch.save(_published_layout(num_classes=1000), bad)
    with pytest.raises(ImtransError, match="key 'fc.weight' has shape"), pytest.warns(W.WeightsWarning):
        inception_v3_fid(weights=str(bad))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(ImtransError, match="could not read"), pytest.warns(W.WeightsWarning):
        inception_v3_fid(weights=str(junk))
    with pytest.raises(ImtransError, match="does not exist"):
        inception_v3_fid(weights=str(tmp_path / "missing.pth"))


def test_full_size_forward_gives_2048_finite_features():
    ext = inception_v3_fid(weights="random")
    imgs = [torch.randint(0, 256, (3, 64, 80), dtype=torch.uint8), torch.randint(0, 256, (3, 300, 200), dtype=torch.uint8)]
    f = extract_features(imgs, ext, batch_size=2)
    assert f.shape == (2, 2048) and np.isfinite(f).all() and f.std() > 0


@pytest.fixture(scope="module")
def small_net():
    # The real architecture at its smallest input (75 px) keeps these tests fast; FID itself uses 299.
    return FIDInceptionV3().random_init(1)


@pytest.mark.parametrize("resize", ["clean", "legacy_pytorch"])
def test_features_do_not_depend_on_batch_size_or_order(small_net, resize):
    ext = InceptionFeatures(small_net, "random-init", resize, input_size=75)
    g = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (3, 40 + 8 * i, 48), dtype=torch.uint8, generator=g) for i in range(3)]
    one = extract_features(imgs, ext, batch_size=1)
    three = extract_features(imgs[::-1], ext, batch_size=3)[::-1]
    np.testing.assert_allclose(one, three, rtol=1e-4, atol=1e-6)


def test_bf16_features_stay_close_to_fp32(small_net):
    import copy

    imgs = [torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(2)]
    f32 = extract_features(imgs, InceptionFeatures(small_net, "random-init", input_size=75))
    ext16 = InceptionFeatures(copy.deepcopy(small_net), "random-init", input_size=75).set_precision("bf16")
    f16 = extract_features(imgs, ext16)
    assert np.abs(f16 - f32).mean() < 0.05 * np.abs(f32).mean()


def test_clean_resize_is_antialiased_and_legacy_is_not():
    # A one-pixel checkerboard shrunk 3.3x: the antialiased resize averages it to grey, bilinear aliases.
    board = ((np.indices((997, 997)).sum(0) % 2) * 255).astype(np.uint8)
    img = torch.from_numpy(np.stack([board] * 3))
    clean, legacy = clean_resize(img), legacy_pytorch_resize(img) * 255
    assert clean.shape == legacy.shape == (3, 299, 299)
    assert abs(float(clean.mean()) - 127.5) < 1 and float(clean[:, 10:-10, 10:-10].std()) < 5
    assert float(legacy.std()) > 25
    flat = torch.full((3, 40, 70), 77, dtype=torch.uint8)
    assert torch.allclose(clean_resize(flat), torch.tensor(77.0), atol=1e-3)
    assert torch.allclose(legacy_pytorch_resize(flat) * 255, torch.tensor(77.0), atol=1e-3)


def _pil_bicubic_weights(n_in: int, n_out: int) -> np.ndarray:
    """PIL's separable bicubic resampling as a matrix, written from its definition (Keys kernel a = -0.5,
    support 2 widened by the scale when shrinking, weights normalised per output pixel)."""
    def cubic(x):
        x, a = np.abs(x), -0.5
        return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                        np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))

    scale = n_in / n_out
    fscale = max(scale, 1.0)
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - 2 * fscale + 0.5), 0), min(int(centre + 2 * fscale + 0.5), n_in)
        w = cubic((np.arange(lo, hi) - centre + 0.5) / fscale)
        weights[i, lo:hi] = w / w.sum()
    return weights


def test_clean_resize_clips_like_clean_fid_on_a_hard_edged_label_map():
    """clean-fid clips each resized channel to [0, 255]; bicubic overshoots at every edge of a label map."""
    g = np.random.default_rng(0)
    palette = np.array([[0, 0, 170], [255, 85, 0], [0, 255, 255], [255, 255, 0], [0, 0, 0]], dtype=np.uint8)
    labels = palette[g.integers(0, len(palette), (6, 5))].repeat(9, 0).repeat(11, 1)  # 54x55 blocks, hard edges
    img = torch.from_numpy(labels).permute(2, 0, 1).contiguous()
    wy, wx = _pil_bicubic_weights(54, 299), _pil_bicubic_weights(55, 299)
    raw = np.stack([wy @ labels[:, :, c].astype(np.float64) @ wx.T for c in range(3)])
    assert raw.min() < -10 and raw.max() > 265  # the overshoot the clip removes
    want = np.clip(raw, 0, 255)
    got = clean_resize(img).numpy()
    assert got.shape == (3, 299, 299)
    assert np.abs(got - want).max() < 0.05


def test_rejects_non_rgb_input(small_net):
    with pytest.raises(ImtransError, match="uint8 RGB"):
        InceptionFeatures(small_net, "random-init").preprocess(torch.zeros(1, 8, 8, dtype=torch.uint8))


@pytest.fixture
def server():
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            data = files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield files, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_weights_download_is_verified_and_cached(server, tmp_path, monkeypatch):
    files, base = server
    payload = b"inception weights" * 1000
    files["/w.pth"] = payload
    digest = hashlib.sha256(payload).hexdigest()
    monkeypatch.setenv("IMTRANS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(W, "FID_WEIGHTS_SHA256", digest)
    dest = W.cached_weights_path()
    assert dest.parent == tmp_path / "home" / "eval" / "weights"
    path, sha = W.resolve_weights(url=base + "/w.pth", progress=False)
    assert path == dest and sha == digest and dest.read_bytes() == payload
    files.clear()  # cached now: no second request needed
    assert W.resolve_weights(url=base + "/w.pth", progress=False) == (dest, digest)


def test_corrupt_download_is_refused_and_removed(server, tmp_path):
    files, base = server
    files["/w.pth"] = b"tampered"
    dest = tmp_path / "w.pth"
    with pytest.raises(ImtransError, match="not the published"):
        W.download_weights(dest, url=base + "/w.pth", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_offline_message_says_where_to_put_the_file(tmp_path, monkeypatch, server):
    _, base = server
    monkeypatch.setenv("IMTRANS_HOME", str(tmp_path))
    where = str(tmp_path / "eval" / "weights" / W.FID_WEIGHTS_FILE)
    with pytest.raises(ImtransError, match="downloads are off") as e:
        W.resolve_weights(download=False)
    assert where in str(e.value)
    with pytest.raises(ImtransError, match="download failed") as e:
        W.resolve_weights(url=base + "/missing.pth", progress=False)
    assert where in str(e.value) and "HTTP 404" in str(e.value)
    W.cached_weights_path().write_bytes(b"corrupt")
    with pytest.raises(ImtransError, match="delete the file"):
        W.resolve_weights(download=False)


def test_the_constants_features_keeps_are_the_networks():
    """features.py keeps INPUT_SIZE and POOL_DIM itself so that registering parts imports no torchvision."""
    from imtrans.eval import features, inception

    assert (features.INPUT_SIZE, features.POOL_DIM) == (inception.INPUT_SIZE, inception.POOL_DIM)


def test_an_extractor_returning_other_than_its_declared_dim_is_refused():
    """A plugin extractor declaring dim = 100 and returning 48 features had its FID labelled dim 100
    (issue #26 item 3)."""
    from imtrans.eval.features import FeatureExtractor, extract_features

    class Liar(FeatureExtractor):
        dim = 100

        def preprocess(self, image):
            return image.float()[:, :8, :8] / 255

        def features(self, x):
            return x.flatten(1)[:, :48]

    imgs = [torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8) for _ in range(3)]
    with pytest.raises(ImtransError, match=r"declares dim = 100 but returned features of shape \(2, 48\)"):
        extract_features(imgs, Liar("random-init", "none"), batch_size=2)
    Liar.dim = 48
    assert extract_features(imgs, Liar("random-init", "none"), batch_size=2).shape == (3, 48)
