#!/usr/bin/env bash
# Load test of the serving sidecar (issue 7): batch-1 closed-loop latency and
# throughput of the runtime called directly vs `POST /v1/predict` on loopback,
# plain / with guard + monitors + policy / plus a shadow candidate, in one run
# (modes interleaved in rounds). Bounded: SECONDS_PER_ROUND x ROUNDS x 4 modes.
#
#   scripts/bench/serve_load.sh [extra serve_load args]
#   MODEL=... SPEC=... IMAGE=... PROFILE=release SECONDS_PER_ROUND=5 ROUNDS=4 scripts/bench/serve_load.sh
#
# SKIP_BUILD=1 runs the example already built in $CARGO_TARGET_DIR (e.g. by
# `cargo build --release -p bridgeml-cli -p bridgeml-serve --example serve_load`,
# which shares the CLI's dependency builds: `-p bridgeml-serve` alone unifies
# features differently and rebuilds tract and friends).
# Defaults: MobileNetV2 from /work/shared/assets (not in the repo; set MODEL to
# another ONNX classifier elsewhere), the torchvision ImageNet spec, a test image.
set -euo pipefail
cd "$(dirname "$0")/../.."
# EMBEDDING: the intermediate tensor the monitors' MMD watches (MobileNetV2's
# pooled features by default; empty for none).
if [ -z "${MODEL:-}" ]; then EMBEDDING=${EMBEDDING-flat}; else EMBEDDING=${EMBEDDING:-}; fi
MODEL=${MODEL:-/work/shared/assets/mobilenet_v2_imagenet.onnx}
SPEC=${SPEC:-examples/specs/imagenet_pil.toml}
IMAGE=${IMAGE:-tests/fixtures/images/chelsea.png}
PROFILE=${PROFILE:-release}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-5}
ROUNDS=${ROUNDS:-4}
BACKEND=${BACKEND:-tract}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build -q -p bridgeml-serve --example serve_load --profile "$PROFILE"
# cargo puts the dev and test profiles under debug/.
case "$PROFILE" in dev | test) profile_dir=debug ;; *) profile_dir=$PROFILE ;; esac
dir=${CARGO_TARGET_DIR:-target}/$profile_dir/examples
exec timeout 900 "$dir/serve_load" --model "$MODEL" --spec "$SPEC" --image "$IMAGE" \
  --backend "$BACKEND" --seconds "$SECONDS_PER_ROUND" --rounds "$ROUNDS" \
  ${EMBEDDING:+--embedding "$EMBEDDING"} "$@"
