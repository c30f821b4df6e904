//! Python bindings over `bridgeml-preprocess`: `bridgeml.Preprocessor`.
//!
//! Inputs are file paths, encoded bytes or uint8 HWC numpy arrays; outputs are
//! numpy arrays that take ownership of the engine's buffers (no copy). The GIL
//! is released while the engine runs.

use std::path::PathBuf;

use bridgeml_core::Tensor;
use bridgeml_preprocess::spec::{Color, ENGINE_FORMAT_VERSION};
use bridgeml_preprocess::{ImageU8, Pipeline, PreprocessError as EngineError, Source};
use numpy::{IntoPyArray, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use rayon::prelude::*;

create_exception!(
    _bridgeml,
    PreprocessError,
    PyValueError,
    "Raised with the engine's message when a spec or an input is invalid."
);

fn to_py_err(e: EngineError) -> PyErr {
    PreprocessError::new_err(e.to_string())
}

/// An input, owned so the GIL can be released while the engine runs.
enum OwnedInput {
    Path(PathBuf),
    Bytes(Vec<u8>),
    Pixels(ImageU8),
}

fn extract_input(obj: &Bound<'_, PyAny>, array_color: Color) -> PyResult<OwnedInput> {
    let _ = array_color;
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(OwnedInput::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(arr) = obj.extract::<PyReadonlyArrayDyn<'_, u8>>() {
        let shape = arr.shape().to_vec();
        let (h, w, c) = match shape.as_slice() {
            [h, w] => (*h, *w, 1),
            [h, w, c] => (*h, *w, *c),
            _ => {
                return Err(PreprocessError::new_err(format!(
                    "<array>: expected a uint8 array of shape (H, W) or (H, W, C), got {shape:?}"
                )))
            }
        };
        let data: Vec<u8> = arr.as_array().iter().copied().collect();
        return Ok(OwnedInput::Pixels(ImageU8 {
            width: w,
            height: h,
            channels: c,
            data,
        }));
    }
    if obj.hasattr("__array_interface__")? || obj.hasattr("dtype")? {
        return Err(PreprocessError::new_err(
            "<array>: arrays must be numpy uint8 (H, W) or (H, W, C)",
        ));
    }
    if let Ok(p) = obj.extract::<PathBuf>() {
        return Ok(OwnedInput::Path(p));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(
        "expected a path (str or os.PathLike), bytes, or a numpy uint8 array",
    ))
}

fn run_one(
    pipeline: &Pipeline,
    input: &OwnedInput,
    until: Option<Option<usize>>,
    array_color: Color,
) -> Result<Tensor, EngineError> {
    match input {
        OwnedInput::Path(p) => pipeline.run_path_until(p, until),
        OwnedInput::Bytes(b) => pipeline.run_until(
            Source::Bytes {
                bytes: b,
                label: "<bytes>",
            },
            until,
        ),
        OwnedInput::Pixels(image) => pipeline.run_until(
            Source::Pixels {
                image,
                color: array_color,
                label: "<array>",
            },
            until,
        ),
    }
}

fn tensor_to_py(py: Python<'_>, t: Tensor) -> Py<PyAny> {
    match t {
        Tensor::U8(a) => a.into_pyarray(py).into_any().unbind(),
        Tensor::F32(a) => a.into_pyarray(py).into_any().unbind(),
    }
}

fn parse_color(color: &str) -> PyResult<Color> {
    match color {
        "rgb" => Ok(Color::Rgb),
        "bgr" => Ok(Color::Bgr),
        other => Err(PreprocessError::new_err(format!(
            "array_color must be \"rgb\" or \"bgr\", got {other:?}"
        ))),
    }
}

/// Preprocessor(spec_path)
///
/// Runs a bridgeml preprocessing spec. Call it on a path, encoded image bytes
/// or a uint8 (H, W[, C]) numpy array (RGB unless `array_color="bgr"`); it
/// returns a numpy array identical, byte for byte, to `bridgeml preprocess`.
#[pyclass(module = "bridgeml", frozen)]
struct Preprocessor {
    pipeline: Pipeline,
}

#[pymethods]
impl Preprocessor {
    #[new]
    fn new(spec_path: PathBuf) -> PyResult<Self> {
        Ok(Preprocessor {
            pipeline: Pipeline::from_path(&spec_path).map_err(to_py_err)?,
        })
    }

    /// The spec's fingerprint (`sha256:...`).
    #[getter]
    fn fingerprint(&self) -> String {
        self.pipeline.fingerprint().to_string()
    }

    /// __call__(input, until=None, array_color="rgb")
    ///
    /// `until`: stop after a step (0-based index, op name, or "decode").
    #[pyo3(signature = (input, until=None, array_color="rgb"))]
    fn __call__(
        &self,
        py: Python<'_>,
        input: &Bound<'_, PyAny>,
        until: Option<&str>,
        array_color: &str,
    ) -> PyResult<Py<PyAny>> {
        let color = parse_color(array_color)?;
        let owned = extract_input(input, color)?;
        let until = self.resolve_until(until)?;
        let pipeline = &self.pipeline;
        let tensor = py
            .detach(|| run_one(pipeline, &owned, until, color))
            .map_err(to_py_err)?;
        Ok(tensor_to_py(py, tensor))
    }

    /// batch(inputs, until=None, array_color="rgb")
    ///
    /// Preprocesses several inputs in parallel (all cores, GIL released) and
    /// stacks them along a new leading axis.
    #[pyo3(signature = (inputs, until=None, array_color="rgb"))]
    fn batch(
        &self,
        py: Python<'_>,
        inputs: &Bound<'_, PyList>,
        until: Option<&str>,
        array_color: &str,
    ) -> PyResult<Py<PyAny>> {
        let color = parse_color(array_color)?;
        let owned: Vec<OwnedInput> = inputs
            .iter()
            .map(|o| extract_input(&o, color))
            .collect::<PyResult<_>>()?;
        if owned.is_empty() {
            return Err(PreprocessError::new_err("batch() needs at least one input"));
        }
        let until = self.resolve_until(until)?;
        let pipeline = &self.pipeline;
        let stacked = py.detach(|| -> Result<Tensor, String> {
            let tensors: Vec<Tensor> = owned
                .par_iter()
                .map(|i| run_one(pipeline, i, until, color))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            Tensor::stack(&tensors).map_err(|e| e.to_string())
        });
        Ok(tensor_to_py(py, stacked.map_err(PreprocessError::new_err)?))
    }

    /// hash(input): the content hash of the preprocessed tensor (what the server logs).
    #[pyo3(signature = (input, array_color="rgb"))]
    fn hash(&self, py: Python<'_>, input: &Bound<'_, PyAny>, array_color: &str) -> PyResult<String> {
        let color = parse_color(array_color)?;
        let owned = extract_input(input, color)?;
        let pipeline = &self.pipeline;
        py.detach(|| run_one(pipeline, &owned, None, color).map(|t| t.content_hash()))
            .map_err(to_py_err)
    }

    fn __repr__(&self) -> String {
        format!("Preprocessor(fingerprint={:?})", self.pipeline.fingerprint())
    }
}

impl Preprocessor {
    fn resolve_until(&self, until: Option<&str>) -> PyResult<Option<Option<usize>>> {
        until
            .map(|u| self.pipeline.spec().resolve_until(u).map_err(to_py_err))
            .transpose()
    }
}

/// tensor_hash(array): bridgeml's content hash of a uint8 or float32 numpy array.
#[pyfunction]
fn tensor_hash(array: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(a) = array.extract::<PyReadonlyArrayDyn<'_, u8>>() {
        return Ok(Tensor::U8(a.as_array().to_owned()).content_hash());
    }
    if let Ok(a) = array.extract::<PyReadonlyArrayDyn<'_, f32>>() {
        return Ok(Tensor::F32(a.as_array().to_owned()).content_hash());
    }
    Err(PreprocessError::new_err("tensor_hash takes a uint8 or float32 numpy array"))
}

#[pymodule]
fn _bridgeml(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Preprocessor>()?;
    m.add_function(wrap_pyfunction!(tensor_hash, m)?)?;
    m.add("PreprocessError", m.py().get_type::<PreprocessError>())?;
    m.add("ENGINE_FORMAT_VERSION", ENGINE_FORMAT_VERSION)?;
    Ok(())
}
