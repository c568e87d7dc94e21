"""Data command line: statistics of a processed data set, and downloads.

Usage:
  python -m dismir_tf.data stats --dataset_file PATH --dataset_format FORMAT
  python -m dismir_tf.data stats --dataset NAME [--data_dir data]
  python -m dismir_tf.data download --dataset NAME [--data_dir data]

``stats`` reads, preprocesses and caches the data exactly as training does
(docs/protocol.md, "Preprocessing and the user split"; --min_item_count,
--min_user_count, --kcore and --split_seed change the preprocessing) and
prints ONE JSON line on stdout: users, items, interactions, train_users,
valid_users, test_users.  Progress goes to stderr.

``download`` fetches the raw file of a named data set into
<data_dir>/<name>/raw/, or says exactly what to fetch by hand.

Formats: recbole_inter, snap_gowalla, user_item_time_tsv,
retailrocket_events, amazon_reviews_json, seq_lines, user_item_lines.
Errors in the input print ``error: <message>`` and exit with status 2.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from dismir_tf.config import DataConfig
from dismir_tf.data import ensure_raw, load_dataset, registry
from dismir_tf.errors import EXIT_USER_ERROR, UserInputError

COMMANDS = ("stats", "download")

_DATASET = flags.DEFINE_string(
    "dataset", "", "A named data set: " + ", ".join(registry.DATASETS) + ".")
_DATASET_FILE = flags.DEFINE_string(
    "dataset_file", "", "A local interaction file (plain or gzip).")
_DATASET_FORMAT = flags.DEFINE_string(
    "dataset_format", "", "The format of --dataset_file.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "data", "Where raw downloads and processed caches live.")
_MIN_ITEM_COUNT = flags.DEFINE_integer(
    "min_item_count", 5, "Keep items with at least this many interactions.")
_MIN_USER_COUNT = flags.DEFINE_integer(
    "min_user_count", 5,
    "Keep users with at least this many interactions after the item filter.")
_KCORE = flags.DEFINE_boolean(
    "kcore", False, "Iterate the filters to a fixed point (k-core).")
_SPLIT_SEED = flags.DEFINE_integer(
    "split_seed", 1230, "Seed of the user shuffle of the split.")
_USER_ID_FIELD = flags.DEFINE_string(
    "user_id_field", "", "recbole_inter: header name of the user column "
    "(RecBole's USER_ID_FIELD).")
_ITEM_ID_FIELD = flags.DEFINE_string(
    "item_id_field", "", "recbole_inter: header name of the item column "
    "(RecBole's ITEM_ID_FIELD).")
_TIME_FIELD = flags.DEFINE_string(
    "time_field", "", "recbole_inter: header name of the time column "
    "(RecBole's TIME_FIELD; default timestamp).")
_TIME_UNIT = flags.DEFINE_enum(
    "time_unit", "auto", ["auto", "s", "ms", "us", "ns"],
    "Unit of the file's time column (auto: the format's own, and a column "
    "of epoch milli-, micro- or nanoseconds is noticed and converted).")
_QUIET = flags.DEFINE_boolean(
    "quiet", False, "Do not print progress lines on stderr.")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _config() -> DataConfig:
    if not _DATASET.value and not _DATASET_FILE.value:
        raise UserInputError(
            "give --dataset NAME, or --dataset_file PATH with "
            "--dataset_format FORMAT")
    return DataConfig(
        dataset=_DATASET.value,
        dataset_file=_DATASET_FILE.value,
        dataset_format=_DATASET_FORMAT.value,
        data_dir=_DATA_DIR.value,
        min_item_count=_MIN_ITEM_COUNT.value,
        min_user_count=_MIN_USER_COUNT.value,
        kcore=_KCORE.value,
        split_seed=_SPLIT_SEED.value,
        user_id_field=_USER_ID_FIELD.value,
        item_id_field=_ITEM_ID_FIELD.value,
        time_field=_TIME_FIELD.value,
        time_unit=_TIME_UNIT.value,
    )


def _stats() -> None:
    ds = load_dataset(_config(), log=None if _QUIET.value else _log)
    print(json.dumps(ds.stats()), flush=True)


def _download() -> None:
    name = _DATASET.value
    if not name:
        raise UserInputError("download needs --dataset NAME (one of "
                             f"{', '.join(registry.DATASETS)})")
    spec = registry.get(name)
    if spec.synthetic:
        _log(f"{name} is generated in-process; there is nothing to download")
        return
    log = None if _QUIET.value else _log
    found = registry.find_raw(spec, _DATA_DIR.value)
    if found is not None and log is not None:
        log(f"data: {found[0]} is already present")
    path, _ = ensure_raw(name, _DATA_DIR.value, log=log,
                         progress=not _QUIET.value)
    print(path, flush=True)


def main(argv: list[str]) -> int:
    """Runs one command; user errors become ``error: ...`` and status 2."""
    try:
        if len(argv) != 2 or argv[1] not in COMMANDS:
            got = " ".join(argv[1:]) or "nothing"
            raise UserInputError(
                f"expected one command, {' or '.join(COMMANDS)}; got {got} "
                f"(see --help)")
        if argv[1] == "stats":
            _stats()
        else:
            _download()
    except UserInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


def run() -> None:
    """The ``python -m dismir_tf.data`` / ``dismir-data`` command."""
    from dismir_tf import cli

    if any(arg in cli.HELP_ARGS for arg in sys.argv[1:]):
        cli.print_help(__doc__)
        sys.exit(0)
    app.run(main)


if __name__ == "__main__":
    run()
