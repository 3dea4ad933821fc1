-- Forecast error over time per model, from stockcast's analytics copy in ClickHouse
-- (STOCKCAST_CLICKHOUSE_URL; database `stockcast` here, change it to yours):
--   clickhouse-client --multiquery < deploy/clickhouse/error_over_time.sql
-- FINAL: a forecast is sent again once scored, and ReplacingMergeTree keeps one row per
-- forecast only when it merges; FINAL reads the newest row of each whatever the merges did.
SELECT
    toMonday(target_date) AS week,
    model_kind,
    model_version,
    count() AS scored,
    sqrt(avg(error * error)) AS rmse,
    sqrt(avg(naive_error * naive_error)) AS naive_rmse,
    sqrt(avg(error * error)) / sqrt(avg(naive_error * naive_error)) AS rmse_vs_naive,
    avg(covered) AS interval_coverage
FROM stockcast.forecasts FINAL
WHERE actual_close IS NOT NULL
GROUP BY week, model_kind, model_version
ORDER BY week, model_kind, model_version
FORMAT TabSeparatedWithNames;
