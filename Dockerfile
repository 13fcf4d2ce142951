# One image for web, stream, worker and beat (docker-compose.yml); the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt requirements-otel.txt ./
# INSTALL_OTEL=1 adds the optional OpenTelemetry trace export (docs/operations.md).
ARG INSTALL_OTEL=0
RUN pip install -r requirements.txt && if [ "$INSTALL_OTEL" = "1" ]; then pip install -r requirements-otel.txt; fi

COPY . .
# Static files are collected at build time; whitenoise serves them (no separate web server).
RUN SECRET_KEY=collectstatic-only DEBUG=false python manage.py collectstatic --noinput
RUN useradd --create-home --uid 1000 app && chown -R app:app /app
USER app

EXPOSE 8000
CMD ["gunicorn", "-c", "python:orchestrator.gunicorn_conf", "orchestrator.wsgi:application", "--bind", "0.0.0.0:8000"]
