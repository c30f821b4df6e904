use std::io::Cursor;
use std::path::Path;

use ndarray::{ArrayD, Axis, IxDyn};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};
use sha2::{Digest, Sha256};

use crate::{CoreError, Result};

/// Element type of a [`Tensor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    U8,
    F32,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "uint8",
            DType::F32 => "float32",
        }
    }
}

/// A dense, C-ordered tensor of one of the two element types preprocessing
/// produces: `uint8` for image stages, `float32` after `to_float`.
#[derive(Debug, Clone, PartialEq)]
pub enum Tensor {
    U8(ArrayD<u8>),
    F32(ArrayD<f32>),
}

impl Tensor {
    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::U8(a) => a.shape(),
            Tensor::F32(a) => a.shape(),
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            Tensor::U8(_) => DType::U8,
            Tensor::F32(_) => DType::F32,
        }
    }

    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values as `f64`, in C order; used for comparisons between tensors of any dtype.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Tensor::U8(a) => a.iter().map(|&v| f64::from(v)).collect(),
            Tensor::F32(a) => a.iter().map(|&v| f64::from(v)).collect(),
        }
    }

    /// Values as an `f32` array (exact for `uint8`).
    pub fn to_f32(&self) -> ArrayD<f32> {
        match self {
            Tensor::U8(a) => a.mapv(f32::from),
            Tensor::F32(a) => a.clone(),
        }
    }

    /// Raw little-endian bytes in C order.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Tensor::U8(a) => a.iter().copied().collect(),
            Tensor::F32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// The content hash logged at serving time and printed by `bridgeml hash`.
    ///
    /// It covers dtype, shape and values (C order, little-endian), so two
    /// tensors hash equal exactly when `numpy.array_equal` and equal dtypes and
    /// shapes hold (bitwise for floats: `-0.0` and `0.0` differ).
    pub fn content_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"bridgeml-tensor-v1\n");
        hasher.update(self.dtype().name().as_bytes());
        hasher.update(b"\n");
        let dims: Vec<String> = self.shape().iter().map(|d| d.to_string()).collect();
        hasher.update(dims.join(",").as_bytes());
        hasher.update(b"\n");
        match self {
            Tensor::U8(a) => {
                let standard = a.as_standard_layout();
                match standard.as_slice() {
                    Some(s) => hasher.update(s),
                    None => hasher.update(standard.iter().copied().collect::<Vec<u8>>()),
                }
            }
            Tensor::F32(a) => {
                // The digest is over little-endian floats in C order. A
                // strided view is copied to C order first (as numpy's
                // `tobytes` does): iterating it float by float measured
                // 4.6 ms for 3x224x224, the copy and one `update` 0.45 ms.
                let standard = a.as_standard_layout();
                match standard.as_slice() {
                    // On a little-endian host the floats' memory is those
                    // bytes: one `update` (0.34 ms for 3x224x224, vs 0.48
                    // ms one float at a time).
                    Some(s) if cfg!(target_endian = "little") => {
                        hasher.update(bytemuck::cast_slice::<f32, u8>(s))
                    }
                    _ => {
                        for v in standard.iter() {
                            hasher.update(v.to_le_bytes());
                        }
                    }
                }
            }
        }
        format!(
            "{}{}",
            crate::fingerprint::PREFIX,
            hex::encode(hasher.finalize())
        )
    }

    /// Stacks equally shaped tensors along a new leading batch axis.
    pub fn stack(items: &[Tensor]) -> Result<Tensor> {
        let first = items
            .first()
            .ok_or_else(|| CoreError::Shape("cannot stack zero tensors".into()))?;
        for t in items {
            if t.dtype() != first.dtype() || t.shape() != first.shape() {
                return Err(CoreError::Shape(format!(
                    "cannot stack {} {:?} with {} {:?}",
                    first.dtype().name(),
                    first.shape(),
                    t.dtype().name(),
                    t.shape()
                )));
            }
        }
        let mut shape = vec![items.len()];
        shape.extend_from_slice(first.shape());
        Ok(match first {
            Tensor::U8(_) => {
                let mut data = Vec::with_capacity(shape.iter().product());
                for t in items {
                    if let Tensor::U8(a) = t {
                        data.extend(a.iter().copied());
                    }
                }
                Tensor::U8(ArrayD::from_shape_vec(IxDyn(&shape), data).expect("shape checked"))
            }
            Tensor::F32(_) => {
                let mut data = Vec::with_capacity(shape.iter().product());
                for t in items {
                    if let Tensor::F32(a) = t {
                        data.extend(a.iter().copied());
                    }
                }
                Tensor::F32(ArrayD::from_shape_vec(IxDyn(&shape), data).expect("shape checked"))
            }
        })
    }

    /// Splits off the leading axis: the inverse of [`Tensor::stack`].
    pub fn unstack(&self) -> Vec<Tensor> {
        match self {
            Tensor::U8(a) => a
                .axis_iter(Axis(0))
                .map(|v| Tensor::U8(v.to_owned()))
                .collect(),
            Tensor::F32(a) => a
                .axis_iter(Axis(0))
                .map(|v| Tensor::F32(v.to_owned()))
                .collect(),
        }
    }

    /// Serializes as `.npy` (version 1.0, C order, little-endian).
    pub fn to_npy_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let res = match self {
            Tensor::U8(a) => a.as_standard_layout().write_npy(&mut out),
            Tensor::F32(a) => a.as_standard_layout().write_npy(&mut out),
        };
        res.expect("writing npy to memory cannot fail");
        out
    }

    pub fn write_npy(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_npy_bytes()).map_err(|e| CoreError::io(path, e))
    }

    /// Reads a `.npy` file; `uint8` stays `uint8`, every other numeric dtype
    /// (float64, float16 excluded, integers, bool) is converted to `float32`.
    pub fn read_npy(path: &Path) -> Result<Tensor> {
        let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
        Self::from_npy_bytes(&bytes).map_err(|reason| CoreError::Npy {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub fn from_npy_bytes(bytes: &[u8]) -> std::result::Result<Tensor, String> {
        fn attempt<T: ndarray_npy::ReadableElement>(
            bytes: &[u8],
        ) -> std::result::Result<Option<ArrayD<T>>, String> {
            match ArrayD::<T>::read_npy(Cursor::new(bytes)) {
                Ok(a) => Ok(Some(a)),
                Err(ReadNpyError::WrongDescriptor(_)) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        }
        if let Some(a) = attempt::<u8>(bytes)? {
            return Ok(Tensor::U8(a));
        }
        if let Some(a) = attempt::<f32>(bytes)? {
            return Ok(Tensor::F32(a));
        }
        if let Some(a) = attempt::<f64>(bytes)? {
            return Ok(Tensor::F32(a.mapv(|v| v as f32)));
        }
        if let Some(a) = attempt::<i64>(bytes)? {
            return Ok(Tensor::F32(a.mapv(|v| v as f32)));
        }
        if let Some(a) = attempt::<i32>(bytes)? {
            return Ok(Tensor::F32(a.mapv(|v| v as f32)));
        }
        if let Some(a) = attempt::<i16>(bytes)? {
            return Ok(Tensor::F32(a.mapv(f32::from)));
        }
        if let Some(a) = attempt::<u16>(bytes)? {
            return Ok(Tensor::F32(a.mapv(f32::from)));
        }
        if let Some(a) = attempt::<i8>(bytes)? {
            return Ok(Tensor::F32(a.mapv(f32::from)));
        }
        if let Some(a) = attempt::<bool>(bytes)? {
            return Ok(Tensor::F32(a.mapv(|v| if v { 1.0 } else { 0.0 })));
        }
        Err("unsupported dtype (expected uint8, float32/64, or an integer type)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_keeps_dtype_shape_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npy");
        let t = Tensor::F32(
            ArrayD::from_shape_vec(vec![2, 3], vec![0.5, -1.0, 3.25, 1e-8, 7.0, f32::MAX]).unwrap(),
        );
        t.write_npy(&p).unwrap();
        let back = Tensor::read_npy(&p).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.content_hash(), t.content_hash());
    }

    #[test]
    fn content_hash_matches_hashlib() {
        // Python: sha256(b"bridgeml-tensor-v1\nfloat32\n" + b"2,3" + b"\n"
        //                + a.astype("<f4").tobytes()), hashlib and numpy.
        let small = Tensor::F32(
            ndarray::Array::from_shape_vec((2, 3), (0..6).map(|v| v as f32).collect())
                .unwrap()
                .into_dyn(),
        );
        assert_eq!(
            small.content_hash(),
            "sha256:ee5b74f7cab9ba2cb539ea08983e45f1a0c3057b935adf7f99bcef497672d951"
        );
        // 48 KiB of floats: more than one SHA-256 buffer's worth.
        let big = Tensor::F32(
            ndarray::Array::from_shape_vec(
                (3, 64, 64),
                (0..3 * 64 * 64).map(|v| v as f32 * 0.5).collect(),
            )
            .unwrap()
            .into_dyn(),
        );
        assert_eq!(
            big.content_hash(),
            "sha256:632cffeb373f09d2bb44852eb09f42f252b19153b83ff358f71b5bff0a57923c"
        );
    }

    #[test]
    fn content_hash_of_an_image_sized_tensor_and_of_a_strided_view() {
        // Python: a = ((arange(3*224*224) % 1000) * 0.25 - 7).astype("<f4")
        // .reshape(3, 224, 224); sha256(header + a.tobytes()) and the same
        // for ascontiguousarray(a.transpose(0, 2, 1)). 602,112 bytes: many
        // full hashing blocks and a partial last one.
        let a = ndarray::Array::from_shape_vec(
            (3, 224, 224),
            (0..3 * 224 * 224)
                .map(|i| (i % 1000) as f32 * 0.25 - 7.0)
                .collect(),
        )
        .unwrap()
        .into_dyn();
        assert_eq!(
            Tensor::F32(a.clone()).content_hash(),
            "sha256:caaa302bd6e9872da7db5ce6953435ee906781a17e3675835bd8732be5c2550b"
        );
        // A non-contiguous view hashes in logical C order, like numpy.
        let transposed = a.permuted_axes(vec![0, 2, 1]);
        assert!(transposed.as_slice().is_none());
        assert_eq!(
            Tensor::F32(transposed).content_hash(),
            "sha256:2eaa27220f750bfd4801e39a75a79d506054853e2e350bde0dce513698d623cd"
        );
    }

    #[test]
    fn hash_depends_on_shape_and_dtype_not_only_bytes() {
        let a = Tensor::U8(ArrayD::from_shape_vec(vec![2, 2], vec![1, 2, 3, 4]).unwrap());
        let b = Tensor::U8(ArrayD::from_shape_vec(vec![4], vec![1, 2, 3, 4]).unwrap());
        assert_ne!(a.content_hash(), b.content_hash());
        let c = Tensor::F32(a.to_f32());
        assert_ne!(a.content_hash(), c.content_hash());
    }

    #[test]
    fn stack_and_unstack_are_inverse() {
        let a = Tensor::U8(ArrayD::from_shape_vec(vec![1, 2], vec![1, 2]).unwrap());
        let b = Tensor::U8(ArrayD::from_shape_vec(vec![1, 2], vec![3, 4]).unwrap());
        let s = Tensor::stack(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(s.shape(), &[2, 1, 2]);
        assert_eq!(s.unstack(), vec![a, b]);
    }

    #[test]
    fn stack_rejects_mismatched_shapes() {
        let a = Tensor::U8(ArrayD::from_shape_vec(vec![2], vec![1, 2]).unwrap());
        let b = Tensor::U8(ArrayD::from_shape_vec(vec![3], vec![3, 4, 5]).unwrap());
        assert!(Tensor::stack(&[a, b]).is_err());
    }

    #[test]
    fn garbage_npy_is_an_error_not_a_panic() {
        assert!(Tensor::from_npy_bytes(b"not an npy file").is_err());
        assert!(Tensor::from_npy_bytes(b"").is_err());
    }
}
