//! Shared foundation of bridgeml: the [`Tensor`] type every stage exchanges,
//! content fingerprints, and file IO for `.npy`, CSV and Parquet.
//!
//! Every other bridgeml crate builds on these types, so a tensor hashed by the
//! Python bindings, the CLI and the server is hashed by the same code.
//!
//! ```
//! use bridgeml_core::Tensor;
//! use ndarray::ArrayD;
//!
//! let t = Tensor::U8(ArrayD::from_shape_vec(vec![2, 2, 1], vec![0, 1, 2, 3]).unwrap());
//! assert_eq!(t.shape(), &[2, 2, 1]);
//! assert!(t.content_hash().starts_with("sha256:"));
//! ```

mod error;
pub mod fingerprint;
pub mod table;
mod tensor;
pub mod time;

pub use error::{CoreError, Result};
pub use table::{Column, ColumnData, Table};
pub use tensor::{DType, Tensor};
