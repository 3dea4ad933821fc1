"""Settings fail fast, in one line that names the setting, and parse what users type."""

from __future__ import annotations

import pytest

from stockcast.settings import SettingsError, load_settings


def test_defaults_are_the_sample_tickers_under_the_data_folder(isolated_environment):
    settings = load_settings()
    assert settings.tickers == ["AAPL", "MSFT", "GOOG", "IBM"]
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert str(isolated_environment / "data") in settings.resolved_database_url
    assert settings.resolved_tracking_uri.endswith("data/mlflow.db")


def test_tickers_from_environment_are_split_upper_cased_and_deduplicated(monkeypatch):
    monkeypatch.setenv("STOCKCAST_TICKERS", " aapl, msft ,AAPL,2330.tw ")
    assert load_settings().tickers == ["AAPL", "MSFT", "2330.TW"]


def test_empty_ticker_list_fails_in_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv("STOCKCAST_TICKERS", "")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "STOCKCAST_TICKERS" in message
    assert "\n" not in message


def test_malformed_database_url_fails_naming_the_variable(monkeypatch):
    monkeypatch.setenv("STOCKCAST_DATABASE_URL", "not a url")
    with pytest.raises(SettingsError, match="STOCKCAST_DATABASE_URL"):
        load_settings()


@pytest.mark.parametrize("source", ["auto", "yahoo", "sample", "file:/tmp/bars.parquet", "file:s3://b/k.csv"])
def test_known_sources_are_accepted(source):
    assert load_settings(source=source).source == source


@pytest.mark.parametrize("source", ["", "yahoo2", "file:"])
def test_unknown_source_is_rejected(source):
    with pytest.raises(SettingsError, match="STOCKCAST_SOURCE"):
        load_settings(source=source)


def test_naive_is_always_a_candidate(monkeypatch):
    monkeypatch.setenv("STOCKCAST_MODELS", "ridge")
    assert load_settings().models == ["naive", "ridge"]


def test_unknown_model_kind_is_rejected(monkeypatch):
    monkeypatch.setenv("STOCKCAST_MODELS", "ridge,transformer")
    with pytest.raises(SettingsError, match="STOCKCAST_MODELS"):
        load_settings()


def test_bad_symbol_and_bad_dates_are_named(monkeypatch):
    with pytest.raises(SettingsError, match="STOCKCAST_TICKERS"):
        load_settings(tickers="AAPL,$$$")
    with pytest.raises(SettingsError, match="STOCKCAST_START_DATE"):
        load_settings(start_date="01/02/2020")


def test_dotenv_file_is_read(isolated_environment):
    (isolated_environment / ".env").write_text("STOCKCAST_TICKERS=IBM\n")
    assert load_settings().tickers == ["IBM"]


def test_the_committed_env_example_is_valid(isolated_environment):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / ".env.example"
    (isolated_environment / ".env").write_text(example.read_text())
    settings = load_settings()
    assert settings.tickers == ["AAPL", "MSFT", "GOOG", "IBM"]
    assert settings.api_keys == []


@pytest.mark.parametrize("alpha", ["0", "-0.1", "0.6", "1", "nan"])
def test_a_promotion_alpha_outside_zero_to_a_half_is_one_line_naming_it(monkeypatch, alpha):
    monkeypatch.setenv("STOCKCAST_PROMOTION_ALPHA", alpha)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "STOCKCAST_PROMOTION_ALPHA" in str(caught.value) and "\n" not in str(caught.value)


def test_the_promotion_alpha_defaults_to_five_percent_and_takes_a_half(monkeypatch):
    assert load_settings().promotion_alpha == 0.05
    monkeypatch.setenv("STOCKCAST_PROMOTION_ALPHA", "0.5")
    assert load_settings().promotion_alpha == 0.5
