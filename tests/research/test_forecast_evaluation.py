"""evaluate_forecasters and evaluate_panel_ic: leakage-free folds, predictions aligned
with the targets, scores and backtests equal to independent recomputations, an honest
verdict, the planted-signal IC, and the `forecast evaluate` command."""

from __future__ import annotations

import json

import jax
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from neuroflux.backtest import Bars, SimulationParams
from neuroflux.backtest.simulation import simulate
from neuroflux.cli import app
from neuroflux.data import load_sample
from neuroflux.forecasting import (
    TrainConfig,
    feature_matrix,
    fit_scaler,
    make_windows,
    planted_signal_panel,
)
from neuroflux.research.forecast_inputs import ForecasterSizes, default_baselines
from neuroflux.research.forecasts import evaluate_forecasters
from neuroflux.research.panel_ic import evaluate_panel_ic

LOOKBACK, HORIZON, SEEDS = 10, 1, (0, 1)
SMALL = {
    "lookback": LOOKBACK,
    "horizon": HORIZON,
    "train": 400,
    "test": 150,
    "folds": 2,
    "seeds": SEEDS,
    "config": TrainConfig(epochs=3, batch_size=64),
    "sizes": ForecasterSizes(d_model=8, heads=2, layers=1, ff=16, hidden=(16,)),
    "progress": False,
}


@pytest.fixture(scope="module")
def sp500() -> pd.DataFrame:
    return load_sample("sp500").iloc[:1200]


@pytest.fixture(scope="module")
def returns_eval(sp500):
    """Return target, with an oracle baseline (the realized target) that must win."""
    close = sp500["close"].to_numpy()
    future = np.log(np.roll(close, -HORIZON) / close)
    baselines = default_baselines("return") | {
        "oracle": lambda fold: future[fold.test_bars]
    }
    return evaluate_forecasters(
        sp500,
        target="return",
        models=("transformer", "linear"),
        baselines=baselines,
        **SMALL,
    )


@pytest.fixture(scope="module")
def volatility_eval(sp500):
    return evaluate_forecasters(sp500, target="volatility", models=("mlp",), **SMALL)


def _sharpe(close, target):
    """Sharpe ratio of an independent run of the simulator (0.1% commission)."""
    result = simulate(Bars.from_close(close), target, SimulationParams(fees=0.001))
    return float(result.stats(252.0)["sharpe_ratio"])


def _bars(evaluation, frame):
    return frame.index.get_indexer(evaluation.predictions.index)


def test_no_test_bar_is_in_a_training_or_validation_window(returns_eval):
    assert len(returns_eval.folds) == 2
    for fold in returns_eval.folds:
        seen = np.concatenate([fold.train_bars, fold.validation_bars])
        # Bars a training or validation sample reads: its window and its target.
        touched = {b for t in seen for b in range(t - LOOKBACK + 1, t + HORIZON + 1)}
        predicted = {b for t in fold.test_bars for b in range(t, t + HORIZON + 1)}
        assert touched.isdisjoint(predicted)
        # The validation window is purged from training too.
        assert fold.train_bars.max() + HORIZON < fold.validation_bars.min()
        assert 0 < len(fold.validation_bars) < len(fold.train_bars)


def test_the_scaler_sees_the_training_windows_only(sp500, returns_eval):
    frame = sp500
    features = feature_matrix(
        *(frame[c].to_numpy() for c in ("open", "high", "low", "close", "volume")),
        timestamps_ns=frame.index.as_unit("ns").asi8,
    ).values
    close = frame["close"].to_numpy()
    targets = np.log(np.roll(close, -1) / close)
    targets[-1] = np.nan
    X, _, bars = make_windows(np.asarray(features), targets, LOOKBACK)
    for fold in returns_eval.folds:
        expected = fit_scaler(X[np.isin(bars, fold.train_bars)])
        np.testing.assert_allclose(fold.scaler.mean, expected.mean)
        np.testing.assert_allclose(fold.scaler.std, expected.std)
        assert fold.train_bars.max() < fold.test_bars.min()


def test_predictions_align_with_the_actual_targets(
    sp500, returns_eval, volatility_eval
):
    close = sp500["close"].to_numpy()
    for evaluation, transform in (
        (returns_eval, np.asarray),
        (volatility_eval, np.square),
    ):
        bars = _bars(evaluation, sp500)
        assert np.all(np.diff(bars) > 0)
        for t in bars[[0, 7, 150, -1]]:
            expected = transform(np.log(close[t + 1] / close[t]))
            actual = evaluation.predictions["actual"].iloc[np.searchsorted(bars, t)]
            assert actual == pytest.approx(expected, rel=1e-9)
    columns = [f"{m}/seed={s}" for m in ("transformer", "linear") for s in SEEDS]
    assert list(returns_eval.predictions.columns) == [
        "actual",
        "zero",
        "ridge",
        "boosting",
        "oracle",
        *columns,
    ]
    assert (volatility_eval.predictions.drop(columns="actual") > 0).all().all()


def test_metrics_equal_a_recomputation_from_the_predictions(
    returns_eval, volatility_eval
):
    predictions = returns_eval.predictions
    actual = predictions["actual"].to_numpy()

    def scores(column):
        forecast = predictions[column].to_numpy()
        return {
            "mse": np.mean((forecast - actual) ** 2),
            "directional_accuracy": np.mean(np.sign(forecast) == np.sign(actual)),
            "ic": stats.pearsonr(forecast, actual)[0],
            "rank_ic": stats.spearmanr(forecast, actual)[0],
        }

    table = returns_eval.metrics
    for name, value in scores("ridge").items():
        assert table.loc["ridge", f"{name}_mean"] == pytest.approx(value, rel=1e-6)
    per_seed = pd.DataFrame([scores(f"transformer/seed={s}") for s in SEEDS])
    for name in per_seed:
        row = table.loc["transformer"]
        assert row[f"{name}_mean"] == pytest.approx(per_seed[name].mean(), rel=1e-6)
        assert row[f"{name}_std"] == pytest.approx(per_seed[name].std(), rel=1e-6)
    assert np.isnan(table.loc["zero", "ic_mean"])  # a constant forecast
    vol = volatility_eval.predictions
    ratio = vol["actual"] / vol["garch"]
    qlike = np.mean(ratio - np.log(ratio) - 1)
    assert volatility_eval.metrics.loc["garch", "qlike_mean"] == pytest.approx(qlike)


def test_dm_tests_use_the_best_baseline(returns_eval, volatility_eval):
    assert set(returns_eval.dm_tests["baseline"]) == {"oracle"}
    vol = volatility_eval.predictions
    qlikes = {
        name: np.mean(vol["actual"] / vol[name] - np.log(vol["actual"] / vol[name]) - 1)
        for name in volatility_eval.baselines
    }
    row = volatility_eval.dm_tests.loc["mlp"]
    assert row["baseline"] == min(qlikes, key=qlikes.get)
    assert row["loss"] == "qlike"
    # HLN-corrected DM for horizon 1, by hand.
    ensemble = vol[[f"mlp/seed={s}" for s in SEEDS]].mean(axis=1)
    ratio_model, ratio_base = (
        vol["actual"] / ensemble,
        vol["actual"] / vol[row["baseline"]],
    )
    d = (ratio_model - np.log(ratio_model)) - (ratio_base - np.log(ratio_base))
    n = len(d)
    statistic = d.mean() / np.sqrt(d.var(ddof=0) / n) * np.sqrt((n - 1) / n)
    assert row["statistic"] == pytest.approx(statistic, rel=1e-6)
    assert row["p_value"] == pytest.approx(
        2 * stats.t.sf(abs(statistic), n - 1), rel=1e-6
    )


def test_backtests_equal_an_independent_simulation(
    sp500, returns_eval, volatility_eval
):
    for evaluation, model in ((returns_eval, "transformer"), (volatility_eval, "mlp")):
        close = sp500["close"].to_numpy()[_bars(evaluation, sp500)]
        positions = evaluation.positions

        def sharpe(column, close=close, positions=positions):
            return _sharpe(close, positions[column].to_numpy())

        table = evaluation.backtests
        seeds = [sharpe(f"{model}/seed={s}") for s in SEEDS]
        assert table.loc[model, "sharpe_ratio_mean"] == pytest.approx(np.mean(seeds))
        assert table.loc[model, "sharpe_ratio_std"] == pytest.approx(
            np.std(seeds, ddof=1)
        )
        for name in (*evaluation.baselines, "buy_and_hold"):
            expected = pytest.approx(sharpe(name), nan_ok=True)  # flat: NaN
            assert table.loc[name, "sharpe_ratio_mean"] == expected
    # The position rules.
    forecasts = returns_eval.predictions
    np.testing.assert_array_equal(
        returns_eval.positions["ridge"], np.sign(forecasts["ridge"])
    )
    network = returns_eval.positions["linear/seed=0"]
    assert network.abs().max() <= 1.0
    assert (np.sign(network) == np.sign(forecasts["linear/seed=0"])).all()
    variance = volatility_eval.predictions["garch"]
    np.testing.assert_allclose(
        volatility_eval.positions["garch"],
        np.minimum(1.0, 0.10 / np.sqrt(252.0 * variance)),
    )
    assert (returns_eval.positions["buy_and_hold"] == 1.0).all()


def test_the_verdict_reflects_the_numbers(returns_eval, volatility_eval):
    verdict = returns_eval.verdict()
    assert "does not beat the best baseline" in verdict
    assert "oracle" in verdict and verdict.startswith("return target")
    row = volatility_eval.dm_tests.loc["mlp"]
    verdict = volatility_eval.verdict()
    if row["model_loss"] < row["baseline_loss"]:
        assert " beats the best baseline" in verdict
        significant = "not significant" not in verdict
        assert significant == (row["p_value"] < 0.05)
    else:
        assert "does not beat the best baseline" in verdict
    assert row["baseline"] in verdict and f"{row['model_loss']:.4g}" in verdict


def test_the_planted_signal_is_recovered_by_the_oracle_and_a_linear_model():
    panel = planted_signal_panel(jax.random.key(3), 820, 200, ic=0.05)
    evaluation = evaluate_panel_ic(
        np.asarray(panel.features),
        np.asarray(panel.returns),
        lookback=1,
        train=300,
        test=500,
        models=("linear",),
        seeds=(0,),
        config=TrainConfig(epochs=5, batch_size=256, learning_rate=1e-2),
        baselines={"oracle": lambda fold: fold.X_test[:, -1, 0]},
        progress=False,
    )
    assert len(evaluation.ic) == 500
    summary = evaluation.summary
    assert summary.loc["oracle", "ic_mean"] == pytest.approx(0.05, abs=0.01)
    assert summary.loc["linear", "ic_mean"] == pytest.approx(0.05, abs=0.015)
    assert summary.loc["oracle", "icir_mean"] > 0


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"target": "return", "models": ("transformer", "lstm")}, "models"),
        ({"target": "price"}, "target"),
    ],
)
def test_bad_arguments_are_named(sp500, options, named):
    with pytest.raises(ValueError, match=named):
        evaluate_forecasters(sp500, **options)


def test_too_short_data_is_named(sp500):
    with pytest.raises(ValueError, match="data: 300 bars are too short"):
        evaluate_forecasters(sp500.iloc[:300], target="return", train=400)


def test_cli_json_holds_every_model_and_baseline():
    arguments = ["forecast", "evaluate", "--data", "sample:sp500", "--target"]
    arguments += ["return", "--until", "2003-12-31", "--lookback", "10"]
    arguments += ["--models", "linear", "--seeds", "2", "--epochs", "2"]
    arguments += ["--train", "400", "--test", "150", "--folds", "1", "--json"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"metrics", "dm_tests", "backtests", "verdict"}
    assert set(document["metrics"]) == {"zero", "ridge", "boosting", "linear"}
    assert set(document["backtests"]) == {*document["metrics"], "buy_and_hold"}
    assert set(document["dm_tests"]) == {"linear"}
    assert document["verdict"].startswith("return target")
