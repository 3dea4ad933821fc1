-- Runs once, when the PostgreSQL volume is new: MLflow and Prefect get databases of their own
-- beside stockcast's (POSTGRES_DB), all owned by the same role.
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
