"""stockcast: close forecasts 1, 5 and 20 sessions ahead and the lifecycle around them."""

import os

# Third-party usage telemetry stays off unless the user sets these variables: a forecasting
# system should not call home from a cron job, and here there may be no home to call.
for _name, _value in (
    ("DO_NOT_TRACK", "true"),  # Evidently (any value), MLflow ("true")
    ("MLFLOW_DISABLE_TELEMETRY", "true"),
    ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
):
    os.environ.setdefault(_name, _value)
