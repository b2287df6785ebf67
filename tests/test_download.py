"""Downloads are whole or absent: mrcnn.weights.download, the COCO weights
(mrcnn.utils.download_trained_weights, the --weights coco cache) and the
COCO sample's zips, against a local HTTP server on 127.0.0.1 (no network).
"""

import hashlib
import http.server
import io
import os
import threading
import zipfile

import h5py
import numpy as np
import pytest

from mrcnn import utils
from mrcnn.cli import commands as cli
from mrcnn.weights import coco as coco_weights_module
from mrcnn.weights import download
from samples.coco import coco

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.files[path] (bytes); behaviours by path prefix:
    /short/... announces the full length, sends half, then closes;
    /stall/... announces the length and sends nothing until released."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = self.server.files.get(self.path.split("/", 2)[-1])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/stall/"):
            self.server.release.wait(30)
            return
        if self.path.startswith("/short/"):
            body = body[:len(body) // 2]
        self.wfile.write(body)
        self.server.requests.append(self.path)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local HTTP server; .url(name, mode="ok") gives a file's URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.requests = {}, []
    httpd.release = threading.Event()
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,),
                              daemon=True)
    thread.start()
    host, port = httpd.server_address
    httpd.url = lambda name, mode="ok": "http://{}:{}/{}/{}".format(
        host, port, mode, name)
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()


def files_in(folder):
    return sorted(os.listdir(str(folder)))


# ------------------------------------------------------------ mrcnn.weights.download

def test_fetch_writes_the_whole_file_and_checks_it(server, tmp_path):
    server.files["a.bin"] = PAYLOAD
    target = tmp_path / "a.bin"
    download.fetch(server.url("a.bin"), str(target), size=len(PAYLOAD),
                   md5=hashlib.md5(PAYLOAD).hexdigest(), verbose=False)
    assert target.read_bytes() == PAYLOAD
    assert files_in(tmp_path) == ["a.bin"]


@pytest.mark.parametrize("mode, check, reason", [
    ("short", {}, "connection ended after 5120 of 10240 bytes"),
    ("ok", {"size": len(PAYLOAD) + 1}, "got 10240 bytes, expected 10241"),
    ("ok", {"md5": hashlib.md5(b"other").hexdigest()}, "MD5"),
])
def test_a_truncated_or_wrong_download_leaves_the_old_file(
        server, tmp_path, mode, check, reason):
    server.files["a.bin"] = PAYLOAD
    target = tmp_path / "a.bin"
    target.write_bytes(b"previous")
    with pytest.raises(download.DownloadError, match=reason):
        download.fetch(server.url("a.bin", mode), str(target), verbose=False,
                       **check)
    assert target.read_bytes() == b"previous"
    assert files_in(tmp_path) == ["a.bin"]  # no partial file either


def test_a_stalled_server_times_out(server, tmp_path):
    server.files["a.bin"] = PAYLOAD
    with pytest.raises(download.DownloadError, match="timed out"):
        download.fetch(server.url("a.bin", "stall"), str(tmp_path / "a.bin"),
                       timeout=0.2, verbose=False)
    assert files_in(tmp_path) == []


def make_zip(entries, compression=zipfile.ZIP_DEFLATED):
    """Zip bytes holding {name: bytes}."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


IMAGES = {"val2017/{}.jpg".format(i): bytes([i]) * 3000 for i in range(3)}


def test_extract_zip_puts_folders_in_place_and_merges(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "mine.json").write_text("{}")
    path = tmp_path / "a.zip"
    path.write_bytes(make_zip(dict(IMAGES, **{"annotations/x.json": b"[]"})))
    download.extract_zip(str(path), str(tmp_path))
    for name, data in IMAGES.items():
        assert (tmp_path / name).read_bytes() == data
    assert files_in(tmp_path / "annotations") == ["mine.json", "x.json"]
    assert files_in(tmp_path) == ["a.zip", "annotations", "val2017"]


def test_a_damaged_zip_extracts_nothing(tmp_path):
    data = bytearray(make_zip(IMAGES, zipfile.ZIP_STORED))
    # A byte of the last member's data: its CRC-32 fails after the first
    # two members were extracted (into the staging folder).
    offset = data.index(b"val2017/2.jpg") + len("val2017/2.jpg") + 5
    data[offset] ^= 0xFF
    path = tmp_path / "a.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(zipfile.BadZipFile, match="CRC"):
        download.extract_zip(str(path), str(tmp_path))
    assert files_in(tmp_path) == ["a.zip"]


def test_an_interrupted_extraction_leaves_no_folder(tmp_path, monkeypatch):
    path = tmp_path / "a.zip"
    path.write_bytes(make_zip(IMAGES))
    real_extract = zipfile.ZipFile.extract

    def interrupted(archive, member, *args, **kwargs):
        if str(getattr(member, "filename", member)).endswith("2.jpg"):
            raise KeyboardInterrupt  # e.g. Ctrl-C during the extraction
        return real_extract(archive, member, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        download.extract_zip(str(path), str(tmp_path))
    assert files_in(tmp_path) == ["a.zip"]
    monkeypatch.undo()
    download.extract_zip(str(path), str(tmp_path))  # redone whole
    assert files_in(tmp_path / "val2017") == ["0.jpg", "1.jpg", "2.jpg"]


# --------------------------------------------------------- the COCO weights

def write_h5(path):
    """A small real HDF5 file; returns its bytes."""
    with h5py.File(str(path), "w") as f:
        f["w"] = np.arange(1000, dtype=np.float32)
    return path.read_bytes()


@pytest.fixture
def coco_weights(server, tmp_path, monkeypatch):
    """The COCO weights URL, size and MD5 pointed at a small HDF5 file the
    local server holds."""
    weights = write_h5(tmp_path / "served.h5")
    os.remove(str(tmp_path / "served.h5"))
    server.files["mask_rcnn_coco.h5"] = weights
    monkeypatch.setattr(coco_weights_module, "COCO_MODEL_URL",
                        server.url("mask_rcnn_coco.h5"))
    monkeypatch.setattr(coco_weights_module, "COCO_MODEL_SIZE", len(weights))
    monkeypatch.setattr(coco_weights_module, "COCO_MODEL_MD5",
                        hashlib.md5(weights).hexdigest())
    return weights


def test_download_trained_weights_checks_what_arrives(
        server, coco_weights, tmp_path, monkeypatch):
    target = tmp_path / "w" / "mask_rcnn_coco.h5"
    utils.download_trained_weights(str(target), verbose=0)
    assert target.read_bytes() == coco_weights
    # Cut short: nothing is saved, and the message says what to fetch.
    os.remove(str(target))
    short_url = server.url("mask_rcnn_coco.h5", "short")
    monkeypatch.setattr(coco_weights_module, "COCO_MODEL_URL", short_url)
    with pytest.raises(utils.WeightsDownloadError) as error:
        utils.download_trained_weights(str(target), verbose=0)
    assert short_url in str(error.value) and str(target) in str(error.value)
    assert files_in(target.parent) == []


def test_the_published_weights_digest_is_a_real_md5():
    """The figures come from the sources the code cites; they must at least
    have an MD5's form and the size an HDF5 file of that model has."""
    assert len(utils.COCO_MODEL_MD5) == 32
    int(utils.COCO_MODEL_MD5, 16)
    assert 200e6 < utils.COCO_MODEL_SIZE < 300e6


@pytest.mark.parametrize("damage", ["truncated", "not_hdf5", "missing"])
def test_a_damaged_cached_weights_file_is_fetched_again(
        server, coco_weights, tmp_path, damage):
    coco_path = tmp_path / "mask_rcnn_coco.h5"
    if damage == "truncated":  # an interrupted download of the old code
        coco_path.write_bytes(coco_weights[:len(coco_weights) // 3])
    elif damage == "not_hdf5":  # e.g. a saved error page of the right size
        coco_path.write_bytes(b"<html>" + b" " * (len(coco_weights) - 6))
    assert utils.damaged_trained_weights(str(coco_path)) is not None
    kind, path = cli.weights_file("coco", str(coco_path), None)
    assert (kind, path) == ("coco", str(coco_path))
    assert coco_path.read_bytes() == coco_weights
    assert len(server.requests) == 1
    assert utils.damaged_trained_weights(str(coco_path)) is None
    cli.weights_file("coco", str(coco_path), None)
    assert len(server.requests) == 1  # a whole file is used as it is


# ------------------------------------------------------ the COCO sample zips

def test_coco_sample_downloads_over_https():
    where = coco.coco_file_locations("/data", "train", "2017")
    assert where["image_url"].startswith("https://")
    assert where["annotation_url"].startswith("https://")


def test_coco_sample_redownloads_a_damaged_zip_and_extracts_whole(
        server, tmp_path):
    server.files["val2017.zip"] = make_zip(IMAGES)
    zip_path = tmp_path / "val2017.zip"
    zip_path.write_bytes(b"PK\x03\x04 cut short")  # an old partial download
    coco.download_and_unzip(server.url("val2017.zip"), str(zip_path),
                            str(tmp_path), verbose=False)
    assert len(server.requests) == 1
    for name, data in IMAGES.items():
        assert (tmp_path / name).read_bytes() == data
    # A cut-short download leaves no zip and no folder.
    server.files["train2017.zip"] = make_zip(
        {"train2017/a.jpg": os.urandom(5000)})
    with pytest.raises(coco.CocoDownloadError, match="5000|bytes"):
        coco.download_and_unzip(server.url("train2017.zip", "short"),
                                str(tmp_path / "train2017.zip"),
                                str(tmp_path), verbose=False)
    assert files_in(tmp_path) == ["val2017", "val2017.zip"]
