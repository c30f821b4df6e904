"""bridgeml: the same preprocessing engine in the Python training loop and the Rust server.

>>> import bridgeml
>>> pre = bridgeml.Preprocessor("spec.toml")        # doctest: +SKIP
>>> x = pre("cat.jpg")                               # doctest: +SKIP
>>> batch = pre.batch(["a.jpg", "b.png"])            # doctest: +SKIP

Every computation runs in Rust (the `bridgeml-preprocess` crate); nothing is
reimplemented here, so ``Preprocessor(spec)(x)`` equals ``bridgeml preprocess``
byte for byte.
"""

from ._bridgeml import ENGINE_FORMAT_VERSION, PreprocessError, Preprocessor, tensor_hash

__all__ = ["ENGINE_FORMAT_VERSION", "PreprocessError", "Preprocessor", "tensor_hash"]
