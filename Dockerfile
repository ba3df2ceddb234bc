# Images of docker-compose.yml (docs/demo.md). Two targets:
#   cpu  the project on the CPU engine (`transformers serve`): role services, tools, orchestrator.
#        The demo models are not in the image: compose mounts them (`make models` builds them).
#   gpu  the project on vLLM's image: the role services on a GPU (compose profile `gpu`).
#
#   docker build --target cpu -t umi-serve:cpu .
#   docker build --target gpu -t umi-serve:gpu .

ARG PYTHON_IMAGE=python:3.11-slim
ARG VLLM_IMAGE=vllm/vllm-openai:v0.33.0

# What both images install: the project's sources (see .dockerignore).
FROM scratch AS source
COPY pyproject.toml README.md /app/
COPY umi /app/umi
COPY services /app/services
COPY orchestrator /app/orchestrator

# ---------------------------------------------------------------------------------------- cpu
FROM ${PYTHON_IMAGE} AS cpu
# torch's CPU-only wheels: no CUDA libraries in this image
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY --from=source /app /app
RUN python3 -m pip install --extra-index-url "${TORCH_INDEX_URL}" '.[cpu]' \
 && useradd --create-home --uid 1000 umi
USER umi
CMD ["umi", "--help"]

# ---------------------------------------------------------------------------------------- gpu
FROM ${VLLM_IMAGE} AS gpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY --from=source /app /app
# No extra: the image's vLLM brings torch and transformers; the role services run `vllm serve`.
RUN if command -v uv >/dev/null 2>&1; then uv pip install --system .; else python3 -m pip install .; fi
ENTRYPOINT []
CMD ["umi", "--help"]
