# remotemedia server image: `docker build -t remotemedia .`, then
#   docker run -p 50051:50051 -v "$PWD/token:/run/token:ro" remotemedia \
#     serve --listen 0.0.0.0:50051 --token-file /run/token
# serves gRPC and HTTP (/healthz, /readyz, /metrics) on port 50051. Without
# --token-file, gRPC and sessions accept loopback clients only (the HTTP health
# and metrics routes answer anyone). See docs/deploy-kubernetes.md.
#
# Python: the default build (feature `cpython`) links CPython into the binary from the
# build Python's static library (here Debian's libpython3.11-pic.a, from
# python3.11-dev; README, "Copying the binary to another machine") and records the
# interpreter it was built against as the default for Python worker processes
# (REMOTEMEDIA_BUILD_PYTHON). The binary still needs, at run time, the standard library
# of the very same minor version (the CPython ABI changes between minors) and the
# libz/libexpat that library's built-in modules use. Both stages use Debian bookworm's
# own CPython 3.11 (/usr/bin/python3.11, standard library in /usr/lib/python3.11), so
# the runtime stage has exactly the library the build saw, and libpython3.11 for a
# build that falls back to linking it shared; the Rust image and the slim runtime image
# are both bookworm, so glibc matches too.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-dev \
 && rm -rf /var/lib/apt/lists/*
# pyo3 builds against this interpreter (and its libpython3.11-pic.a).
ENV PYO3_PYTHON=/usr/bin/python3.11
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p remotemedia-cli --bin remotemedia \
 && install -D -m 0755 target/release/remotemedia /out/remotemedia

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# libpython3.11 for the embedded interpreter, python3.11 + venv for worker processes
# and for the VAD's package lookup, ca-certificates for TLS to other executors.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpython3.11 python3.11 python3.11-venv ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

# Voice activity detection (VoiceActivity / SileroVADNode with engine `silero`) loads
# ONNX Runtime and the Silero model from these PyPI packages (crates/remotemedia-speech
# /MODELS.md). silero-vad's torch dependency is never imported on the ONNX path, so it
# is installed without dependencies.
ARG ONNXRUNTIME_VERSION=1.32.0
ARG SILERO_VAD_VERSION=6.2.3
RUN python3.11 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir "onnxruntime==${ONNXRUNTIME_VERSION}" \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps "silero-vad==${SILERO_VAD_VERSION}" \
 && /opt/venv/bin/python -c "import importlib.util as u; assert u.find_spec('onnxruntime') and u.find_spec('silero_vad')"
# The VAD asks REMOTEMEDIA_VAD_PYTHON where the two packages are; Python worker
# processes run REMOTEMEDIA_PYTHON (the venv's interpreter is the same CPython 3.11).
ENV REMOTEMEDIA_VAD_PYTHON=/opt/venv/bin/python \
    REMOTEMEDIA_PYTHON=/opt/venv/bin/python \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

COPY --from=builder /out/remotemedia /usr/local/bin/remotemedia
COPY examples/sessions/pipelines /etc/remotemedia/pipelines

RUN useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home remotemedia
USER 10001:10001
WORKDIR /tmp

EXPOSE 50051
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:50051/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/remotemedia"]
CMD ["serve", "--listen", "0.0.0.0:50051"]
