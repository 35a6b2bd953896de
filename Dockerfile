# pushgate's container image: one image for every process (`serve`, `api`, `worker`, `migrate`
# and the admin commands), chosen by the command. docker-compose.yml runs it on PostgreSQL,
# RabbitMQ and Redis; docs/operations.md says how to size and run it.
#
#   docker build -t pushgate .
#   docker run --rm -p 8000:8000 -v pushgate-data:/var/lib/pushgate pushgate        # serve, embedded
#   docker run --rm pushgate api --help
#
# Python 3.11: the version constraints.txt is resolved and tested on.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment with the same pinned install as `make run` ---------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/pushgate
WORKDIR /src
# The dependencies first, from the project's metadata and the pins alone, so a code change
# rebuilds only the last layer.
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && /opt/pushgate/bin/pip install -c constraints.txt -r /tmp/requirements.txt
# Then pushgate itself, as `make run` installs it (`pip install -c constraints.txt -e .`), but
# as a package rather than an editable link to /src.
COPY pushgate ./pushgate
RUN /opt/pushgate/bin/pip install -c constraints.txt . \
    && /opt/pushgate/bin/pushgate --version

# --- final: the venv on a slim Python, run as an unprivileged user ------------------------------
FROM ${PYTHON_IMAGE}

# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it without resolving a name.
RUN groupadd --system --gid 10001 pushgate \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/pushgate --create-home \
        --shell /usr/sbin/nologin pushgate

COPY --from=build /opt/pushgate /opt/pushgate

# Settings every container wants: listen on every interface of the container (the defaults
# are loopback, right for a laptop), the worker's metrics page likewise, and the embedded
# profile's SQLite file and secrets key under the user's own writable directory (mount a volume
# there for `serve`). The API port is left to the settings (PUSHGATE_SERVER__PORT, else the
# legacy SERVICE_PORT, else 8000), so deployments that set SERVICE_PORT keep working.
ENV PATH=/opt/pushgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PUSHGATE_DATA_DIR=/var/lib/pushgate \
    PUSHGATE_SERVER__HOST=0.0.0.0 \
    PUSHGATE_METRICS__WORKER_HOST=0.0.0.0 \
    PUSHGATE_METRICS__WORKER_PORT=9464

USER 10001:10001
WORKDIR /var/lib/pushgate

# 8000: the API (`serve`, `api`: server.port). 9464: a worker's metrics page
# (metrics.worker_port).
EXPOSE 8000 9464

# Liveness of `serve` and `api` (GET /health), with the interpreter the image already has, on
# the port the settings give (in the same order; a port set only in a --config file is not
# seen here: set it by environment in a container). A worker has no HTTP API:
# docker-compose.yml gives it its own check, on its metrics page.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % (os.environ.get('PUSHGATE_SERVER__PORT') or os.environ.get('SERVICE_PORT') or '8000'), timeout=4)"]

ENTRYPOINT ["pushgate"]
# With nothing configured, `serve` runs everything in one process on the embedded backends.
CMD ["serve"]
