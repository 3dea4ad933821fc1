"""The ARMA fit behind the `arima` candidate: conditional least squares that recovers known
coefficients, agrees with statsmodels' exact maximum likelihood where the model is identified,
stays stationary and invertible for every order the tuner tries, and refuses what it cannot fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from stockcast.training.arma import fit_arma, roots_outside_unit_circle


def simulated_arma(ar: list[float], ma: list[float], mean: float, n: int, seed: int) -> np.ndarray:
    """``n`` observations of an ARMA with Gaussian shocks (sd 0.01), after a burn-in."""
    rng = np.random.default_rng(seed)
    burn = 500
    shocks = rng.normal(0.0, 0.01, n + burn)
    centred = np.zeros(n + burn)
    for t in range(n + burn):
        centred[t] = shocks[t]
        centred[t] += sum(a * centred[t - 1 - i] for i, a in enumerate(ar) if t - 1 - i >= 0)
        centred[t] += sum(m * shocks[t - 1 - j] for j, m in enumerate(ma) if t - 1 - j >= 0)
    return mean + centred[burn:]


def test_it_recovers_the_coefficients_of_a_known_arma():
    series = simulated_arma([0.6], [-0.3], mean=0.001, n=4000, seed=1)
    fitted = fit_arma(series, 1, 1)
    assert fitted.ar[0] == pytest.approx(0.6, abs=0.06)
    assert fitted.ma[0] == pytest.approx(-0.3, abs=0.06)
    assert fitted.mean == pytest.approx(0.001, abs=0.0006)
    assert fitted.sum_of_squares / len(series) == pytest.approx(0.01**2, rel=0.06)


def one_step_forecasts(series: np.ndarray, mean: float, ar: np.ndarray, ma: np.ndarray) -> np.ndarray:
    """The candidate's served form: the autoregressive weights of ten lags applied to each day's
    last ten observations."""
    from statsmodels.tsa.arima_process import arma2ar

    weights = -arma2ar(np.r_[1.0, -np.asarray(ar)], np.r_[1.0, np.asarray(ma)], lags=11)[1:]
    history = np.column_stack([series[9 - lag : len(series) - 1 - lag] for lag in range(10)])
    return np.asarray(mean + (history - mean) @ weights)


@pytest.mark.parametrize(("ar", "ma"), [([0.5], [0.3]), ([0.3], []), ([], [0.4]), ([0.5, -0.3], [0.2])])
def test_it_agrees_with_statsmodels_exact_likelihood_where_the_model_is_identified(ar, ma):
    """Within 1.5 of statsmodels' own standard errors per coefficient (conditional and exact
    likelihood differ by sampling error, not more), and the one-step forecasts the candidate
    would serve differ by under a tenth of their spread."""
    from statsmodels.tsa.arima.model import ARIMA

    series = simulated_arma(ar, ma, mean=0.0005, n=1500, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = ARIMA(series, order=(len(ar), 0, len(ma)), trend="c").fit()
    fitted = fit_arma(series, len(ar), len(ma))
    ours = np.concatenate(([fitted.mean], fitted.ar, fitted.ma))
    theirs, errors = np.asarray(exact.params[:-1]), np.asarray(exact.bse[:-1])
    assert np.all(np.abs(ours - theirs) < 1.5 * errors), (ours, theirs, errors)
    served = one_step_forecasts(series, fitted.mean, fitted.ar, fitted.ma)
    reference = one_step_forecasts(series, exact.params[0], exact.arparams, exact.maparams)
    assert np.sqrt(np.mean((served - reference) ** 2)) < 0.1 * reference.std()


@pytest.mark.parametrize("p", [0, 1, 2])
@pytest.mark.parametrize("q", [0, 1, 2])
def test_every_order_the_tuner_tries_is_stationary_and_invertible_on_near_white_noise(p, q):
    """Daily returns are close to white noise, where AR and MA roots nearly cancel: the fit
    must still end inside the admissible region."""
    rng = np.random.default_rng(p * 3 + q)
    series = rng.normal(0.0003, 0.015, 1000) + 0.02 * np.sin(np.arange(1000) / 7) * 0.01
    fitted = fit_arma(series, p, q)
    assert (len(fitted.ar), len(fitted.ma)) == (p, q)
    assert roots_outside_unit_circle(-fitted.ar) and roots_outside_unit_circle(fitted.ma)
    assert np.isfinite(fitted.sum_of_squares)
    if p == q == 0:
        assert fitted.mean == pytest.approx(series.mean())


def test_a_constant_series_is_its_mean():
    fitted = fit_arma(np.full(300, 0.002), 1, 1)
    assert fitted.mean == pytest.approx(0.002) and fitted.sum_of_squares == 0.0


def test_what_cannot_be_fitted_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="not a finite number"):
        fit_arma(np.array([0.01, np.nan, 0.02, 0.0, 0.01]), 1, 1)
    with pytest.raises(ValueError, match="cannot fit an ARMA"):
        fit_arma(np.array([0.01, 0.02, 0.0]), 1, 1)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_the_root_check_agrees_with_numpy_roots(order):
    rng = np.random.default_rng(order)
    for _ in range(500):
        coefficients = rng.uniform(-2.0, 2.0, order)
        roots = np.roots(np.concatenate(([1.0], coefficients))[::-1])
        assert roots_outside_unit_circle(coefficients) == bool(np.all(np.abs(roots) > 1.0))
