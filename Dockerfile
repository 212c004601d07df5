# syntax=docker/dockerfile:1
# Multi-stage: build a venv from the lock file, then copy it into a slim, non-root runtime.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends gcc make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python -m venv /venv
COPY requirements.lock ./
RUN /venv/bin/pip install -r requirements.lock
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY alembic ./alembic
RUN /venv/bin/pip install --no-deps .

FROM python:3.11-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /srv warden
COPY --from=build /venv /venv
COPY --from=build /src/alembic.ini /srv/alembic.ini
COPY --from=build /src/alembic /srv/alembic
WORKDIR /srv
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 WARDEN_ENVIRONMENT=production \
    WARDEN_WORKER_METRICS_PORT=9100 WARDEN_WORKER_METRICS_HOST=0.0.0.0
USER warden
EXPOSE 8000 9100
# One image, several services: `warden healthcheck` probes what PID 1 runs (`serve`: the API's
# /healthz on its --port; `worker`: /healthz on WARDEN_WORKER_METRICS_PORT; `migrate`: nothing).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s CMD ["warden", "healthcheck"]
CMD ["warden", "serve", "--host", "0.0.0.0", "--port", "8000"]
