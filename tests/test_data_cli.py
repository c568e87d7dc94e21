"""Tests of load_dataset (caching), dataset_fingerprint and the data CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dismir_tf.config import DataConfig
from dismir_tf.data import (
    FORMATS,
    SequenceDataset,
    build_dataset,
    cache_path,
    dataset_fingerprint,
    load_dataset,
    read_interactions,
)
from dismir_tf.errors import DataFormatError, UserInputError
from tests.helpers import shared_file

ROOT = Path(__file__).resolve().parents[1]
GOWALLA_LBSN = "gowalla-lbsn/gowalla_lbsn1000_checkins.tsv.gz"


def _log_file(tmp_path: Path, users: int = 12, per_user: int = 6) -> Path:
    """A small user_item_time_tsv file in which every user and item is kept."""
    lines = [
        f"u{u}\ti{(u + t) % 5}\t{100 * u + t}"
        for u in range(users)
        for t in range(per_user)
    ]
    path = tmp_path / "my log.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cfg(path: Path, data_dir: Path, **kw) -> DataConfig:
    return DataConfig(
        dataset="",
        dataset_file=str(path),
        dataset_format="user_item_time_tsv",
        data_dir=str(data_dir),
        **kw,
    )


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "dismir_tf.data", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# ----------------------------------------------------------- load_dataset
def test_exports():
    assert "seq_lines" in FORMATS
    assert callable(build_dataset) and callable(read_interactions)
    assert SequenceDataset.__name__ == "SequenceDataset"


def test_local_file_is_cached_and_reloaded(tmp_path):
    path = _log_file(tmp_path)
    cfg = _cfg(path, tmp_path / "data")
    lines: list[str] = []
    ds = load_dataset(cfg, log=lines.append)
    cache = cache_path(cfg)
    assert os.path.isfile(cache)
    assert Path(cache).parent == tmp_path / "data" / "my_log"
    assert Path(cache).name.startswith("processed-")
    assert any("reading" in line for line in lines)
    assert any("saved" in line for line in lines)
    lines.clear()
    again = load_dataset(cfg, log=lines.append)
    assert any("loaded" in line for line in lines)
    assert not any("reading" in line for line in lines)
    assert dataset_fingerprint(again) == dataset_fingerprint(ds)
    np.testing.assert_array_equal(again.items, ds.items)
    assert ds.name == "my log"


def test_changed_file_or_option_rebuilds(tmp_path):
    path = _log_file(tmp_path)
    data = tmp_path / "data"
    first = cache_path(_cfg(path, data))
    load_dataset(_cfg(path, data))
    assert cache_path(_cfg(path, data, split_seed=1)) != first
    assert cache_path(_cfg(path, data, kcore=True)) != first
    assert cache_path(_cfg(path, data, min_item_count=2)) != first
    # Rewrite the file with one more user: size and mtime change.
    _log_file(tmp_path, users=13)
    os.utime(path, ns=(1, 1))
    assert cache_path(_cfg(path, data)) != first
    assert load_dataset(_cfg(path, data)).num_users == 13


def test_unreadable_cache_is_rebuilt(tmp_path):
    path = _log_file(tmp_path)
    cfg = _cfg(path, tmp_path / "data")
    load_dataset(cfg)
    Path(cache_path(cfg)).write_bytes(b"not an npz")
    lines: list[str] = []
    assert load_dataset(cfg, log=lines.append).num_users == 12
    assert any("rebuilding" in line for line in lines)


def test_local_file_errors(tmp_path):
    with pytest.raises(UserInputError, match="not found"):
        load_dataset(_cfg(tmp_path / "missing.tsv", tmp_path))
    bad = tmp_path / "bad.tsv"
    bad.write_text("u\ti\t1\nu\ti\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=":2:"):
        load_dataset(_cfg(bad, tmp_path))
    with pytest.raises(UserInputError, match="unknown data format"):
        load_dataset(
            DataConfig(
                dataset="",
                dataset_file=str(bad),
                dataset_format="xml",
                data_dir=str(tmp_path),
            )
        )


def test_named_dataset_cache_is_used_without_raw_and_rebuilt_on_change(
    tmp_path, monkeypatch
):
    from dismir_tf.data import registry

    spec = registry.NamedDataset(
        name="local",
        sources=(registry.RawSource(filename="log.tsv", fmt="user_item_time_tsv"),),
        manual="put it in {raw_dir}",
    )
    monkeypatch.setitem(registry.DATASETS, "local", spec)
    raw_dir = tmp_path / "local" / "raw"
    raw_dir.mkdir(parents=True)
    source = _log_file(tmp_path)
    (raw_dir / "log.tsv").write_bytes(source.read_bytes())
    cfg = DataConfig(dataset="local", data_dir=str(tmp_path))
    assert load_dataset(cfg).num_users == 12
    # The raw file can go: the cache still loads.
    (raw_dir / "log.tsv").unlink()
    assert load_dataset(cfg).num_users == 12
    # A replaced raw file rebuilds.
    (raw_dir / "log.tsv").write_bytes(_log_file(tmp_path, 14).read_bytes())
    lines: list[str] = []
    assert load_dataset(cfg, log=lines.append).num_users == 14
    assert any("changed" in line for line in lines)


def test_missing_named_raw_file_without_url(tmp_path):
    cfg = DataConfig(dataset="retailrocket", data_dir=str(tmp_path))
    with pytest.raises(UserInputError, match="events.csv"):
        load_dataset(cfg)


def test_synthetic_is_generated(monkeypatch):
    import dismir_tf.data.synthetic as synthetic

    calls = []
    real = synthetic.generate

    def spy(cfg, **kw):
        calls.append(kw)
        return real(cfg, **kw)

    monkeypatch.setattr(synthetic, "generate", spy)
    from dismir_tf.config import SyntheticConfig

    small = SyntheticConfig(num_users=50, num_items=60, num_groups=4)
    ds = load_dataset(DataConfig(dataset="synthetic", synthetic=small, split_seed=4))
    assert calls == [{"split_seed": 4}]
    assert ds.num_users > 0


def test_fingerprint_sees_items_offsets_and_split(tmp_path):
    ds = load_dataset(_cfg(_log_file(tmp_path), tmp_path / "d"))
    base = dataset_fingerprint(ds)
    assert len(base) == 64 and base == dataset_fingerprint(ds)
    other_split = load_dataset(_cfg(_log_file(tmp_path), tmp_path / "d", split_seed=99))
    assert dataset_fingerprint(other_split) != base
    items = ds.items.copy()
    items[[0, 1]] = items[[1, 0]] if items[0] != items[1] else (1, 2)
    changed = SequenceDataset(
        name=ds.name,
        item_ids=ds.item_ids,
        user_ids=ds.user_ids,
        offsets=ds.offsets,
        items=items,
        timestamps=ds.timestamps,
        train_users=ds.train_users,
        valid_users=ds.valid_users,
        test_users=ds.test_users,
    )
    assert dataset_fingerprint(changed) != base


# -------------------------------------------------------------------- CLI
def test_cli_stats_on_gowalla_lbsn(tmp_path):
    path = shared_file(GOWALLA_LBSN)
    result = _run_cli(
        "stats",
        "--dataset_file",
        str(path),
        "--dataset_format",
        "user_item_time_tsv",
        "--data_dir",
        str(tmp_path / "data"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out_lines = result.stdout.strip().splitlines()
    assert len(out_lines) == 1
    assert json.loads(out_lines[0]) == {
        "users": 997,
        "items": 8_254,
        "interactions": 123_022,
        "train_users": 797,
        "valid_users": 100,
        "test_users": 100,
    }
    assert "data: reading" in result.stderr


def test_cli_user_error_exits_2_without_traceback(tmp_path):
    result = _run_cli(
        "stats",
        "--dataset_file",
        str(tmp_path / "nope.tsv"),
        "--dataset_format",
        "user_item_time_tsv",
        "--data_dir",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "nope.tsv" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_bad_command_and_manual_download(tmp_path):
    result = _run_cli("statistics", cwd=tmp_path)
    assert result.returncode == 2 and "error: " in result.stderr
    result = _run_cli(
        "download",
        "--dataset",
        "retailrocket",
        "--data_dir",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "events.csv" in result.stderr and "kaggle" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_package_never_imports_tensorflow():
    code = (
        "import sys, dismir_tf.data, dismir_tf.data.__main__, "
        "dismir_tf.data.download, dismir_tf.data.registry; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
