# Front-end assets from npm (nothing vendored in the repository).
FROM node:20-slim AS assets
WORKDIR /app
COPY package.json package-lock.json ./
COPY frontend ./frontend
# npm ci also builds build/static/bundle/ (the package's "prepare" script).
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DATADOG_VAR_DIR=/var/lib/datadog
WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
COPY core ./core
COPY datadog_web ./datadog_web
COPY ops ./ops
COPY pipelines ./pipelines
COPY connectors ./connectors
COPY accounts ./accounts
COPY datadog_demo ./datadog_demo
COPY templates ./templates
COPY static ./static
COPY manage.py ./
COPY --from=assets /app/node_modules/htmx.org/dist ./node_modules/htmx.org/dist
COPY --from=assets /app/build/static ./build/static
RUN pip install --no-cache-dir uv && uv pip install --system --no-cache -r requirements.lock . \
    && mkdir -p /var/lib/datadog /data && useradd -r -u 1000 datadog \
    && chown -R datadog /var/lib/datadog /data
USER datadog
RUN SECRET_KEY=build-only-key-build-only-key-build-only DEBUG=false python manage.py collectstatic --noinput -v 0
EXPOSE 8000
