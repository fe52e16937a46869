from __future__ import annotations

import pyro
import pyro.optim
import pytest
import torch

from algo_trader.domain.errors import ConfigError
from algo_trader.domain.simulation.config import EarlyStoppingConfig, SVIConfig
from algo_trader.infrastructure.data.atomic import load_tensor, save_tensor
from algo_trader.pipeline.stages.modeling.contracts import OBS_SITE, ModelBatch, ModelShapeError
from algo_trader.pipeline.stages.modeling.registry import build_pair
from algo_trader.pipeline.stages.modeling.test_model import GaussianLinearModel
from algo_trader.pipeline.stages.modeling.trainer import (
    FitState,
    FitwiseClippedAdam,
    _Settings,
    elbo_losses,
    fit,
    init_params,
    param_scope,
    tbptt_windows,
    window_batches,
)


def _t(value: object) -> torch.Tensor:
    """The tensor behind an optional/union-typed field (the test expects one)."""
    assert isinstance(value, torch.Tensor)
    return value


def _data(T: int = 60, A: int = 3, F: int = 2, seed: int = 0) -> ModelBatch:
    """Generated data: y = X . w + 0.2 + N(0, 0.3^2)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(T, A, F, generator=g)
    w = torch.tensor([0.5, -0.3])[:F]
    y = (X * w).sum(-1) + 0.2 + 0.3 * torch.randn(T, A, generator=g)
    return ModelBatch.from_arrays(X, y)


def test_windows_tile_the_trained_rows() -> None:
    assert tbptt_windows(10, None, 2) == [(0, 10)]
    assert tbptt_windows(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    assert tbptt_windows(10, 4, 0) == [(0, 4), (4, 8), (8, 10)]
    # Every row after the first burn-in is trained exactly once.
    trained = [r for s, e in tbptt_windows(23, 6, 2) for r in range(s + 2, e)]
    assert trained == list(range(2, 23))


def test_window_scale_makes_each_window_stand_for_the_series() -> None:
    batch = _data(T=10)
    windows = window_batches(batch, SVIConfig(tbptt_window_len=4, tbptt_burn_in_len=1))
    assert [int(c) for _, c in windows] == [3, 3, 3]
    assert [w.obs_scale for w, _ in windows] == [3.0, 3.0, 3.0]
    assert _t(windows[0][0].loss_mask).tolist() == [False, True, True, True]


def _loss_and_grads(batch: ModelBatch, config: SVIConfig) -> tuple[float, list[torch.Tensor]]:
    model, guide = build_pair("test_model", "test_guide")
    with param_scope():
        leaves = init_params(guide, batch, None)
        window, _ = window_batches(batch, config)[0]
        pyro.set_rng_seed(3)
        loss = elbo_losses(model, guide, config)(window)
        loss.backward()
        return float(loss.detach()), [_t(leaf.grad).clone() for leaf in leaves.values()]


def test_burn_in_rows_contribute_nothing_to_loss_or_gradients() -> None:
    config = SVIConfig(tbptt_window_len=10, tbptt_burn_in_len=4)
    batch = _data(T=30)
    perturbed_y = _t(batch.y).clone()
    perturbed_y[:4] += 100.0
    loss, grads = _loss_and_grads(batch, config)
    loss_p, grads_p = _loss_and_grads(ModelBatch(X=batch.X, y=perturbed_y), config)
    assert loss == loss_p
    assert all(torch.equal(a, b) for a, b in zip(grads, grads_p, strict=True))
    # A trained row does move the loss.
    trained_y = _t(batch.y).clone()
    trained_y[5] += 100.0
    assert _loss_and_grads(ModelBatch(X=batch.X, y=trained_y), config)[0] != loss


class _CountingModel(GaussianLinearModel):
    """The real test model, counting its calls (one per window in the loss)."""

    calls = 0

    def __call__(self, batch: ModelBatch) -> None:
        type(self).calls += 1
        super().__call__(batch)


@pytest.mark.parametrize("accum", [1, 3])
def test_grad_accum_steps_once_per_k_windows(accum: int, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = []
    original = FitwiseClippedAdam.step

    def counting_step(self: FitwiseClippedAdam, active: torch.Tensor) -> None:
        steps.append(int(active))
        original(self, active)

    monkeypatch.setattr(FitwiseClippedAdam, "step", counting_step)
    _, guide = build_pair("test_model", "test_guide")
    model = _CountingModel()
    _CountingModel.calls = 0
    config = SVIConfig(
        num_steps=5, tbptt_window_len=10, tbptt_burn_in_len=2, grad_accum_steps=accum
    )
    state = fit(model, guide, _data(T=40), config, seed=0, device="cpu")
    assert len(steps) == 5 and state.metadata["steps_run"] == 5
    # check_obs traces the model once; every other call is one window's ELBO.
    assert _CountingModel.calls - 1 == 5 * accum
    assert state.loss_history.shape == (5,)


def test_optimizer_matches_pyro_clipped_adam() -> None:
    torch.manual_seed(0)
    start = torch.randn(4, 3)
    grads = [torch.randn(4, 3) * 20 for _ in range(5)]
    config = SVIConfig(learning_rate=0.05, lr_decay=0.9, clip_norm=5.0)
    ours = start.clone().requires_grad_(True)
    opt = FitwiseClippedAdam([ours], _Settings.build([config], False, torch.device("cpu")))
    theirs = start.clone().requires_grad_(True)
    ref = pyro.optim.clipped_adam.ClippedAdam([theirs], lr=0.05, lrd=0.9, clip_norm=5.0)
    for g in grads:
        ours.grad, theirs.grad = g.clone(), g.clone()
        opt.step(torch.tensor(True))
        ref.step()
    torch.testing.assert_close(ours, theirs)


def test_fit_recovers_generated_coefficients_and_state_round_trips(tmp_path) -> None:
    model, guide = build_pair("test_model", "test_guide")
    state = fit(
        model,
        guide,
        _data(T=200),
        SVIConfig(num_steps=400, learning_rate=0.05),
        seed=1,
        device="cpu",
    )
    torch.testing.assert_close(state.params["w_loc"], torch.tensor([0.5, -0.3]), atol=0.05, rtol=0)
    assert abs(float(state.params["b_loc"]) - 0.2) < 0.05
    assert state.loss_history[-50:].mean() < state.loss_history[:10].mean()
    assert state.metadata | {} == state.metadata and state.metadata["model"] == "test_model"
    save_tensor(tmp_path / "state.pt", state.to_payload())
    loaded = FitState.from_payload(load_tensor(tmp_path / "state.pt"))
    assert torch.equal(loaded.params["w_loc"], state.params["w_loc"])


def test_same_seed_same_fit_and_fits_share_no_state() -> None:
    config = SVIConfig(num_steps=20)
    a = fit(*build_pair("test_model", "test_guide"), _data(), config, seed=5, device="cpu")
    pyro.param("stray", torch.zeros(2))  # a param in the global store must not leak in
    b = fit(*build_pair("test_model", "test_guide"), _data(), config, seed=5, device="cpu")
    assert torch.equal(a.loss_history, b.loss_history)
    assert (
        set(a.params)
        == set(b.params)
        == {"w_loc", "w_scale", "b_loc", "b_scale", "sigma_loc", "sigma_scale"}
    )
    assert "stray" in pyro.get_param_store()


def test_warm_start_continues_from_the_state() -> None:
    config = SVIConfig(num_steps=150, learning_rate=0.05)
    first = fit(*build_pair("test_model", "test_guide"), _data(T=100), config, seed=1, device="cpu")
    zero_steps = SVIConfig(num_steps=1, learning_rate=1e-12)
    again = fit(
        *build_pair("test_model", "test_guide"),
        _data(T=100),
        zero_steps,
        seed=2,
        init_state=first,
        device="cpu",
    )
    for name, value in first.params.items():
        torch.testing.assert_close(again.params[name], value, atol=1e-6, rtol=0)
    cold = fit(
        *build_pair("test_model", "test_guide"), _data(T=100), zero_steps, seed=2, device="cpu"
    )
    assert again.loss_history[0] < cold.loss_history[0]
    assert again.metadata["warm_start"] is True


def test_warm_start_with_wrong_shapes_names_guide_param_and_shapes() -> None:
    state = fit(
        *build_pair("test_model", "test_guide"),
        _data(F=2),
        SVIConfig(num_steps=1),
        seed=0,
        device="cpu",
    )
    with pytest.raises(ModelShapeError, match=r"test_guide.*'w_loc'.*\(2,\).*\(1,\)"):
        fit(
            *build_pair("test_model", "test_guide"),
            _data(F=1),
            SVIConfig(num_steps=1),
            seed=0,
            init_state=state,
            device="cpu",
        )


def test_early_stopping_stops_on_a_plateau() -> None:
    stop = EarlyStoppingConfig(enabled=True, patience=5, min_delta=1e9)
    state = fit(
        *build_pair("test_model", "test_guide"),
        _data(),
        SVIConfig(num_steps=100, early_stopping=stop),
        seed=0,
        device="cpu",
    )
    # The first step sets the best; min_delta is never beaten, so 5 more steps end it.
    assert state.metadata["steps_run"] == 6 and state.metadata["stopped_early"] is True
    assert state.loss_history.shape == (6,)


class _WideObsModel(GaussianLinearModel):
    def __call__(self, batch: ModelBatch) -> None:
        with (
            pyro.plate("time", batch.num_rows, dim=-2),
            pyro.plate("assets", batch.num_assets + 1, dim=-1),
        ):
            pyro.sample(OBS_SITE, pyro.distributions.Normal(0.0, 1.0))


def test_shape_errors_name_model_site_and_shapes() -> None:
    _, guide = build_pair("test_model", "test_guide")
    model = _WideObsModel()
    model.name = "wide_model"  # type: ignore[misc]
    with pytest.raises(ModelShapeError, match=r"wide_model.*'obs'.*\(60, 4\).*60, 3"):
        fit(model, guide, _data(), SVIConfig(num_steps=1), seed=0, device="cpu")


def test_single_fit_rejects_batched_batch_and_unknown_device() -> None:
    batch = _data()
    batched = ModelBatch(X=batch.X, y=batch.y, fit_mask=torch.ones(2, 60, dtype=torch.bool))
    with pytest.raises(ConfigError, match="single-fit"):
        fit(
            *build_pair("test_model", "test_guide"),
            batched,
            SVIConfig(num_steps=1),
            seed=0,
            device="cpu",
        )
    with pytest.raises(ConfigError, match="TORCH_DEVICE"):
        fit(
            *build_pair("test_model", "test_guide"),
            batch,
            SVIConfig(num_steps=1),
            seed=0,
            device="tpu",
        )
