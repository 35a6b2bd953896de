"""The HTTP API (FastAPI): app factory, dependencies, schemas and one module per resource."""
