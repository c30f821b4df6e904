#!/usr/bin/env bash
# The project's test command (README): every Rust test in the workspace, then
# the Python bindings' tests against the freshly built CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')}"

cargo test --workspace --locked

# Python bindings: build the extension into the active interpreter, then run
# pytest against the same engine the CLI uses.
cargo build -p bridgeml-cli --locked
pip install --quiet ./bindings/python
BRIDGEML_BIN="$target_dir/debug/bridgeml" python3 -m pytest -q bindings/python/tests
