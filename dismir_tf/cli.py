"""Command-line plumbing shared by the entry points.

Only train.py, evaluate.py, compare.py and the package's ``python -m``
commands import this module; everything else in the package takes typed
configs.  It defines the common flags, turns them into a :class:`RunConfig`
(filling a named data set's shape settings, F, max_len and C, where a flag
is not given; every model's own defaults are its spec's,
dismir_tf/model_specs.py), and
runs a main function so that bad input ends with a one-line error and exit
status 2 instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from absl import app, flags

from dismir_tf import model_specs
from dismir_tf.capsule_config import resolve_config
from dismir_tf.config import (
    TIME_UNITS,
    DataConfig,
    ModelConfig,
    RunConfig,
    SyntheticConfig,
    TrainConfig,
    flag_fields,
)
from dismir_tf.data.readers import FORMATS
from dismir_tf.errors import (
    EXIT_USER_ERROR,
    ConfigError,
    TrainingDivergedError,
    UserInputError,
)

FLAGS = flags.FLAGS

# Exit status when the loss became NaN or infinite (bad input is 2).
EXIT_DIVERGED = 3


def define_data_flags() -> None:
    flags.DEFINE_string(
        "dataset",
        None,
        "Named data set: synthetic, gowalla, retailrocket, "
        "books (default: synthetic, unless --dataset_file "
        "is given).",
    )
    flags.DEFINE_string(
        "dataset_file",
        None,
        "A local interactions file (default: none; --dataset is used).",
    )
    flags.DEFINE_string(
        "dataset_format",
        None,
        f"Format of --dataset_file: {', '.join(FORMATS)} (default: none; "
        "required with --dataset_file).",
    )
    flags.DEFINE_string("data_dir", "data", "Downloads and processed caches go here.")
    flags.DEFINE_integer(
        "min_item_count", 5, "Keep items with >= this many interactions."
    )
    flags.DEFINE_integer(
        "min_user_count", 5, "Keep users with >= this many kept interactions."
    )
    flags.DEFINE_bool("kcore", False, "Iterate the filters to a k-core.")
    flags.DEFINE_integer("split_seed", 1230, "Seed of the user split.")
    flags.DEFINE_string(
        "user_id_field",
        None,
        "recbole_inter: header name of the user column "
        "(RecBole's USER_ID_FIELD; default: none, which "
        "finds user_id, visitor_id or session_id).",
    )
    flags.DEFINE_string(
        "item_id_field",
        None,
        "recbole_inter: header name of the item column "
        "(RecBole's ITEM_ID_FIELD; default: none, which "
        "finds item_id, venue_id or product_id).",
    )
    flags.DEFINE_string(
        "time_field",
        None,
        "recbole_inter: header name of the time column "
        "(RecBole's TIME_FIELD; default: none, which finds "
        "timestamp; without one, file order is used and "
        "said).",
    )
    flags.DEFINE_enum(
        "time_unit",
        "auto",
        list(TIME_UNITS),
        "Unit of the file's time column: s, ms, us or ns; "
        "auto takes the format's own (retailrocket_events: "
        "ms; the others: s) and converts, with a note, a "
        "column that plainly holds epoch milli-, micro- or "
        "nanoseconds. Times are seconds after reading.",
    )
    flags.DEFINE_integer(
        "synthetic_users", None, "Synthetic set: users (default: 6000)."
    )
    flags.DEFINE_integer(
        "synthetic_items", None, "Synthetic set: items (default: 2000)."
    )
    flags.DEFINE_integer(
        "synthetic_groups", None, "Synthetic set: planted item groups (default: 20)."
    )


def define_model_flags() -> None:
    try:
        # The models of $DISMIR_TF_MODELS, before their flags are defined.
        model_specs.load_plugins()
    except UserInputError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
    flags.DEFINE_string(
        "model", "dismir", f"Model name: {', '.join(model_specs.names())}."
    )
    # One flag per ModelConfig field declared with config.setting, with the
    # field's help and type; None (absent) keeps the config's value.
    for field in flag_fields(ModelConfig):
        define = _DEFINE_BY_TYPE[field.metadata["flag_type"]]
        define(field.name, None, field.metadata["help"])
    define_param_flags()


_DEFINE_BY_TYPE: dict[type, Callable[..., Any]] = {
    bool: flags.DEFINE_bool,
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    str: flags.DEFINE_string,
}
# The flags define_param_flags made (a second call defines none again).
_PARAM_FLAGS: set[str] = set()


def define_param_flags() -> None:
    """One flag per field of the registered models' own ``params``
    (``model_specs.ModelSpec.params``): ``--<model>_<field>``, or the
    field's shared flag (the DisMIR family's ``--routing_init``, ...),
    typed by the field's default, with its help and default."""
    for flag, (field, owners) in model_specs.param_flag_owners().items():
        if flag in _PARAM_FLAGS:
            continue
        if flag in FLAGS:
            raise ValueError(
                f"{owners[0]}: params field {field.name!r} "
                f"would be --{flag}, which is already a "
                "flag; rename the field"
            )
        _PARAM_FLAGS.add(flag)
        define = _DEFINE_BY_TYPE[type(field.default)]
        # A shared flag's help names the models it acts on; a help that
        # states the resolved default ('' is "the model's") keeps it.
        who = f"{owners[0]}: " if len(owners) == 1 else ""
        help_ = field.metadata["help"]
        if "default" not in help_:
            help_ += f" (default {field.default!r})."
        define(flag, None, who + help_)


def define_train_flags() -> None:
    flags.DEFINE_string(
        "output_dir", None, "Run directory (default runs/<dataset>-<model>-seed<seed>)."
    )
    flags.DEFINE_integer("batch_size", 128, "Global batch size.")
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
    flags.DEFINE_integer(
        "max_steps",
        None,
        "Training steps (rounded up to a "
        "multiple of --eval_every; default: 2000 on the "
        "synthetic set, 10000 on a named or your own data "
        "set).",
    )
    flags.DEFINE_integer(
        "eval_every",
        None,
        "Evaluate on valid users every "
        "this many steps (default: 500 on the synthetic "
        "set, 1000 otherwise, at most --max_steps).",
    )
    flags.DEFINE_integer(
        "patience", 5, "Stop after this many evaluations without improvement."
    )
    flags.DEFINE_integer("seed", 0, "Run seed.")
    flags.DEFINE_integer("eval_batch_size", 512, "Users per evaluation batch.")
    flags.DEFINE_bool(
        "exclude_history",
        False,
        "Evaluation: remove every "
        "item of the user's known sequence (the first 80%, "
        "not only the last max_len) from the ranking. An "
        "export then removes the items its request carries.",
    )
    flags.DEFINE_string("strategy", "default", "default, mirrored or multi_worker.")
    flags.DEFINE_integer(
        "logical_cpus", 2, "Logical CPU devices for --strategy=mirrored without GPUs."
    )
    flags.DEFINE_bool(
        "jit_compile",
        True,
        "XLA-compile the train step and the optimizer update (docs/performance.md).",
    )
    flags.DEFINE_enum(
        "embedding_update",
        "auto",
        ["auto", "dense", "lazy"],
        "Adam's update of the embedding tables: dense (every "
        "row every step, the reference's), lazy (only the "
        "rows of the batch) or auto (lazy for item tables of "
        "more than 100,000 rows; docs/performance.md).",
    )


def data_config_from_flags() -> DataConfig:
    dataset = FLAGS.dataset
    if dataset is None and not FLAGS.dataset_file:
        dataset = "synthetic"
    synthetic = SyntheticConfig()
    overrides = {
        k: getattr(FLAGS, f"synthetic_{k}")
        for k in ("users", "items", "groups")
        if getattr(FLAGS, f"synthetic_{k}") is not None
    }
    if overrides and dataset != "synthetic":
        raise ConfigError(
            f"--synthetic_{', --synthetic_'.join(overrides)} "
            f"{'is' if len(overrides) == 1 else 'are'} only for the "
            f"synthetic data set, not for {dataset or FLAGS.dataset_file}"
        )
    if FLAGS.dataset_file and not FLAGS.dataset_format:
        raise ConfigError(
            "--dataset_file needs --dataset_format, one of: "
            f"{', '.join(FORMATS)} (data/README.md describes each)"
        )
    if overrides:
        synthetic = dataclasses.replace(
            synthetic, **{f"num_{k}": v for k, v in overrides.items()}
        )
    return DataConfig(
        synthetic=synthetic,
        dataset=dataset or "",
        dataset_file=FLAGS.dataset_file or "",
        dataset_format=FLAGS.dataset_format or "",
        data_dir=FLAGS.data_dir,
        min_item_count=FLAGS.min_item_count,
        min_user_count=FLAGS.min_user_count,
        kcore=FLAGS.kcore,
        split_seed=FLAGS.split_seed,
        user_id_field=FLAGS.user_id_field or "",
        item_id_field=FLAGS.item_id_field or "",
        time_field=FLAGS.time_field or "",
        time_unit=FLAGS.time_unit,
    )


def dataset_defaults(data: DataConfig) -> dict:
    """The ModelConfig fields a named data set sets (F, max_len, C; its
    ``model_defaults`` in dismir_tf.data.registry); none for a file."""
    from dismir_tf.data import registry

    if not data.dataset:
        return {}
    return dict(registry.get(data.dataset).model_defaults)


# ModelConfig fields set by a flag of the same name (when given).
MODEL_FLAG_NAMES = tuple(f.name for f in flag_fields(ModelConfig))


def _model_flag_values() -> dict:
    return {
        name: getattr(FLAGS, name)
        for name in MODEL_FLAG_NAMES
        if getattr(FLAGS, name) is not None
    }


def model_config_from_flags(
    data: DataConfig, model: str | None = None, grid: bool = False
) -> ModelConfig:
    """The model's config: its spec's defaults, the data set's shape
    settings, then the flags.

    Args:
      data: the data config (a named data set brings F, max_len, C).
      model: the model name (default --model).
      grid: for a compare.py grid of several models: --partition_weight
        then sets lambda only for the models that take the partition task
        by default (DisMIR, w/o DPI); the plugin table gives it to the
        baselines itself.  Without ``grid`` a --partition_weight that the
        model ignores is refused (ConfigError).
    """
    model = model or FLAGS.model
    values = dataset_defaults(data)
    values.update(_model_flag_values())
    own = model_specs.get(model).param_flags()
    params, foreign = {}, {}
    for flag, owners in _given_param_flags().items():
        if flag in own:
            params[own[flag].name] = FLAGS[flag].value
        else:
            foreign[f"--{flag}"] = owners
    if foreign and not grid:
        raise ConfigError(_foreign_message(foreign, repr(model)))
    if params:
        values["params"] = params
    if grid and model_specs.get(model).partition != "default":
        values.pop("partition_weight", None)
    return ModelConfig(name=model, **values)


def _foreign_message(foreign: dict[str, tuple[str, ...]], models: str) -> str:
    """'--x acts only on a, b, not on MODELS; remove it' (several: each
    flag's models, then '(none acts on MODELS)')."""
    what = "; ".join(
        f"{flag} acts only on {', '.join(owners)}" for flag, owners in foreign.items()
    )
    if len(foreign) == 1:
        return f"{what}, not on {models}; remove it"
    return f"{what} (none acts on {models}); remove them"


def check_grid_param_flags(models: Sequence[str]) -> None:
    """A compare.py grid takes a model's own flag for the models that
    declare it and leaves the others alone; a given flag that acts on none
    of ``models`` would be ignored, so it is refused.

    Raises:
      ConfigError: naming each such flag and the models it acts on.
    """
    foreign = {
        f"--{flag}": owners
        for flag, owners in _given_param_flags().items()
        if not set(owners) & set(models)
    }
    if foreign:
        raise ConfigError(_foreign_message(foreign, "any model of --models"))


def _given_param_flags() -> dict[str, tuple[str, ...]]:
    """{flag: the models that declare it} of the params flags given on the
    command line."""
    return {
        flag: owners
        for flag, (_, owners) in model_specs.param_flag_owners().items()
        if flag in FLAGS and FLAGS[flag].value is not None
    }


def train_config_from_flags(
    data: DataConfig,
    model: ModelConfig,
    output_dir: str | None = None,
    seed: int | None = None,
) -> TrainConfig:
    seed = FLAGS.seed if seed is None else seed
    synthetic = data.dataset == "synthetic"
    # `is None`, not `or`: an explicit 0 must fail validation, not become
    # the default.  The default evaluation interval never exceeds the
    # budget (--max_steps 200 alone evaluates every 200 steps).
    max_steps = (
        FLAGS.max_steps
        if FLAGS.max_steps is not None
        else (2000 if synthetic else 10000)
    )
    eval_every = (
        FLAGS.eval_every
        if FLAGS.eval_every is not None
        else min(500 if synthetic else 1000, max(max_steps, 1))
    )
    out = (
        output_dir
        or FLAGS.output_dir
        or os.path.join("runs", f"{data.display_name}-{model.name}-seed{seed}")
    )
    return TrainConfig(
        output_dir=out,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        max_steps=max_steps,
        eval_every=eval_every,
        patience=FLAGS.patience,
        seed=seed,
        eval_batch_size=FLAGS.eval_batch_size,
        exclude_history=FLAGS.exclude_history,
        strategy=FLAGS.strategy,
        logical_cpus=FLAGS.logical_cpus,
        jit_compile=FLAGS.jit_compile,
        embedding_update=FLAGS.embedding_update,
    )


def check_flags(models: Sequence[str] | None = None) -> TrainConfig:
    """Range-checks every flag without importing TensorFlow.

    A bad flag is reported before TensorFlow starts (seconds of start-up
    and its log lines) and before the data is read, and so are an unknown
    data set or format, a missing data file, an unknown model name (with
    the closest valid name), a flag the model ignores (e.g.
    --partition_weight for mir) and capsule options that contradict each
    other (e.g. --capsule_order with the paper-remi preset;
    :func:`dismir_tf.capsule_config.resolve_config`).

    Args:
      models: the models of a compare.py grid (its --models, or its mode's
        default grid); None: --model (train.py, tune.py), or no model in
        compare.py.

    Raises:
      UserInputError: the first problem found.
    """
    from dismir_tf.data import readers, registry

    data = data_config_from_flags()
    if data.dataset:
        registry.get(data.dataset)
    else:
        readers.check_format(data.dataset_format)
        readers.check_readable(data.dataset_file)
    grid = "models" in FLAGS  # compare.py
    if models is None:
        models = [] if grid else [FLAGS.model]
    for name in models:
        model_specs.get(name)
        resolve_config(model_config_from_flags(data, model=name, grid=grid))
    model = model_config_from_flags(data, grid=grid)
    return train_config_from_flags(data, model)


def run_config_from_flags() -> RunConfig:
    check_flags()
    data = data_config_from_flags()
    model = model_config_from_flags(data, grid="models" in FLAGS)
    return RunConfig(data=data, model=model, train=train_config_from_flags(data, model))


def with_seed(config: RunConfig, seed: int, output_dir: str) -> RunConfig:
    return dataclasses.replace(
        config,
        train=dataclasses.replace(config.train, seed=seed, output_dir=output_dir),
    )


# 128 + SIGINT, the shell's status for a command stopped by Ctrl-C.
EXIT_INTERRUPTED = 130


def interrupted_message() -> str:
    """One line for Ctrl-C: the step reached and how to resume."""
    callbacks = sys.modules.get("dismir_tf.callbacks")
    progress = getattr(callbacks, "PROGRESS", {}) if callbacks else {}
    if not progress:
        return "interrupted (nothing was trained)"
    where = (
        f"interrupted at step {progress['step']} of "
        f"{progress['total']} in {progress['output_dir']}"
    )
    if not progress["checkpoint"]:
        return f"{where}; no checkpoint yet: the same command starts again"
    return (
        f"{where}; the last checkpoint is step {progress['checkpoint']}:"
        f" the same command resumes from it"
    )


def user_errors_exit(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Wraps an absl main: UserInputError -> 'error: ...' and exit 2."""

    def wrapped(argv: list[str]) -> None:
        try:
            main(argv)
        except UserInputError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(EXIT_USER_ERROR)
        except TrainingDivergedError as e:
            print(f"error: training diverged: {e}", file=sys.stderr, flush=True)
            sys.exit(EXIT_DIVERGED)
        except KeyboardInterrupt:
            print(f"\n{interrupted_message()}", file=sys.stderr, flush=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapped


def quiet_logs() -> None:
    """Keeps TensorFlow's and absl's INFO chatter out of the progress output."""
    import logging as std_logging

    from absl import logging

    logging.set_verbosity(logging.WARNING)
    # tf.get_logger() is the standard 'tensorflow' logger; setting its level
    # here, without importing TensorFlow, lets the entry points check their
    # flags before paying TensorFlow's start-up.
    std_logging.getLogger("tensorflow").setLevel(std_logging.ERROR)


# TensorFlow's C++ start-up lines, printed before its own log level is
# read (so TF_CPP_MIN_LOG_LEVEL cannot hide them): absl's pre-init warning,
# oneDNN's notice, the CUDA probes (cuInit's "error" on a machine without a
# GPU), the CPU-feature notice.  Matched by file, so any other C++ log line
# still gets through.
_STARTUP_NOISE = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IWE]\d{4} [\d:.]+ +\d+ (port|cudart_stub|cuda_platform|"
    rb"cuda_executor|cuda_dnn|cuda_fft|cuda_blas|cpu_feature_guard|"
    rb"gpu_device)\.cc:\d+\]"
    rb"|To enable the following instructions: .* rebuild TensorFlow with"
)
# A partial line that may still become a noise line is held back.
_NOISE_PREFIX = re.compile(
    rb"(W(A(R(N(I(N(G(:.*)?)?)?)?)?)?)?|[IWE][\d :.]*"
    rb"(\S+(\.(c(c(:\d*)?)?)?)?)?)\Z"
)


# Whether quiet_startup has replaced file descriptor 2 in this process.
_quiet_started = False


def quiet_startup() -> None:
    """Drops TensorFlow's start-up lines (``_STARTUP_NOISE``) from stderr
    for the rest of the process, unless the user set TensorFlow's own
    logging variables (``dismir_tf.USER_TF_LOGGING``).

    File descriptor 2 is replaced by a pipe whose reader thread copies
    every other byte to the real stderr as it arrives (progress bars that
    redraw with '\r' included); the pipe is drained at exit.
    """
    import atexit
    import threading

    import dismir_tf

    global _quiet_started
    if dismir_tf.USER_TF_LOGGING or _quiet_started:
        return
    _quiet_started = True
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    real = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    broken = False

    def forward(data: bytes) -> None:
        # The reader must keep draining even when stderr's own reader is
        # gone (`... 2>&1 | head`): otherwise the pipe fills and every
        # write to stderr blocks the process.
        nonlocal broken
        if broken:
            return
        try:
            os.write(real, data)
        except OSError:
            broken = True

    def pump() -> None:
        pending = b""
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            out = b"".join(
                line + b"\n" for line in lines if not _STARTUP_NOISE.match(line)
            )
            if pending and not _NOISE_PREFIX.match(pending):
                out += pending
                pending = b""
            if out:
                forward(out)
        if pending and not _STARTUP_NOISE.match(pending):
            forward(pending)
        os.close(read_end)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()

    def drain() -> None:
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last writer closes: the pump ends
        thread.join(timeout=10)

    atexit.register(drain)
    # SIGTERM (timeout, a batch scheduler) exits through atexit too, so
    # the last lines are not lost; a process killed otherwise (SIGKILL, a
    # fatal CHECK's abort) may lose what was still in the pipe: set
    # TF_CPP_MIN_LOG_LEVEL to run without the filter.
    import signal

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


HELP_ARGS = ("-h", "-?", "--help", "--helpshort", "--helpfull")


def print_help(doc: str | None = None, omit: Iterable[str] = ()) -> None:
    """The entry point's docstring (``doc``, else the __main__ module's) and
    every flag of the project with its default (absl's own --help lists only
    the main module's flags, and these are defined in dismir_tf.cli),
    except ``omit``: the shared flags that the entry point refuses."""
    if doc is None:
        doc = getattr(sys.modules.get("__main__"), "__doc__", None)
    doc = (doc or "").strip()
    if doc:
        print(doc + "\n")
    print("Flags:")
    # This project's flags only (TensorFlow defines absl flags of its own
    # when it is imported: TPU, tensor tracer), without absl's header line,
    # which is the defining file's path on this machine.
    by_module = FLAGS.flags_by_module_dict()
    for module in sorted(by_module):
        if "dismir_tf" not in module:
            continue
        text = FLAGS.module_help(module).strip("\n")
        text = text.split("\n", 1)[1] if "\n" in text else text
        print(_without_flags(text, set(omit)))


def _without_flags(text: str, omit: set[str]) -> str:
    """absl's module help without the entries of the flags in ``omit`` (an
    entry is its '  --name:' or '  --[no]name:' line and the more indented
    lines under it)."""
    kept, skipping = [], False
    for line in text.split("\n"):
        entry = re.match(r"  --(?:\[no\])?([\w-]+):", line)
        if entry:
            skipping = entry.group(1) in omit
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


def project_flags() -> set[str]:
    """Names of the flags this project defined (absl's own excluded)."""
    return {
        f.name
        for module, defined in FLAGS.flags_by_module_dict().items()
        if not module.startswith("absl")
        for f in defined
    }


def refuse_inactive_flags(
    acting: set[str] | frozenset[str], where: str, hints: dict[str, str] | None = None
) -> None:
    """Refuses a flag given on the command line that does not act in
    ``where`` (an entry point, or one of its commands).

    Args:
      acting: the flags that act there.
      where: for the message, e.g. 'compare.py'.
      hints: per flag, what to use instead (e.g. {'seed': '--seeds N'}).

    Raises:
      ConfigError: naming every inactive flag given, and the hints.
    """
    given = sorted(
        name for name in project_flags() - set(acting) if FLAGS[name].present
    )
    if not given:
        return
    hints = hints or {}
    parts = [f"--{n}" + (f" (use {hints[n]})" if n in hints else "") for n in given]
    raise ConfigError(
        f"{', '.join(parts)} "
        f"{'does' if len(given) == 1 else 'do'} not act in "
        f"{where}; remove {'it' if len(given) == 1 else 'them'}"
    )


def flag_error_text(error: Exception) -> str:
    """absl's flag error as one readable line: a required flag left out
    (absl: "flag --run_dir=None: Flag --run_dir must have a value other
    than None.") reads "--run_dir is required: <its help>; see --help"; any
    other error is absl's own text."""
    m = re.search(r"Flag --(\w+) must have a value other than None", str(error))
    if m is None or m.group(1) not in FLAGS:
        return str(error)
    name = m.group(1)
    return f"--{name} is required: {FLAGS[name].help.rstrip('.')}; see --help"


def run_app(
    main: Callable[[list[str]], None],
    doc: str | None = None,
    refused: Iterable[str] = (),
) -> None:
    """absl's app.run, with flag errors also exiting with status 2, and
    -h / --help / --helpfull printing ``doc`` and the flags (those in
    ``refused``, shared flags the entry point does not take, left out) and
    exiting with 0."""
    if any(arg in HELP_ARGS for arg in sys.argv[1:]):
        try:
            print_help(doc, omit=refused)
            sys.stdout.flush()
        except BrokenPipeError:  # `--help | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    try:
        FLAGS(sys.argv)
    except flags.Error as e:
        print(f"error: {flag_error_text(e)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
    quiet_logs()
    quiet_startup()
    app.run(user_errors_exit(main), argv=sys.argv)
