#!/usr/bin/env bash
# Build the Python notifier component: build.sh [OUTPUT.wasm]. Needs `pip install componentize-py==0.25.1`.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-python_notify.wasm}
componentize-py -d ../../../wit -w callbacks componentize app -o "$out"
