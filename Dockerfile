# Images of docker-compose.yml (docs/compose.md). Two targets:
#   cpu  the project on the CPU engine (`transformers serve`): role services, tools, orchestrator.
#        The demo models are not in the image: compose mounts them (`make models` builds them).
#   gpu  the project on vLLM's image: the role services on a GPU (compose profile `gpu`).
#
#   docker build --target cpu -t umi-serve:cpu .
#   docker build --target gpu -t umi-serve:gpu .
#
# Build arguments of the cpu image (docs/compose.md, "Building without a registry"):
#   PYTHON_IMAGE     the base image: any Debian-like image with Python 3.11 and its venv module
#                    (default the public python:3.11-slim; e.g. a mirror in your own registry)
#   WHEELHOUSE       a directory of the build context holding every wheel the image installs
#                    (scripts/make-wheelhouse.sh makes it): pip then installs with --no-index from
#                    it alone, and the build needs no network at all. Unset: the indexes.
#   TORCH_INDEX_URL  where torch's CPU wheels come from without a wheelhouse (default PyTorch's
#                    CPU index); the only index torch is installed from.

ARG PYTHON_IMAGE=python:3.11-slim
ARG VLLM_IMAGE=vllm/vllm-openai:v0.33.0

# What both images install: the project's sources (see .dockerignore).
FROM scratch AS source
COPY pyproject.toml README.md /app/
COPY umi /app/umi
COPY services /app/services
COPY orchestrator /app/orchestrator

# The wheelhouse, or without WHEELHOUSE a stand-in (one small file of the context, unused), so
# that the same COPY works either way with both the classic builder and BuildKit.
FROM scratch AS wheelhouse
ARG WHEELHOUSE
COPY ${WHEELHOUSE:-pyproject.toml} /wheelhouse/

# ---------------------------------------------------------------------------------------- cpu
# Installs into a virtual environment (/opt/umi) that the cpu stage copies, so that the
# wheelhouse stays out of the image, and so that a distribution's own Python (PEP 668) works too.
FROM ${PYTHON_IMAGE} AS cpu-install
ARG WHEELHOUSE
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY --from=wheelhouse /wheelhouse /wheelhouse
COPY pyproject.toml /app/
RUN python3 -m venv /opt/umi
# torch alone first, pinned as pyproject.toml's cpu extra pins it, from the wheelhouse or else
# from the CPU index only: when that index cannot be reached the build fails here (pip never
# falls back to PyPI's torch, a CUDA build of several GB). The project's step then finds it
# installed (and its layer stays cached while only the sources change).
RUN set -eu; \
    torch=$(python3 -c 'import tomllib; cpu = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["cpu"]; print(next(r for r in cpu if r.startswith("torch")))'); \
    if [ -n "${WHEELHOUSE:-}" ]; then \
      /opt/umi/bin/pip install --no-index --find-links /wheelhouse "$torch"; \
    else \
      /opt/umi/bin/pip install --index-url "${TORCH_INDEX_URL}" "$torch"; \
    fi
COPY --from=source /app /app
RUN set -eu; \
    if [ -n "${WHEELHOUSE:-}" ]; then \
      /opt/umi/bin/pip install --no-index --find-links /wheelhouse '.[cpu]'; \
    else \
      /opt/umi/bin/pip install '.[cpu]'; \
    fi; \
    /opt/umi/bin/python -c 'import sys, torch; sys.exit(torch.version.cuda and f"torch {torch.__version__} is a CUDA {torch.version.cuda} build; the cpu image takes the CPU build")'

FROM ${PYTHON_IMAGE} AS cpu
RUN useradd --create-home --uid 1000 umi
# torch's CPU-only build (checked above): no CUDA libraries in this image
ENV PYTHONUNBUFFERED=1 PATH=/opt/umi/bin:$PATH
COPY --from=cpu-install /opt/umi /opt/umi
USER umi
WORKDIR /home/umi
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
