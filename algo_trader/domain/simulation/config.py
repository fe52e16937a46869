"""``simulation.yml``: the typed schema of a nested-CV simulation run.

Every section forbids unknown keys, every key has a default here (so the YAML only states
what differs), and each rule lives next to the key it constrains. Cross-field rules raise
messages that name the dotted key, the value and the fix. Rules that need the data (``q``
against the number of inner groups, too little training data) belong to the CV builder,
not to this module.

Sections (``nestedcv.md`` section 8): ``data``, ``cv``, ``outer``, ``preprocessing``,
``model``, ``training``, ``tuning``, ``scoring``, ``predictive``, ``allocation``, ``cost``,
``model_selection``, ``diagnostics``, ``flags``, plus the top-level run controls
``simulation_mode`` and ``stop_after`` (``configuration.md``, "Simulation Flags").
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import re
import types
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from algo_trader.domain.errors import ConfigError
from algo_trader.infrastructure.yaml_config import format_validation_error, load_model

SimulationMode = Literal["dry_run", "stub", "full"]
StopAfter = Literal["inputs", "cv", "inner", "outer", "results"]
# The feature-engineering groups (feature_engineering.md); kept here because the domain
# layer may not import the application layer that registers them.
FeatureGroupName = Literal[
    "momentum",
    "mean_reversion",
    "breakout",
    "volatility",
    "seasonal",
    "regime",
    "cross_sectional",
]
ParamType = Literal["float", "int", "categorical", "bool"]
Transform = Literal["linear", "log", "log10", "none"]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
# Candidates may only change the model and its training: the CV structure, data,
# preprocessing and scoring stay fixed so that candidate scores remain comparable.
TUNABLE_ROOTS = ("model", "training")
_NOT_TUNABLE = ("model.prebuild",)
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------- data


class DatasetParams(_Section):
    """``data.dataset_params``: how the ``feature_store_panel`` loader builds the panel.

    Attributes
    ----------
    feature_store, data_lake
        Override ``FEATURE_STORE_SOURCE`` / ``DATA_LAKE_SOURCE`` (null = the env setting).
    groups
        ``"all"`` or a list of feature-group names.
    target_shift
        ``y[t]`` is the return ``target_shift`` weeks after feature row ``t``.
    target_scale
        Integer factor applied to returns (1_000_000 turns returns into micro-units).
    prefix_feature_names
        Prefix each feature name with its group (``momentum.z_mom_4w``).
    """

    feature_store: Path | None = None
    data_lake: Path | None = None
    groups: Literal["all"] | list[FeatureGroupName] = "all"
    target_shift: int = Field(default=1, ge=1)
    target_scale: int = Field(default=1_000_000, gt=0)
    prefix_feature_names: bool = True

    @field_validator("groups")
    @classmethod
    def _unique_groups(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            if not value:
                raise ValueError("list at least one feature group, or write: all")
            dupes = sorted({g for g in value if value.count(g) > 1})
            if dupes:
                raise ValueError(f"groups {dupes} are listed twice; list each group once")
        return value


class DataConfig(_Section):
    """``data``: where the run's outputs go and how its inputs are built.

    Attributes
    ----------
    simulation_output_path
        Label of the run folder under ``SIMULATION_SOURCE`` (letters, digits, ``.``, ``_``,
        ``-``; not ``.`` or ``..``); null = the latest ``YYYY-WW``.
    dataset_params
        See :class:`DatasetParams`.
    """

    simulation_output_path: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]+$")] | None
    ) = None
    dataset_params: DatasetParams = DatasetParams()

    @field_validator("simulation_output_path")
    @classmethod
    def _not_a_parent(cls, value: str | None) -> str | None:
        if value is not None and set(value) == {"."}:
            raise ValueError("a label of only dots would leave SIMULATION_SOURCE; use e.g. run_a")
        return value


# ------------------------------------------------------------------------------- cv


class CVConfig(_Section):
    """``cv``: warmup, equal groups, label horizon, embargo and the inner CPCV.

    Attributes
    ----------
    warmup_len
        Leading samples never used as a test group (still training unless ``exclude_warmup``).
    group_len
        Samples per group; the leading remainder after warmup is dropped.
    horizon
        Label interval of sample ``t`` is ``[t, t + horizon]`` (used by the purge).
    embargo_len
        Training samples dropped right after each inner test block.
    q
        Test groups per inner CPCV split.
    max_inner_combos
        Cap on inner splits (greedy balanced selection); null = all ``C(n, q)``.
    seed
        Seed of the CV-level randomness.
    exclude_warmup
        Drop the warmup samples from every training set.
    """

    warmup_len: int = Field(default=52, ge=0)
    group_len: int = Field(default=52, ge=1)
    horizon: int = Field(default=1, ge=1)
    embargo_len: int = Field(default=4, ge=0)
    q: int = Field(default=2, ge=1)
    max_inner_combos: int | None = Field(default=None, ge=1)
    seed: int = Field(default=123, ge=0)
    exclude_warmup: bool = False


class OuterConfig(_Section):
    """``outer``: which groups are outer walk-forward test groups.

    Eligible test groups are ``k >= min_train_groups`` (group ids count from 0 after the
    warmup), so every outer fold has at least that many groups for its inner CPCV.
    ``test_groups`` then picks among them:

    - ``all``: every eligible group;
    - ``last_n``: the ``last_n`` most recent eligible groups;
    - ``ids``: the group ids listed in ``ids`` (each must be eligible).

    Attributes
    ----------
    test_groups
        ``all`` | ``last_n`` | ``ids``.
    last_n
        Required with ``test_groups: last_n``.
    ids
        Required with ``test_groups: ids``.
    min_train_groups
        Fewest groups before an outer test group; null = ``cv.q + 1`` (the fewest that
        leave a training group in every inner split).
    warm_start_steps
        SVI steps of the weekly warm-started refit in the outer loop; null =
        ``training.svi.num_steps``.
    """

    test_groups: Literal["all", "last_n", "ids"] = "all"
    last_n: int | None = Field(default=None, ge=1)
    ids: list[Annotated[int, Field(ge=0)]] | None = None
    min_train_groups: int | None = Field(default=None, ge=1)
    warm_start_steps: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _selection_has_its_key(self) -> OuterConfig:
        if self.test_groups == "last_n" and self.last_n is None:
            raise ValueError("test_groups: last_n needs last_n (e.g. last_n: 2)")
        if self.test_groups == "ids" and not self.ids:
            raise ValueError("test_groups: ids needs a non-empty ids list (e.g. ids: [4, 5])")
        if self.test_groups != "last_n" and self.last_n is not None:
            raise ValueError(f"last_n is set but test_groups is {self.test_groups!r}; remove one")
        if self.test_groups != "ids" and self.ids is not None:
            raise ValueError(f"ids is set but test_groups is {self.test_groups!r}; remove one")
        if self.ids is not None and len(set(self.ids)) != len(self.ids):
            raise ValueError(f"ids {self.ids} repeats a group; list each once")
        return self

    def select(self, n_groups: int, q: int) -> list[int]:
        """The outer test group ids for a panel with ``n_groups`` equal groups.

        Parameters
        ----------
        n_groups
            Number of equal groups after warmup.
        q
            ``cv.q`` (sets the default ``min_train_groups``).

        Returns
        -------
        list[int]
            Sorted group ids.

        Raises
        ------
        ConfigError
            No eligible group, ``last_n`` larger than the eligible count, or an id that
            is not eligible; the message names the keys and the numbers.
        """
        first = self.min_train_groups if self.min_train_groups is not None else q + 1
        eligible = list(range(first, n_groups))
        where = f"{n_groups} groups, min_train_groups {first}"
        if not eligible:
            raise ConfigError(
                f"outer: no outer test group: the panel has {where}; lower cv.group_len, "
                "cv.warmup_len, cv.q or outer.min_train_groups"
            )
        if self.test_groups == "last_n":
            assert self.last_n is not None
            if self.last_n > len(eligible):
                raise ConfigError(
                    f"outer.last_n: {self.last_n} but only {len(eligible)} groups are eligible "
                    f"({where}: ids {eligible[0]}..{eligible[-1]}); set last_n <= "
                    f"{len(eligible)}"
                )
            return eligible[-self.last_n :]
        if self.test_groups == "ids":
            assert self.ids is not None
            bad = sorted(set(self.ids) - set(eligible))
            if bad:
                raise ConfigError(
                    f"outer.ids: {bad} are not eligible test groups ({where}: valid ids "
                    f"{eligible[0]}..{eligible[-1]})"
                )
            return sorted(self.ids)
        return eligible


# -------------------------------------------------------------------- preprocessing


class PreprocessingConfig(_Section):
    """``preprocessing``: leakage-safe cleaning and scaling (``feature_normalization.md``).

    Attributes
    ----------
    min_usable_ratio
        Drop a feature whose usable (non-missing) ratio on training rows is below this.
    min_variance
        Drop a feature whose training variance is below this.
    max_abs_corr
        Drop the less usable of two features whose ``|corr|`` exceeds this.
    corr_subsample
        Rows sampled for the correlation check; null = all training rows.
    mad_eps
        Added to the MAD so a zero MAD never divides.
    breakout_var_floor
        Added to ``p (1 - p)`` when centring breakout features.
    winsor_low_q, winsor_high_q
        Winsorization quantiles, pooled across assets per feature (``0 <= low < high <= 1``).
    scale_floor
        Floor of the composite robust scale.
    guard_abs_eps, guard_rel_eps, guard_rel_offset
        Near-constant guard thresholds (absolute, relative, relative offset).
    clip_min, clip_max
        Clip bounds of scaled values (``clip_min < clip_max``).
    max_abs_fail
        Fail fast when a scaled training value exceeds this in absolute value.
    impute_missing_to_zero
        Set missing values to 0 after scaling.
    append_mask_as_features
        Append the missing mask as extra feature channels.
    """

    min_usable_ratio: float = Field(default=0.8, ge=0.0, le=1.0)
    min_variance: float = Field(default=1e-12, ge=0.0)
    max_abs_corr: float = Field(default=0.95, gt=0.0, le=1.0)
    corr_subsample: int | None = Field(default=None, ge=2)
    mad_eps: float = Field(default=1e-12, gt=0.0)
    breakout_var_floor: float = Field(default=1e-3, ge=0.0)
    winsor_low_q: float = Field(default=0.005, ge=0.0, le=1.0)
    winsor_high_q: float = Field(default=0.995, ge=0.0, le=1.0)
    scale_floor: float = Field(default=1e-6, gt=0.0)
    guard_abs_eps: float = Field(default=1e-10, ge=0.0)
    guard_rel_eps: float = Field(default=1e-6, ge=0.0)
    guard_rel_offset: float = Field(default=1e-12, ge=0.0)
    clip_min: float = -10.0
    clip_max: float = 10.0
    max_abs_fail: float = Field(default=1000.0, gt=0.0)
    impute_missing_to_zero: bool = True
    append_mask_as_features: bool = False

    @model_validator(mode="after")
    def _ordered_pairs(self) -> PreprocessingConfig:
        if not self.winsor_low_q < self.winsor_high_q:
            raise ValueError(
                f"winsor_low_q ({self.winsor_low_q}) must be below winsor_high_q "
                f"({self.winsor_high_q}); e.g. 0.01 and 0.99"
            )
        if not self.clip_min < self.clip_max:
            raise ValueError(
                f"clip_min ({self.clip_min}) must be below clip_max ({self.clip_max}); "
                "e.g. -10 and 10"
            )
        if not all(map(math.isfinite, (self.clip_min, self.clip_max))):
            raise ValueError("clip_min and clip_max must be finite numbers")
        return self


# ------------------------------------------------------------------- model/training


class PrebuildConfig(_Section):
    """``model.prebuild``: optional train-only initialization before tuning.

    Attributes
    ----------
    enabled
        Run the hook.
    name
        Registered prebuild hook name (required when enabled).
    params
        Hook-specific settings (free-form).
    """

    enabled: bool = False
    name: Name | None = None
    params: dict[str, Any] = {}

    @model_validator(mode="after")
    def _named_when_enabled(self) -> PrebuildConfig:
        if self.enabled and self.name is None:
            raise ValueError("enabled: true needs name (e.g. name: factor_prior_init)")
        return self


class ModelConfig(_Section):
    """``model``: registered model and guide names plus their free-form parameters."""

    model_name: Name = "factor_model_v1"
    guide_name: Name = "factor_guide_v1"
    params: dict[str, Any] = {}
    guide_params: dict[str, Any] = {}
    prebuild: PrebuildConfig = PrebuildConfig()


class EarlyStoppingConfig(_Section):
    """``training.svi.early_stopping``: stop on a plateau of the smoothed ELBO loss.

    Attributes
    ----------
    enabled
        Turn early stopping on.
    patience
        Steps without an improvement of at least ``min_delta`` before stopping.
    min_delta
        Smallest improvement of the smoothed loss that counts.
    smoothing
        Weight of the previous value in the exponential moving average of the loss
        (0 = no smoothing).
    """

    enabled: bool = False
    patience: int = Field(default=50, ge=1)
    min_delta: float = Field(default=0.0, ge=0.0)
    smoothing: float = Field(default=0.9, ge=0.0, lt=1.0)


class SVIConfig(_Section):
    """``training.svi``: the SVI trainer (ClippedAdam, TBPTT windows, early stopping).

    Attributes
    ----------
    num_steps
        Optimizer steps per fit.
    learning_rate
        ClippedAdam learning rate.
    tbptt_window_len
        Time steps per TBPTT window; null = the whole sequence as one window.
    tbptt_burn_in_len
        Leading steps of each window given as context but masked out of the loss.
    grad_accum_steps
        Windows accumulated per optimizer step (1 = none).
    num_elbo_particles
        Particles of the ELBO estimate.
    log_every
        Log the loss every this many steps; null = never.
    lr_decay
        ClippedAdam per-step learning-rate decay factor (1 = none).
    clip_norm
        ClippedAdam gradient-norm clip.
    early_stopping
        See :class:`EarlyStoppingConfig`.
    """

    num_steps: int = Field(default=1000, ge=1)
    learning_rate: float = Field(default=0.01, gt=0.0)
    tbptt_window_len: int | None = Field(default=None, ge=1)
    tbptt_burn_in_len: int = Field(default=0, ge=0)
    grad_accum_steps: int = Field(default=1, ge=1)
    num_elbo_particles: int = Field(default=1, ge=1)
    log_every: int | None = Field(default=100, ge=1)
    lr_decay: float = Field(default=1.0, gt=0.0, le=1.0)
    clip_norm: float = Field(default=10.0, gt=0.0)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()

    @model_validator(mode="after")
    def _burn_in_inside_window(self) -> SVIConfig:
        window = self.tbptt_window_len
        if window is not None and self.tbptt_burn_in_len >= window:
            raise ValueError(
                f"tbptt_burn_in_len ({self.tbptt_burn_in_len}) must be below "
                f"tbptt_window_len ({window}) or no step of a window is trained; lower it"
            )
        return self


class TrainingConfig(_Section):
    """``training``: currently only ``svi`` (see :class:`SVIConfig`)."""

    svi: SVIConfig = SVIConfig()


# --------------------------------------------------------------------------- tuning


def _same(a: object, b: object) -> bool:
    """Equality that keeps ``True`` apart from ``1`` (categorical values are compared so)."""
    return type(a) is type(b) and a == b


def _contains(values: list[Any] | tuple[Any, ...], item: object) -> bool:
    return any(_same(v, item) for v in values)


class TuningParam(_Section):
    """One ``tuning.space`` entry.

    Attributes
    ----------
    path
        Dotted config key it sets: a key under ``training.*``, ``model.model_name`` /
        ``model.guide_name``, or any key under ``model.params.*`` / ``model.guide_params.*``.
    type
        ``float`` / ``int`` (need ``bounds``) or ``categorical`` / ``bool`` (``values``;
        a bool's values default to ``[false, true]``).
    bounds
        ``[low, high]`` with ``low < high``; ``low > 0`` for log transforms; an int's
        bounds are integers and both are reachable.
    values
        Non-empty list of distinct choices.
    transform
        ``linear`` (uniform), ``log`` / ``log10`` (log-uniform); ``none`` = linear for
        numbers and the only choice for categorical/bool. Null = that default.
    when
        ``{path: value or [values]}``: the entry is active only where each named
        categorical/bool entry (listed earlier in ``tuning.space``) takes one of the values.
    """

    path: str
    type: ParamType
    bounds: tuple[float, float] | None = None
    values: list[Any] | None = None
    transform: Transform | None = None
    when: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _bool_values_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == "bool" and "values" not in data:
            return {**data, "values": [False, True]}
        return data

    @field_validator("path")
    @classmethod
    def _path_is_tunable(cls, value: str) -> str:
        problem = tunable_path_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("when")
    @classmethod
    def _when_lists(cls, value: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, allowed in value.items():
            choices = allowed if isinstance(allowed, list) else [allowed]
            if not choices:
                raise ValueError(f"when.{key} is an empty list; give the values that activate it")
            out[key] = choices
        return out

    @model_validator(mode="after")
    def _consistent(self) -> TuningParam:
        if self.type in ("float", "int"):
            self._check_numeric()
        else:
            self._check_choices()
        return self

    def _check_numeric(self) -> None:
        if self.values is not None:
            raise ValueError(f"type {self.type} takes bounds, not values; remove values")
        if self.bounds is None:
            raise ValueError(f"type {self.type} needs bounds: [low, high]")
        low, high = self.bounds
        if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            raise ValueError(f"bounds {list(self.bounds)} must be finite with low < high")
        if self.transform in ("log", "log10") and low <= 0:
            raise ValueError(
                f"transform {self.transform} needs bounds > 0 (got low {low}); "
                "raise low or use transform: linear"
            )
        if self.type == "int" and not (low.is_integer() and high.is_integer()):
            raise ValueError(f"type int needs integer bounds (got {list(self.bounds)})")

    def _check_choices(self) -> None:
        if self.bounds is not None:
            raise ValueError(f"type {self.type} takes values, not bounds; remove bounds")
        if self.transform not in (None, "none"):
            raise ValueError(f"type {self.type} takes no transform (got {self.transform!r})")
        values = self.values
        if self.type == "bool" and not all(isinstance(v, bool) for v in values or []):
            raise ValueError(f"type bool values must be true/false (got {values!r})")
        if not values:
            raise ValueError(f"type {self.type} needs a non-empty values list")
        try:
            json.dumps(values, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(
                f"values {values!r} must be plain strings, numbers, booleans or null so that "
                "candidates.json can hold them (a YAML date or .nan cannot); quote the value"
            ) from None
        if any(_contains(values[:i], v) for i, v in enumerate(values)):
            raise ValueError(f"values {values!r} repeat a value; list each once")

    @property
    def is_numeric(self) -> bool:
        """Whether the entry is sampled (float/int) rather than stratified."""
        return self.type in ("float", "int")

    @property
    def choices(self) -> list[Any]:
        """The categorical/bool values (empty for float/int)."""
        return list(self.values or [])

    def active(self, stratum: Mapping[str, Any]) -> bool:
        """Whether every ``when`` condition holds for a stratum's categorical values."""
        return all(
            path in stratum and _contains(allowed, stratum[path])
            for path, allowed in self.when.items()
        )


class ResourcesConfig(_Section):
    """``tuning.resources``: Ray Tune resources per trial (GPU only with ``use_gpu``)."""

    cpu: float = Field(default=1.0, gt=0.0)
    gpu: float = Field(default=0.0, ge=0.0)
    use_gpu: bool = False

    @model_validator(mode="after")
    def _gpu_share(self) -> ResourcesConfig:
        if self.use_gpu and self.gpu <= 0:
            raise ValueError("use_gpu: true needs gpu > 0 (the GPU share per trial, e.g. 1)")
        return self


class RayConfig(_Section):
    """``tuning.ray``: ``address`` null = start a local Ray; ``auto`` or ``host:port`` joins."""

    address: (
        Annotated[str, StringConstraints(pattern=r"^(auto|(ray://)?[A-Za-z0-9.\-_\[\]:]+:\d+)$")]
        | None
    ) = None


class TuningConfig(_Section):
    """``tuning``: the candidate space and how candidates are evaluated.

    Attributes
    ----------
    engine
        ``local`` (sequential) or ``ray`` (Ray Tune).
    num_samples
        Total candidates: the strata count (categorical/bool combinations) times a power
        of two. A stratum without an active float/int entry yields a single candidate.
    seed
        Sobol scrambling seed.
    space
        See :class:`TuningParam`.
    aggregate
        How a candidate's inner split scores combine into one (``mean`` or ``median``).
    resources, ray
        Ray Tune settings.
    on_trial_error
        ``raise`` stops the run at a failing candidate; ``skip`` records it and goes on.
    """

    engine: Literal["local", "ray"] = "local"
    # ``space`` is declared before ``num_samples`` so the num_samples rule can see it.
    space: list[TuningParam] = []
    num_samples: int = Field(default=1, ge=1)
    seed: int = Field(default=0, ge=0)
    aggregate: Literal["mean", "median"] = "mean"
    resources: ResourcesConfig = ResourcesConfig()
    ray: RayConfig = RayConfig()
    on_trial_error: Literal["raise", "skip"] = "raise"

    @field_validator("space")
    @classmethod
    def _space_is_coherent(cls, space: list[TuningParam]) -> list[TuningParam]:
        paths = [p.path for p in space]
        for i, entry in enumerate(space):
            if entry.path in paths[:i]:
                first = paths.index(entry.path)
                raise ValueError(
                    f"entry {i}: path {entry.path!r} is already entry {first}; list it once"
                )
            _check_when(space, i)
        return space

    @field_validator("num_samples")
    @classmethod
    def _splits_into_strata(cls, value: int, info: ValidationInfo) -> int:
        space = info.data.get("space")
        if space is not None:  # absent when ``space`` itself failed validation
            problem = _num_samples_problem(value, len(space_strata(space)))
            if problem is not None:
                raise ValueError(problem)
        return value

    def strata(self) -> list[dict[str, Any]]:
        """The categorical/bool combinations of ``space`` (see :func:`space_strata`)."""
        return space_strata(self.space)


def _check_when(space: list[TuningParam], index: int) -> None:
    earlier = {p.path: p for p in space[:index] if not p.is_numeric}
    for path, allowed in space[index].when.items():
        ref = earlier.get(path)
        if ref is None:
            valid = ", ".join(earlier) or "none"
            raise ValueError(
                f"entry {index}: when names {path!r}, which is not a categorical/bool entry "
                f"listed before entry {index}; valid: {valid}"
            )
        bad = [v for v in allowed if not _contains(ref.choices, v)]
        if bad:
            raise ValueError(
                f"entry {index}: when.{path} {bad!r} is not among its values {ref.choices!r}"
            )


def space_strata(space: list[TuningParam]) -> list[dict[str, Any]]:
    """The categorical/bool combinations of a tuning space, in ``space`` order.

    A categorical entry whose ``when`` fails in a partial combination is absent from it,
    so conditional categoricals never produce duplicate strata.

    Returns
    -------
    list[dict[str, Any]]
        One ``{path: value}`` per stratum; ``[{}]`` when there is no categorical entry.
    """
    combos: list[dict[str, Any]] = [{}]
    for entry in (e for e in space if not e.is_numeric):
        grown: list[dict[str, Any]] = []
        for combo in combos:
            if entry.active(combo):
                grown.extend({**combo, entry.path: value} for value in entry.choices)
            else:
                grown.append(combo)
        combos = grown
    return combos


def _num_samples_problem(num_samples: int, n_strata: int) -> str | None:
    per, rest = divmod(num_samples, n_strata)
    if rest == 0 and per >= 1 and per & (per - 1) == 0:
        return None
    above = n_strata
    while above <= num_samples:
        above *= 2
    nearest = f"{above // 2} or {above}" if above > n_strata else f"{above}"
    return (
        f"{num_samples} does not give a power of two per stratum: tuning.space has "
        f"{n_strata} categorical/bool strata, so num_samples must be {n_strata} x 2^k; "
        f"nearest valid: {nearest}"
    )


def check_num_samples(num_samples: int, n_strata: int) -> int:
    """Samples per stratum, after checking that ``num_samples`` splits into a power of two.

    Raises
    ------
    ConfigError
        Naming ``tuning.num_samples``, the strata count and the nearest valid values.
    """
    problem = _num_samples_problem(num_samples, n_strata)
    if problem is not None:
        raise ConfigError(f"tuning.num_samples: {problem}")
    return num_samples // n_strata


# ----------------------------------------------------------------------- evaluation


class ScoreSpec(_Section):
    """``scoring.spec``: the inner metric and its numerical settings.

    Attributes
    ----------
    metric_name
        Registered inner metric (``neg_mse`` default, ``energy_score``...).
    mad_eps
        Added to the per-asset MAD of training targets.
    eps
        Jitter added to the covariance diagonal before the Cholesky.
    var_floor
        Optional diagonal add before ``eps``.
    alpha_tail
        Quantile level of the tail quantile loss (model selection).
    memory_budget_mb
        Working memory (MiB) the energy score's pairwise term may use at once; weeks are
        scored in blocks that fit it.
    """

    metric_name: Name = "neg_mse"
    mad_eps: float = Field(default=1e-12, gt=0.0)
    eps: float = Field(default=1e-5, gt=0.0)
    var_floor: float = Field(default=0.0, ge=0.0)
    alpha_tail: float = Field(default=0.05, gt=0.0, lt=1.0)
    memory_budget_mb: int = Field(default=256, ge=1)


class ScoringConfig(_Section):
    """``scoring``: holds ``spec`` (see :class:`ScoreSpec`)."""

    spec: ScoreSpec = ScoreSpec()


class PredictiveConfig(_Section):
    """``predictive``: posterior predictive samples drawn per prediction."""

    num_samples: int = Field(default=200, ge=1)


class AllocationConfig(_Section):
    """``allocation``: the policy turning predictive samples into weights.

    Weights are fractions of portfolio value; the constraints below hold for every policy
    (``algo_trader.application.simulation.allocation``). Rules that need the number of
    assets (``max_weight`` against ``net_exposure``) are checked once per run by
    ``allocation.check_allocation``.

    Attributes
    ----------
    policy
        Registered policy (``equal_weight``, ``sign_of_mean``, ``mean_variance``,
        ``min_cvar``).
    long_only
        Forbid short positions.
    gross_leverage
        Cap on ``sum |w|``.
    net_exposure
        Required ``sum w`` (1.0 = fully invested, 0.0 = dollar neutral); null = any net
        exposure within the gross cap (the rest is cash).
    max_weight
        Cap on ``|w_a|`` per asset; null = none.
    risk_aversion
        Mean-variance risk aversion ``gamma`` (returns in return units, not ``y`` units).
    cvar_alpha
        Tail level of the CVaR policy (0.05 = mean of the worst 5 % of scenarios).
    turnover_penalty
        Penalty per unit of ``sum |w - w_prev|`` in the optimizing policies
        (``mean_variance``, ``min_cvar``), in return units (0.0005 = 5 bps).
    """

    policy: Name = "equal_weight"
    long_only: bool = True
    gross_leverage: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    net_exposure: float | None = Field(default=1.0, allow_inf_nan=False)
    max_weight: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    risk_aversion: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    cvar_alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    turnover_penalty: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _feasible(self) -> AllocationConfig:
        net = self.net_exposure
        if net is None:
            return self
        if self.long_only and net < 0:
            raise ValueError(
                f"net_exposure {net} is negative but long_only is true; a long-only "
                "portfolio has sum w >= 0: set net_exposure >= 0 or long_only: false"
            )
        if abs(net) > self.gross_leverage:
            raise ValueError(
                f"|net_exposure| {abs(net)} exceeds gross_leverage {self.gross_leverage} "
                "(|sum w| <= sum |w|): raise gross_leverage or lower net_exposure"
            )
        return self


class CostConfig(_Section):
    """``cost``: transaction costs charged on turnover.

    Attributes
    ----------
    bps
        Proportional cost in basis points of ``|w - w_prev|``.
    per_asset_bps
        Asset name -> bps overriding ``bps`` for that asset.
    fixed_per_rebalance
        Fixed cost per rebalance, as a fraction of portfolio value; charged only in a week
        that trades (zero turnover costs nothing).
    """

    bps: float = Field(default=5.0, ge=0.0, allow_inf_nan=False)
    per_asset_bps: dict[str, Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] = {}
    fixed_per_rebalance: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)


class ESBandConfig(_Section):
    """``model_selection.es_band``: survivors within ``c`` standard errors of the best ES."""

    c: float = Field(default=1.0, ge=0.0)
    min_keep: int = Field(default=1, ge=1)
    max_keep: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _keep_order(self) -> ESBandConfig:
        if self.min_keep > self.max_keep:
            raise ValueError(
                f"min_keep ({self.min_keep}) must not exceed max_keep ({self.max_keep})"
            )
        return self


class BootstrapConfig(_Section):
    """``model_selection.bootstrap``: group bootstrap of the ES standard error.

    Attributes
    ----------
    num_samples
        Resamples of the groups; the SE is their median's standard deviation (ddof 1, so
        at least 2).
    seed
        Mixed with ``cv.seed`` and the outer fold into the bootstrap's seed.
    """

    num_samples: int = Field(default=500, ge=2)
    seed: int = Field(default=123, ge=0)


class ComplexityConfig(_Section):
    """``model_selection.complexity``: seed of the random tie-break for undeclared models
    (mixed with ``cv.seed`` and the outer fold)."""

    seed: int = Field(default=123, ge=0)


class ModelSelectionConfig(_Section):
    """``model_selection``: post-tune selection (ES band, CRPS + tail QL rank-sum)."""

    enable: bool = False
    es_band: ESBandConfig = ESBandConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()
    complexity: ComplexityConfig = ComplexityConfig()


Level = Annotated[float, Field(gt=0.0, lt=1.0)]


class FanChartsConfig(_Section):
    """``diagnostics.fan_charts``: fan charts and calibration plots.

    Attributes
    ----------
    enable
        Draw them.
    assets
        ``all`` or asset names (unknown names are an error when the panel is known).
    quantiles
        Band/median levels in (0, 1), increasing.
    coverage_levels
        Nominal central coverage levels in (0, 1), increasing.
    """

    enable: bool = False
    assets: Literal["all"] | list[str] = "all"
    quantiles: list[Level] = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    coverage_levels: list[Level] = [0.5, 0.8, 0.9, 0.95]

    @field_validator("quantiles", "coverage_levels")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if not value or any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(f"{value} must be a non-empty strictly increasing list")
        return value

    @field_validator("assets")
    @classmethod
    def _assets_listed(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("list distinct asset names, or write: all")
        return value


class DiagnosticsConfig(_Section):
    """``diagnostics``: holds ``fan_charts`` (see :class:`FanChartsConfig`)."""

    fan_charts: FanChartsConfig = FanChartsConfig()


class FlagsConfig(_Section):
    """``flags``: feature-name scaling rules and GPU use.

    Attributes
    ----------
    use_feature_names_for_scaling
        Apply the name-prefix rules (``brk_*`` centred, ``cs_rank_*`` passed through);
        false = robust-scale every feature.
    use_gpu
        Fit models on CUDA (an error at run time when none is available).
    """

    use_feature_names_for_scaling: bool = True
    use_gpu: bool = False


# --------------------------------------------------------------------------- root


class SimulationConfig(_Section):
    """The whole ``simulation.yml``.

    ``stop_after`` takes precedence over ``simulation_mode`` (``configuration.md``).
    """

    simulation_mode: SimulationMode = "full"
    stop_after: StopAfter | None = None
    data: DataConfig = DataConfig()
    cv: CVConfig = CVConfig()
    outer: OuterConfig = OuterConfig()
    preprocessing: PreprocessingConfig = PreprocessingConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    tuning: TuningConfig = TuningConfig()
    scoring: ScoringConfig = ScoringConfig()
    predictive: PredictiveConfig = PredictiveConfig()
    allocation: AllocationConfig = AllocationConfig()
    cost: CostConfig = CostConfig()
    model_selection: ModelSelectionConfig = ModelSelectionConfig()
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()
    flags: FlagsConfig = FlagsConfig()

    @field_validator("tuning")
    @classmethod
    def _space_fits_keys(cls, tuning: TuningConfig, info: ValidationInfo) -> TuningConfig:
        # Catch a candidate value its key would reject (a float range on an int key, a
        # non-positive learning rate) at load time instead of mid-run. ``model`` and
        # ``training`` are declared before ``tuning``, so they are in ``info.data``.
        for i, entry in enumerate(tuning.space):
            root = info.data.get(entry.path.split(".")[0])
            if root is None:  # that section failed validation; its error is reported
                continue
            for value in _probe_values(entry):
                problem = _leaf_problem(root, entry.path, value)
                if problem is not None:
                    raise ValueError(
                        f"space.{i}: {entry.path} would receive {value!r}, which it "
                        f"rejects: {problem}; fix the entry's type, bounds or values"
                    )
        return tuning


def _probe_values(entry: TuningParam) -> list[object]:
    """Values that exercise an entry's range: its choices, or both bounds (plus a float
    just above ``low``, which an integer key rejects)."""
    if not entry.is_numeric:
        return entry.choices
    assert entry.bounds is not None
    low, high = entry.bounds
    if entry.type == "int":
        return [int(low), int(high)]
    return [low, high, math.nextafter(low, high)]


def _leaf_problem(root: BaseModel, path: str, value: object) -> str | None:
    """Why the section holding ``path`` (below the top-level section ``root``) rejects
    ``value`` there (None: accepted, or a free-form mapping). Only errors of that key
    count: cross-key rules may depend on other tuned keys."""
    *parents, leaf = path.split(".")[1:]
    section: Any = root
    for key in parents:
        section = getattr(section, key)
        if isinstance(section, dict):
            return None
    data = {**section.model_dump(), leaf: value}
    try:
        type(section).model_validate(data)
    except ValidationError as err:
        own = [e["msg"] for e in err.errors() if e["loc"][:1] == (leaf,)]
        return "; ".join(own) or None
    return None


# ----------------------------------------------------------------- path resolution


def _section_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``X``, ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _section_of(arg)
            if found is not None:
                return found
    return None


def _is_free_form(annotation: Any) -> bool:
    return get_origin(annotation) is dict


@cache
def _schema_paths() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(leaf paths, free-form mapping paths) of every key of :class:`SimulationConfig`."""
    leaves: list[str] = []
    free: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            path = f"{prefix}{name}"
            section = _section_of(field.annotation)
            if section is not None:
                walk(section, f"{path}.")
            else:
                (free if _is_free_form(field.annotation) else leaves).append(path)

    walk(SimulationConfig, "")
    return tuple(leaves), tuple(free)


def _tunable(path: str) -> bool:
    return path.startswith(tuple(f"{r}." for r in TUNABLE_ROOTS)) and not path.startswith(
        tuple(f"{n}." for n in _NOT_TUNABLE)
    )


def tunable_path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a ``tuning.space`` path, or None when it can.

    Valid paths are leaf keys under :data:`TUNABLE_ROOTS` (except ``model.prebuild``)
    and any key below a free-form mapping there (``model.params.<key>``).
    """
    if not _DOTTED.match(path):
        return f"{path!r} is not a dotted key path (names of letters, digits and _ joined by dots)"
    all_leaves, all_free = _schema_paths()
    leaves = [p for p in all_leaves if _tunable(p)]
    free = [p for p in all_free if _tunable(p)]
    if path in leaves or any(path.startswith(f"{f}.") and len(path) > len(f) + 1 for f in free):
        return None
    if path in free:
        return f"{path!r} is a mapping; name a key inside it (e.g. {path}.<name>)"
    listing = f"{', '.join(f'{f}.<any key>' for f in free)}, {', '.join(leaves)}"
    if path in all_leaves or any(path == f or path.startswith(f"{f}.") for f in all_free):
        return (
            f"{path!r} is a config key but cannot be tuned: candidates may only change keys "
            f"under {' and '.join(TUNABLE_ROOTS)} (data, CV, preprocessing and scoring stay "
            f"fixed so candidate scores are comparable); tunable: {listing}"
        )
    near = difflib.get_close_matches(path, leaves, n=3, cutoff=0.6)
    if near:
        return f"{path!r} is not a key of the simulation config; nearest valid: {', '.join(near)}"
    return f"{path!r} is not a key of the simulation config; tunable: {listing}"


# --------------------------------------------------------------------- load/override


def load_simulation_config(path: str | Path) -> SimulationConfig:
    """Load and validate ``simulation.yml``.

    Raises
    ------
    ConfigError
        YAML or schema error; one line per problem naming the file, the dotted key, the
        rule and the value.
    """
    return load_model(path, SimulationConfig)


def _set_dotted(tree: dict[str, Any], path: str, value: object) -> None:
    *parents, leaf = path.split(".")
    node = tree
    for i, key in enumerate(parents):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            where = ".".join(parents[: i + 1])
            raise ConfigError(f"{path}: {where} holds {child!r}, not a mapping; cannot set {leaf}")
        node = child
    node[leaf] = value


def with_overrides(config: SimulationConfig, params: Mapping[str, object]) -> SimulationConfig:
    """A copy of ``config`` with dotted-path ``params`` applied, validated again.

    Parameters
    ----------
    config
        The base configuration.
    params
        ``{dotted path: value}``, e.g. one candidate from ``cv/candidates.json``.

    Raises
    ------
    ConfigError
        A path that is not tunable, or a value its key rejects (the message names both).
    """
    tree = config.model_dump()
    for path, value in params.items():
        problem = tunable_path_problem(path)
        if problem is not None:
            raise ConfigError(f"override {path}: {problem}")
        _set_dotted(tree, path, value)
    try:
        return SimulationConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(format_validation_error(f"override {dict(params)!r}", err)) from None
