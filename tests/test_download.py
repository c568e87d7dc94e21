"""Tests of dismir_tf.data.download against a local HTTP server.

The server is a Range-capable handler written here, bound to 127.0.0.1 on an
ephemeral port; no test reaches the internet.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import random
import re
import socket
import threading

import pytest

from dismir_tf.data import download, ensure_raw, registry
from dismir_tf.data.download import check_gzip_stream, fetch
from dismir_tf.errors import DataFormatError, UserInputError


def _payload() -> bytes:
    """~60 kB of gzip, big enough for several 1 MiB-free reads to matter."""
    rng = random.Random(5)
    lines = "".join(
        f"{u}\t{rng.randint(0, 50)}\t{1000 + t}\n"
        for u in range(40)
        for t in range(200)
    )
    return gzip.compress(lines.encode("ascii"), mtime=0)


PAYLOAD = _payload()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; honours 'Range: bytes=N-' unless told not."""

    def do_GET(self):  # noqa: N802 (the stdlib's naming)
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404, "no such file")
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and srv.honour_range:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header(
                "Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}"
            )
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if srv.cut_after is not None:
            # Simulates a dropped connection: promise everything, send part.
            self.wfile.write(chunk[: srv.cut_after])
            self.wfile.flush()
            srv.cut_after = None
            self.close_connection = True
            return
        self.wfile.write(chunk)

    def log_message(self, *args):
        del args  # keep pytest output clean


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files = {"/data.tsv.gz": PAYLOAD}
    srv.requests = []
    srv.honour_range = True
    srv.cut_after = None
    thread = threading.Thread(
        target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_full_download_with_checks(server, tmp_path, capsys):
    dest = str(tmp_path / "raw" / "data.tsv.gz")
    out = fetch(
        server.url + "/data.tsv.gz",
        dest,
        expected_sha256=_sha(PAYLOAD),
        expected_size=len(PAYLOAD),
        check=check_gzip_stream,
    )
    assert out == dest
    with open(dest, "rb") as f:
        assert f.read() == PAYLOAD
    assert not os.path.exists(dest + ".part")
    assert server.requests == [("/data.tsv.gz", None)]
    err = capsys.readouterr().err
    assert "MB" in err and "100.0%" in err and "MB/s" in err


def test_no_progress_output_when_disabled(server, tmp_path, capsys):
    fetch(server.url + "/data.tsv.gz", str(tmp_path / "d.gz"), progress=False)
    assert capsys.readouterr().err == ""


def test_resume_from_partial_part(server, tmp_path):
    dest = str(tmp_path / "data.tsv.gz")
    with open(dest + ".part", "wb") as f:
        f.write(PAYLOAD[:12345])
    fetch(
        server.url + "/data.tsv.gz", dest, expected_sha256=_sha(PAYLOAD), progress=False
    )
    with open(dest, "rb") as f:
        assert f.read() == PAYLOAD
    assert server.requests == [("/data.tsv.gz", "bytes=12345-")]


def test_interrupted_download_keeps_part_and_then_resumes(server, tmp_path):
    dest = str(tmp_path / "data.tsv.gz")
    server.cut_after = 20000
    with pytest.raises(UserInputError) as excinfo:
        fetch(server.url + "/data.tsv.gz", dest, progress=False)
    assert "by hand" in str(excinfo.value)
    assert os.path.getsize(dest + ".part") == 20000
    assert not os.path.exists(dest)
    fetch(
        server.url + "/data.tsv.gz", dest, expected_sha256=_sha(PAYLOAD), progress=False
    )
    with open(dest, "rb") as f:
        assert f.read() == PAYLOAD
    assert server.requests[-1] == ("/data.tsv.gz", "bytes=20000-")


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.honour_range = False
    dest = str(tmp_path / "data.tsv.gz")
    with open(dest + ".part", "wb") as f:
        f.write(b"garbage that is not a prefix")
    fetch(
        server.url + "/data.tsv.gz", dest, expected_sha256=_sha(PAYLOAD), progress=False
    )
    with open(dest, "rb") as f:
        assert f.read() == PAYLOAD


def test_part_larger_than_expected_restarts(server, tmp_path):
    dest = str(tmp_path / "data.tsv.gz")
    with open(dest + ".part", "wb") as f:
        f.write(PAYLOAD + b"extra bytes")
    fetch(server.url + "/data.tsv.gz", dest, expected_size=len(PAYLOAD), progress=False)
    with open(dest, "rb") as f:
        assert f.read() == PAYLOAD
    assert server.requests == [("/data.tsv.gz", None)]


def test_part_larger_than_remote_file_restarts_after_416(server, tmp_path):
    dest = str(tmp_path / "data.tsv.gz")
    with open(dest + ".part", "wb") as f:
        f.write(PAYLOAD + b"extra bytes")
    fetch(server.url + "/data.tsv.gz", dest, progress=False)
    with open(dest, "rb") as f:
        assert f.read() == PAYLOAD
    assert [r[1] for r in server.requests] == [f"bytes={len(PAYLOAD) + 11}-", None]


def test_checksum_mismatch_fails_and_leaves_nothing(server, tmp_path):
    dest = str(tmp_path / "data.tsv.gz")
    with pytest.raises(UserInputError) as excinfo:
        fetch(
            server.url + "/data.tsv.gz",
            dest,
            expected_sha256=_sha(b"something else"),
            progress=False,
        )
    message = str(excinfo.value)
    assert "verification" in message and "sha256" in message
    assert dest in message  # where to put a hand-fetched copy
    assert not os.path.exists(dest)
    assert not os.path.exists(dest + ".part")


def test_corrupt_gzip_fails_the_structural_check(server, tmp_path):
    corrupt = bytearray(PAYLOAD)
    corrupt[-8] ^= 0xFF  # break the CRC-32 in the trailer
    server.files["/data.tsv.gz"] = bytes(corrupt)
    dest = str(tmp_path / "data.tsv.gz")
    with pytest.raises(UserInputError, match="verification"):
        fetch(
            server.url + "/data.tsv.gz", dest, check=check_gzip_stream, progress=False
        )
    assert not os.path.exists(dest)
    assert not os.path.exists(dest + ".part")


def test_wrong_size_fails(server, tmp_path):
    dest = str(tmp_path / "data.tsv.gz")
    with pytest.raises(UserInputError):
        fetch(
            server.url + "/data.tsv.gz",
            dest,
            expected_size=len(PAYLOAD) + 1,
            progress=False,
        )
    assert not os.path.exists(dest)


def test_http_404(server, tmp_path):
    dest = str(tmp_path / "x.gz")
    with pytest.raises(UserInputError, match="HTTP 404"):
        fetch(server.url + "/missing.gz", dest, progress=False)
    assert not os.path.exists(dest)


def test_server_down(tmp_path):
    # A port that was free a moment ago: nothing listens there.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = str(tmp_path / "data.tsv.gz")
    url = f"http://127.0.0.1:{port}/data.tsv.gz"
    with pytest.raises(UserInputError) as excinfo:
        fetch(url, dest, progress=False)
    message = str(excinfo.value)
    assert url in message and "by hand" in message and dest in message
    assert not os.path.exists(dest)


def test_check_gzip_stream(tmp_path):
    good = tmp_path / "good.gz"
    good.write_bytes(PAYLOAD)
    assert check_gzip_stream(str(good)) == len(gzip.decompress(PAYLOAD))
    plain = tmp_path / "plain.gz"
    plain.write_bytes(b"not gzip")
    with pytest.raises(DataFormatError, match="not a gzip"):
        check_gzip_stream(str(plain))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(PAYLOAD[: len(PAYLOAD) // 2])
    with pytest.raises(DataFormatError, match="truncated"):
        check_gzip_stream(str(cut))


def test_progress_is_throttled(monkeypatch):
    clock = iter(i * 0.01 for i in range(10_000))
    monkeypatch.setattr(download.time, "monotonic", lambda: next(clock))

    class Sink:
        writes = 0

        def write(self, text):
            Sink.writes += 1

        def flush(self):
            pass

    bar = download._Progress(Sink(), "x")
    for i in range(100):  # one second of updates every 10 ms
        bar.update(i * 1000, 100_000)
    assert Sink.writes <= 6


# ------------------------------------------- named data sets, end to end
def test_named_dataset_downloads_checks_and_loads(server, tmp_path, monkeypatch):
    from dismir_tf.config import DataConfig
    from dismir_tf.data import load_dataset

    spec = registry.NamedDataset(
        name="fake",
        sources=(
            registry.RawSource(
                filename="data.tsv.gz",
                fmt="user_item_time_tsv",
                url=server.url + "/data.tsv.gz",
                gzip=True,
            ),
        ),
        manual="fetch it by hand into {raw_dir}",
    )
    monkeypatch.setitem(registry.DATASETS, "fake", spec)
    lines = []
    cfg = DataConfig(dataset="fake", data_dir=str(tmp_path))
    ds = load_dataset(cfg, log=lines.append)
    assert ds.num_users == 40
    assert os.path.isfile(tmp_path / "fake" / "raw" / "data.tsv.gz")
    assert any("downloaded and verified" in line for line in lines)
    # Second time: from the cache, no request.
    before = len(server.requests)
    lines.clear()
    again = load_dataset(cfg, log=lines.append)
    assert len(server.requests) == before
    assert any("loaded" in line for line in lines)
    assert again.stats() == ds.stats()


def test_manual_dataset_error_says_what_and_where(tmp_path):
    with pytest.raises(UserInputError) as excinfo:
        ensure_raw("retailrocket", str(tmp_path))
    message = str(excinfo.value)
    assert "kaggle.com/datasets/retailrocket/ecommerce-dataset" in message
    assert os.path.join(str(tmp_path), "retailrocket", "raw", "events.csv") in message


def test_registry_names_and_unknown_name():
    assert set(registry.DATASETS) == {"synthetic", "gowalla", "retailrocket", "books"}
    assert registry.DATASETS["gowalla"].sources[0].fmt == "snap_gowalla"
    assert registry.DATASETS["books"].sources[0].fmt == "amazon_reviews_json"
    assert not registry.DATASETS["retailrocket"].downloadable
    with pytest.raises(UserInputError, match="named data sets"):
        registry.get("movielens")


def test_count_mismatch_is_a_warning_text():
    spec = registry.DATASETS["retailrocket"]
    same = {"users": 33_708, "items": 81_635, "interactions": 356_840}
    assert registry.count_mismatch(spec, same) is None
    other = dict(same, users=1)
    assert "warning" in registry.count_mismatch(spec, other)
