#!/usr/bin/env bash
# Build the Python site policy component: build.sh [OUTPUT.wasm]. Needs `pip install componentize-py==0.25.1`.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-python_site_policy.wasm}
componentize-py -d ../../../wit -w policy componentize app -o "$out"
