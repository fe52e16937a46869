"""Benchmark batched SVI fitting on GENERATED data (not market data).

K fits of a Student-t regression on a ``T x A x F`` panel (default 520 x 20 x 40)::

    beta ~ Normal(0, 1) (F,)   alpha[a] ~ Normal(0, 1)   sigma[a] ~ LogNormal(0, 1)
    y[t, a] ~ StudentT(nu, X[t, a] . beta + alpha[a], sigma[a])

The K fits are candidates of one stratum: the same rows, each with its own degrees of
freedom ``nu`` and learning rate (values that enter the model and the optimizer), and,
with ``--splits``, each also on its own CPCV-like subset of rows (padded program).
In one run it times

* **sequential default Pyro**: one fit after the other, ``AutoNormal`` guide,
  ``Trace_ELBO``, ``dist.StudentT``, ``pyro.optim.ClippedAdam``, validation on;
* **the project's batched trainer** (``batched.fit_batched``): one program with a
  ``fits`` plate, a per-fit vectorised Trace ELBO, the Student-t normalizer computed per
  fit and asset (``likelihoods.FixedDfStudentT``), per-fit ClippedAdam, validation off;

and reports milliseconds per model-step (one optimizer step of one fit) for both, their
ratio, the per-fit agreement of the two (posterior means of ``beta``), and where the
batched step spends its time (cProfile and torch.profiler top entries).

Run::

    uv run python benchmarks/bench_batched_fit.py                  # K = 16 and 64
    uv run python benchmarks/bench_batched_fit.py --fits 4 --steps 20   # quick check
    TORCH_DEVICE=cuda uv run python benchmarks/bench_batched_fit.py   # batched side on GPU
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal

from algo_trader.domain.simulation.config import SVIConfig
from algo_trader.pipeline.stages.modeling.batched import FitSpec, fit_batched
from algo_trader.pipeline.stages.modeling.contracts import (
    OBS_SITE,
    ModelBatch,
    PyroGuide,
    PyroModel,
    linear_predictor,
)
from algo_trader.pipeline.stages.modeling.device import resolve_device
from algo_trader.pipeline.stages.modeling.likelihoods import (
    FixedDfStudentT,
    student_t_log_likelihood,
)
from algo_trader.pipeline.stages.modeling.registry import (
    MODELS,
    register_guide,
    register_model,
)

MODEL, GUIDE = "bench_student_t_regression", "bench_student_t_guide"


# ------------------------------------------------------------------ generated data


def generated_panel(T: int, A: int, F: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """GENERATED panel: sparse-ish coefficients, Student-t(5) noise."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(T, A, F, generator=g)
    beta = torch.randn(F, generator=g) * (torch.rand(F, generator=g) < 0.3) * 0.2
    alpha = 0.1 * torch.randn(A, generator=g)
    sigma = 0.5 + torch.rand(A, generator=g)
    noise = torch.distributions.StudentT(5.0).sample((T, A))
    return X, (X * beta).sum(-1) + alpha + sigma * noise


def fit_settings(K: int, steps: int) -> list[tuple[float, float]]:
    """``(nu, learning_rate)`` of each of the K fits (values, not shapes)."""
    return [(3.0 + 0.25 * k, 0.01 * (1.0 + (k % 4))) for k in range(K)]


def row_subsets(T: int, K: int, seed: int) -> list[torch.Tensor]:
    """CPCV-like training rows: each fit drops one contiguous block of ~T/6 rows."""
    g = torch.Generator().manual_seed(seed)
    block = T // 6
    starts = torch.randint(0, T - block, (K,), generator=g)
    rows = torch.arange(T)
    return [rows[(rows < s) | (rows >= s + block)] for s in starts.tolist()]


# ------------------------------------------------------------- default Pyro side


def baseline_model(X: torch.Tensor, y: torch.Tensor, nu: torch.Tensor) -> None:
    T, A, F = X.shape
    beta = pyro.sample("beta", dist.Normal(torch.zeros(F), 1.0).to_event(1))
    with pyro.plate("assets", A, dim=-1):
        alpha = pyro.sample("alpha", dist.Normal(0.0, 1.0))
        sigma = pyro.sample("sigma", dist.LogNormal(0.0, 1.0))
    with pyro.plate("time", T, dim=-2), pyro.plate("assets_obs", A, dim=-1):
        pyro.sample("obs", dist.StudentT(nu, (X * beta).sum(-1) + alpha, sigma), obs=y)


def run_baseline(
    data: list[tuple[torch.Tensor, torch.Tensor]], settings: list[tuple[float, float]], steps: int
) -> tuple[float, list[torch.Tensor]]:
    """Sequential default-Pyro fits; returns ms per model-step and each fit's beta mean."""
    elapsed, betas = 0.0, []
    with pyro.validation_enabled(True):
        for (X, y), (nu, lr) in zip(data, settings, strict=True):
            pyro.clear_param_store()
            pyro.set_rng_seed(0)
            guide = AutoNormal(baseline_model)
            svi = SVI(baseline_model, guide, pyro.optim.ClippedAdam({"lr": lr}), Trace_ELBO())
            nu_t = torch.tensor(nu)
            svi.step(X, y, nu_t)  # first step builds the guide; not timed
            start = time.perf_counter()
            for _ in range(steps):
                svi.step(X, y, nu_t)
            elapsed += time.perf_counter() - start
            betas.append(pyro.param("AutoNormal.locs.beta").detach().clone())
    return 1000.0 * elapsed / (steps * len(data)), betas


# ------------------------------------------------------------------ batched side


@register_model(MODEL)
class BenchStudentTRegression(PyroModel):
    """The same regression written for batching: fits plate at -3, per-fit ``nu``."""

    supports_batching = True
    max_plate_nesting = 3

    def __call__(self, batch: ModelBatch) -> None:
        nu = self.hyper(batch, "nu", 5.0, 2)
        zero = batch.X.new_zeros(())
        with batch.fit_plate(dim=-3):
            beta = pyro.sample(
                "beta", dist.Normal(batch.X.new_zeros(batch.num_features), 1.0).to_event(1)
            )
            with pyro.plate("assets", batch.num_assets, dim=-1):
                alpha = pyro.sample("alpha", dist.Normal(zero, 1.0))
                sigma = pyro.sample("sigma", dist.LogNormal(zero, 1.0))
            loc = linear_predictor(batch.X, beta) + alpha
            if batch.y is None:  # predicting: the obs site draws y
                with (
                    pyro.plate("time", batch.num_rows, dim=-2),
                    pyro.plate("assets_obs", batch.num_assets, dim=-1),
                ):
                    pyro.sample(OBS_SITE, FixedDfStudentT(nu, loc, sigma))
                return
            # Training: the summed log-likelihood as one factor per fit.
            mask = batch.obs_mask()
            loglik = student_t_log_likelihood(
                batch.y, loc, sigma, nu, mask if isinstance(mask, torch.Tensor) else None
            )
            pyro.factor("obs_loglik", loglik * batch.scale_for(2))

    def complexity(self, num_assets: int, num_features: int) -> float:
        return float(num_features + 2 * num_assets)


@register_guide(GUIDE)
class BenchStudentTGuide(PyroGuide):
    """Mean-field Normal guide, AutoNormal's initialisation (loc 0, scale 0.1)."""

    def __call__(self, batch: ModelBatch) -> None:
        lead, A = batch.fit_shape(2), batch.num_assets

        def site(name: str, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
            loc = pyro.param(f"{name}_loc", lambda: batch.X.new_zeros(shape))
            scale = pyro.param(
                f"{name}_scale",
                lambda: batch.X.new_full(shape, 0.1),
                constraint=constraints.positive,
            )
            return loc, scale

        with batch.fit_plate(dim=-3):
            pyro.sample("beta", dist.Normal(*site("beta", (*lead, batch.num_features))).to_event(1))
            per_asset = (*batch.fit_shape(1), A)
            with pyro.plate("assets", A, dim=-1):
                pyro.sample("alpha", dist.Normal(*site("alpha", per_asset)))
                pyro.sample("sigma", dist.LogNormal(*site("sigma", per_asset)))


def batched_specs(
    data: list[tuple[torch.Tensor, torch.Tensor]], settings: list[tuple[float, float]], steps: int
) -> list[FitSpec]:
    shared: dict[int, ModelBatch] = {}
    specs = []
    for k, ((X, y), (nu, lr)) in enumerate(zip(data, settings, strict=True)):
        # Candidates on one split share one batch object, so the program shares the panel.
        batch = shared.setdefault(id(X), ModelBatch(X=X, y=y))
        config = SVIConfig(num_steps=steps, learning_rate=lr, log_every=None)
        specs.append(FitSpec(batch, config, {"nu": nu}, {}, seed=k))
    return specs


def run_batched(specs: list[FitSpec], device: torch.device) -> tuple[float, list[torch.Tensor]]:
    steps = specs[0].config.num_steps
    warm = [
        FitSpec(s.batch, s.config.model_copy(update={"num_steps": 1}), s.params, {}, s.seed)
        for s in specs
    ]
    fit_batched(MODEL, GUIDE, warm, device=device, validate=False)  # first-call costs
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    states = fit_batched(MODEL, GUIDE, specs, device=device, validate=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return 1000.0 * elapsed / (steps * len(specs)), [s.params["beta_loc"] for s in states]


def profile_batched(specs: list[FitSpec], device: torch.device, top: int) -> str:
    """cProfile (Python side) and torch.profiler (ops) of a short batched run."""
    short = [
        FitSpec(s.batch, s.config.model_copy(update={"num_steps": 10}), s.params, {}, s.seed)
        for s in specs
    ]
    profiler = cProfile.Profile()
    profiler.enable()
    fit_batched(MODEL, GUIDE, short, device=device, validate=False)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        fit_batched(MODEL, GUIDE, short, device=device, validate=False)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    ops = prof.key_averages().table(sort_by=sort, row_limit=top)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()][: top + 8]
    return "\n".join(lines) + "\n" + ops


# -------------------------------------------------------------------------- main


def bench(K: int, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    X, y = generated_panel(args.rows, args.assets, args.features, seed=0)
    settings = fit_settings(K, args.steps)
    if args.splits:
        data = [(X[r], y[r]) for r in row_subsets(args.rows, K, seed=1)]
    else:
        data = [(X, y)] * K
    base_n = min(K, args.baseline_fits)
    base_ms, base_beta = run_baseline(data[:base_n], settings[:base_n], args.steps)
    specs = batched_specs(data, settings, args.steps)
    ours_ms, ours_beta = run_batched(specs, device)
    gap = max(float((a - b.cpu()).abs().max()) for a, b in zip(base_beta, ours_beta, strict=False))
    print(
        f"K={K:3d}  default Pyro {base_ms:8.3f} ms/model-step (sequential, {base_n} fits timed)"
        f"  batched {ours_ms:7.3f} ms/model-step  speed-up {base_ms / ours_ms:6.1f}x"
        f"  max |beta mean gap| {gap:.3f}"
    )
    return {"K": K, "baseline_ms": base_ms, "batched_ms": ours_ms, "specs": specs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--rows", type=int, default=520)
    parser.add_argument("--assets", type=int, default=20)
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument(
        "--baseline-fits",
        type=int,
        default=8,
        help="sequential fits timed (per-step cost does not depend on which)",
    )
    parser.add_argument("--splits", action="store_true", help="each fit on its own row subset")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--profile-top", type=int, default=15)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device()
    print(
        f"GENERATED Student-t regression panel T={args.rows} A={args.assets} F={args.features}, "
        f"{args.steps} steps per fit, torch threads {torch.get_num_threads()}, batched on "
        f"{device}, baseline on cpu, {'per-fit row subsets' if args.splits else 'shared rows'}"
    )
    results = [bench(K, args, device) for K in args.fits]
    print(f"\nProfile of the batched program, K={results[-1]['K']} (10 steps):")
    print(profile_batched(results[-1]["specs"], device, args.profile_top))
    assert MODEL in MODELS


if __name__ == "__main__":
    main()
