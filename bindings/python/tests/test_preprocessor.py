"""bridgeml.Preprocessor: byte-identical to `bridgeml preprocess`, equal to the
torchvision-style Pillow pipeline, batch/until/hash, errors, GIL release.

Run from the repository root after `pip install ./bindings/python`:

    BRIDGEML_BIN=target/debug/bridgeml python -m pytest bindings/python/tests

Tests that compare with the command line need the `bridgeml` binary
(`cargo build -p bridgeml-cli`): $BRIDGEML_BIN, else
$CARGO_TARGET_DIR/{release,debug}/bridgeml, else target/{release,debug}/bridgeml;
they are skipped, saying so, when it is absent.
"""

import hashlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import bridgeml

ROOT = Path(__file__).resolve().parents[3]
PHOTOS = sorted((ROOT / "tests" / "fixtures" / "images").glob("*.[pj][np]g"))
PIL_SPEC = ROOT / "examples" / "specs" / "imagenet_pil.toml"
CV_SPEC = ROOT / "examples" / "specs" / "imagenet_opencv.toml"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def find_bin():
    env = os.environ.get("BRIDGEML_BIN")
    if env:
        return Path(env) if Path(env).is_file() else None
    dirs = []
    if os.environ.get("CARGO_TARGET_DIR"):
        dirs.append(Path(os.environ["CARGO_TARGET_DIR"]))
    dirs.append(ROOT / "target")
    for d in dirs:
        for profile in ("release", "debug"):
            p = d / profile / "bridgeml"
            if p.is_file():
                return p
    return None


BIN = find_bin()
needs_cli = pytest.mark.skipif(
    BIN is None,
    reason="bridgeml CLI binary not found: build it with `cargo build -p bridgeml-cli` "
           "and/or set BRIDGEML_BIN=/path/to/bridgeml",
)


def cli(*args, check=True):
    r = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"bridgeml {args} -> {r.returncode}\n{r.stderr}")
    return r


def cli_preprocess(tmp_path, spec, inputs, until=None):
    out = tmp_path / "out.npy"
    args = ["preprocess", "--spec", spec, "--input", *inputs, "--output", out]
    if until is not None:
        args += ["--until", until]
    cli(*args)
    return np.load(out)


def same_bytes(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, a.shape, b.dtype, b.shape)
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def pil_pipeline(path):
    """torchvision Resize(256) + CenterCrop(224) + ToTensor + Normalize, written with Pillow."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w <= h:
        size = (256, int(256 * h / w))
    else:
        size = (int(256 * w / h), 256)
    if size != img.size:
        img = img.resize(size, Image.BILINEAR)
    a = np.asarray(img)
    top = int(round((a.shape[0] - 224) / 2.0))
    left = int(round((a.shape[1] - 224) / 2.0))
    a = a[top:top + 224, left:left + 224]
    x = a.astype(np.float32) / np.float32(255)
    return np.ascontiguousarray(((x - MEAN) / STD).transpose(2, 0, 1))


def decoded_rgb(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def pre():
    return bridgeml.Preprocessor(str(PIL_SPEC))


def test_fixture_photos_present():
    assert {p.name for p in PHOTOS} == {"chelsea.png", "china.jpg", "coffee.png", "flower.jpg"}


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.name)
def test_equals_pillow_pipeline(pre, photo):
    pytest.importorskip("PIL")
    same_bytes(pre(str(photo)), pil_pipeline(photo))


def test_equals_committed_numpy_dump(pre):
    ref = np.load(ROOT / "tests/fixtures/pipeline/pil/china.npy")
    same_bytes(pre(str(ROOT / "tests/fixtures/images/china.jpg")), ref)
    cv = bridgeml.Preprocessor(str(CV_SPEC))
    ref = np.load(ROOT / "tests/fixtures/pipeline/opencv/china.npy")
    same_bytes(cv(str(ROOT / "tests/fixtures/images/china.jpg")), ref)


@needs_cli
@pytest.mark.parametrize("spec", [PIL_SPEC, CV_SPEC], ids=["pil", "opencv"])
@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.name)
def test_path_bytes_array_equal_cli(tmp_path, spec, photo):
    pre = bridgeml.Preprocessor(str(spec))
    expected = cli_preprocess(tmp_path, spec, [photo])
    same_bytes(pre(str(photo)), expected)
    same_bytes(pre(photo), expected)  # os.PathLike
    same_bytes(pre(photo.read_bytes()), expected)
    rgb = cli_preprocess(tmp_path, spec, [photo], until="decode")
    same_bytes(pre(rgb), expected)
    same_bytes(pre(np.ascontiguousarray(rgb[..., ::-1]), array_color="bgr"), expected)
    same_bytes(pre(rgb[..., ::-1][..., ::-1]), expected)  # non-contiguous view


@needs_cli
@pytest.mark.parametrize("until", ["decode", "0", "resize_shorter", "1", "center_crop",
                                   "to_float", "normalize", "4"])
def test_until_equals_cli(tmp_path, pre, until):
    photo = ROOT / "tests/fixtures/images/flower.jpg"
    expected = cli_preprocess(tmp_path, PIL_SPEC, [photo], until=until)
    got = pre(str(photo), until=until)
    same_bytes(got, expected)
    if until in ("decode", "0", "resize_shorter", "1", "center_crop"):
        assert got.dtype == np.uint8 and got.ndim == 3 and got.shape[2] == 3


def test_until_decode_equals_pillow(pre):
    pytest.importorskip("PIL")
    for photo in PHOTOS:
        same_bytes(pre(str(photo), until="decode"), decoded_rgb(photo))


@needs_cli
def test_batch_stacks_like_cli(tmp_path, pre):
    paths = [str(p) for p in PHOTOS]
    expected = cli_preprocess(tmp_path, PIL_SPEC, PHOTOS)
    got = pre.batch(paths)
    assert got.shape == (4, 3, 224, 224)
    same_bytes(got, expected)
    mixed = [paths[0], PHOTOS[1].read_bytes(), pre(paths[2], until="decode"), Path(paths[3])]
    same_bytes(pre.batch(mixed), expected)
    same_bytes(pre.batch(paths, until="center_crop"),
               cli_preprocess(tmp_path, PIL_SPEC, PHOTOS, until="center_crop"))


def test_batch_items_equal_single_calls(pre):
    got = pre.batch([str(p) for p in PHOTOS])
    for item, p in zip(got, PHOTOS):
        same_bytes(item, pre(str(p)))


def content_hash(a):
    h = hashlib.sha256(b"bridgeml-tensor-v1\n")
    h.update(str(a.dtype).encode() + b"\n")
    h.update(",".join(map(str, a.shape)).encode() + b"\n")
    h.update(np.ascontiguousarray(a).tobytes())
    return "sha256:" + h.hexdigest()


@needs_cli
def test_hash_equals_cli_hash(pre):
    r = cli("hash", "--spec", PIL_SPEC, "--format", "json", "--input", *PHOTOS)
    report = json.loads(r.stdout)
    assert report["spec_fingerprint"] == pre.fingerprint
    for row, photo in zip(report["results"], PHOTOS):
        assert pre.hash(str(photo)) == row["input_hash"]
        assert pre.hash(photo.read_bytes()) == row["input_hash"]
        out = pre(str(photo))
        assert bridgeml.tensor_hash(out) == row["input_hash"]
        assert content_hash(out) == row["input_hash"]
    assert cli("spec", "hash", PIL_SPEC).stdout.strip() == pre.fingerprint


def test_tensor_hash_of_uint8_and_float(pre):
    a = pre(str(PHOTOS[0]), until="decode")
    assert bridgeml.tensor_hash(a) == content_hash(a)
    with pytest.raises(bridgeml.PreprocessError):
        bridgeml.tensor_hash(np.zeros(3, dtype=np.int64))


def test_fingerprint_and_repr(pre):
    assert pre.fingerprint.startswith("sha256:") and len(pre.fingerprint) == 71
    assert pre.fingerprint in repr(pre)
    assert bridgeml.Preprocessor(str(CV_SPEC)).fingerprint != pre.fingerprint


def test_bad_files_raise_with_engine_message(pre, tmp_path):
    china = (ROOT / "tests/fixtures/images/china.jpg").read_bytes()
    cases = {
        "truncated.jpg": china[: len(china) // 2],
        "empty.png": b"",
        "notes.jpg": b"this is not an image",
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(bridgeml.PreprocessError) as e:
            pre(str(p))
        assert name in str(e.value)
        with pytest.raises(bridgeml.PreprocessError) as e:
            pre(data)
        assert "<bytes>" in str(e.value)
    with pytest.raises(bridgeml.PreprocessError, match="truncated"):
        pre(china[: len(china) // 2])
    with pytest.raises(bridgeml.PreprocessError, match="absent.jpg"):
        pre(str(tmp_path / "absent.jpg"))
    with pytest.raises(bridgeml.PreprocessError, match="notes.jpg"):
        pre.batch([str(PHOTOS[0]), str(tmp_path / "notes.jpg")])
    with pytest.raises(bridgeml.PreprocessError, match="--until"):
        pre(str(PHOTOS[0]), until="crop")
    assert issubclass(bridgeml.PreprocessError, ValueError)


@pytest.mark.parametrize("edit,needle", [
    (("center_crop", "centre_crop"), "centre_crop"),
    (("size = 256", "size = -1"), "size must be positive"),
    (("0.225]", "0.0]"), "std must be finite and non-zero"),
    (("mean = [0.485, 0.456, 0.406]", "mean = [0.5]"), "mean has 1 values"),
    (("filter = \"bilinear\"", "filter = \"area\""), "not available"),
    (("size = 256", "size = 256\nsmooth = 1"), "smooth"),
])
def test_bad_spec_raises_with_engine_message(tmp_path, edit, needle):
    p = tmp_path / "bad.toml"
    p.write_text(PIL_SPEC.read_text().replace(*edit))
    with pytest.raises(bridgeml.PreprocessError) as e:
        bridgeml.Preprocessor(str(p))
    assert needle in str(e.value) and "bad.toml" in str(e.value)
    with pytest.raises(bridgeml.PreprocessError, match="missing.toml"):
        bridgeml.Preprocessor(str(tmp_path / "missing.toml"))


@needs_cli
def test_bad_spec_message_equals_cli_message(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(PIL_SPEC.read_text().replace("size = 256", "size = -1"))
    r = cli("spec", "hash", p, check=False)
    assert r.returncode == 2
    with pytest.raises(bridgeml.PreprocessError) as e:
        bridgeml.Preprocessor(str(p))
    assert r.stderr.strip() == f"error: {e.value}"


@pytest.mark.parametrize("array", [
    np.zeros((300, 300, 3), dtype=np.float32),
    np.zeros((300, 300, 3), dtype=np.int64),
    np.zeros((300, 300, 3), dtype=np.uint16),
    np.zeros((2, 300, 300, 3), dtype=np.uint8),
    np.zeros((300,), dtype=np.uint8),
    np.zeros((300, 300, 4), dtype=np.uint8),
    np.zeros((300, 300, 2), dtype=np.uint8),
    np.zeros((0, 300, 3), dtype=np.uint8),
], ids=["float32", "int64", "uint16", "4d", "1d", "rgba", "2ch", "empty"])
def test_wrong_array_dtype_or_shape_raises(pre, array):
    with pytest.raises(bridgeml.PreprocessError):
        pre(array)


def test_other_types_raise_type_error(pre):
    with pytest.raises(TypeError):
        pre(12345)
    with pytest.raises(bridgeml.PreprocessError):
        pre(str(PHOTOS[0]), array_color="hsv")
    with pytest.raises(bridgeml.PreprocessError):
        pre.batch([])


def test_gray_array_is_replicated_like_pillow(pre):
    gray = (np.arange(300 * 280) % 251).astype(np.uint8).reshape(300, 280)
    same_bytes(pre(gray), pre(np.repeat(gray[..., None], 3, axis=2)))


def test_gil_is_released_threads_overlap(pre):
    """Smoke test: calls from threads run concurrently and give identical results."""
    data = (ROOT / "tests/fixtures/images/china.jpg").read_bytes()
    expected = pre(data)
    n = 8
    t0 = time.perf_counter()
    for _ in range(n):
        pre(data)
    serial = time.perf_counter() - t0

    results, errors = [None] * n, []
    progress = []

    def work(i):
        try:
            results[i] = pre(data)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    def ticker(stop):
        # With the GIL held by a call, this Python thread could not tick.
        while not stop.is_set():
            progress.append(time.perf_counter())
            time.sleep(0.001)

    stop = threading.Event()
    tick = threading.Thread(target=ticker, args=(stop,))
    tick.start()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    threaded = time.perf_counter() - t0
    stop.set()
    tick.join()
    assert not errors, errors
    for r in results:
        same_bytes(r, expected)
    # the ticker kept running while the engine worked
    assert len(progress) >= max(3, int(threaded / 0.01)), (len(progress), threaded)
    print(f"serial {serial:.3f}s, {n} threads {threaded:.3f}s, ticks {len(progress)}")
