FROM python:3.11.11-slim-bookworm
WORKDIR /opt/hazwatch
COPY pyproject.toml README.md ./
COPY hazwatch ./hazwatch
COPY ingest ./ingest
COPY detectors ./detectors
COPY alerting ./alerting
COPY simulators ./simulators
COPY dashboards ./dashboards
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/hazwatch hazwatch \
    && mkdir -p /var/lib/hazwatch && chown hazwatch /var/lib/hazwatch
USER hazwatch
EXPOSE 8000
ENTRYPOINT ["hazwatch"]
CMD ["run", "--config", "/etc/hazwatch/hazwatch.toml"]
