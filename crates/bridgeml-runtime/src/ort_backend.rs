//! The ONNX Runtime backend, through the `ort` crate with `load-dynamic`:
//! nothing is downloaded at build time; `libonnxruntime` is found at run time.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bridgeml_core::Tensor;
use ndarray::{ArrayD, IxDyn};
use ort::session::Session;
use ort::value::{DynValue, TensorRef};

use crate::backend::{Backend, BackendKind};
use crate::onnx::OnnxModel;
use crate::{Result, RuntimeError};

/// Where the ONNX Runtime library was found, and its version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrtLibrary {
    pub path: PathBuf,
    pub version: String,
}

struct OrtRuntime {
    env: ort::environment::Environment,
    library: OrtLibrary,
}

static ORT: OnceLock<std::result::Result<OrtRuntime, String>> = OnceLock::new();

fn lib_file_names() -> &'static [&'static str] {
    if cfg!(target_os = "windows") {
        &["onnxruntime.dll"]
    } else if cfg!(target_os = "macos") {
        &["libonnxruntime.dylib"]
    } else {
        &["libonnxruntime.so"]
    }
}

/// The library `ort` will load: `ORT_DYLIB_PATH` when set, else the one
/// shipped inside the `onnxruntime` Python package (located with
/// `python3 -c 'importlib.util.find_spec(...)'`, which does not import it).
pub fn find_ort_library() -> std::result::Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("ORT_DYLIB_PATH={} is not a file", p.display()))
        };
    }
    const PROBE: &str = "import importlib.util, os\n\
        s = importlib.util.find_spec('onnxruntime')\n\
        print(os.path.dirname(s.origin) if s and s.origin else '')";
    let mut tried = Vec::new();
    for python in ["python3", "python"] {
        let out = match std::process::Command::new(python)
            .args(["-c", PROBE])
            .stderr(std::process::Stdio::null())
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                tried.push(format!("{python}: {e}"));
                continue;
            }
        };
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if dir.is_empty() {
            tried.push(format!("{python}: no onnxruntime package"));
            continue;
        }
        if let Some(lib) = find_in_capi(&Path::new(&dir).join("capi")) {
            return Ok(lib);
        }
        tried.push(format!("{python}: no library under {dir}/capi"));
    }
    Err(format!(
        "ORT_DYLIB_PATH is unset and no onnxruntime Python package was found ({})",
        tried.join("; ")
    ))
}

fn find_in_capi(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| lib_file_names().iter().any(|base| n.starts_with(base)))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

fn version_from_build_info(info: &str, path: &Path) -> String {
    // "ORT Build Info: git-branch=rel-1.32.0, ..."
    if let Some(rest) = info.split("git-branch=rel-").nth(1) {
        let v: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        if !v.is_empty() {
            return v;
        }
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    for base in lib_file_names() {
        if let Some(v) = name.strip_prefix(base).and_then(|v| v.strip_prefix('.')) {
            if !v.is_empty() {
                return v.to_string();
            }
        }
    }
    "unknown".into()
}

fn runtime() -> std::result::Result<&'static OrtRuntime, String> {
    ORT.get_or_init(|| {
        let path = find_ort_library()?;
        let builder = ort::init_from(&path).map_err(|e| e.to_string())?;
        let env = builder
            .with_name("bridgeml")
            .with_telemetry(false)
            .build()
            .map_err(|e| format!("cannot create an ONNX Runtime environment: {e}"))?;
        let version = version_from_build_info(ort::info(), &path);
        Ok(OrtRuntime {
            env,
            library: OrtLibrary { path, version },
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Whether ONNX Runtime can be loaded on this machine (the library is found and loads).
pub fn ort_available() -> bool {
    runtime().is_ok()
}

/// The loaded ONNX Runtime library, or why it is unavailable.
pub fn ort_library() -> Result<OrtLibrary> {
    runtime()
        .map(|r| r.library.clone())
        .map_err(|reason| RuntimeError::OrtUnavailable { reason })
}

#[derive(Debug)]
pub(crate) struct OrtBackend {
    session: Session,
    input_name: String,
    outputs: Vec<String>,
    threads: usize,
    version: String,
}

fn err(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::backend(BackendKind::Ort, e)
}

impl OrtBackend {
    pub(crate) fn load(
        path: &Path,
        onnx: &OnnxModel,
        input_name: &str,
        outputs: &[String],
        extra: &[String],
        threads: usize,
    ) -> Result<Self> {
        let rt = runtime().map_err(|reason| RuntimeError::OrtUnavailable { reason })?;
        let builder = Session::builder(&rt.env)
            .map_err(err)?
            .with_intra_threads(threads)
            .map_err(err)?;
        let mut builder = builder;
        let session = if extra.is_empty() {
            builder.commit_from_file(path)
        } else {
            builder.commit_from_memory(&onnx.with_extra_outputs(extra))
        }
        .map_err(|e| RuntimeError::InvalidModel {
            path: path.to_path_buf(),
            reason: format!("ONNX Runtime cannot load it: {e}"),
        })?;
        Ok(OrtBackend {
            session,
            input_name: input_name.to_string(),
            outputs: outputs.to_vec(),
            threads,
            version: rt.library.version.clone(),
        })
    }
}

fn extract(v: &DynValue) -> Result<ArrayD<f32>> {
    fn build(shape: &[i64], data: Vec<f32>) -> Result<ArrayD<f32>> {
        let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        ArrayD::from_shape_vec(IxDyn(&dims), data).map_err(err)
    }
    if let Ok((s, d)) = v.try_extract_tensor::<f32>() {
        return build(s, d.to_vec());
    }
    if let Ok((s, d)) = v.try_extract_tensor::<i64>() {
        return build(s, d.iter().map(|&x| x as f32).collect());
    }
    if let Ok((s, d)) = v.try_extract_tensor::<f64>() {
        return build(s, d.iter().map(|&x| x as f32).collect());
    }
    if let Ok((s, d)) = v.try_extract_tensor::<i32>() {
        return build(s, d.iter().map(|&x| x as f32).collect());
    }
    if let Ok((s, d)) = v.try_extract_tensor::<u8>() {
        return build(s, d.iter().map(|&x| f32::from(x)).collect());
    }
    Err(err(format!(
        "output of type {:?} cannot be read as numbers",
        v.dtype()
    )))
}

impl Backend for OrtBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Ort
    }

    fn version(&self) -> String {
        self.version.clone()
    }

    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, input: &Tensor) -> Result<Vec<ArrayD<f32>>> {
        let shape: Vec<i64> = input.shape().iter().map(|&d| d as i64).collect();
        let outputs = match input {
            Tensor::F32(a) => {
                let a = a.as_standard_layout();
                let value = TensorRef::from_array_view((shape, a.as_slice().expect("standard")))
                    .map_err(err)?;
                self.session
                    .run(ort::inputs![self.input_name.as_str() => value])
                    .map_err(err)?
            }
            Tensor::U8(a) => {
                let a = a.as_standard_layout();
                let value = TensorRef::from_array_view((shape, a.as_slice().expect("standard")))
                    .map_err(err)?;
                self.session
                    .run(ort::inputs![self.input_name.as_str() => value])
                    .map_err(err)?
            }
        };
        self.outputs
            .iter()
            .map(|name| {
                let v = outputs
                    .get(name)
                    .ok_or_else(|| err(format!("output `{name}` missing from the results")))?;
                extract(v)
            })
            .collect()
    }
}
