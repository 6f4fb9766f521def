# Image of the worker (Faust agents, tables and the HTTP API), the archiver
# and the backfill driver.
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY app app
COPY agents agents
COPY tables tables
COPY batch_backfill batch_backfill
COPY simulator simulator
RUN pip install --no-cache-dir .
ENV SOCIALSTREAM_STATE_DIR=/data
EXPOSE 6066
CMD ["python", "-m", "app.cli", "worker"]
