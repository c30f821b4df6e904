//! The bridgeml preprocessing engine: one [`Spec`] file, one [`Pipeline`],
//! used by the CLI, the server and the Python bindings alike, bit-exact with
//! Pillow and OpenCV.
//!
//! ```
//! use bridgeml_preprocess::{Pipeline, Spec};
//!
//! let spec = Spec::from_toml_str(r#"
//! [input]
//! kind = "image"
//! [[steps]]
//! op = "resize"
//! height = 2
//! width = 2
//! filter = "box"
//! "#).unwrap();
//! assert_eq!(spec.steps[0].op(), "resize");
//! assert!(spec.fingerprint().starts_with("sha256:"));
//! let pipeline = Pipeline::new(spec).unwrap();
//! assert_eq!(pipeline.spec().steps.len(), 1);
//! ```

pub mod color;
pub mod decode;
mod engine;
mod error;
pub mod image;
pub mod parity;
pub mod resize;
pub mod spec;
pub mod tabular;

pub use engine::{shorter_side_size, Pipeline, Source, Stage};
pub use error::{PreprocessError, Result};
pub use image::ImageU8;
pub use spec::{Compat, Filter, Spec, Step};
