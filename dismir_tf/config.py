"""Typed configuration: what a run is, validated and JSON round-trippable.

Flags live only in the entry points (train.py, evaluate.py, compare.py and
the package's ``python -m`` commands); they build a :class:`RunConfig`, and
everything inside the package takes these dataclasses.  The resolved config
is written next to the checkpoints as ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from dismir_tf import model_specs
from dismir_tf.errors import ConfigError, UnreadableConfigError

RETRIEVAL_MODES = ("merge", "fused")
PARTITION_ANCHORS = ("items", "targets")
STRATEGIES = ("default", "mirrored", "multi_worker")
# dismir_tf.optimizers.EMBEDDING_UPDATES (that module imports TensorFlow).
EMBEDDING_UPDATES = ("dense", "lazy", "auto")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def setting(default: Any, help: str, flag_type: type | None = None) -> Any:
    """A config field that the entry points expose as ``--<field name>``.

    Args:
      default: the field's default (the flag's own default is None: an
        absent flag leaves the config's value).
      help: the flag's help text.
      flag_type: the flag's type when the default does not show it (a None
        default); otherwise ``type(default)``.
    """
    return dataclasses.field(
        default=default,
        metadata={"help": help, "flag_type": flag_type or type(default)},
    )


def flag_fields(cls: type) -> tuple[dataclasses.Field, ...]:
    """The fields of config dataclass ``cls`` declared with :func:`setting`,
    in declaration order (each is a flag of the same name)."""
    return tuple(f for f in dataclasses.fields(cls) if "help" in f.metadata)


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """The built-in planted multi-interest data set.

    Attributes:
      num_users: Users generated.
      num_items: Items, split evenly over the groups.
      num_groups: G, planted item groups (the "true" interests).
      min_interests, max_interests: each user has between these many groups.
      min_length, max_length: sequence length range (uniform).
      stay_probability: chance that the next item stays in the current
        interest rather than switching to another of the user's interests.
      popularity_exponent: Zipf exponent of popularity inside a group.
      seed: generator seed.
    """

    num_users: int = 6000
    num_items: int = 2000
    num_groups: int = 20
    min_interests: int = 2
    max_interests: int = 4
    min_length: int = 20
    max_length: int = 60
    stay_probability: float = 0.8
    popularity_exponent: float = 0.8
    seed: int = 7

    def __post_init__(self) -> None:
        _check(self.num_users >= 10, "synthetic num_users must be >= 10")
        _check(self.num_groups >= 1, "synthetic num_groups must be >= 1")
        _check(
            self.num_items >= self.num_groups,
            "synthetic num_items must be >= num_groups",
        )
        _check(
            1 <= self.min_interests <= self.max_interests <= self.num_groups,
            "need 1 <= min_interests <= max_interests <= num_groups",
        )
        _check(
            5 <= self.min_length <= self.max_length,
            "need 5 <= min_length <= max_length",
        )
        _check(
            0.0 <= self.stay_probability <= 1.0, "stay_probability must be in [0, 1]"
        )


# --time_unit: a file's time column in seconds, milli-, micro- or
# nanoseconds, or 'auto' (the format's own, with epoch-scale detection).
TIME_UNITS = ("auto", "s", "ms", "us", "ns")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the interactions come from and how they are preprocessed.

    Attributes:
      dataset: a named data set ('synthetic', 'gowalla', 'retailrocket',
        'books') or '' when ``dataset_file`` is given.
      dataset_file: a local file to read instead of a named data set.
      dataset_format: the format of ``dataset_file`` (see dismir_tf.data).
      data_dir: where downloads and processed caches live.
      min_item_count, min_user_count: the >= 5 filters of docs/protocol.md.
      kcore: iterate the filters to a fixed point instead of one pass.
      split_seed: seed of the user shuffle (1230 as the reference code).
      synthetic: parameters of the synthetic data set.
      time_unit: the unit of the file's time column: 'auto' (the
        format's own: seconds, or milliseconds for retailrocket_events;
        a column whose values plainly are milliseconds, microseconds or
        nanoseconds since the epoch is noticed, converted and said), or
        's', 'ms', 'us', 'ns'.  Every reader gives seconds.
      user_id_field, item_id_field, time_field: header names of a RecBole
        atomic file's columns (RecBole's USER_ID_FIELD, ITEM_ID_FIELD and
        TIME_FIELD); '' takes the usual names (user_id, item_id,
        timestamp and their aliases, dismir_tf.data.readers).
    """

    dataset: str = "synthetic"
    dataset_file: str = ""
    dataset_format: str = ""
    data_dir: str = "data"
    min_item_count: int = 5
    min_user_count: int = 5
    kcore: bool = False
    split_seed: int = 1230
    synthetic: SyntheticConfig = dataclasses.field(default_factory=SyntheticConfig)
    user_id_field: str = ""
    item_id_field: str = ""
    time_field: str = ""
    time_unit: str = "auto"

    def __post_init__(self) -> None:
        _check(
            not (
                self.dataset_file
                and self.dataset_format
                and self.dataset_format != "recbole_inter"
                and (self.user_id_field or self.item_id_field or self.time_field)
            ),
            "--user_id_field, --item_id_field and --time_field name the "
            "columns of a RecBole file (--dataset_format recbole_inter), "
            f"not of {self.dataset_format}",
        )
        _check(
            bool(self.dataset) != bool(self.dataset_file),
            "give exactly one of --dataset and --dataset_file",
        )
        _check(
            not self.dataset_file or bool(self.dataset_format),
            "--dataset_file needs --dataset_format",
        )
        _check(
            self.time_unit in TIME_UNITS,
            f"time_unit must be one of {', '.join(TIME_UNITS)}",
        )
        _check(self.min_item_count >= 1, "min_item_count must be >= 1")
        _check(
            self.min_user_count >= 5,
            "min_user_count must be >= 5 (training picks a target at position >= 4)",
        )

    @property
    def recbole_fields(self) -> dict[str, str | None]:
        """The RecBole column names as ``RecboleFields`` keyword arguments
        (None: the usual names)."""
        return {
            "user": self.user_id_field or None,
            "item": self.item_id_field or None,
            "time": self.time_field or None,
        }

    @property
    def display_name(self) -> str:
        if self.dataset:
            return self.dataset
        import os

        return os.path.basename(self.dataset_file).split(".")[0]


_PARTITION_WEIGHT_HELP = (
    f"lambda of eq. 6 (default: {model_specs.DISMIR_PARTITION_WEIGHT:g} for "
    "dismir and dismir-wo-dpi, 0 for the others: each model's spec); > 0 "
    "adds the partition task to a multi-interest baseline; refused for the "
    "models whose spec says partition='never' (one interest, or an ablation "
    "defined by lambda 0: dnn, gru4rec, sasrec, mir, mir-rv, mir-bf). In "
    "compare.py grids: DisMIR's lambda (table2, ablation) or every "
    "backbone's (plugin)."
)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The model and its losses.

    Attributes:
      name: one of dismir_tf.models.MODEL_NAMES.
      embedding_dim: d (= K, the number of partition groups, for DisMIR).
      num_interests: F.
      max_len: history length kappa.
      routing_iterations: capsule routing passes; 0 means the model's own
        default (DisMIR 1, MIND/ComiRec-DR 3).
      partition_weight: lambda of eq. 6; 0 disables the partition task;
        None (the default) takes the model's own value from its spec
        (``dismir_tf.model_specs``: DisMIR's lambda, 0 for the others).
        A weight > 0 for a model whose spec says ``partition='never'``
        (DNN, GRU4Rec, MIR and its variants) is refused.
      partition_negatives: N_o, uniformly sampled negatives of the
        partition contrastive loss.
      hard_negative_candidates: C, uniform candidates of which the
        highest-scoring one is the hard negative (eq. 5's j).
      retrieval: 'merge' or 'fused'; '' means the model's own readout.
      sampled_softmax_negatives: negatives of the sampled-softmax loss used
        by the ComiRec/MIND/REMI reference objectives.
      partition_anchors: the partition task's anchors i: 'items' (each
        example's target and history items) or 'targets' (its target only).
      params: the model's own hyperparameters, declared by its spec
        (``ModelSpec.params``, a dataclass of ``dismir_tf.model_params``:
        e.g. SASRec's blocks, REMI's beta, the DisMIR family's capsule);
        given values are checked against it and the defaults filled in, so
        config.json records every one; {} for a model that declares none.
        :attr:`own` gives them as the dataclass.
    """

    name: str = "dismir"
    embedding_dim: int = setting(64, "d = K (default 64).")
    num_interests: int = setting(
        4, "F (default: 4; a named data set's own: gowalla 4, retailrocket 8, books 6)."
    )
    max_len: int = setting(
        20,
        "History length (default: 20; a named data set's own: gowalla 40, "
        "retailrocket and books 20).",
    )
    routing_iterations: int = setting(
        0,
        "Capsule routing passes (default: 0, the model's own: 1 for the "
        "DisMIR family, 3 for MIND and ComiRec-DR).",
    )
    partition_weight: float | None = setting(
        None, _PARTITION_WEIGHT_HELP, flag_type=float
    )
    partition_negatives: int = setting(100, "N_o (default 100).")
    hard_negative_candidates: int = setting(10, "C (default 10, 50 for books).")
    retrieval: str = setting(
        "", "merge or fused (default: none, the model's own readout)."
    )
    sampled_softmax_negatives: int = setting(
        1280, "Negatives of the sampled softmax (default 1280)."
    )
    partition_anchors: str = setting(
        "items",
        "Partition anchors: items (target and history) or targets (default: items).",
    )
    params: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _check(self.embedding_dim >= 1, "embedding_dim must be >= 1")
        _check(self.num_interests >= 1, "num_interests (F) must be >= 1")
        _check(self.max_len >= 1, "max_len must be >= 1")
        _check(self.routing_iterations >= 0, "routing_iterations must be >= 0")
        spec = model_specs.get(self.name)
        self._check_params(spec)
        if self.partition_weight is None:
            # frozen: the model's own lambda is filled in here, once.
            object.__setattr__(self, "partition_weight", spec.default_partition_weight)
        _check(
            isinstance(self.partition_weight, (int, float))
            and math.isfinite(self.partition_weight)
            and self.partition_weight >= 0.0,
            "partition_weight (lambda) must be finite and >= 0",
        )
        _check(
            spec.partition != "never" or self.partition_weight == 0.0,
            f"--partition_weight does not act on {self.name!r} "
            f"({spec.summary}); remove it"
            + (", or use --model dismir" if spec.capsule else ""),
        )
        _check(
            self.partition_anchors in PARTITION_ANCHORS,
            f"partition_anchors must be one of {PARTITION_ANCHORS}",
        )
        _check(self.partition_negatives >= 1, "partition_negatives (N_o) must be >= 1")
        _check(
            self.hard_negative_candidates >= 1,
            "hard_negative_candidates (C) must be >= 1",
        )
        _check(
            self.retrieval in ("",) + RETRIEVAL_MODES,
            f"retrieval must be one of {RETRIEVAL_MODES}",
        )
        _check(
            self.sampled_softmax_negatives >= 1,
            "sampled_softmax_negatives must be >= 1",
        )

    def _check_params(self, spec: model_specs.ModelSpec) -> None:
        given = dict(self.params or {})
        if spec.params is None:
            _check(
                not given,
                f"{self.name!r} has no parameters of its own "
                f"(got {', '.join(sorted(given))})",
            )
            return
        names = {f.name for f in dataclasses.fields(spec.params)}
        unknown = sorted(set(given) - names)
        _check(
            not unknown,
            f"{self.name!r} has no parameter "
            f"{', '.join(unknown)} (its own: {', '.join(sorted(names))})",
        )
        try:
            own = spec.params(**given)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{self.name}: {e}") from None
        # frozen: the defaults are filled in here, once.
        object.__setattr__(self, "params", dataclasses.asdict(own))
        if spec.check is not None:
            problem = spec.check(self)
            _check(problem is None, str(problem))

    @property
    def partition_lambda(self) -> float:
        """lambda of eq. 6 as the run uses it: ``partition_weight`` after
        the model's default was filled in (never None once constructed).

        Raises:
          ValueError: called before ``__post_init__`` resolved it.
        """
        if self.partition_weight is None:
            raise ValueError("partition_weight is not resolved yet")
        return float(self.partition_weight)

    @property
    def own(self) -> Any:
        """The model's own hyperparameters as its spec's dataclass."""
        spec = model_specs.get(self.name)
        if spec.params is None:
            raise AttributeError(f"{self.name!r} declares no params")
        return spec.params(**self.params)

    def with_model(self, name: str, **changes: Any) -> ModelConfig:
        """These settings for model ``name``.

        A lambda set away from this model's default is kept where ``name``
        takes the partition task, a default lambda becomes ``name``'s
        default, and it is 0 where ``name`` never takes the task (MIR,
        DNN, ...).  Of this model's own params, those that ``name``
        declares under the same flag (the DisMIR family's capsule,
        ``remi_beta``) are kept, the others dropped.  ``changes`` are
        applied on top: a ModelConfig field, or a flag of ``name``'s
        params (e.g. ``routing_temperature=0.1``).

        Raises:
          ConfigError: a change is neither.
        """
        if model_specs.get(name).partition == "never":
            lam = 0.0
        elif (
            self.partition_weight == model_specs.get(self.name).default_partition_weight
        ):
            lam = None  # this model's default: the new one's
        else:
            lam = self.partition_weight
        mine = model_specs.get(self.name).param_flags()
        theirs = model_specs.get(name).param_flags()
        params = {
            theirs[flag].name: self.params[field.name]
            for flag, field in mine.items()
            if flag in theirs
        }
        flat, given = _split_settings(name, changes)
        return dataclasses.replace(
            self,
            **{
                "name": name,
                "partition_weight": lam,
                "params": {**params, **given},
                **flat,
            },
        )

    @classmethod
    def from_settings(cls, name: str = "dismir", **settings: Any) -> ModelConfig:
        """A config from settings named as their flags: ModelConfig fields
        and the flags of ``name``'s params, e.g.
        ``ModelConfig.from_settings("dismir", num_interests=4,
        routing_temperature=0.1)`` or ``from_settings("sasrec",
        sasrec_blocks=3)``.

        Raises:
          ConfigError: a setting that is neither, or an invalid value.
        """
        flat, params = _split_settings(name, settings)
        return cls(name=name, params=params, **flat)


def _split_settings(
    name: str, settings: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ModelConfig fields, ``name``'s params by field name) of settings
    named as flags; a ``params`` dict among them (by field name) is merged
    under the flag-named ones.

    Raises:
      ConfigError: a setting that is neither.
    """
    own = model_specs.get(name).param_flags()
    fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"name", "params"}
    settings = dict(settings)
    params = dict(settings.pop("params", None) or {})
    unknown = sorted(k for k in settings if k not in own and k not in fields)
    if unknown:
        owners = model_specs.param_flag_owners()
        acts = [
            f"{k} acts on {', '.join(owners[k][1])}" for k in unknown if k in owners
        ]
        raise ConfigError(
            f"{', '.join(unknown)}: neither a model setting nor a parameter of "
            f"{name!r}" + (f" ({'; '.join(acts)})" if acts else "")
        )
    params.update({own[k].name: v for k, v in settings.items() if k in own})
    return {k: v for k, v in settings.items() if k not in own}, params


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training budget, model selection and run directory.

    Attributes:
      output_dir: run directory (config.json, checkpoints, metrics.json).
      batch_size: global batch size (split over replicas).
      learning_rate: Adam learning rate.
      max_steps: stop after this many steps.
      eval_every: evaluate on valid users every this many steps.
      patience: stop after this many evaluations without improvement.
      seed: seeds the model initialisation and the training sampler.
      eval_batch_size: users per evaluation batch.
      exclude_history: remove history items from the ranking.
      strategy: 'default', 'mirrored' or 'multi_worker'.
      logical_cpus: with 'mirrored' and no GPU, split the CPU into this many
        logical devices.
      jit_compile: XLA-compile the train step and the optimizer update
        (the same maths, several times faster on the CPU;
        docs/performance.md).
      embedding_update: Adam's update of the embedding tables: 'dense'
        (every row every step, the reference code's), 'lazy' (only the rows
        of the batch; a step's cost does not grow with the catalogue) or
        'auto' (lazy for item tables of more than
        ``dismir_tf.optimizers.LAZY_FROM_ROWS`` rows, dense below;
        docs/performance.md, "Lazy or dense Adam").
    """

    output_dir: str = "runs/default"
    batch_size: int = 128
    learning_rate: float = 1e-3
    max_steps: int = 3000
    eval_every: int = 500
    patience: int = 5
    seed: int = 0
    eval_batch_size: int = 512
    exclude_history: bool = False
    strategy: str = "default"
    logical_cpus: int = 2
    jit_compile: bool = True
    embedding_update: str = "auto"

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "batch_size must be >= 1")
        _check(
            self.embedding_update in EMBEDDING_UPDATES,
            f"embedding_update must be one of "
            f"{', '.join(EMBEDDING_UPDATES)}, got "
            f"{self.embedding_update!r}",
        )
        _check(
            math.isfinite(self.learning_rate) and self.learning_rate > 0.0,
            "learning_rate must be finite and > 0",
        )
        _check(self.max_steps >= 1, "max_steps must be >= 1")
        _check(self.eval_every >= 1, "eval_every must be >= 1")
        _check(
            self.eval_every <= self.max_steps,
            f"eval_every ({self.eval_every}) must be <= max_steps ({self.max_steps})",
        )
        # NumPy and Keras seed their generators with a uint32.
        _check(0 <= self.seed < 2**32, "seed must be in [0, 2**32)")
        _check(self.patience >= 1, "patience must be >= 1")
        _check(self.eval_batch_size >= 1, "eval_batch_size must be >= 1")
        _check(self.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}")
        _check(self.logical_cpus >= 1, "logical_cpus must be >= 1")


def _legacy_params(model: dict[str, Any]) -> None:
    """Moves settings that a model's spec now keeps in ``params`` out of
    the flat fields of an older config.json (e.g. ``sasrec_blocks``,
    ``routing_temperature``, ``remi_beta``): into ``params`` for a model
    that declares the flag, dropped (they were defaults) for the others."""
    name = model.get("name", "dismir")
    params = dict(model.get("params") or {})
    own = model_specs.get(name).param_flags() if name in model_specs.names() else {}
    for flag in model_specs.param_flag_owners():
        if flag in model:
            value = model.pop(flag)
            if flag in own:
                params.setdefault(own[flag].name, value)
    if params:
        model["params"] = params


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
    """A ModelConfig from its ``dataclasses.asdict`` (config.json's
    "model", a SavedModel's layer config), also as older versions wrote
    it: the DisMIR family's capsule before its options and before the
    recency option, and flat fields that now live in ``params``.

    Raises:
      ConfigError: an invalid value; TypeError: an unknown field.
    """
    model = dict(d)
    # This version writes a capsule model's params in full; an empty or
    # missing one is a config.json of an older version (flat fields).
    if _legacy_capsule_model(model.get("name", "dismir")) and not model.get("params"):
        if "readout" not in model:
            # Written before the capsule options existed: the capsule that
            # the DisMIR family had then.
            model.update(LEGACY_CAPSULE)
        # Written before the recency option: no recency weights.
        model.setdefault("capsule_recency", "none")
    _legacy_params(model)
    return ModelConfig(**model)


# The DisMIR family's capsule before the capsule options existed (version
# 1: prototype logits, softmax over interests, fused readout); a config.json
# without a 'readout' field is read with it.
def _legacy_capsule_model(name: str) -> bool:
    return name in model_specs.names() and model_specs.get(name).capsule


LEGACY_CAPSULE = dict(
    routing_init="prototype",
    routing_softmax="interests",
    routing_padding_in_softmax=False,
    routing_similarity="dot",
    routing_temperature=1.0,
    routing_detach=False,
    interest_norm="squash",
    readout="fused",
    rec_loss="pairwise",
    capsule_transform="identity",
    capsule_recency="none",
    capsule_preset="",
)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """A RunConfig from its ``to_dict()`` (config.json, a study's
        settings), older versions' included.

        Raises:
          ConfigError: an invalid value.
          UnreadableConfigError: a structure this version cannot read (an
            unknown field, a section that is not an object).
        """
        try:
            data = dict(d.get("data", {}))
            if "synthetic" in data:
                data["synthetic"] = SyntheticConfig(**data["synthetic"])
            return cls(
                data=DataConfig(**data),
                model=model_config_from_dict(d.get("model", {})),
                train=TrainConfig(**d.get("train", {})),
            )
        except (TypeError, AttributeError, ValueError) as e:
            raise UnreadableConfigError(
                f"not a config file of this version ({e})"
            ) from None

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls.from_dict(json.loads(text))


def replace(obj: Any, **changes: Any) -> Any:
    """dataclasses.replace that re-runs validation."""
    return dataclasses.replace(obj, **changes)


def config_differences(old: dict, new: dict) -> list[str]:
    """The fields where two ``RunConfig.to_dict()`` differ, as
    'section.field (old -> new)', sorted.  A field missing from ``old`` (added
    to the config after that run was written) counts as its default."""
    defaults = RunConfig().to_dict()
    diff = []
    for section in sorted(set(new) | set(old)):
        o, n = old.get(section, {}), new.get(section, {})
        for k in sorted(set(o) | set(n)):
            was = o.get(k, defaults.get(section, {}).get(k))
            now = n.get(k, defaults.get(section, {}).get(k))
            if k == "params" and isinstance(was, dict) and isinstance(now, dict):
                # A model's own settings, one by one.
                diff += [
                    f"{section}.params.{p} ({was.get(p)!r} -> {now.get(p)!r})"
                    for p in sorted(set(was) | set(now))
                    if was.get(p) != now.get(p)
                ]
            elif was != now:
                diff.append(f"{section}.{k} ({was!r} -> {now!r})")
    return diff


# The package's own --model names, known without importing TensorFlow
# (their specs are in dismir_tf.model_specs; model_specs.names() adds the
# models of $DISMIR_TF_MODELS).
MODEL_NAMES = model_specs.BUILTIN_NAMES


def unknown_model_message(name: str, names=None) -> str:
    """'unknown model ...' with the closest valid name when there is one."""
    import difflib

    names = model_specs.names() if names is None else names
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"unknown model {name!r}{hint} (expected one of {', '.join(names)}; a "
        f"model from outside the package: name its module in "
        f"${model_specs.PLUGINS_ENV})"
    )
