#!/usr/bin/env bash
# One-time setup of a fresh machine (README): system packages and the Python
# packages the tests and the bindings need. Safe to re-run.
set -euo pipefail

# chromium: the headless browser test renders report.html (bridgeml-gate).
apt_packages=(nasm chromium)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

python3 -m pip install --quiet --disable-pip-version-check \
  "numpy>=1.24" "pillow>=10" onnxruntime onnx "maturin>=1.5,<2" pytest
