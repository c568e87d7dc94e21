"""Inputs from the field (issue 14): exact time order, RecBole's renamed
fields, ids with spaces through every writer, formats that do not fit."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from dismir_tf.config import DataConfig
from dismir_tf.data import load_dataset
from dismir_tf.data.preprocess import build_dataset
from dismir_tf.data.readers import RecboleFields, read_interactions
from dismir_tf.errors import ConfigError, DataFormatError, UserInputError
from tests.helpers import shared_file


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def order(path: str, fmt: str, **kw) -> dict[str, list[str]]:
    """Each user's items after preprocessing's time sort (no filtering)."""
    raw = read_interactions(path, fmt, **kw)
    ds = build_dataset(raw, "t", min_item_count=1, min_user_count=1)
    return {
        str(ds.user_ids[u]): [str(ds.item_ids[i]) for i in ds.sequence(u)]
        for u in range(len(ds.user_ids))
    }


# ------------------------------------------------ 1. exact time order
@pytest.mark.parametrize(
    "times,expected",
    [
        # The reported case: nanosecond epochs 1 ns apart (float64 ties them).
        (["1700000000123456790", "1700000000123456789"], ["p1", "p0"]),
        # Beyond int64.
        (["100000000000000000001", "100000000000000000000"], ["p1", "p0"]),
        # Decimals that differ beyond float64's 17 digits.
        (["1700000000.12345678901", "1700000000.12345678900"], ["p1", "p0"]),
        # Mixed integer, decimal and exponent forms of nearby times.
        (["17000000001234567891e-9", "1700000000.123456789"], ["p1", "p0"]),
        (["1.5e9", "1499999999.9999999999"], ["p1", "p0"]),
        # Plain seconds keep working; equal times keep file order.
        (["1300000100", "1300000000"], ["p1", "p0"]),
        (["1300000000", "1300000000.0"], ["p0", "p1"]),
    ],
)
def test_every_time_reader_orders_exactly(tmp_path, times, expected):
    tsv = write(
        tmp_path, "a.tsv", "".join(f"n1\tp{i}\t{t}\n" for i, t in enumerate(times))
    )
    assert order(tsv, "user_item_time_tsv")["n1"] == expected
    inter = write(
        tmp_path,
        "a.inter",
        "user_id:token\titem_id:token\t"
        "timestamp:float\n" + "".join(f"n1\tp{i}\t{t}\n" for i, t in enumerate(times)),
    )
    assert order(inter, "recbole_inter")["n1"] == expected
    js = write(
        tmp_path,
        "a.json",
        "".join(
            f'{{"reviewerID": "n1", "asin": "p{i}", "unixReviewTime": {t}}}\n'
            for i, t in enumerate(times)
        ),
    )
    assert order(js, "amazon_reviews_json")["n1"] == expected
    csv = write(
        tmp_path,
        "events.csv",
        "timestamp,visitorid,event,itemid,"
        "transactionid\n"
        + "".join(f"{t},n1,view,p{i},\n" for i, t in enumerate(times)),
    )
    assert order(csv, "retailrocket_events")["n1"] == expected


def test_iso_times_order_to_the_microsecond(tmp_path):
    path = write(
        tmp_path,
        "g.txt",
        "u\t2010-10-19T23:55:27.000002\t0\t0\tb\n"
        "u\t2010-10-19T23:55:27.000001\t0\t0\ta\n",
    )
    assert order(path, "snap_gowalla")["u"] == ["a", "b"]
    raw = read_interactions(path, "snap_gowalla")
    assert raw.timestamps[0] == pytest.approx(1287532527.000002, abs=1e-6)


def test_float_seconds_stay_seconds(tmp_path):
    csv = write(
        tmp_path,
        "events.csv",
        "timestamp,visitorid,event,itemid,transactionid\n1433221332117,v,view,i,\n",
    )
    raw = read_interactions(csv, "retailrocket_events")
    assert raw.timestamps[0] == pytest.approx(1433221332.117)


# ------------------------------------- 2. RecBole's renamed time field
RENAMED = (
    "user_id:token\titem_id:token\ttime:float\n"
    "w1\tnewer\t1300000100\nw1\tolder\t1300000000\n"
)


def test_a_renamed_time_field_is_never_ordered_silently(tmp_path):
    path = write(tmp_path, "r.inter", RENAMED)
    raw = read_interactions(path, "recbole_inter")
    assert raw.timestamps is None
    assert len(raw.notes) == 1
    assert "no 'timestamp' column" in raw.notes[0]
    assert "file order" in raw.notes[0] and "--time_field" in raw.notes[0]
    # Named as RecBole's TIME_FIELD, it orders by time.
    assert order(path, "recbole_inter", recbole_fields=RecboleFields(time="time"))[
        "w1"
    ] == ["older", "newer"]


def test_renamed_user_and_item_fields(tmp_path):
    path = write(
        tmp_path, "r.inter", "uid:token\tmovie:token\twhen:float\nw1\tb\t2\nw1\ta\t1\n"
    )
    with pytest.raises(DataFormatError, match="missing header column"):
        read_interactions(path, "recbole_inter")
    got = order(
        path,
        "recbole_inter",
        recbole_fields=RecboleFields(user="uid", item="movie", time="when"),
    )
    assert got == {"w1": ["a", "b"]}
    with pytest.raises(DataFormatError, match="'stamp'"):
        read_interactions(
            path, "recbole_inter", RecboleFields(user="uid", item="movie", time="stamp")
        )


def test_field_names_are_refused_for_other_formats(tmp_path):
    path = write(tmp_path, "a.tsv", "u\ti\t1\n")
    with pytest.raises(UserInputError, match="recbole_inter"):
        read_interactions(path, "user_item_time_tsv", RecboleFields(time="t"))
    with pytest.raises(ConfigError, match="recbole_inter"):
        DataConfig(
            dataset="",
            dataset_file=path,
            dataset_format="user_item_time_tsv",
            time_field="t",
        )


def test_formats_without_times_say_which_order_is_used(tmp_path):
    path = write(tmp_path, "s.txt", "u a b c\n")
    raw = read_interactions(path, "seq_lines")
    assert any("no times" in n and "file order" in n for n in raw.notes)


def test_notes_are_printed_on_build_and_again_from_the_cache(tmp_path):
    path = write(
        tmp_path,
        "r.inter",
        "user_id:token\titem_id:token\t"
        "time:float\n"
        + "".join(f"u{u}\ti{(u + k) % 7}\t{k}\n" for u in range(12) for k in range(6)),
    )
    cfg = DataConfig(
        dataset="",
        dataset_file=path,
        dataset_format="recbole_inter",
        min_item_count=1,
        data_dir=str(tmp_path / "data"),
    )
    for _ in range(2):  # build, then load from the cache
        lines = []
        load_dataset(cfg, log=lines.append)
        assert sum("no 'timestamp' column" in m for m in lines) == 1, lines
    named = dataclasses.replace(cfg, time_field="time")
    lines = []
    load_dataset(named, log=lines.append)
    assert not any(m.startswith("data: note:") for m in lines), lines


# ---------------------------------------- 3. ids that contain spaces
@pytest.mark.parametrize(
    "bad", ["a\tb", "a\nb", "a\rb", "a\x85b", "a\u2028b", "a\x00b", "a\x1fb"]
)
def test_ids_with_control_characters_are_refused_with_the_line(tmp_path, bad):
    path = write(
        tmp_path,
        "a.json",
        '{"reviewerID": "u", "asin": "ok", "unixReviewTime": 1}\n'
        + json.dumps({"reviewerID": "u", "asin": bad, "unixReviewTime": 2})
        + "\n",
    )
    with pytest.raises(DataFormatError, match="control character") as e:
        read_interactions(path, "amazon_reviews_json")
    assert e.value.line == 2


# ------------------------------------------ 6. formats that do not fit
def test_a_tab_separated_file_read_as_seq_lines_is_noted():
    path = str(shared_file("gowalla-lbsn/gowalla_lbsn100_checkins.tsv.gz"))
    notes = read_interactions(path, "seq_lines").notes
    assert any("tab-separated" in n and "user_item_time_tsv" in n for n in notes), notes
    assert any("look like Unix times" in n for n in notes), notes
    # Read with its own format, nothing is noted.
    assert read_interactions(path, "user_item_time_tsv").notes == ()


@pytest.mark.parametrize(
    "relative",
    [
        "beauty/Beauty.txt.gz",
        "ml-1m-odd/ml-1m-odd.seq.txt.gz",
        "video-games/Video.txt.gz",
    ],
)
def test_the_shared_sequence_files_raise_no_format_note(relative):
    notes = read_interactions(str(shared_file(relative)), "seq_lines").notes
    assert [n for n in notes if "no times" not in n] == []


def test_epoch_like_items_and_header_rows_are_noted(tmp_path):
    path = write(
        tmp_path,
        "swap.txt",
        "".join(f"u{u} {1288740000 + 97 * k}\n" for u in range(3) for k in range(4)),
    )
    notes = read_interactions(path, "user_item_lines").notes
    assert any("look like Unix times" in n for n in notes), notes
    path = write(tmp_path, "h.txt", "user_id item_id\nu1 i1\nu1 i2\n")
    notes = read_interactions(path, "user_item_lines").notes
    assert any("looks like a header" in n for n in notes), notes
    path = write(
        tmp_path, "h.tsv", "user_id:token\titem_id:token\ttimestamp:float\nu\ti\t1\n"
    )
    with pytest.raises(DataFormatError, match="recbole_inter") as e:
        read_interactions(path, "user_item_time_tsv")
    assert e.value.line == 1


# Ids a reader accepts: spaces (TFRS's MovieLens titles), quotes,
# backslashes, '#', non-ASCII, leading and trailing spaces.
ODD_IDS = [
    "Movie Number 3 (1953)",
    ' "quoted" ',
    "back\\slash",
    "#1",
    "Amélie (2001)",
    " lead",
    "trail ",
    "a,b;c",
    "x  y",
    "{json}",
]


def test_ids_with_spaces_round_trip_through_every_writer(tmp_path):
    from dismir_tf import export, reports, training
    from tests.helpers import tiny_run_config

    # 60 items (the evaluation ranks a top 50), every odd id in every
    # user's history so that each one reaches the dumps.
    catalogue = ODD_IDS + [f"Movie Number {k} ({1900 + k})" for k in range(50)]
    rng = np.random.default_rng(0)
    lines = []
    for u in range(60):
        items = list(ODD_IDS) + list(rng.choice(catalogue[10:], 6, False))
        for k, item in enumerate(rng.permutation(items)):
            lines.append(f"viewer {u}\t{item}\t{880000000 + 60 * k}\n")
    path = write(tmp_path, "titles.tsv", "".join(lines))
    config = tiny_run_config(
        str(tmp_path / "run"), max_steps=10, eval_every=10, num_interests=2
    )
    config = dataclasses.replace(
        config,
        data=DataConfig(
            dataset="",
            dataset_file=path,
            dataset_format="user_item_time_tsv",
            min_item_count=1,
            data_dir=str(tmp_path / "data"),
        ),
    )
    training.run(config, log=lambda m: None)
    config, ds, model = training.load_run(config.train.output_dir, log=lambda m: None)
    assert sorted(ds.item_ids[1:]) == sorted(catalogue)

    dump = str(tmp_path / "top.jsonl")
    reports.evaluate_split(config, ds, model, "test", dump_topk=dump)
    records = reports.read_topk_dump(dump)
    assert records and all(len(r["top50"]) == 50 for r in records)
    seen = set()
    for r in records:
        assert set(r["top50"]) <= set(catalogue)
        assert r["user"] in set(ds.user_ids)
        assert set(r["targets"]) <= set(catalogue)
        seen |= set(r["top50"]) | set(r["targets"])
    assert set(ODD_IDS) <= seen

    part = str(tmp_path / "partition.tsv")
    reports.dump_partition(ds, model, part)
    assert [row[0] for row in reports.read_partition_dump(part)] == list(
        ds.item_ids[1:]
    )

    out = export.export_model(model, ds, config, str(tmp_path / "export"))
    with open(
        os.path.join(
            os.path.dirname(out) if os.path.isfile(out) else out,
            export.EXTRA_DIR,
            export.ITEMS_FILE,
        ),
        encoding="utf-8",
        newline="\n",
    ) as f:
        rows = f.read().split("\n")
    assert rows[0] == "item_id\ttrain_count" and rows[-1] == ""
    assert [r.rsplit("\t", 1)[0] for r in rows[1:-1]] == list(ds.item_ids[1:])


# ---------------------------------- 5. flags that an entry point ignores
def _run(*args: str):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, *args], cwd=root, text=True, capture_output=True, timeout=120
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["compare.py", "--output_dir", "x", "--models", "dnn"],
            "--output_dir (use --out_dir",
        ),
        (["compare.py", "--seed", "3"], "--seed (use --seeds N"),
        (["compare.py", "--model", "mind"], "--model (use --models)"),
        (
            # A model's own flag that no model of the grid takes.
            ["compare.py", "--mode", "plugin", "--readout", "max"],
            "--readout acts only on dismir, mir, mir-rv, mir-bf, "
            "dismir-wo-dpi, not on any model of --models; remove it",
        ),
        (
            [
                "-m",
                "dismir_tf.analysis",
                "collapse",
                "--run_dirs",
                "r",
                "--max_steps",
                "5",
            ],
            "--max_steps does not act in analyze collapse",
        ),
        (
            ["-m", "dismir_tf.analysis", "variants", "--split", "valid"],
            "--split does not act in analyze variants",
        ),
        (
            ["-m", "dismir_tf.analysis", "sweep", "--output_dir", "x"],
            "--output_dir (use --out_dir)",
        ),
    ],
)
def test_a_flag_that_would_not_act_is_refused(args, message):
    proc = _run(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_default_output_places_are_not_committed_results():
    import subprocess

    root = Path(__file__).resolve().parents[1]
    for args, default in (
        (["compare.py", "--helpfull"], "runs/compare-<dataset>"),
        (["-m", "dismir_tf.analysis", "--helpfull"], "runs/sweep-<dataset>"),
    ):
        out = _run(*args).stdout
        assert default in out.replace("\n", " ").replace("  ", " ") or default in out, (
            default
        )
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "runs/compare-beauty/table.md"], cwd=root
    )
    assert ignored.returncode == 0


# ---------------------------------------- 8. errors that point the right way
@pytest.mark.parametrize(
    "fmt,header,name",
    [
        ("recbole_inter", "user_id:token item_id:token timestamp:float", "spaces"),
        ("recbole_inter", "user_id:token,item_id:token,timestamp:float", "commas"),
        ("retailrocket_events", "timestamp\tvisitorid\tevent\titemid", "tabs"),
        ("retailrocket_events", "timestamp;visitorid;event;itemid", "semicolons"),
    ],
)
def test_a_header_with_the_wrong_separator_says_so(tmp_path, fmt, header, name):
    path = write(tmp_path, "f.txt", header + "\n1 2 3\n")
    with pytest.raises(DataFormatError, match=f"separated by {name}") as e:
        read_interactions(path, fmt)
    assert e.value.line == 1


@pytest.mark.parametrize(
    "entry", [["-m", "dismir_tf.data", "stats"], ["train.py"], ["compare.py"]]
)
@pytest.mark.parametrize(
    "target,message",
    [("dir", "is a directory, expected a file"), ("missing", "file not found")],
)
def test_every_entry_point_checks_a_data_path_alike(tmp_path, entry, target, message):
    (tmp_path / "dir").mkdir()
    proc = _run(
        *entry,
        "--dataset_file",
        str(tmp_path / target),
        "--dataset_format",
        "seq_lines",
        "--data_dir",
        str(tmp_path / "data"),
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / target}: {message}"
    )
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("value", ["1e400", "9" * 60, "1e2000000", "-1e41", "1" * 300])
def test_a_time_out_of_range_is_one_clear_error(tmp_path, value):
    path = write(tmp_path, "t.tsv", f"u\ti\t1\nu\tj\t{value}\n")
    with pytest.raises(DataFormatError, match="timestamp") as e:
        read_interactions(path, "user_item_time_tsv")
    assert e.value.line == 2
