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

Times are ordered exactly: integer times (Unix seconds, milliseconds or
nanoseconds, any size) are kept as integers and fractional ones as exact
decimals, so two times that differ only beyond a float64's 53 bits (e.g.
nanosecond epochs 1 ns apart) keep their order (``time_order``); the float
seconds in ``timestamps`` are for models that read intervals (PIMIRec).

Ids may contain any character except control characters and Unicode line
or paragraph separators (``UNSAFE_ID_CHARACTERS``): every file the project
writes with raw ids (top-K dumps, partition dumps, the export's items.tsv)
is line- and tab-delimited, so such an id could not be written back; a
reader refuses it with the file and line.
"""

from __future__ import annotations

import array
import dataclasses
import datetime
import decimal
import gzip
import json
import os
import re
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

# Characters no id may contain (C0/C1 controls, tab and newlines included,
# DEL, and the Unicode line/paragraph separators that str.splitlines
# breaks on): the project's outputs delimit ids by tabs and lines.
UNSAFE_ID_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_INT64 = 2**63


@dataclasses.dataclass(frozen=True)
class RecboleFields:
    """Header names of a RecBole atomic file's columns (RecBole's
    ``USER_ID_FIELD``, ``ITEM_ID_FIELD`` and ``TIME_FIELD`` settings).

    None means the usual names: user_id / visitor_id / session_id, item_id /
    venue_id / product_id, and timestamp.  A named field must exist.
    """

    user: str | None = None
    item: str | None = None
    time: str | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class RawInteractions:
    """Interactions as read from a file, before any preprocessing.

    Attributes:
      users: [n] raw user ids, in file order.
      items: [n] raw item ids, parallel to ``users``.
      timestamps: [n] float64 seconds (any origin; only the order within a
        user matters), or None when the format records only an order.
      source: the file the interactions were read from (for messages).
      time_order: [n] int64 keys in exactly the order of the file's times
        (the integer times themselves, or the dense rank of exact decimal
        times), or None to order by ``timestamps``.
      notes: one-line remarks for the user (e.g. which order is used when
        the file has no time column), printed before training.
    """

    users: list[str]
    items: list[str]
    timestamps: np.ndarray | None
    source: str
    time_order: np.ndarray | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.users) != len(self.items):
            raise ValueError("users and items differ in length")
        if self.timestamps is not None and len(self.timestamps) != len(
                self.users):
            raise ValueError("timestamps and users differ in length")
        if self.time_order is not None and (
                self.timestamps is None
                or len(self.time_order) != len(self.users)):
            raise ValueError("time_order needs timestamps of the same length")

    def __len__(self) -> int:
        return len(self.users)


def is_gzip(path: str) -> bool:
    """Whether ``path`` starts with the gzip magic bytes.

    Raises:
      UserInputError: if the file does not exist or cannot be read.
    """
    check_readable(path)
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def check_readable(path: str) -> None:
    """The one path check of every entry point: a UserInputError saying
    whether ``path`` is missing, a directory or unreadable."""
    if not os.path.exists(path):
        raise UserInputError("file not found", path=path)
    if os.path.isdir(path):
        raise UserInputError("is a directory, expected a file", path=path)
    if not os.access(path, os.R_OK):
        raise UserInputError("file is not readable", path=path)


def iter_lines(path: str) -> Iterator[tuple[int, str]]:
    """Yields ``(line_number, text)`` for each line, gzip-transparently.

    Line numbers are 1-based; the text has its line ending removed.  A UTF-8
    byte order mark at the start of any line is dropped (one at the start of
    the file, or of each file that ``cat`` joined).

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
                # At any line start: files joined with `cat` keep each
                # one's byte order mark.
                if text.startswith("\ufeff"):
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


Time = int | decimal.Decimal
# Times are exact up to 10**40 (nanosecond epochs are ~1.7e18), and a
# number's text is at most this long, so a malformed value cannot make the
# reader build huge integers or overflow float().
_MAX_TIME_DIGITS = 40
_MAX_TIME_CHARS = 200


def _parse_time(text: str, path: str, lineno: int) -> Time:
    """The exact value of a timestamp: an int when it is integral (also
    '1.5e9' or '978300760.0'), else a Decimal; a DataFormatError naming the
    line when it is not a finite number."""
    if len(text) > _MAX_TIME_CHARS:
        raise DataFormatError(f"timestamp {text[:40]!r}... is too long",
                              path=path, line=lineno)
    try:
        value = int(text)
    except ValueError:
        try:
            exact = decimal.Decimal(text.strip())
        except decimal.InvalidOperation:
            raise DataFormatError(f"timestamp {text!r} is not a number",
                                  path=path, line=lineno) from None
        if not exact.is_finite():
            raise DataFormatError(f"timestamp {text!r} is not finite",
                                  path=path, line=lineno) from None
        if exact.adjusted() >= _MAX_TIME_DIGITS:
            raise DataFormatError(f"timestamp {text!r} is out of range "
                                  f"(|t| >= 1e{_MAX_TIME_DIGITS})",
                                  path=path, line=lineno) from None
        if exact != exact.to_integral_value():
            return exact
        value = int(exact)
    if abs(value) >= 10**_MAX_TIME_DIGITS:
        raise DataFormatError(f"timestamp {text!r} is out of range "
                              f"(|t| >= 1e{_MAX_TIME_DIGITS})",
                              path=path, line=lineno)
    return value


def _parse_iso_time(text: str, path: str, lineno: int) -> int:
    """Microseconds since the epoch of an ISO-8601 time (naive means UTC),
    exactly."""
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise DataFormatError(f"time {text!r} is not ISO-8601",
                              path=path, line=lineno) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    return (t - _EPOCH) // datetime.timedelta(microseconds=1)


# Ids that stand for a missing value in the files this project reads (JSON
# null read as Python's None, pandas' NaN, SQL's NULL): never a real id.
NULL_IDS = frozenset({"null", "none", "nan", "na", "n/a"})


class _Collector:
    """Accumulates parallel columns with little memory.

    Raw ids repeat a lot (a user has many interactions), so each distinct
    string is stored once (and checked once, ``UNSAFE_ID_CHARACTERS``) and
    the lists hold references.  Times are exact: integers that fit in int64
    go into a compact C array; the first time that does not (a fraction, or
    an integer beyond int64) switches the column to a list of exact Python
    values.

    Args:
      with_time: whether the format has a time column.
      units_per_second: the file's time units per second (1000 for
        milliseconds, 10**6 for the ISO reader's microseconds).
    """

    def __init__(self, path: str, with_time: bool,
                 units_per_second: int = 1):
        self.path = path
        self.users: list[str] = []
        self.items: list[str] = []
        self.times = array.array("q") if with_time else None
        self.exact: list[Time] | None = None
        self.units_per_second = units_per_second
        self.notes: list[str] = []
        self._strings: dict[str, str] = {}

    def _intern(self, value: str, lineno: int, role: str) -> str:
        known = self._strings.get(value)
        if known is not None:
            return known
        if not value.strip() or value.strip().lower() in NULL_IDS:
            raise DataFormatError(
                f"the {role} id is missing ({value!r}); a missing or null "
                f"id would merge every such line into one {role}: give the "
                "id, or remove the line", path=self.path, line=lineno)
        bad = UNSAFE_ID_CHARACTERS.search(value)
        if bad is not None:
            raise DataFormatError(
                f"id {value!r} contains the control character "
                f"{bad.group()!r}; ids may not contain tabs, line breaks or "
                f"other control characters", path=self.path, line=lineno)
        self._strings[value] = value
        return value

    def add(self, lineno: int, user: str, item: str,
            time: Time | None = None) -> None:
        self.users.append(self._intern(user, lineno, "user"))
        self.items.append(self._intern(item, lineno, "item"))
        if self.times is None:
            return
        if time is None:
            raise ValueError("a timed collector needs every time")
        if self.exact is None and type(time) is int and \
                -_INT64 <= time < _INT64:
            self.times.append(time)
            return
        if self.exact is None:
            self.exact = list(self.times)
        self.exact.append(time)

    def result(self, empty: DataFormatError | None = None
               ) -> RawInteractions:
        """The collected interactions; ``empty`` (default: the file is
        empty) is raised when there are none."""
        if not self.users:
            raise empty if empty is not None else _empty(self.path)
        seconds = order = None
        if self.exact is not None:
            distinct = sorted(set(self.exact))
            rank = {v: r for r, v in enumerate(distinct)}
            order = np.fromiter((rank[v] for v in self.exact), np.int64,
                                len(self.exact))
            seconds = np.array([float(v) for v in self.exact], np.float64)
        elif self.times is not None:
            order = np.frombuffer(self.times, dtype=np.int64).copy()
            seconds = order.astype(np.float64)
        if seconds is not None and self.units_per_second != 1:
            seconds = seconds / self.units_per_second
        return RawInteractions(users=self.users, items=self.items,
                               timestamps=seconds, source=self.path,
                               time_order=order, notes=tuple(self.notes))


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


def _split_header(text: str, sep: str, sep_name: str, path: str
                  ) -> list[str]:
    """The header's fields; a DataFormatError naming the separator when
    the header is one field that another separator would split."""
    fields = text.split(sep)
    if len(fields) == 1:
        for other, name in (("\t", "tabs"), (",", "commas"),
                            (" ", "spaces"), (";", "semicolons")):
            if other != sep and len(text.split(other)) > 1:
                raise DataFormatError(
                    f"the header {text[:60]!r} is separated by {name}; this "
                    f"format separates columns with {sep_name}",
                    path=path, line=1)
    return fields


def _header_name(field: str) -> str:
    """'user_id:token' -> 'user_id' (RecBole puts the type after a colon)."""
    return field.strip().split(":", 1)[0]


def _find_column(names: list[str], candidates: tuple[str, ...]
                 ) -> int | None:
    """The index of the first of ``candidates`` in ``names``, or None."""
    for c in candidates:
        if c in names:
            return names.index(c)
    return None


def _column(names: list[str], candidates: tuple[str, ...], path: str) -> int:
    """:func:`_find_column` for a required column: a DataFormatError on
    line 1 when none of ``candidates`` is in ``names``."""
    col = _find_column(names, candidates)
    if col is None:
        raise DataFormatError(
            f"missing header column {candidates[0]!r} (accepted names: "
            f"{', '.join(candidates)}; found: {', '.join(names)})",
            path=path, line=1)
    return col


# Lower-case column names that mark a header row (RecBole's and the
# usual ones); a RecBole type suffix (':token', ':float') marks one too.
_HEADER_NAMES = frozenset({
    "user", "user_id", "userid", "uid", "visitor_id", "visitorid",
    "session_id", "item", "item_id", "itemid", "iid", "movie_id", "movieid",
    "product_id", "asin", "venue_id", "location_id", "timestamp", "time",
    "rating", "label"})
_RECBOLE_TYPE = re.compile(r":(token|float)(_seq)?$")

# Integers in these ranges read as item ids are most likely Unix times:
# seconds, milliseconds, microseconds or nanoseconds of 1998-2039.
_EPOCH_RANGES = tuple((9 * 10**(8 + k), 22 * 10**(8 + k))
                      for k in (0, 3, 6, 9))


def _looks_like_header(fields: list[str]) -> bool:
    """Whether a row is a header: two known column names, or a RecBole
    type suffix."""
    names = [f.strip().lower() for f in fields]
    if any(_RECBOLE_TYPE.search(n) for n in names):
        return True
    return sum(n.split(":", 1)[0] in _HEADER_NAMES for n in names) >= 2


_DECIMAL = re.compile(r"\d+(\.\d*)?")


def _epoch_like(value: str) -> bool:
    """'1287503727' or '1287503727.0' (and the same in ms, us, ns)."""
    if not _DECIMAL.fullmatch(value):
        return False
    v = int(value.split(".")[0])
    return any(lo <= v < hi for lo, hi in _EPOCH_RANGES)


SNIFF_LINES = 50


def sniff(path: str, fmt: str, raw: RawInteractions) -> list[str]:
    """One-line notes when the content plainly does not fit ``fmt``.

    Looks at the first :data:`SNIFF_LINES` lines and interactions: a
    tab-separated file read by a whitespace format, item ids that look like
    Unix times (a time column read as items), a header row read as data.
    Reading goes on (the file did parse); the notes say what was seen and
    which format would fit.

    Args:
      path: the file.
      fmt: the format it was read with.
      raw: what the reader returned.

    Returns:
      The notes (empty when nothing looks wrong).
    """
    notes = []
    if fmt in ("seq_lines", "user_item_lines"):
        head = []
        for _, text in iter_lines(path):
            if text.strip():
                head.append(text)
            if len(head) >= SNIFF_LINES:
                break
        tabbed = [t for t in head if "\t" in t.strip()]
        if head and len(tabbed) * 2 > len(head):
            columns = len(tabbed[0].split("\t"))
            notes.append(
                f"{path}: {len(tabbed)} of the first {len(head)} lines are "
                f"tab-separated ({columns} columns), but {fmt} reads "
                f"whitespace-separated 'user item ...' lines; a 'user<TAB>"
                f"item<TAB>time' file is --dataset_format user_item_time_tsv"
                f", a RecBole file recbole_inter")
        if head and _looks_like_header(head[0].split()):
            notes.append(
                f"{path}: line 1 looks like a header ({head[0][:60]!r}) but "
                f"{fmt} has none, so it was read as an interaction; a "
                f"RecBole file is --dataset_format recbole_inter")
    sample = raw.items[:SNIFF_LINES * 20]
    epoch = sum(_epoch_like(item) for item in sample)
    if sample and epoch * 5 >= len(sample):
        example = next(item for item in sample if _epoch_like(item))
        notes.append(
            f"{path}: {epoch} of the first {len(sample)} item ids look like "
            f"Unix times (e.g. {example}); is a time column being read as "
            f"items? check --dataset_format ({fmt}: "
            f"{FORMAT_DESCRIPTIONS[fmt]})")
    return notes


def read_recbole_inter(path: str, fields: RecboleFields | None = None
                       ) -> RawInteractions:
    """Reads a RecBole atomic ``.inter`` file.

    The user, item and (optional) time columns are found by their header
    names, so column order and extra columns (rating, count, ...) do not
    matter.  As in RecBole, the names can be set (``fields``; the
    ``--user_id_field``, ``--item_id_field`` and ``--time_field`` flags):
    a file whose time column is called ``time`` is read with
    ``RecboleFields(time="time")``.  Without a time column the file order is
    kept and a note says so (never silently).

    Args:
      path: the file.
      fields: the header names; None fields take the usual names.

    Returns:
      The interactions; timestamps are None when there is no time column.

    Raises:
      UserInputError, DataFormatError: see :func:`read_interactions`; also
        when a named field is not in the header.
    """
    fields = fields or RecboleFields()
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None or not first[1].strip():
        raise _empty(path)
    names = [_header_name(f)
             for f in _split_header(first[1], "\t", "tabs", path)]
    ucol = _column(names, (fields.user,) if fields.user
                   else _RECBOLE_USER_FIELDS, path)
    icol = _column(names, (fields.item,) if fields.item
                   else _RECBOLE_ITEM_FIELDS, path)
    time_names = (fields.time,) if fields.time else _RECBOLE_TIME_FIELDS
    tcol = (_column(names, time_names, path) if fields.time is not None
            else _find_column(names, time_names))
    width = len(names)
    out = _Collector(path, with_time=tcol is not None)
    if tcol is None:
        out.notes.append(
            f"{path}: no 'timestamp' column (columns: {', '.join(names)}); "
            f"each user's interactions keep their file order (name the time "
            f"column with --time_field)")
    for lineno, text in lines:
        if not text.strip():
            continue
        row = text.split("\t")
        if len(row) != width:
            raise _field_count_error(path, lineno, width, len(row), "tab")
        user, item = row[ucol], row[icol]
        _check_ids(path, lineno, user, item)
        t = _parse_time(row[tcol], path, lineno) if tcol is not None \
            else None
        out.add(lineno, user, item, t)
    return out.result(DataFormatError(
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
    out = _Collector(path, with_time=True, units_per_second=10**6)
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != 5:
            raise _field_count_error(path, lineno, 5, len(fields), "tab")
        user, when, item = fields[0], fields[1], fields[4]
        _check_ids(path, lineno, user, item)
        out.add(lineno, user, item, _parse_iso_time(when, path, lineno))
    return out.result()


def read_user_item_time_tsv(path: str) -> RawInteractions:
    """Reads ``user<TAB>item<TAB>unix_timestamp`` lines (no header).

    Args:
      path: the file.

    Returns:
      The interactions with their timestamps.

    Raises:
      UserInputError, DataFormatError: see :func:`read_interactions`.
    """
    out = _Collector(path, with_time=True)
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != 3:
            raise _field_count_error(path, lineno, 3, len(fields), "tab")
        _check_ids(path, lineno, fields[0], fields[1])
        if lineno == 1 and _looks_like_header(fields):
            raise DataFormatError(
                f"line 1 looks like a header ({text!r}); this format has "
                f"none (a RecBole .inter file is --dataset_format "
                f"recbole_inter)", path=path, line=1)
        out.add(lineno, fields[0], fields[1],
                _parse_time(fields[2], path, lineno))
    return out.result()


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
    names = [f.strip()
             for f in _split_header(first[1], ",", "commas", path)]
    cols = {}
    for name in ("timestamp", "visitorid", "event", "itemid"):
        cols[name] = _column(names, (name,), path)
    tcol, ucol, ecol, icol = (cols["timestamp"], cols["visitorid"],
                              cols["event"], cols["itemid"])
    width = len(names)
    out = _Collector(path, with_time=True, units_per_second=1000)
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
        out.add(lineno, fields[ucol], fields[icol], ms)
    return out.result(DataFormatError(
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
    out = _Collector(path, with_time=True)
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            # Decimal keeps fractional times exact (float would round).
            record = json.loads(text, parse_float=decimal.Decimal)
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
        if isinstance(when, bool) or not isinstance(
                when, (int, decimal.Decimal, str)):
            raise DataFormatError(
                f"unixReviewTime {when!r} is not a number", path=path,
                line=lineno)
        user, item = str(user), str(item)
        _check_ids(path, lineno, user, item)
        out.add(lineno, user, item, _parse_time(str(when), path, lineno))
    return out.result()


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
    out = _Collector(path, with_time=False)
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
            out.add(lineno, user, item)
    return out.result()


def read_user_item_lines(path: str) -> RawInteractions:
    """Reads ``user item`` lines (whitespace-separated), in time order.

    Args:
      path: the file.

    Returns:
      The interactions, timestamps None.

    Raises:
      UserInputError, DataFormatError: see :func:`read_interactions`.
    """
    out = _Collector(path, with_time=False)
    for lineno, text in iter_lines(path):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise _field_count_error(path, lineno, 2, len(fields),
                                     "whitespace")
        out.add(lineno, fields[0], fields[1])
    return out.result()


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


# Time units per second of each format's numeric time column as written
# by its usual source (snap_gowalla has ISO strings; seq_lines and
# user_item_lines have no times).
NATIVE_UNITS = {"recbole_inter": 1, "user_item_time_tsv": 1,
                "amazon_reviews_json": 1, "retailrocket_events": 1000}
UNITS_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
# Seconds since the epoch are below 1e11 until the year 5138: a column
# whose median is above that is in a finer unit.
_EPOCH_SCALES = ((1e17, "ns"), (1e14, "us"), (1e11, "ms"))
_UNIT_WORDS = {"ms": "milliseconds", "us": "microseconds",
               "ns": "nanoseconds"}


def _to_seconds(raw: RawInteractions, fmt: str, unit: str
                ) -> RawInteractions:
    """``raw`` with its timestamps in seconds (see read_interactions)."""
    if raw.timestamps is None or fmt not in NATIVE_UNITS:
        if unit != "auto":
            kind = ("ISO times" if fmt == "snap_gowalla" else "no times")
            raise UserInputError(f"--time_unit {unit}: {fmt} has {kind}; "
                                 "leave --time_unit out")
        return raw
    native = NATIVE_UNITS[fmt]
    if unit != "auto":
        factor = native / UNITS_PER_SECOND[unit]
        if factor == 1:
            return raw
        return dataclasses.replace(raw, timestamps=raw.timestamps * factor)
    median = float(np.median(np.abs(raw.timestamps)))
    for scale, finer in _EPOCH_SCALES:
        if median >= scale:
            per_second = UNITS_PER_SECOND[finer]
            note = (f"{raw.source}: the time column holds Unix "
                    f"{_UNIT_WORDS[finer]}"
                    f" (median {median * native:.0f}), not "
                    f"{'seconds' if native == 1 else 'milliseconds'}; "
                    f"converted to seconds (--time_unit to say the unit)")
            return dataclasses.replace(
                raw, timestamps=raw.timestamps / per_second,
                notes=raw.notes + (note,))
    return raw


def check_format(fmt: str) -> None:
    """Raises UserInputError unless ``fmt`` is a known format name."""
    if fmt not in _READERS:
        raise UserInputError(
            f"unknown data format {fmt!r}; valid formats: "
            f"{', '.join(FORMATS)}")


def read_interactions(path: str, fmt: str,
                      recbole_fields: RecboleFields | None = None,
                      time_unit: str = "auto") -> RawInteractions:
    """Reads an interaction file of format ``fmt``.

    Args:
      path: the file, plain or gzip-compressed (detected from its content).
      fmt: one of :data:`FORMATS`.
      recbole_fields: column names of a ``recbole_inter`` file (None: the
        usual names); refused for the other formats.
      time_unit: the unit of the time column (``config.TIME_UNITS``):
        'auto' takes the format's own (:data:`NATIVE_UNITS`) and notices a
        column of epoch milli-, micro- or nanoseconds; the timestamps
        returned are seconds either way.

    Returns:
      The interactions in file order, with ``notes``: the reader's (which
      order is used without times) and :func:`sniff`'s.

    Raises:
      UserInputError: unknown format, or the file is missing.
      DataFormatError: the file does not have the format: a malformed line,
        a wrong number of columns, a non-numeric timestamp, a missing header
        column, an empty file, bytes that are not UTF-8, or a truncated or
        corrupt gzip stream.  The message names the file and line.
    """
    check_format(fmt)
    path = os.fspath(path)
    if fmt == "recbole_inter":
        raw = read_recbole_inter(path, recbole_fields)
    else:
        if recbole_fields is not None and recbole_fields != RecboleFields():
            raise UserInputError(
                "--user_id_field, --item_id_field and --time_field name the "
                f"columns of a RecBole file (--dataset_format recbole_inter),"
                f" not of {fmt}")
        raw = _READERS[fmt](path)
    raw = _to_seconds(raw, fmt, time_unit)
    notes = list(raw.notes)
    if raw.timestamps is None and fmt != "recbole_inter":
        notes.append(f"{path}: {fmt} has no times; each user's items keep "
                     f"their file order")
    notes += sniff(path, fmt, raw)
    return dataclasses.replace(raw, notes=tuple(notes))
