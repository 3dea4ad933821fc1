-- Runs once, when the PostgreSQL volume is new: MLflow, Prefect and Airflow get databases of
-- their own beside stockcast's (POSTGRES_DB), all owned by the same role. (A volume made before
-- Airflow was added: `docker compose exec postgres createdb -U stockcast airflow`.)
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
CREATE DATABASE airflow;
