#!/usr/bin/env bash
# Preprocessing benchmark of issue 2: the Rust engine (criterion) and
# Pillow+numpy / OpenCV+numpy (scripts/bench/preprocess_reference.py) on the
# committed photos, same machine, same run; prints images/s and ratios.
#
#   scripts/bench/run_preprocess_bench.sh            # ~2 minutes after the build
#   SECONDS_PER=3 scripts/bench/run_preprocess_bench.sh
#
# Single thread for the pipeline figures (criterion runs on the calling thread;
# Python pins OMP/OpenBLAS and cv2 to 1 thread); batch figures use rayon pools
# of 1 and 2 threads.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER="${SECONDS_PER:-3}"
OUT="${BENCH_OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
echo "== machine: $(nproc --all) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
cargo bench -p bridgeml-preprocess --bench preprocess -- \
    --warm-up-time 1 --measurement-time "$SECONDS_PER" --output-format bencher \
    2>/dev/null | tee "$OUT/rust.txt"
python3 scripts/bench/preprocess_reference.py --seconds "$SECONDS_PER" --json "$OUT/python.json" \
    | tee "$OUT/python.txt"

python3 - "$OUT/rust.txt" "$OUT/python.json" <<'PY'
import json, re, sys
rust_txt, py_json = sys.argv[1], sys.argv[2]
# images per criterion iteration, by benchmark
per_iter = {"pipeline/jpeg": 2, "pipeline/png": 2, "pipeline/all": 4,
            "stage/decode_jpeg": 2, "stage/decode_png": 2, "stage/resize_pil": 4,
            "stage/resize_opencv": 4, "stage/float_from_pixels": 4,
            "batch/threads_1": 16, "batch/threads_2": 16}
rust = {}
for line in open(rust_txt):
    m = re.match(r"test (\S+)\s+\.\.\. bench:\s+([\d,]+) ns/iter", line)
    if m and m.group(1) in per_iter:
        ns = int(m.group(2).replace(",", ""))
        rust[m.group(1)] = per_iter[m.group(1)] / (ns * 1e-9)
py = json.load(open(py_json))
p, st = py["pipeline"], py["stage"]
bm = p.get("bridgeml (python)")
print()
print("## Same process, interleaved, fastest pass (images/s, 1 thread)")
print("decode + resize to 224x224 bilinear + to_float + normalize, from bytes in memory")
print()
print("| | JPEG | PNG | all |")
print("|---|---:|---:|---:|")
for lib, r in p.items():
    name = "bridgeml via Python bindings (Pillow-exact)" if lib == "bridgeml (python)" else lib
    print(f"| {name} | {r['jpeg']:.1f} | {r['png']:.1f} | {r['all']:.1f} |")
if bm:
    for lib in ("pillow+numpy", "opencv+numpy"):
        r = p[lib]
        print(f"| ratio bridgeml / {lib} | {bm['jpeg']/r['jpeg']:.2f}x | "
              f"{bm['png']/r['png']:.2f}x | {bm['all']/r['all']:.2f}x |")
print()
print("| stage (images/s, 1 thread) | bridgeml | Pillow | OpenCV |")
print("|---|---:|---:|---:|")
g = lambda k: f"{st[k]:.1f}" if k in st else "-"
print(f"| decode JPEG | {g('bridgeml decode_jpeg')} | {g('pillow decode_jpeg')} | {g('opencv decode_jpeg')} |")
print(f"| decode PNG | {g('bridgeml decode_png')} | {g('pillow decode_png')} | {g('opencv decode_png')} |")
print(f"| resize to 224x224 bilinear | {g('bridgeml resize')} | {g('pillow resize')} | {g('opencv resize')} |")
print(f"| to_float + normalize | {g('bridgeml float+normalize')} | {g('numpy float+normalize')} (numpy) | |")
print()
print("## Rust, criterion (mean of samples; sensitive to background load)")
print()
print("| benchmark | images/s |")
print("|---|---:|")
for k, v in rust.items():
    print(f"| {k} | {v:.1f} |")
t1, t2 = rust["batch/threads_1"], rust["batch/threads_2"]
print(f"\nbatch of 16: 1 thread {t1:.1f}/s, 2 threads {t2:.1f}/s ({t2/t1:.2f}x)")
PY
