#!/usr/bin/env bash
# Installs llama-cpp-python (the llama.cpp side of `neuroshard bench inference`) into its
# own venv, built for the CPU features this machine reports in /proc/cpuinfo, never AMX:
# a native build uses AMX when the CPU advertises it, and VMs that do not allow the tile
# state crash in ldtilecfg (SIGSEGV); a fixed flag list fails on CPUs without one of its
# features (AVX-VNNI on AVX-512 AMD parts: SIGILL).
# Usage: scripts/install-llama-cpp.sh [VENV_DIR]   (default ~/.cache/neuroshard/venv-llama)
# Then: NEUROSHARD_PYTHON=VENV_DIR/bin/python neuroshard bench inference
set -euo pipefail
venv="${1:-$HOME/.cache/neuroshard/venv-llama}"
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
args="-DGGML_NATIVE=OFF"
for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI \
  avx512f:AVX512 avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
  flag="${pair%%:*}"
  option="${pair##*:}"
  if [[ "$flags" == *" $flag "* ]]; then
    args="$args -DGGML_${option}=ON"
  else
    args="$args -DGGML_${option}=OFF"
  fi
done
echo "== building llama-cpp-python 0.3.36 into $venv with: $args"
python3 -m venv "$venv"
CMAKE_ARGS="$args" "$venv/bin/pip" install --no-cache-dir --force-reinstall llama-cpp-python==0.3.36
"$venv/bin/python" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__)"
