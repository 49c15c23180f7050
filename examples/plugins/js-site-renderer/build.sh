#!/usr/bin/env bash
# Build the JavaScript site renderer: build.sh [OUTPUT.wasm]. Needs `npm install` here first (Node 20+).
# componentize-js wants the WIT inside the working directory, so a copy is made; `-d http fetch-event`
# keeps the component from importing wasi:http, which slurmkit does not provide.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-js_site_renderer.wasm}
rm -rf .wit && cp -r ../../../wit .wit
node node_modules/@bytecodealliance/componentize-js/src/cli.js renderer.js --wit .wit -n renderer -d http fetch-event -o "$out"
rm -rf .wit
