"""The contract between the trainer and a Pyro model/guide pair (workflows.md, "Adding a
new model/guide").

A model and its guide are callables ``__call__(self, batch: ModelBatch) -> None`` built
from their config parameters (``model.params`` / ``model.guide_params``). The model must
have an observation site named ``"obs"`` whose value is ``batch.y`` (``(T, A)``, or
``(K, T, A)`` in a batched fit), so that prediction can draw it.

Batched fitting (design.md, "Simulation hooks and batched fitting"): ``K`` fits that
share shapes run as one SVI program. The batch then carries ``fit_mask`` ``(K, T)`` and
the model wraps every sample site in ``batch.fit_plate(dim)`` (a ``pyro.plate("fits",
K)``), so each fit has its own copy of every latent; per-fit hyperparameters arrive as
``(K,)`` tensors in ``params`` (read them with :meth:`PyroModel.value`). Every guide
parameter of a batched fit has the fit index as its leading dimension.
"""

from __future__ import annotations

import contextlib
import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, Literal, cast

import pyro
import torch
from pyro.distributions import constraints

from algo_trader.domain.errors import AlgoTraderError, DataError

FITS_PLATE = "fits"
"""Name of the plate over the fits of a batched program."""
OBS_SITE = "obs"
"""Name of the observation site every model defines."""


class ModelShapeError(AlgoTraderError):
    """A tensor of a model, guide or batch has the wrong shape; names model, site, shapes."""


@dataclass(frozen=True)
class ModelBatch:
    """The tensors one fit (or one batched program of ``K`` fits) sees.

    Attributes
    ----------
    X
        ``(T, A, F)`` features, or ``(K, T, A, F)`` with one panel per fit. Finite.
    y
        ``(T, A)`` / ``(K, T, A)`` targets; ``None`` when predicting. Entries where ``M``
        is False hold 0 (never NaN), so no NaN reaches a gradient.
    M
        Observed mask shaped like ``y`` (True = observed); ``None`` = all observed.
    fit_mask
        ``(K, T)`` bool: the rows fit ``k`` trains on. ``None`` = a single fit (no fits
        plate). Its presence is what makes a batch "batched".
    loss_mask
        ``(T,)`` bool: rows that count in the loss. False rows (TBPTT burn-in) are still
        given to the model as context. ``None`` = all rows count.
    obs_scale
        Weight of the likelihood: a float, or ``(K,)`` per fit. Above 1 when a TBPTT window
        stands in for the whole series, so that the window's ELBO estimates the full one.
    """

    X: torch.Tensor
    y: torch.Tensor | None = None
    M: torch.Tensor | None = None
    fit_mask: torch.Tensor | None = None
    loss_mask: torch.Tensor | None = None
    obs_scale: float | torch.Tensor = 1.0

    def __post_init__(self) -> None:
        self._check_shapes()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_arrays(
        cls,
        X: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> ModelBatch:
        """A single-fit batch from hook tensors: NaN in ``y`` becomes ``M`` False (and 0).

        Raises
        ------
        DataError
            ``X`` holds NaN/inf (the simulation imputes them when
            ``preprocessing.impute_missing_to_zero`` is true), or shapes disagree.
        """
        X = torch.as_tensor(X)
        bad = ~torch.isfinite(X)
        if bool(bad.any()):
            where = [int(i) for i in torch.nonzero(bad)[0]]
            raise DataError(
                f"features X {tuple(X.shape)} hold {int(bad.sum())} NaN/inf values, first at "
                f"index {where} (row, asset, feature); the model needs finite features: set "
                "preprocessing.impute_missing_to_zero: true",
                column="X",
            )
        X = X.to(device=device, dtype=dtype)
        if y is None:
            return cls(X=X)
        y = torch.as_tensor(y).to(device=device, dtype=dtype)
        observed = torch.isfinite(y)
        mask = None if bool(observed.all()) else observed
        return cls(
            X=X, y=torch.where(observed, y, torch.zeros((), dtype=dtype, device=y.device)), M=mask
        )

    # ------------------------------------------------------------------------ shapes

    @property
    def num_fits(self) -> int | None:
        """``K`` of a batched program, ``None`` for a single fit."""
        return None if self.fit_mask is None else int(self.fit_mask.shape[0])

    @property
    def num_rows(self) -> int:
        return int(self.X.shape[-3])

    @property
    def num_assets(self) -> int:
        return int(self.X.shape[-2])

    @property
    def num_features(self) -> int:
        return int(self.X.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.X.device

    def _check_shapes(self) -> None:
        K = self.num_fits
        x_ok = self.X.dim() == 3 or (K is not None and self.X.dim() == 4 and self.X.shape[0] == K)
        if not x_ok:
            want = "(T, A, F)" if K is None else f"(T, A, F) or ({K}, T, A, F)"
            raise ModelShapeError(f"ModelBatch.X has shape {tuple(self.X.shape)}; expected {want}")
        T, A = self.num_rows, self.num_assets
        lead = () if K is None else (K,)
        expect: dict[str, list[tuple[int | None, ...]]] = {
            "y": [(T, A), *([(*lead, T, A)] if lead else [])],
            "M": [(T, A), *([(*lead, T, A)] if lead else [])],
            "fit_mask": [(K, T)] if K is not None else [],
            "loss_mask": [(T,)],
        }
        for name, shapes in expect.items():
            value = getattr(self, name)
            if value is not None and tuple(value.shape) not in shapes:
                raise ModelShapeError(
                    f"ModelBatch.{name} has shape {tuple(value.shape)}; with X "
                    f"{tuple(self.X.shape)} it must be one of {shapes}"
                )
        if self.M is not None and self.y is None:
            raise ModelShapeError("ModelBatch.M given without y; the mask belongs to targets")
        scale = self.obs_scale
        if isinstance(scale, torch.Tensor) and tuple(scale.shape) not in ((), lead):
            raise ModelShapeError(
                f"ModelBatch.obs_scale has shape {tuple(scale.shape)}; expected () or {lead}"
            )

    # ----------------------------------------------------------------------- helpers

    def to(self, device: torch.device | str) -> ModelBatch:
        """The same batch with every tensor on ``device``."""
        moved = {
            f.name: value.to(device)
            for f in fields(self)
            if isinstance(value := getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)

    def rows(self, start: int, stop: int) -> ModelBatch:
        """The rows ``start:stop`` of every time-indexed tensor (a TBPTT window)."""
        sl = slice(start, stop)
        return replace(
            self,
            X=self.X[..., sl, :, :],
            y=None if self.y is None else self.y[..., sl, :],
            M=None if self.M is None else self.M[..., sl, :],
            fit_mask=None if self.fit_mask is None else self.fit_mask[:, sl],
            loss_mask=None if self.loss_mask is None else self.loss_mask[sl],
        )

    def fit_plate(self, dim: int) -> contextlib.AbstractContextManager[Any]:
        """``pyro.plate("fits", K, dim=dim)`` in a batched program, a no-op otherwise."""
        if self.fit_mask is None:
            return contextlib.nullcontext()
        return pyro.plate(FITS_PLATE, self.fit_mask.shape[0], dim=dim)

    def fit_shape(self, ndim: int) -> tuple[int, ...]:
        """Leading shape of a per-fit global whose fits plate sits ``ndim`` dims left of the
        event: ``()`` for a single fit, ``(K, 1, ..., 1)`` (``ndim`` ones) when batched."""
        K = self.num_fits
        return () if K is None else (K,) + (1,) * ndim

    @functools.cached_property
    def _every_row_trained(self) -> bool:
        return self.fit_mask is None or bool(self.fit_mask.all())

    def row_mask(self) -> torch.Tensor | None:
        """Bool mask of the rows that count in the loss: ``(T,)``, ``(K, T)`` or ``None``.

        Combines ``loss_mask`` (burn-in) and ``fit_mask`` (each fit's training rows); an
        all-True ``fit_mask`` (fits sharing their rows) masks nothing, so costs nothing.
        """
        if self.fit_mask is None or self._every_row_trained:
            return self.loss_mask
        if self.loss_mask is None:
            return self.fit_mask
        return self.fit_mask & self.loss_mask

    def obs_mask(self, *, per_asset: bool = True) -> bool | torch.BoolTensor:
        """The mask for the ``obs`` site under ``poutine.mask``.

        ``per_asset=True``: ``M`` and :meth:`row_mask` combined, for an ``obs`` whose batch
        shape ends in ``(T, A)``. ``per_asset=False``: the row mask only, for a
        multivariate ``obs`` (event ``(A,)``) that handles ``M`` itself. ``True`` when
        nothing is masked.
        """
        rows = self.row_mask()
        if not per_asset:
            mask = rows
        elif rows is None:
            mask = self.M
        else:
            mask = rows[..., None] if self.M is None else self.M & rows[..., None]
        # A bool tensor is what poutine.mask types as BoolTensor.
        return True if mask is None else cast(torch.BoolTensor, mask)

    def scale_for(self, ndim: int) -> float | torch.Tensor:
        """``obs_scale`` shaped to broadcast over a site whose batch shape has ``ndim``
        dims after the fits dim (e.g. 1 for ``(K, T)``, 2 for ``(K, T, A)``)."""
        scale = self.obs_scale
        if isinstance(scale, torch.Tensor) and scale.dim() == 1:
            return scale.reshape((-1,) + (1,) * ndim)
        return scale


class Configurable:
    """Something built from a free-form parameter mapping (``model.params`` or
    ``model.guide_params``) and registered by name."""

    name: ClassVar[str] = "unregistered"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: Mapping[str, Any] = dict(params or {})

    def value(self, path: str, default: Any) -> Any:
        """The ``params`` entry at dotted ``path`` (``"likelihood.sigma_scale"``) or ``default``.

        In a batched program a per-fit hyperparameter is a ``(K,)`` tensor here; shape it
        with :func:`per_fit` before it meets a site.
        """
        node: Any = self.params
        for key in path.split("."):
            if not isinstance(node, Mapping) or key not in node:
                return default
            node = node[key]
        return node

    def hyper(self, batch: ModelBatch, path: str, default: float, ndim: int) -> torch.Tensor:
        """A float hyperparameter as a tensor of the batch's dtype and device, shaped for
        a site whose batch shape has ``ndim`` dims right of the fits dim (see
        :func:`per_fit`)."""
        value = per_fit(self.value(path, default), ndim)
        return batch.X.new_zeros(()) + (
            value.to(batch.X) if isinstance(value, torch.Tensor) else value
        )


class PyroModel(Configurable, ABC):
    """Base of every registered model: built from ``model.params``, called on a batch.

    Subclasses implement ``__call__`` and :meth:`complexity`, and may set

    - ``supports_batching``: the model wraps its sites in ``batch.fit_plate`` and reads
      per-fit hyperparameters through :func:`per_fit`, so K fits run as one program;
    - ``elbo``: ``"trace"`` (the trainer's vectorised per-fit Trace ELBO, reparameterised
      sites only) or ``"trace_enum"`` (Pyro's ``TraceEnum_ELBO``, for enumerated discrete
      sites; such models are fitted one by one);
    - ``max_plate_nesting``: plates the model nests (the fits plate included).
    """

    supports_batching: ClassVar[bool] = False
    elbo: ClassVar[Literal["trace", "trace_enum"]] = "trace"
    max_plate_nesting: ClassVar[int] = 3

    @abstractmethod
    def __call__(self, batch: ModelBatch) -> None:
        """The generative model; observes ``batch.y`` at the site ``"obs"``."""

    def complexity(self, num_assets: int, num_features: int) -> float | None:
        """Effective number of parameters (post-tune model selection's tie-break).

        None: the model declares none, and selection falls back to a seeded random draw.
        """
        return None


class PyroGuide(Configurable, ABC):
    """Base of every registered guide: built from ``model.guide_params`` and the model it
    approximates (as Pyro's autoguides are); owns every ``pyro.param`` of the fit. In a
    batched program each param's leading dim is the fit index (K).
    """

    def __init__(
        self, params: Mapping[str, Any] | None = None, model: PyroModel | None = None
    ) -> None:
        super().__init__(params)
        self.model = model

    @abstractmethod
    def __call__(self, batch: ModelBatch) -> None:
        """The variational distribution over the model's latent sites."""

    def mean_field_params(
        self, batch: ModelBatch, name: str, shape: tuple[int, ...], init: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loc, scale)`` params of site ``name``, shaped ``shape`` (fit index first).

        ``loc`` starts at ``init``, ``scale`` (positive) at ``guide_params.init_scale``
        (0.05): the building block of the mean-field guides.
        """
        init_scale = float(self.value("init_scale", 0.05))
        loc = pyro.param(f"{name}_loc", lambda: batch.X.new_full(shape, init))
        scale = pyro.param(
            f"{name}_scale",
            lambda: batch.X.new_full(shape, init_scale),
            constraint=constraints.positive,
        )
        return loc, scale


def linear_predictor(X: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """``sum_f X[..., t, a, f] * coef[..., f]`` without a ``(..., T, A, F)`` temporary.

    ``X`` is ``(T, A, F)`` (shared panel) or ``(K, T, A, F)``; ``coef`` is ``(F,)`` or has
    leading fit/draw dims with singleton ``(T, A)`` slots, e.g. ``(K, 1, 1, F)`` or
    ``(S, K, 1, 1, F)``. A shared panel is one matrix product with every coefficient
    vector at once; per-fit panels use a batched product.
    """
    F = X.shape[-1]
    lead = coef.shape[:-1]
    if X.dim() == 3 and (coef.dim() == 1 or tuple(lead[-2:]) == (1, 1)):
        T, A = X.shape[0], X.shape[1]
        flat = X.reshape(T * A, F) @ coef.reshape(-1, F).T
        out = flat.T.reshape((*lead[:-2], T, A)) if coef.dim() > 1 else flat.reshape(T, A)
        return out
    return (X * coef).sum(-1)


def per_fit(value: float | torch.Tensor, ndim: int) -> float | torch.Tensor:
    """Shape a hyperparameter for a site: a ``(K,)`` tensor becomes ``(K, 1 x ndim)``;
    floats and 0-d tensors pass through."""
    if isinstance(value, torch.Tensor) and value.dim() == 1:
        return value.reshape((-1,) + (1,) * ndim)
    return value
