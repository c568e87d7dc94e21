"""Readers for the interaction files the project understands.

Every reader streams its file line by line and returns the same thing, a
:class:`RawInteractions`: parallel lists of raw user and item ids in file
order, plus timestamps when the format has them.  Preprocessing
(``dismir_tf.data.preprocess``) never needs to know which format a file was.

Files may be gzip-compressed whatever their name: compression is detected by
the two gzip magic bytes, so ``events.csv`` that is really gzip, or
``Video.txt.gz`` that was decompressed in place, both just work.

Every problem with a file is a :class:`~dismir_tf.errors.DataFormatError`
naming the file and the 1-based line, so a user can open the file at the
right place; a missing file is a :class:`~dismir_tf.errors.UserInputError`.
"""

from __future__ import annotations

import array
import dataclasses
import datetime
import gzip
import json
import math
import os
import zlib
from collections.abc import Callable, Iterator

import numpy as np

from dismir_tf.errors import DataFormatError, UserInputError

GZIP_MAGIC = b"\x1f\x8b"

FORMAT_DESCRIPTIONS: dict[str, str] = {
    "recbole_inter": "RecBole atomic .inter file: a tab-separated header "
                     "such as 'user_id:token<TAB>item_id:token<TAB>"
                     "timestamp:float', then one interaction per line",
    "snap_gowalla": "SNAP loc-gowalla check-ins: 'user<TAB>ISO-8601 time"
                    "<TAB>lat<TAB>lon<TAB>location_id'",
    "user_item_time_tsv": "'user<TAB>item<TAB>unix_timestamp' per line",
    "retailrocket_events": "Kaggle Retail Rocket events.csv with header "
                           "'timestamp,visitorid,event,itemid,transactionid'"
                           " (view events only, millisecond timestamps)",
    "amazon_reviews_json": "JSON lines with reviewerID, asin and "
                           "unixReviewTime (McAuley Amazon reviews)",
    "seq_lines": "one user per line: 'user item1 item2 ...' in time order",
    "user_item_lines": "'user item' per line, grouped by user in time order",
}
FORMATS: tuple[str, ...] = tuple(FORMAT_DESCRIPTIONS)

# Header names accepted for each role in a RecBole atomic file.  RecBole's
# own conversions use 'user_id' for most data sets but 'visitor_id' for
# Retail Rocket and 'session_id' for session data sets.
_RECBOLE_USER_FIELDS = ("user_id", "visitor_id", "session_id")
_RECBOLE_ITEM_FIELDS = ("item_id", "venue_id", "product_id")
_RECBOLE_TIME_FIELDS = ("timestamp",)


@dataclasses.dataclass(frozen=True, eq=False)
class RawInteractions:
    """Interactions as read from a file, before any preprocessing.

    Attributes:
      users: [n] raw user ids, in file order.
      items: [n] raw item ids, parallel to ``users``.
      timestamps: [n] float64 seconds (any origin; only the order within a
        user matters), or None when the format records only an order.
      source: the file the interactions were read from (for messages).
    """

    users: list[str]
    items: list[str]
    timestamps: np.ndarray | None
    source: str

    def __post_init__(self) -> None:
        if len(self.users) != len(self.items):
            raise ValueError("users and items differ in length")
        if self.timestamps is not None and len(self.timestamps) != len(
                self.users):
            raise ValueError("timestamps and users differ in length")

    def __len__(self) -> int:
        return len(self.users)


def is_gzip(path: str) -> bool:
    """Whether ``path`` starts with the gzip magic bytes.

    Raises:
      UserInputError: if the file does not exist or cannot be read.
    """
    _check_readable(path)
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def _check_readable(path: str) -> None:
    if not os.path.exists(path):
        raise UserInputError("file not found", path=path)
    if os.path.isdir(path):
        raise UserInputError("is a directory, expected a file", path=path)
    if not os.access(path, os.R_OK):
        raise UserInputError("file is not readable", path=path)


def iter_lines(path: str) -> Iterator[tuple[int, str]]:
    """Yields ``(line_number, text)`` for each line, gzip-transparently.

    Line numbers are 1-based; the text has its line ending removed.  A UTF-8
    byte order mark at the start of the file is dropped.

    Args:
      path: the file to read, plain or gzip-compressed.

    Yields:
      (line_number, text) pairs.

    Raises:
      UserInputError: the file is missing.
      DataFormatError: a line is not valid UTF-8, or the gzip stream is
        truncated or corrupt (the line number is the line being read).
    """
    gz = is_gzip(path)
    lineno = 0
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            for raw in f:
                lineno += 1
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataFormatError(
                        f"not valid UTF-8 (byte {e.start + 1} of the line)",
                        path=path, line=lineno) from None
                if lineno == 1 and text.startswith("\ufeff"):
                    text = text[1:]
                yield lineno, text.rstrip("\r\n")
    except DataFormatError:
        raise
    except EOFError:
        raise DataFormatError(
            "the gzip file is truncated (the compressed stream ends early); "
            "download it again", path=path, line=lineno + 1) from None
    except (OSError, zlib.error) as e:
        what = "corrupt gzip data" if gz else "read error"
        raise DataFormatError(f"{what}: {e}", path=path,
                              line=lineno + 1) from None


def _parse_time(text: str, path: str, lineno: int) -> float:
    """A finite float timestamp, or a DataFormatError naming the line."""
    try:
        value = float(text)
    except ValueError:
        raise DataFormatError(f"timestamp {text!r} is not a number",
                              path=path, line=lineno) from None
    if not math.isfinite(value):
        raise DataFormatError(f"timestamp {text!r} is not finite",
                              path=path, line=lineno)
    return value


def _parse_iso_time(text: str, path: str, lineno: int) -> float:
    """Seconds since the epoch of an ISO-8601 time (naive means UTC)."""
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise DataFormatError(f"time {text!r} is not ISO-8601",
                              path=path, line=lineno) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    return t.timestamp()


class _Collector:
    """Accumulates parallel columns with little memory.

    Raw ids repeat a lot (a user has many interactions), so each distinct
    string is stored once and the lists hold references; timestamps go into
    a compact C double array instead of a list of Python floats.
    """

    def __init__(self, with_time: bool):
        self.users: list[str] = []
        self.items: list[str] = []
        self.times = array.array("d") if with_time else None
        self._strings: dict[str, str] = {}

    def add(self, user: str, item: str, time: float | None = None) -> None:
        strings = self._strings
        self.users.append(strings.setdefault(user, user))
        self.items.append(strings.setdefault(item, item))
        if self.times is not None:
            self.times.append(time)

    def result(self, path: str,
               empty: DataFormatError | None = None) -> RawInteractions:
        """The collected interactions; ``empty`` (default: the file is
        empty) is raised when there are none."""
        if not self.users:
            raise empty if empty is not None else _empty(path)
        times = None
        if self.times is not None:
            times = np.frombuffer(self.times, dtype=np.float64).copy()
        return RawInteractions(users=self.users, items=self.items,
                               timestamps=times, source=path)


def _empty(path: str) -> DataFormatError:
    return DataFormatError("the file is empty (no interactions)", path=path,
                           line=1)


def _field_count_error(path: str, lineno: int, expected: int, found: int,
                       sep: str) -> DataFormatError:
    return DataFormatError(
        f"expected {expected} {sep}-separated fields, found {found}",
        path=path, line=lineno)


def _check_ids(path: str, lineno: int, *ids: str) -> None:
    for value in ids:
        if not value:
            raise DataFormatError("empty user or item id", path=path,
                                  line=lineno)


def _header_name(field: str) -> str:
    """'user_id:token' -> 'user_id' (RecBole puts the type after a colon)."""
    return field.strip().split(":", 1)[0]


def _find_column(names: list[str], candidates: tuple[str, ...], path: str,
                 required: bool) -> int | None:
    for c in candidates:
        if c in names:
            return names.index(c)
    if required:
        raise DataFormatError(
            f"missing header column {candidates[0]!r} (accepted names: "
            f"{', '.join(candidates)}; found: {', '.join(names)})",
            path=path, line=1)
    return None


def read_recbole_inter(path: str) -> RawInteractions:
    """Reads a RecBole atomic ``.inter`` file.

    The user, item and (optional) timestamp columns are found by their header
    names, so column order and extra columns (rating, count, ...) do not
    matter.

    Args:
      path: the file.

    Returns:
      The interactions; timestamps are None when there is no timestamp
      column.

    Raises:
      UserInputError, DataFormatError: see :func:`read_interactions`.
    """
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None or not first[1].strip():
        raise _empty(path)
    names = [_header_name(f) for f in first[1].split("\t")]
    ucol = _find_column(names, _RECBOLE_USER_FIELDS, path, True)
    icol = _find_column(names, _RECBOLE_ITEM_FIELDS, path, True)
    tcol = _find_column(names, _RECBOLE_TIME_FIELDS, path, False)
    width = len(names)
    out = _Collector(with_time=tcol is not None)
    for lineno, text in lines:
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != width:
            raise _field_count_error(path, lineno, width, len(fields), "tab")
        user, item = fields[ucol], fields[icol]
        _check_ids(path, lineno, user, item)
        t = _parse_time(fields[tcol], path, lineno) if tcol is not None \
            else None
        out.add(user, item, t)
    return out.result(path, DataFormatError(
        "no interactions after the header", path=path, line=2))


def read_snap_gowalla(path: str) -> RawInteractions:
    """Reads SNAP ``loc-gowalla_totalCheckins.txt``.

    Each line is ``user<TAB>time<TAB>latitude<TAB>longitude<TAB>location``
    with an ISO-8601 UTC time such as ``2010-10-19T23:55:27Z``; the location
    is the item.  Users' rows are newest first; preprocessing sorts them.

    Args:
      path: the file.

    Returns:
      The check-ins with their times in seconds since the epoch.

    Raises:
      UserInputError, DataFormatError: see :func:`read_interactions`.
    """
    out = _Collector(with_time=True)
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != 5:
            raise _field_count_error(path, lineno, 5, len(fields), "tab")
        user, when, item = fields[0], fields[1], fields[4]
        _check_ids(path, lineno, user, item)
        out.add(user, item, _parse_iso_time(when, path, lineno))
    return out.result(path)


def read_user_item_time_tsv(path: str) -> RawInteractions:
    """Reads ``user<TAB>item<TAB>unix_timestamp`` lines (no header).

    Args:
      path: the file.

    Returns:
      The interactions with their timestamps.

    Raises:
      UserInputError, DataFormatError: see :func:`read_interactions`.
    """
    out = _Collector(with_time=True)
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != 3:
            raise _field_count_error(path, lineno, 3, len(fields), "tab")
        _check_ids(path, lineno, fields[0], fields[1])
        out.add(fields[0], fields[1], _parse_time(fields[2], path, lineno))
    return out.result(path)


def read_retailrocket_events(path: str) -> RawInteractions:
    """Reads the Kaggle Retail Rocket ``events.csv``, keeping view events.

    The header names the columns (``timestamp``, ``visitorid``, ``event``,
    ``itemid``, ``transactionid``); the fields never contain commas or
    quotes, so a plain split is exact.  Timestamps are milliseconds in the
    file and seconds in the result.

    Args:
      path: the file.

    Returns:
      The view events.

    Raises:
      UserInputError, DataFormatError: see :func:`read_interactions`; also
        when the file has no view events.
    """
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None or not first[1].strip():
        raise _empty(path)
    names = [f.strip() for f in first[1].split(",")]
    cols = {}
    for name in ("timestamp", "visitorid", "event", "itemid"):
        cols[name] = _find_column(names, (name,), path, True)
    tcol, ucol, ecol, icol = (cols["timestamp"], cols["visitorid"],
                              cols["event"], cols["itemid"])
    width = len(names)
    out = _Collector(with_time=True)
    last = 1
    for lineno, text in lines:
        last = lineno
        if not text.strip():
            continue
        fields = text.split(",")
        if len(fields) != width:
            raise _field_count_error(path, lineno, width, len(fields),
                                     "comma")
        if fields[ecol] != "view":
            continue
        _check_ids(path, lineno, fields[ucol], fields[icol])
        ms = _parse_time(fields[tcol], path, lineno)
        out.add(fields[ucol], fields[icol], ms / 1000.0)
    return out.result(path, DataFormatError(
        f"no 'view' events in {last} lines", path=path))


def read_amazon_reviews_json(path: str) -> RawInteractions:
    """Reads McAuley's Amazon review files (one JSON object per line).

    Only ``reviewerID`` (user), ``asin`` (item) and ``unixReviewTime`` are
    used.

    Args:
      path: the file.

    Returns:
      The reviews as interactions.

    Raises:
      UserInputError, DataFormatError: see :func:`read_interactions`.
    """
    out = _Collector(with_time=True)
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"invalid JSON: {e.msg} (column {e.colno})",
                                  path=path, line=lineno) from None
        if not isinstance(record, dict):
            raise DataFormatError("expected a JSON object", path=path,
                                  line=lineno)
        values = []
        for key in ("reviewerID", "asin", "unixReviewTime"):
            if key not in record:
                raise DataFormatError(f"missing key {key!r}", path=path,
                                      line=lineno)
            values.append(record[key])
        user, item, when = values
        if isinstance(when, bool) or not isinstance(when, (int, float, str)):
            raise DataFormatError(
                f"unixReviewTime {when!r} is not a number", path=path,
                line=lineno)
        user, item = str(user), str(item)
        _check_ids(path, lineno, user, item)
        out.add(user, item, _parse_time(str(when), path, lineno))
    return out.result(path)


def read_seq_lines(path: str) -> RawInteractions:
    """Reads ``user item1 item2 ...`` lines (whitespace-separated).

    The items of a line are in time order; there are no timestamps.

    Args:
      path: the file.

    Returns:
      One interaction per item, timestamps None.

    Raises:
      UserInputError, DataFormatError: see :func:`read_interactions`.
    """
    out = _Collector(with_time=False)
    for lineno, text in iter_lines(path):
        fields = text.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise DataFormatError(
                "expected a user id followed by at least one item id",
                path=path, line=lineno)
        user = fields[0]
        for item in fields[1:]:
            out.add(user, item)
    return out.result(path)


def read_user_item_lines(path: str) -> RawInteractions:
    """Reads ``user item`` lines (whitespace-separated), in time order.

    Args:
      path: the file.

    Returns:
      The interactions, timestamps None.

    Raises:
      UserInputError, DataFormatError: see :func:`read_interactions`.
    """
    out = _Collector(with_time=False)
    for lineno, text in iter_lines(path):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise _field_count_error(path, lineno, 2, len(fields),
                                     "whitespace")
        out.add(fields[0], fields[1])
    return out.result(path)


_READERS: dict[str, Callable[[str], RawInteractions]] = {
    "recbole_inter": read_recbole_inter,
    "snap_gowalla": read_snap_gowalla,
    "user_item_time_tsv": read_user_item_time_tsv,
    "retailrocket_events": read_retailrocket_events,
    "amazon_reviews_json": read_amazon_reviews_json,
    "seq_lines": read_seq_lines,
    "user_item_lines": read_user_item_lines,
}
assert tuple(_READERS) == FORMATS


def check_format(fmt: str) -> None:
    """Raises UserInputError unless ``fmt`` is a known format name."""
    if fmt not in _READERS:
        raise UserInputError(
            f"unknown data format {fmt!r}; valid formats: "
            f"{', '.join(FORMATS)}")


def read_interactions(path: str, fmt: str) -> RawInteractions:
    """Reads an interaction file of format ``fmt``.

    Args:
      path: the file, plain or gzip-compressed (detected from its content).
      fmt: one of :data:`FORMATS`.

    Returns:
      The interactions in file order.

    Raises:
      UserInputError: unknown format, or the file is missing.
      DataFormatError: the file does not have the format: a malformed line,
        a wrong number of columns, a non-numeric timestamp, a missing header
        column, an empty file, bytes that are not UTF-8, or a truncated or
        corrupt gzip stream.  The message names the file and line.
    """
    check_format(fmt)
    return _READERS[fmt](os.fspath(path))
