#!/usr/bin/env bash
# Repeat the STT broker's GPU check on a Linux machine with an NVIDIA GPU, the CUDA toolkit and
# Python 3.12, without internet. Everything it needs comes from one folder (under 64 MiB):
#
#   bench/gpu_check.sh --prepare CARRY     # where PyPI is reachable: fill CARRY
#   bench/gpu_check.sh CARRY               # on the GPU machine: build, start, measure, print
#   bench/gpu_check.sh --dry-run CARRY     # check CARRY and the machine, print the plan, run nothing
#
# CARRY holds: pywhispercpp-<locked version>.tar.gz (the sdist), wheels/ (build helpers and any
# dependency the machine lacks), ggml-tiny.en-q8_0.bin (`voicestack models quantize q8_0`),
# clip5.wav and clip27.wav with expected.txt (one line of expected words per clip), and
# optionally onnxruntime_gpu-*.whl (Kokoro on the GPU; about 200 MB, so usually not carried).
#
# It builds pywhispercpp with CUDA exactly as the Dockerfile's stt-broker-build-cuda stage does (same
# environment: GGML_CUDA=1, GGML_CUDA_NCCL=OFF, $ORIGIN RPATH, NO_REPAIR=1; kernels for the GPU
# in the machine), links duplicate shared libraries and checks their dependencies as the image
# does, then runs bench/gpu_check.py: bare whisper.cpp with flash attention off and on, the
# broker with STT_USE_GPU=true and VAD on (1 and 4 contexts), the transcripts checked against
# expected.txt, the table, and nvidia-smi's evidence. About 3 minutes to build on 16 cores.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE=run
case "${1:-}" in
  --prepare) MODE=prepare; shift ;;
  --dry-run) MODE=dry-run; shift ;;
esac
CARRY="${1:?usage: bench/gpu_check.sh [--prepare|--dry-run] CARRY_DIR}"
WORK="${GPU_CHECK_WORK:-/tmp/voicestack-gpu-check}"
LIMIT_BYTES=$((64 * 1024 * 1024))

locked_version() {  # the pywhispercpp version uv.lock pins
  awk '/^name = "pywhispercpp"$/ {getline; gsub(/[^0-9.]/, "", $0); print; exit}' "$REPO/uv.lock"
}
VERSION="$(locked_version)"
SDIST="$CARRY/pywhispercpp-$VERSION.tar.gz"

say() { printf '== %s\n' "$*"; }
fail() { printf 'gpu_check: %s\n' "$*" >&2; exit 1; }

if [[ $MODE == prepare ]]; then
  mkdir -p "$CARRY/wheels"
  say "sdist of pywhispercpp $VERSION and the build helpers (cp312) into $CARRY"
  python3 -m pip download --quiet --no-deps --no-binary :all: "pywhispercpp==$VERSION" -d "$CARRY"
  python3 -m pip download --quiet --only-binary :all: --python-version 3.12 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform any -d "$CARRY/wheels" setuptools wheel pybind11 ninja
  say "the quantized model and the clips"
  (cd "$REPO" && uv run python - "$CARRY" <<'PY'
import shutil, sys
from pathlib import Path
sys.path.insert(0, ".")
from stt_broker.models import prepare_bundled_ggml
from devkit.speech import TEST_CACHE, kokoro_speech
from voicestack_common.encode import encode_audio
carry = Path(sys.argv[1])
shutil.copy(prepare_bundled_ggml(TEST_CACHE / "models", quantization="q8_0"), carry / "ggml-tiny.en-q8_0.bin")
short = "Please call me back tomorrow morning. The meeting starts at noon, in the large room."
long = " ".join([short, "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
                 "It is easy to tell the depth of a well.", "Four hours of steady work faced us.",
                 "A large size in stockings is hard to sell.", "The boy was there when the sun rose."] * 1)
for name, text in (("clip5.wav", short), ("clip27.wav", long)):
    (carry / name).write_bytes(encode_audio(kokoro_speech(text, voice="jm_kumo"), "wav"))
(carry / "expected.txt").write_text("call me back tomorrow morning\nbirch canoe slid\n")
PY
  )
  size=$(du -sb "$CARRY" | cut -f1)
  say "carry folder: $((size / 1024 / 1024)) MiB"
  (( size <= LIMIT_BYTES )) || fail "$CARRY is over 64 MiB"
  exit 0
fi

# ---- preflight: the folder and the machine ------------------------------------------------
problems=()
[[ -f $SDIST ]] || problems+=("no $SDIST (run --prepare where PyPI is reachable)")
[[ -f $CARRY/ggml-tiny.en-q8_0.bin ]] || problems+=("no $CARRY/ggml-tiny.en-q8_0.bin")
[[ -f $CARRY/clip5.wav ]] || problems+=("no $CARRY/clip5.wav")
size=$(du -sb "$CARRY" 2>/dev/null | cut -f1 || echo 0)
(( size <= LIMIT_BYTES )) || problems+=("$CARRY is $((size / 1024 / 1024)) MiB, over 64 MiB")
PYTHON="${PYTHON:-$(command -v python3.12 || command -v python3 || true)}"
[[ -n $PYTHON ]] || problems+=("no python3.12")
NVCC="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
have_gpu=true
command -v nvidia-smi >/dev/null || { have_gpu=false; problems+=("no nvidia-smi: this machine has no NVIDIA driver"); }
[[ -x $NVCC ]] || problems+=("no nvcc at $NVCC: install the CUDA toolkit or set CUDACXX")
command -v cmake >/dev/null || problems+=("no cmake")

# The build environment the Dockerfile's stt-broker-build-cuda stage sets, with kernels for this GPU only.
ARCH=native
if $have_gpu; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.' || true)
  [[ -n $cap ]] && ARCH=$cap
fi
BUILD_ENV=(GGML_CUDA=1 GGML_CUDA_NCCL=OFF "CMAKE_CUDA_ARCHITECTURES=$ARCH" "CUDACXX=$NVCC"
  CMAKE_BUILD_WITH_INSTALL_RPATH=ON 'CMAKE_INSTALL_RPATH=$ORIGIN' NO_REPAIR=1 "CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)")
grep -q "GGML_CUDA_NCCL=OFF" "$REPO/Dockerfile" || problems+=("the Dockerfile no longer builds NCCL out: update this script")

say "pywhispercpp $VERSION from $SDIST"
say "build environment: ${BUILD_ENV[*]}"
say "venv: $WORK/venv ($PYTHON, system site-packages for what the machine already has)"
say "then: native_libs.py dedupe + check, bench/gpu_check.py --use-gpu true"
if [[ $MODE == dry-run ]]; then
  for p in "${problems[@]}"; do printf 'would fail: %s\n' "$p"; done
  exit 0
fi
(( ${#problems[@]} == 0 )) || { printf 'gpu_check: %s\n' "${problems[@]}" >&2; exit 1; }

# ---- build ------------------------------------------------------------------------------------
started=$(date +%s)
rm -rf "$WORK" && mkdir -p "$WORK"
"$PYTHON" -m venv --system-site-packages "$WORK/venv"
PIP=("$WORK/venv/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --no-index --find-links "$CARRY/wheels" setuptools wheel pybind11 ninja || true
say "building pywhispercpp with CUDA (log: $WORK/build.log)"
env "${BUILD_ENV[@]}" "${PIP[@]}" install --no-index --no-build-isolation --find-links "$CARRY/wheels" \
  --no-deps "$SDIST" >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; fail "the CUDA build failed"; }
"${PIP[@]}" install --quiet --no-index --find-links "$CARRY/wheels" --no-deps \
  -e "$REPO/libs/common" -e "$REPO/services/stt_broker"
say "built in $(( $(date +%s) - started )) s"
SITE="$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$WORK/venv/bin/python" "$REPO/services/stt_broker/docker/native_libs.py" dedupe "$SITE"
"$WORK/venv/bin/python" "$REPO/services/stt_broker/docker/native_libs.py" check "$SITE" \
  || fail "a shared library cannot find its dependencies (see above)"
ls -la "$SITE" | grep -E "lib(ggml|whisper)" || true

# ---- measure ----------------------------------------------------------------------------------
clips=(--clip "$CARRY/clip5.wav")
[[ -f $CARRY/clip27.wav ]] && clips+=(--clip "$CARRY/clip27.wav")
expect=()
if [[ -f $CARRY/expected.txt ]]; then
  while IFS= read -r line; do [[ -n $line ]] && expect+=(--expect "$line"); done <"$CARRY/expected.txt"
fi
nvidia-smi
"$WORK/venv/bin/python" "$REPO/bench/gpu_check.py" --model "$CARRY/ggml-tiny.en-q8_0.bin" "${clips[@]}" "${expect[@]}" \
  --use-gpu true --threads 4 --log "$WORK/broker.log" --json "$WORK/gpu_check.json"
if compgen -G "$CARRY/onnxruntime_gpu-*.whl" >/dev/null; then
  "${PIP[@]}" install --quiet --no-index --no-deps "$CARRY"/onnxruntime_gpu-*.whl
  "$WORK/venv/bin/python" -c "import onnxruntime as ort; print('Kokoro providers:', ort.get_available_providers())"
else
  say "Kokoro on the GPU: skipped (no onnxruntime_gpu wheel in $CARRY)"
fi
say "done in $(( $(date +%s) - started )) s"
