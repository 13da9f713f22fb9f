"""The HTTP API (FastAPI; OpenAPI at /docs): thin routers over the request service."""
