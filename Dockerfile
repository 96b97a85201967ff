# The one image for every ppu process (workers, console, simulators, one-shot jobs).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md topics.yaml ./
COPY ppu ppu
COPY workers workers
COPY schemas schemas
COPY db db
COPY infra infra
COPY providers providers
COPY console console
RUN pip install --no-cache-dir -e . && useradd --system --uid 10001 ppu
USER ppu
ENTRYPOINT ["ppu"]
