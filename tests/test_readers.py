"""Tests of dismir_tf.data.readers: every format, every error, gzip."""

from __future__ import annotations

import datetime
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from dismir_tf.data.readers import FORMATS, RawInteractions, read_interactions
from dismir_tf.errors import DataFormatError, UserInputError
from tests.helpers import shared_file

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name: str) -> str:
    return str(FIXTURES / name)


def write(tmp_path: Path, name: str, data: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return str(path)


def assert_error_at(excinfo: pytest.ExceptionInfo, path: str, line: int | None) -> None:
    """The error names the file and the 1-based line, in attrs and text."""
    err = excinfo.value
    assert err.path == path
    assert path in str(err)
    if line is not None:
        assert err.line == line
        assert f"{path}:{line}:" in str(err)


# ------------------------------------------------------------ each format
def test_formats_are_exactly_the_documented_names():
    assert FORMATS == (
        "recbole_inter",
        "snap_gowalla",
        "user_item_time_tsv",
        "retailrocket_events",
        "amazon_reviews_json",
        "seq_lines",
        "user_item_lines",
    )


def test_recbole_inter_reads_columns_by_header_name():
    raw = read_interactions(fixture("recbole.inter"), "recbole_inter")
    assert isinstance(raw, RawInteractions)
    assert raw.users == ["196", "186", "196"]
    assert raw.items == ["242", "302", "377"]
    assert raw.timestamps.dtype == np.float64
    np.testing.assert_array_equal(raw.timestamps, [881250949, 891717742, 878887116])
    assert raw.source == fixture("recbole.inter")


def test_recbole_inter_other_column_order_and_names():
    # RecBole's Retail Rocket file: timestamp first, 'visitor_id' as user.
    raw = read_interactions(fixture("recbole_visitor.inter"), "recbole_inter")
    assert raw.users == ["257597", "992329"]
    assert raw.items == ["355908", "248676"]
    # Kaggle's millisecond times, noticed and given in seconds like the
    # retailrocket_events reader's (issue: 1000x apart, silently).
    np.testing.assert_allclose(raw.timestamps, [1433221332.117, 1433224214.164])
    assert any("milliseconds" in n for n in raw.notes)


def test_recbole_inter_without_timestamp_column():
    raw = read_interactions(fixture("recbole_notime.inter"), "recbole_inter")
    assert raw.users == ["7", "7", "8"]
    assert raw.items == ["1", "2", "1"]
    assert raw.timestamps is None


def test_snap_gowalla_uses_location_as_item_and_parses_iso_time():
    raw = read_interactions(fixture("snap_gowalla.txt"), "snap_gowalla")
    assert raw.users == ["0", "0", "1"]
    assert raw.items == ["22847", "420315", "316637"]
    expected = datetime.datetime(
        2010, 10, 19, 23, 55, 27, tzinfo=datetime.UTC
    ).timestamp()
    assert raw.timestamps[0] == expected
    # Newest first in the file, as in SNAP: the reader keeps file order.
    assert raw.timestamps[0] > raw.timestamps[1]


def test_user_item_time_tsv():
    raw = read_interactions(fixture("checkins.tsv"), "user_item_time_tsv")
    assert raw.users == ["0", "0", "1"]
    assert raw.items == ["2049", "0", "1"]
    np.testing.assert_array_equal(
        raw.timestamps, [1287503727.0, 1287411463.0, 1287330123.5]
    )


def test_gzip_fixture_reads_like_the_plain_file():
    plain = read_interactions(fixture("checkins.tsv"), "user_item_time_tsv")
    packed = read_interactions(fixture("checkins.tsv.gz"), "user_item_time_tsv")
    assert packed.users == plain.users and packed.items == plain.items
    np.testing.assert_array_equal(packed.timestamps, plain.timestamps)


def test_gzip_is_detected_by_magic_bytes_not_extension(tmp_path):
    data = (FIXTURES / "seq.txt").read_bytes()
    hidden = write(tmp_path, "seq.txt", gzip.compress(data))
    fake = write(tmp_path, "seq.txt.gz", data)  # plain text, .gz name
    for path in (hidden, fake):
        raw = read_interactions(path, "seq_lines")
        assert raw.users == ["1"] * 5 + ["2"] * 3


def test_retailrocket_keeps_views_only_in_seconds():
    raw = read_interactions(fixture("events.csv"), "retailrocket_events")
    assert raw.users == ["257597", "992329", "257597"]
    assert raw.items == ["355908", "248676", "11"]
    np.testing.assert_allclose(
        raw.timestamps, [1433221332.117, 1433224214.164, 1433221337.106]
    )


def test_amazon_reviews_json():
    raw = read_interactions(fixture("reviews.json"), "amazon_reviews_json")
    assert raw.users == ["A2SUAM1J3GNN3B", "A2SUAM1J3GNN3B", "AZZZ"]
    assert raw.items == ["0000013714", "0000031852", "0000013714"]
    np.testing.assert_array_equal(raw.timestamps, [1252800000, 1203984000, 1400000000])


def test_seq_lines():
    raw = read_interactions(fixture("seq.txt"), "seq_lines")
    assert raw.users == ["1"] * 5 + ["2"] * 3
    assert raw.items == ["1", "2", "3", "4", "5", "6", "7", "8"]
    assert raw.timestamps is None


def test_user_item_lines():
    raw = read_interactions(fixture("user_item.txt"), "user_item_lines")
    assert raw.users == ["1", "1", "1", "2"]
    assert raw.items == ["6393", "13504", "14087", "6393"]
    assert raw.timestamps is None


def test_blank_lines_and_crlf_are_tolerated(tmp_path):
    path = write(tmp_path, "a.tsv", "u\ti\t1\r\n\r\nu\tj\t2\r\n\n")
    raw = read_interactions(path, "user_item_time_tsv")
    assert raw.items == ["i", "j"]


# ------------------------------------------------------------- the errors
def test_unknown_format_lists_the_valid_names():
    with pytest.raises(UserInputError) as excinfo:
        read_interactions(fixture("seq.txt"), "csv")
    for name in FORMATS:
        assert name in str(excinfo.value)


def test_missing_file_is_a_user_input_error(tmp_path):
    path = str(tmp_path / "nope.tsv")
    with pytest.raises(UserInputError) as excinfo:
        read_interactions(path, "user_item_time_tsv")
    assert not isinstance(excinfo.value, DataFormatError)
    assert_error_at(excinfo, path, None)
    assert "not found" in str(excinfo.value)


@pytest.mark.parametrize(
    "fmt, text, line, words",
    [
        ("user_item_time_tsv", "u\ti\t1\nu\ti\n", 2, "expected 3"),
        ("user_item_time_tsv", "u\ti\t1\nu\ti\t2\t3\n", 2, "found 4"),
        ("user_item_time_tsv", "u\ti\t1\nu\ti\tyesterday\n", 2, "not a number"),
        ("user_item_time_tsv", "u\ti\tnan\n", 1, "not finite"),
        ("user_item_time_tsv", "u\t\t1\n", 1, "empty"),
        (
            "snap_gowalla",
            "0\t2010-10-19T23:55:27Z\t1\t2\t5\n0\t2010\t1\n",
            2,
            "expected 5",
        ),
        ("snap_gowalla", "0\tlast tuesday\t1.0\t2.0\t5\n", 1, "ISO-8601"),
        (
            "recbole_inter",
            "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t2\n",
            3,
            "expected 3",
        ),
        (
            "recbole_inter",
            "user_id:token\titem_id:token\ttimestamp:float\n1\t2\tsoon\n",
            2,
            "not a number",
        ),
        (
            "recbole_inter",
            "uid:token\titem_id:token\n1\t2\n",
            1,
            "missing header column 'user_id'",
        ),
        (
            "recbole_inter",
            "user_id:token\titem:token\n1\t2\n",
            1,
            "missing header column 'item_id'",
        ),
        ("recbole_inter", "user_id:token\titem_id:token\n", 2, "no interactions"),
        (
            "retailrocket_events",
            "timestamp,visitorid,event,itemid\n1,2,view,3\n1,2,view\n",
            3,
            "expected 4",
        ),
        (
            "retailrocket_events",
            "timestamp,visitor,event,itemid\n1,2,view,3\n",
            1,
            "missing header column 'visitorid'",
        ),
        (
            "retailrocket_events",
            "timestamp,visitorid,event,itemid\nx,2,view,3\n",
            2,
            "not a number",
        ),
        (
            "amazon_reviews_json",
            '{"reviewerID": "a", "asin": "b", '
            '"unixReviewTime": 1}\n{"reviewerID": "a", "asin": \n',
            2,
            "invalid JSON",
        ),
        (
            "amazon_reviews_json",
            '{"reviewerID": "a", "unixReviewTime": 1}\n',
            1,
            "missing key 'asin'",
        ),
        (
            "amazon_reviews_json",
            '{"reviewerID": "a", "asin": "b", "unixReviewTime": "May"}\n',
            1,
            "not a number",
        ),
        ("amazon_reviews_json", "[1, 2]\n", 1, "JSON object"),
        ("seq_lines", "1 2 3\n4\n", 2, "at least one item"),
        ("user_item_lines", "1 2\n1 2 3\n", 2, "found 3"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, fmt, text, line, words):
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(DataFormatError) as excinfo:
        read_interactions(path, fmt)
    assert_error_at(excinfo, path, line)
    assert words in str(excinfo.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_file(tmp_path, fmt):
    path = write(tmp_path, "empty.txt", "")
    with pytest.raises(DataFormatError) as excinfo:
        read_interactions(path, fmt)
    assert_error_at(excinfo, path, 1)
    assert "empty" in str(excinfo.value)


def test_retailrocket_without_views(tmp_path):
    path = write(
        tmp_path, "events.csv", "timestamp,visitorid,event,itemid\n1,2,addtocart,3\n"
    )
    with pytest.raises(DataFormatError, match="no 'view' events"):
        read_interactions(path, "retailrocket_events")


def test_non_utf8_bytes(tmp_path):
    path = write(tmp_path, "latin1.txt", b"1 2\n1 \xe9t\xe9\n")
    with pytest.raises(DataFormatError) as excinfo:
        read_interactions(path, "user_item_lines")
    assert_error_at(excinfo, path, 2)
    assert "UTF-8" in str(excinfo.value)


def test_non_utf8_bytes_inside_gzip(tmp_path):
    path = write(tmp_path, "latin1.gz", gzip.compress(b"1 2\n\xff 3\n"))
    with pytest.raises(DataFormatError) as excinfo:
        read_interactions(path, "user_item_lines")
    assert_error_at(excinfo, path, 2)


def _many_lines() -> bytes:
    return b"".join(b"%d\t%d\t%d\n" % (u, u * 7 % 101, 1000 + u) for u in range(20000))


def test_truncated_gzip(tmp_path):
    packed = gzip.compress(_many_lines())
    path = write(tmp_path, "cut.tsv.gz", packed[: len(packed) // 2])
    with pytest.raises(DataFormatError) as excinfo:
        read_interactions(path, "user_item_time_tsv")
    assert_error_at(excinfo, path, excinfo.value.line)
    assert excinfo.value.line > 1
    assert "truncated" in str(excinfo.value)


def test_corrupt_gzip_crc(tmp_path):
    packed = bytearray(gzip.compress(_many_lines()))
    packed[-8] ^= 0xFF  # the CRC-32 in the trailer
    path = write(tmp_path, "crc.tsv.gz", bytes(packed))
    with pytest.raises(DataFormatError) as excinfo:
        read_interactions(path, "user_item_time_tsv")
    assert_error_at(excinfo, path, 20001)
    assert "gzip" in str(excinfo.value)


def test_corrupt_gzip_data(tmp_path):
    packed = bytearray(gzip.compress(_many_lines()))
    for i in range(40, 60):
        packed[i] ^= 0x5A
    path = write(tmp_path, "bad.tsv.gz", bytes(packed))
    with pytest.raises(DataFormatError) as excinfo:
        read_interactions(path, "user_item_time_tsv")
    assert excinfo.value.path == path and excinfo.value.line >= 1
    assert f"{path}:{excinfo.value.line}:" in str(excinfo.value)


def test_directory_is_a_user_input_error(tmp_path):
    with pytest.raises(UserInputError, match="directory"):
        read_interactions(str(tmp_path), "seq_lines")


# ------------------------------------------------------- the shared files
def _recount(path: Path, skip_header: bool = False) -> list[list[str]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    return [line.split() for line in lines[int(skip_header) :] if line]


def test_shared_gowalla_lbsn(tmp_path):
    path = shared_file("gowalla-lbsn/gowalla_lbsn1000_checkins.tsv.gz")
    raw = read_interactions(str(path), "user_item_time_tsv")
    rows = _recount(path)
    assert len(raw) == len(rows) == 157_251
    assert len(set(raw.users)) == len({r[0] for r in rows}) == 1_000
    assert len(set(raw.items)) == len({r[1] for r in rows}) == 24_209
    assert raw.timestamps[0] == float(rows[0][2])


def test_shared_ml100k():
    path = shared_file("ml-100k/ml-100k.inter.gz")
    raw = read_interactions(str(path), "recbole_inter")
    rows = _recount(path, skip_header=True)
    assert len(raw) == len(rows) == 100_000
    assert len(set(raw.users)) == len({r[0] for r in rows}) == 943
    assert len(set(raw.items)) == len({r[1] for r in rows}) == 1_682
    assert raw.timestamps is not None


def test_shared_beauty():
    path = shared_file("beauty/Beauty.txt.gz")
    raw = read_interactions(str(path), "seq_lines")
    rows = _recount(path)
    assert len(raw) == sum(len(r) - 1 for r in rows) == 198_502
    assert len(set(raw.users)) == len(rows) == 22_363
    assert len(set(raw.items)) == len({i for r in rows for i in r[1:]}) == 12_101


def test_shared_video_games():
    path = shared_file("video-games/Video.txt.gz")
    raw = read_interactions(str(path), "user_item_lines")
    rows = _recount(path)
    assert len(raw) == len(rows) == 287_107
    assert len(set(raw.users)) == len({r[0] for r in rows}) == 31_013
    assert len(set(raw.items)) == len({r[1] for r in rows}) == 23_715


def test_copy_of_shared_file_without_gz_name_still_reads(tmp_path):
    source = shared_file("gowalla-lbsn/gowalla_lbsn100_checkins.tsv.gz")
    target = tmp_path / "checkins.tsv"
    shutil.copy(source, target)
    assert len(read_interactions(str(target), "user_item_time_tsv")) == 19_855


def test_shared_file_helper_fails_under_ci_and_skips_otherwise(monkeypatch, tmp_path):
    monkeypatch.setattr("tests.helpers.SHARED", tmp_path / "absent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        shared_file("beauty/Beauty.txt.gz")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        shared_file("beauty/Beauty.txt.gz")


# ------------------------------------- every reader: BOMs and missing ids
def _line(fmt: str, user: str, item: str, t: int) -> str:
    """One interaction in ``fmt`` (the user and item given verbatim)."""
    if fmt in ("recbole_inter", "user_item_time_tsv"):
        return f"{user}\t{item}\t{t}"
    if fmt == "snap_gowalla":
        when = datetime.datetime.fromtimestamp(1_300_000_000 + t, datetime.timezone.utc)
        return f"{user}\t{when:%Y-%m-%dT%H:%M:%SZ}\t30.2\t-97.7\t{item}"
    if fmt == "retailrocket_events":
        return f"{1_433_000_000_000 + 1000 * t},{user},view,{item},"
    if fmt == "amazon_reviews_json":
        import json

        return json.dumps(
            {"reviewerID": user, "asin": item, "unixReviewTime": 1_300_000_000 + t}
        )
    if fmt == "seq_lines":
        return f"{user} {item} {item}x"
    return f"{user} {item}"


HEADERS = {
    "recbole_inter": "user_id:token\titem_id:token\ttimestamp:float",
    "retailrocket_events": "timestamp,visitorid,event,itemid,transactionid",
}


def _file(tmp_path, fmt, lines):
    header = [HEADERS[fmt]] if fmt in HEADERS else []
    return write(tmp_path, f"f.{fmt}", "\n".join(header + lines) + "\n")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_bom_at_any_line_start_is_dropped(tmp_path, fmt):
    # Two exported files joined with `cat`: the second one's byte order
    # mark lands at the start of a line in the middle.
    lines = [
        _line(fmt, "u1", "i1", 1),
        _line(fmt, "u2", "i2", 2),
        "\ufeff" + _line(fmt, "u2", "i3", 3),
    ]
    raw = read_interactions(_file(tmp_path, fmt, lines), fmt)
    assert set(raw.users) == {"u1", "u2"}
    assert not any("\ufeff" in i for i in raw.items)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("null", ["null", "NULL", "None", "NaN", "n/a"])
@pytest.mark.parametrize("role", ["user", "item"])
def test_a_null_id_is_an_error_at_its_line(tmp_path, fmt, null, role):
    user, item = (null, "i2") if role == "user" else ("u2", null)
    lines = [_line(fmt, "u1", "i1", 1), _line(fmt, user, item, 2)]
    path = _file(tmp_path, fmt, lines)
    with pytest.raises(DataFormatError, match=f"the {role} id is missing") as excinfo:
        read_interactions(path, fmt)
    assert_error_at(excinfo, path, 2 + (fmt in HEADERS))


@pytest.mark.parametrize("key", ["reviewerID", "asin"])
def test_json_null_ids_are_errors_not_the_id_none(tmp_path, key):
    import json

    rows = [
        {"reviewerID": "u1", "asin": "i1", "unixReviewTime": 1},
        {"reviewerID": "u2", "asin": "i2", "unixReviewTime": 2},
    ]
    rows[1][key] = None
    path = write(tmp_path, "a.json", "\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataFormatError, match="id is missing") as excinfo:
        read_interactions(path, "amazon_reviews_json")
    assert_error_at(excinfo, path, 2)


# ------------------------------------------- times: one unit, seconds
MS = [1433307732521, 1433307741000, 1433307799123]


@pytest.mark.parametrize("fmt", ["recbole_inter", "user_item_time_tsv"])
def test_epoch_milliseconds_are_noticed_and_converted(tmp_path, fmt):
    # RecBole's retailrocket-view.inter keeps Kaggle's millisecond times;
    # events.csv gives the same seconds through the retailrocket reader.
    lines = [f"u1\ti{j}\t{t}.0" for j, t in enumerate(MS)]
    header = [HEADERS["recbole_inter"]] if fmt == "recbole_inter" else []
    path = write(tmp_path, "ms", "\n".join(header + lines) + "\n")
    raw = read_interactions(path, fmt)
    np.testing.assert_allclose(raw.timestamps, np.array(MS) / 1000)
    assert any("milliseconds" in n and "converted" in n for n in raw.notes)
    events = write(
        tmp_path,
        "events.csv",
        "\n".join(
            [HEADERS["retailrocket_events"]]
            + [f"{t},u1,view,i{j}," for j, t in enumerate(MS)]
        )
        + "\n",
    )
    np.testing.assert_allclose(
        read_interactions(events, "retailrocket_events").timestamps, raw.timestamps
    )


@pytest.mark.parametrize(
    "scale,unit", [(1, "s"), (10**3, "ms"), (10**6, "us"), (10**9, "ns")]
)
def test_every_unit_gives_seconds(tmp_path, scale, unit):
    secs = [1_300_000_000, 1_300_000_060, 1_300_003_600]
    path = write(
        tmp_path,
        "t.tsv",
        "".join(f"u\ti{j}\t{t * scale}\n" for j, t in enumerate(secs)),
    )
    for given in ("auto", unit):
        raw = read_interactions(path, "user_item_time_tsv", time_unit=given)
        np.testing.assert_allclose(raw.timestamps, secs)
    # Saying the unit wins over the guess (small numbers in seconds stay).
    small = write(tmp_path, "small.tsv", "u\ti\t5\nu\tj\t7\n")
    raw = read_interactions(small, "user_item_time_tsv", time_unit="ms")
    np.testing.assert_allclose(raw.timestamps, [0.005, 0.007])


def test_a_time_unit_for_a_format_without_numeric_times_is_refused(tmp_path):
    path = write(tmp_path, "s.txt", "u1 a b c\n")
    with pytest.raises(UserInputError, match="no times"):
        read_interactions(path, "seq_lines", time_unit="ms")
    with pytest.raises(UserInputError, match="ISO times"):
        read_interactions(fixture("snap_gowalla.txt"), "snap_gowalla", time_unit="s")
