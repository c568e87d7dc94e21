"""Resumable, verified downloads with nothing but urllib.

:func:`fetch` writes to ``dest + '.part'`` and renames onto ``dest`` only
after the file has been verified, so ``dest`` either does not exist or is
complete and checked.  An interrupted download leaves the ``.part`` behind,
and the next call resumes it with an HTTP Range request.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from typing import TextIO

from dismir_tf.errors import DataFormatError, UserInputError

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60.0
PROGRESS_INTERVAL_SECONDS = 0.2  # at most ~5 progress updates a second
USER_AGENT = "dismir-tf-data/1.0 (+urllib)"

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class _Progress:
    """A one-line progress bar on a text stream, throttled."""

    def __init__(self, stream: TextIO | None, label: str):
        self.stream = stream
        self.label = label
        self.start = time.monotonic()
        self.last = 0.0
        self.start_bytes: int | None = None
        self.printed = False

    def update(self, done: int, total: int | None, force: bool = False
               ) -> None:
        if self.stream is None:
            return
        if self.start_bytes is None:
            self.start_bytes = done
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_INTERVAL_SECONDS:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = (done - self.start_bytes) / elapsed / 1e6
        text = f"\r{self.label}: {done / 1e6:,.1f} MB"
        if total:
            text += f" / {total / 1e6:,.1f} MB ({100.0 * done / total:5.1f}%)"
        text += f"  {rate:,.2f} MB/s"
        self.stream.write(text)
        self.stream.flush()
        self.printed = True

    def close(self) -> None:
        if self.stream is not None and self.printed:
            self.stream.write("\n")
            self.stream.flush()


def _by_hand(url: str, dest: str, reason: str) -> UserInputError:
    return UserInputError(
        f"could not download {url}: {reason}. Fetch it by hand (for example "
        f"with a browser or `curl -L -o`) and save it as "
        f"{os.path.abspath(dest)}")


def sha256_file(path: str) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


def check_gzip_stream(path: str) -> int:
    """Decompresses a whole gzip file, which verifies its CRC-32 and length.

    Args:
      path: a gzip file.

    Returns:
      The decompressed size in bytes.

    Raises:
      DataFormatError: the file is not gzip, is truncated or is corrupt.
    """
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            raise DataFormatError("not a gzip file", path=path)
    size = 0
    try:
        with gzip.open(path, "rb") as f:
            for block in iter(lambda: f.read(CHUNK_BYTES), b""):
                size += len(block)
    except EOFError:
        raise DataFormatError("the gzip stream is truncated",
                              path=path) from None
    except (OSError, zlib.error) as e:
        raise DataFormatError(f"corrupt gzip data: {e}", path=path) from None
    return size


def _open(url: str, start: int) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)


def _stream(url: str, part: str, expected_size: int | None,
            progress: _Progress) -> None:
    """Downloads ``url`` into ``part``, resuming when it already exists."""
    start = os.path.getsize(part) if os.path.exists(part) else 0
    if expected_size is not None and start > expected_size:
        # A .part larger than the file cannot be a prefix of it.
        os.remove(part)
        start = 0
    if expected_size is not None and start == expected_size:
        return  # complete but not yet verified (e.g. killed before rename)
    for attempt in range(2):
        try:
            response = _open(url, start)
        except urllib.error.HTTPError as e:
            if e.code == 416 and start > 0 and attempt == 0:
                # The server cannot serve from `start`: the .part is not a
                # prefix of what it has now.  Start over.
                os.remove(part)
                start = 0
                continue
            raise
        break
    with response:
        status = response.status
        total: int | None = None
        mode = "wb"
        if status == 206 and start > 0:
            match = _CONTENT_RANGE.match(
                response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != start:
                raise http.client.HTTPException(
                    "the server answered the Range request with the wrong "
                    "range")
            mode = "ab"
            if match.group(3) != "*":
                total = int(match.group(3))
        else:
            # 200: the server ignored the Range header and sends the whole
            # file, so the .part is discarded and rewritten from scratch.
            start = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if total is not None and expected_size is not None \
                and total != expected_size:
            raise http.client.HTTPException(
                f"the server reports {total} bytes, expected {expected_size}")
        done = start
        with open(part, mode) as out:
            while True:
                block = response.read(CHUNK_BYTES)
                if not block:
                    break
                out.write(block)
                done += len(block)
                progress.update(done, total)
            out.flush()
            os.fsync(out.fileno())
        progress.update(done, total, force=True)
        if total is not None and done < total:
            raise http.client.IncompleteRead(b"", total - done)


def fetch(url: str, dest: str, expected_sha256: str | None = None,
          expected_size: int | None = None, progress: bool = True,
          check: Callable[[str], object] | None = None) -> str:
    """Downloads ``url`` to ``dest``, resumably, and verifies it.

    The bytes go to ``dest + '.part'``.  If that file exists, the download
    resumes from its end with an HTTP Range request; if the server ignores
    the Range header, or the .part is larger than ``expected_size``, the
    download restarts cleanly.  After verification the .part is renamed
    atomically onto ``dest``.

    Args:
      url: what to download.
      dest: where the verified file ends up.
      expected_sha256: hex SHA-256 the file must have, if known.
      expected_size: size in bytes the file must have, if known.
      progress: print a progress bar (bytes, %, MB/s) to stderr.
      check: an extra verification run on the complete .part before the
        rename (for example :func:`check_gzip_stream`); it raises to
        reject the file.

    Returns:
      ``dest``.

    Raises:
      UserInputError: the download failed (network error, server error) or
        the file failed verification.  The message says what to fetch by
        hand and where to put it.  After a network error the .part is kept
        for resuming; after a failed verification it is deleted.
    """
    dest = os.fspath(dest)
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + ".part"
    bar = _Progress(sys.stderr if progress else None,
                    f"downloading {os.path.basename(dest)}")
    try:
        _stream(url, part, expected_size, bar)
    except urllib.error.HTTPError as e:
        raise _by_hand(url, dest, f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise _by_hand(url, dest, str(e.reason)) from None
    except (http.client.HTTPException, TimeoutError, ConnectionError) as e:
        reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise _by_hand(url, dest, reason) from None
    finally:
        bar.close()

    try:
        _verify(part, expected_sha256, expected_size, check)
    except UserInputError as e:
        os.remove(part)
        raise _by_hand(url, dest, f"the download failed verification "
                                  f"({e}); the partial file was deleted"
                       ) from None
    os.replace(part, dest)
    return dest


def _verify(path: str, expected_sha256: str | None,
            expected_size: int | None,
            check: Callable[[str], object] | None) -> None:
    size = os.path.getsize(path)
    if expected_size is not None and size != expected_size:
        raise UserInputError(f"size {size} bytes, expected {expected_size}")
    if expected_sha256 is not None:
        digest = sha256_file(path)
        if digest != expected_sha256.lower():
            raise UserInputError(
                f"sha256 {digest}, expected {expected_sha256.lower()}")
    if check is not None:
        check(path)
