"""trackstack: a local MLflow + PostgreSQL + MinIO + pgAdmin stack, generated from `.env`."""

__version__ = "0.1.0"
