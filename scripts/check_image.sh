#!/usr/bin/env bash
# Checks the container image (Dockerfile) on a machine without a Docker engine:
#
#   1. the builder stage's build, made here (this machine must run the Debian release
#      the Dockerfile builds on, with Debian's python3.11-dev, as that stage does);
#   2. the runtime stage reproduced in a fresh root of that release made by
#      debootstrap: the same packages, virtualenv, files, user and environment, all
#      read from the Dockerfile itself;
#   3. the binary started there as the image starts it (uid 10001, its CMD on a
#      loopback port): the HEALTHCHECK command, /readyz and /metrics answer; a
#      Python node runs in the embedded CPython and in a worker process; Silero VAD
#      finds its model and ONNX Runtime in the virtualenv and marks speech; SIGTERM
#      drains and exits 0.
#
#   sudo scripts/check_image.sh            root in target/image-rootfs (kept between runs)
#
# Needs root, debootstrap, espeak-ng, and Debian's and PyPI's package servers. Not part
# of the test suite (it downloads a Debian root); where a Docker engine runs,
# `docker build -t remotemedia .` checks the same and more.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=${ROOT:-target/image-rootfs}
BUILD_DIR=${BUILD_DIR:-target/image-build}
fail() { echo "check_image: $*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

[[ $(id -u) == 0 ]] || fail "run as root (debootstrap and chroot need it)"
command -v debootstrap > /dev/null || fail "debootstrap is not installed (apt-get install debootstrap)"
command -v espeak-ng > /dev/null || fail "espeak-ng is not installed (apt-get install espeak-ng)"

# What the Dockerfile says, so that this check follows it.
arg() { sed -n "s/^ARG $1=//p" Dockerfile | head -1; }
RELEASE=$(arg DEBIAN_RELEASE)
ORT_VERSION=$(arg ONNXRUNTIME_VERSION)
SILERO_VERSION=$(arg SILERO_VAD_VERSION)
# The packages of the runtime stage's apt-get install (the first one after its FROM).
PACKAGES=$(awk '/AS runtime/ {rt=1} rt && /apt-get install/ {
    sub(/.*--no-install-recommends /, ""); sub(/\\$/, ""); print; exit }' Dockerfile)
UID_GID=$(sed -n 's/^USER //p' Dockerfile)
[[ -n $RELEASE && -n $ORT_VERSION && -n $SILERO_VERSION && -n $PACKAGES && -n $UID_GID ]] ||
    fail "could not read the release, versions, packages or user from the Dockerfile"
. /etc/os-release
[[ ${VERSION_CODENAME:-} == "$RELEASE" ]] ||
    fail "this machine runs ${VERSION_CODENAME:-an unknown release}; the builder stage is Debian $RELEASE"
[[ -x /usr/bin/python3.11 ]] || fail "Debian's python3.11 and python3.11-dev are needed, as in the builder stage"

step "builder stage: cargo build --release with Debian's CPython 3.11 (PYO3_PYTHON=/usr/bin/python3.11)"
PYO3_PYTHON=/usr/bin/python3.11 cargo build --release --locked -p remotemedia-cli --bin remotemedia \
    --target-dir "$BUILD_DIR"
BIN="$BUILD_DIR/release/remotemedia"

step "runtime stage: debian:$RELEASE in $ROOT, packages: $PACKAGES"
if [[ ! -x $ROOT/usr/bin/apt-get ]]; then
    rm -rf "$ROOT"
    debootstrap --variant=minbase "$RELEASE" "$ROOT" > "$ROOT.debootstrap.log" 2>&1 ||
        fail "debootstrap failed (see $ROOT.debootstrap.log)"
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
cleanup() {
    [[ -n ${SERVE_PID:-} ]] && kill "$SERVE_PID" 2> /dev/null || true
    umount "$ROOT/proc" 2> /dev/null || true
    umount "$ROOT/dev" 2> /dev/null || true
}
trap cleanup EXIT
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
in_root apt-get update -q > /dev/null
# shellcheck disable=SC2086 # a list of packages
in_root apt-get install -y -q --no-install-recommends $PACKAGES > /dev/null
[[ -x $ROOT/opt/venv/bin/python ]] || in_root python3.11 -m venv /opt/venv
# pip in the root trusts what this machine trusts (a proxy's CA, say) for the download
# only: the bundle sits in /tmp of the root and is not part of the image.
cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$ROOT/tmp/build-ca.crt"
pip_in_root() { in_root PIP_CERT=/tmp/build-ca.crt /opt/venv/bin/pip install -q --no-cache-dir "$@"; }
pip_in_root "onnxruntime==$ORT_VERSION"
pip_in_root --no-deps "silero-vad==$SILERO_VERSION"
rm -f "$ROOT/tmp/build-ca.crt"
install -D -m 0755 "$BIN" "$ROOT/usr/local/bin/remotemedia"
rm -rf "$ROOT/etc/remotemedia/pipelines"
mkdir -p "$ROOT/etc/remotemedia"
cp -r examples/sessions/pipelines "$ROOT/etc/remotemedia/pipelines"
in_root id -u 10001 > /dev/null 2>&1 ||
    in_root useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home remotemedia

# The image's environment (its ENV lines), as the user it runs as.
IMAGE_ENV=(
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    REMOTEMEDIA_VAD_PYTHON=/opt/venv/bin/python REMOTEMEDIA_PYTHON=/opt/venv/bin/python
    VIRTUAL_ENV=/opt/venv HOME=/nonexistent
)
as_image() { chroot --userspec="$UID_GID" "$ROOT" /usr/bin/env -i "${IMAGE_ENV[@]}" "$@"; }
WORK="$ROOT/tmp/check"
rm -rf "$WORK"
mkdir -p "$WORK"
chmod 0777 "$WORK"

step "the binary in the image: version, the Python hosts"
as_image /usr/local/bin/remotemedia --version
for runtime in cpython process; do
    cat > "$WORK/py-$runtime.yaml" << EOF
version: v1
metadata: { name: py }
nodes:
  - id: py
    node_type: PythonNode
    params:
      runtime: $runtime
      class: Node
      source: |
        import sys
        class Node:
            def process(self, x):
                return [x * 2, sys.version_info[:2]]
EOF
    out=$(printf '1\n2\n' | as_image /usr/local/bin/remotemedia run "/tmp/check/py-$runtime.yaml" --input -)
    [[ $out == $'[2,[3,11]]\n[4,[3,11]]' ]] || fail "the $runtime host gave: $out"
    echo "PythonNode ($runtime host): ok"
done

step "Silero VAD from the virtualenv's packages"
espeak-ng -w "$WORK/speech.wav" "One sentence to find. And another one after a pause." 2> /dev/null
chmod 0644 "$WORK/speech.wav"
cp examples/speech/vad-events.yaml "$WORK/vad-events.yaml"
events=$(as_image /usr/local/bin/remotemedia run /tmp/check/vad-events.yaml --input /tmp/check/speech.wav)
grep -q '"speech_start"' <<< "$events" || fail "no speech found: $events"
as_image /usr/local/bin/remotemedia nodes info VoiceActivity | grep -i -m3 "model" || true
echo "VoiceActivity (silero): $(grep -c speech_start <<< "$events") utterance(s)"

step "the image's CMD on a loopback port, its HEALTHCHECK, then SIGTERM"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# `exec`, so that the signal below reaches the server itself (chroot and env exec too).
(exec chroot --userspec="$UID_GID" "$ROOT" /usr/bin/env -i "${IMAGE_ENV[@]}" \
    /usr/local/bin/remotemedia serve --listen "127.0.0.1:$PORT" \
    --pipelines /etc/remotemedia/pipelines > "$WORK/serve.out" 2> "$WORK/serve.err") &
SERVE_PID=$!
for _ in $(seq 100); do
    grep -q "listening on" "$WORK/serve.out" 2> /dev/null && break
    sleep 0.1
done
grep -q "listening on" "$WORK/serve.out" || fail "serve did not start: $(cat "$WORK/serve.err")"
# The HEALTHCHECK's own command, inside the image.
healthcheck=$(sed -n 's/^ *CMD curl/curl/p' Dockerfile | sed "s/50051/$PORT/; s/ || exit 1//")
as_image sh -c "$healthcheck" > /dev/null || fail "the HEALTHCHECK failed: $healthcheck"
echo "HEALTHCHECK: ok"
as_image curl -fsS "http://127.0.0.1:$PORT/readyz" > /dev/null || fail "/readyz failed"
as_image curl -fsS "http://127.0.0.1:$PORT/metrics" | grep -q '^remotemedia_active_sessions ' ||
    fail "/metrics has no remotemedia_active_sessions"
echo "/readyz, /metrics: ok"
started=$(date +%s)
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || fail "serve exited $? after SIGTERM"
SERVE_PID=
echo "SIGTERM: exit 0 after $(($(date +%s) - started)) s"
echo
echo "check_image: the runtime stage of the Dockerfile works"
