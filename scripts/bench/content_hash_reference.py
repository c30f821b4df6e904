#!/usr/bin/env python3
"""Reference for crates/bridgeml-core/benches/content_hash.rs: the same
digest (bridgeml's tensor hash of a 3x224x224 float32 array) with Python's
hashlib (OpenSSL) over numpy's bytes, and the digest itself so both sides can
be checked equal."""
import hashlib
import time

import numpy as np

a = ((np.arange(3 * 224 * 224) % 1000) * 0.25 - 7).astype("<f4").reshape(3, 224, 224)
header = b"bridgeml-tensor-v1\nfloat32\n3,224,224\n"


def digest(x):
    h = hashlib.sha256(header)
    h.update(x.tobytes())
    return "sha256:" + h.hexdigest()


for name, x in [("contiguous", a), ("strided", a.transpose(0, 2, 1))]:
    n = 300
    digest(x)
    t = time.perf_counter()
    for _ in range(n):
        d = digest(x)
    ms = (time.perf_counter() - t) * 1000 / n
    print(f"hashlib {name}: {ms:.3f} ms per tensor ({d})")
