"""Dataset download against a local HTTP server: full, resumed, unsafe archive, unknown name."""

import http.server
import io
import threading
import zipfile

import pytest

from imtrans.data.download import CYCLEGAN_DATASETS, DEFAULT_URL, download_dataset
from imtrans.errors import ImtransError


def make_zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def server():
    """A threaded local server; ``files`` maps a URL path to bytes; ``ranges`` records Range headers."""
    state = {"files": {}, "ranges": [], "honour_range": True}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):  # keep test output quiet
            pass

        def do_GET(self):
            data = state["files"].get(self.path)
            if data is None:
                self.send_error(404)
                return
            rng = self.headers.get("Range")
            state["ranges"].append(rng)
            if rng and state["honour_range"]:
                start = int(rng.split("=")[1].split("-")[0])
                body = data[start:]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                body = data
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    state["base"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()


DATA = make_zip(
    {
        "mini/trainA/1.txt": b"a" * 5000,
        "mini/trainB/2.txt": b"b" * 3000,
        "mini/testA/3.txt": b"c",
        "mini/testB/4.txt": b"d",
    }
)


def test_full_download(server, tmp_path):
    server["files"]["/mini.zip"] = DATA
    out = download_dataset("mini", root=tmp_path, url=server["base"] + "/mini.zip", progress=False)
    assert out == tmp_path / "mini"
    assert (out / "trainA" / "1.txt").read_bytes() == b"a" * 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mini"]  # zip, .part and temp dir gone
    assert server["ranges"] == [None]
    # Already present: returned without another request.
    download_dataset("mini", root=tmp_path, url=server["base"] + "/mini.zip", progress=True)
    assert len(server["ranges"]) == 1


@pytest.mark.parametrize("honour", [True, False])
def test_resumed_download(server, tmp_path, honour):
    server["files"]["/mini.zip"] = DATA
    server["honour_range"] = honour
    cut = len(DATA) // 3
    (tmp_path / "mini.zip.part").write_bytes(DATA[:cut])
    out = download_dataset("mini", root=tmp_path, url=server["base"] + "/mini.zip", progress=False)
    assert server["ranges"] == [f"bytes={cut}-"]
    assert (out / "trainB" / "2.txt").read_bytes() == b"b" * 3000
    assert not (tmp_path / "mini.zip.part").exists()


def test_refuses_escaping_member(server, tmp_path):
    root = tmp_path / "root"
    server["files"]["/evil.zip"] = make_zip({"evil/ok.txt": b"fine", "../escape.txt": b"gotcha"})
    with pytest.raises(ImtransError, match=r"\.\./escape\.txt"):
        download_dataset("evil", root=root, url=server["base"] + "/evil.zip", progress=False)
    assert not (tmp_path / "escape.txt").exists()
    assert not (root / "evil").exists()
    assert [p.name for p in root.iterdir()] == ["evil.zip"]  # no extraction leftovers


def test_corrupt_zip(server, tmp_path):
    server["files"]["/bad.zip"] = b"PK not really a zip"
    with pytest.raises(ImtransError, match="not a valid zip"):
        download_dataset("bad", root=tmp_path, url=server["base"] + "/bad.zip", progress=False)


def test_http_error(server, tmp_path):
    with pytest.raises(ImtransError, match="HTTP 404"):
        download_dataset("gone", root=tmp_path, url=server["base"] + "/gone.zip", progress=False)


def test_unknown_name_suggests(tmp_path):
    with pytest.raises(ImtransError, match="horse2zebra"):
        download_dataset("horse2zebr", root=tmp_path)
    assert "horse2zebra" in CYCLEGAN_DATASETS and "{name}" in DEFAULT_URL


# --- pix2pix archives (.tar.gz from the official pix2pix location) ---------------------------------

def make_tar(members, links=()):
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


TAR = make_tar({"facades/train/1.jpg": b"x" * 4000, "facades/val/2.jpg": b"y" * 10, "facades/test/3.jpg": b"z"})


@pytest.fixture
def pix2pix_server(server, monkeypatch):
    from imtrans.data import download

    # the official pattern, pointed at the local server
    monkeypatch.setattr(download, "PIX2PIX_URL", server["base"] + "/pix2pix/datasets/{name}.tar.gz")
    return server


def test_pix2pix_names_use_the_official_pix2pix_location(pix2pix_server, tmp_path):
    from imtrans.data.download import PIX2PIX_DATASETS, PIX2PIX_URL

    assert PIX2PIX_URL.endswith("/pix2pix/datasets/{name}.tar.gz")
    pix2pix_server["files"]["/pix2pix/datasets/facades.tar.gz"] = TAR
    pix2pix_server["files"]["/pix2pix/datasets/edges2shoes.tar.gz"] = make_tar({"edges2shoes/train/a.jpg": b"s"})
    out = download_dataset("facades", root=tmp_path, kind="pix2pix", progress=False)
    assert (out / "train" / "1.jpg").read_bytes() == b"x" * 4000 and (out / "val" / "2.jpg").exists()
    # a name only pix2pix has needs no --kind
    out = download_dataset("edges2shoes", root=tmp_path, progress=False)
    assert (out / "train" / "a.jpg").read_bytes() == b"s"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edges2shoes", "facades"]
    assert set(PIX2PIX_DATASETS) == {"facades", "maps", "edges2shoes", "cityscapes", "night2day", "edges2handbags"}


def test_pix2pix_download_resumes(pix2pix_server, tmp_path):
    pix2pix_server["files"]["/pix2pix/datasets/maps.tar.gz"] = make_tar({"maps/train/1.jpg": b"m" * 9000})
    data = pix2pix_server["files"]["/pix2pix/datasets/maps.tar.gz"]
    cut = len(data) // 2
    (tmp_path / "maps.tar.gz.part").write_bytes(data[:cut])
    out = download_dataset("maps", root=tmp_path, kind="pix2pix", progress=False)
    assert pix2pix_server["ranges"] == [f"bytes={cut}-"]
    assert (out / "train" / "1.jpg").read_bytes() == b"m" * 9000


@pytest.mark.parametrize("members,links,bad", [
    ({"night2day/ok.jpg": b"1", "../escape.jpg": b"2"}, (), r"\.\./escape\.jpg"),
    ({"night2day/ok.jpg": b"1", "/abs.jpg": b"2"}, (), "/abs.jpg"),
    ({"night2day/ok.jpg": b"1"}, [("night2day/link", "../../outside")], "night2day/link"),
])
def test_pix2pix_tar_slip_is_refused(pix2pix_server, tmp_path, members, links, bad):
    root = tmp_path / "root"
    pix2pix_server["files"]["/pix2pix/datasets/night2day.tar.gz"] = make_tar(members, links)
    with pytest.raises(ImtransError, match=bad):
        download_dataset("night2day", root=root, kind="pix2pix", progress=False)
    assert not (tmp_path / "escape.jpg").exists() and not (root / "night2day").exists()
    assert [p.name for p in root.iterdir()] == ["night2day.tar.gz"]  # no extraction leftovers


def test_corrupt_tar_and_cityscapes(pix2pix_server, tmp_path):
    pix2pix_server["files"]["/pix2pix/datasets/edges2handbags.tar.gz"] = TAR[: len(TAR) // 2]
    with pytest.raises(ImtransError, match=r"not a valid tar\.gz archive"):
        download_dataset("edges2handbags", root=tmp_path, kind="pix2pix", progress=False)
    with pytest.raises(ImtransError, match="cityscapes-dataset.com"):
        download_dataset("cityscapes", root=tmp_path, kind="pix2pix", progress=False)
    with pytest.raises(ImtransError, match="did you mean"):
        download_dataset("edges2shoe", root=tmp_path, kind="pix2pix", progress=False)


def test_offline_download_says_where_to_put_the_archive_by_hand(tmp_path):
    """No network: the error names the file to save by hand, and the same command then uses that file."""
    url = "http://127.0.0.1:9/mini.zip"  # the discard port: nothing listens, the connection is refused
    with pytest.raises(ImtransError) as err:
        download_dataset("mini", root=tmp_path, url=url, progress=False, timeout=5)
    msg = str(err.value)
    where = tmp_path / "mini.zip"
    assert f"download {url} another way and save it as {where}" in msg and "\n" not in msg
    where.write_bytes(DATA)  # fetched another way
    out = download_dataset("mini", root=tmp_path, url=url, progress=False, timeout=5)
    assert (out / "trainA" / "1.txt").read_bytes() == b"a" * 5000 and not where.exists()
