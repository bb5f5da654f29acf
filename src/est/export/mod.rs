//! Plan and checkpoint to a model that runs without est: `model.onnx` (the preprocessing, the
//! model and the head in one ONNX graph), `signature.json` (every input and output and how to
//! feed it) and a README. Building is pure; `write` puts the files in a temporary folder and
//! renames it into place, so an export is whole or absent.

mod build;
pub mod featurize;
mod graph;
mod onnx;
mod readme;
pub mod signature;

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use prost::Message;

pub use readme::HASH_PYTHON;
pub use signature::Signature;

use crate::checkpoint::{Entry, HostTensor};
use crate::data::Table;
use crate::plan::Plan;

/// The ONNX standard opset the graph uses.
pub const OPSET: i64 = 17;
/// The `ai.onnx.ml` opset, for `LabelEncoder` (version 2 of it).
pub const ML_OPSET: i64 = 3;
/// The ONNX IR version that goes with these opsets.
const IR_VERSION: i64 = 8;
/// Protobuf refuses messages from 2 GiB on; larger models need ONNX's external data.
const PROTOBUF_LIMIT: u64 = (1 << 31) - 1;

/// The files of an export.
#[derive(Debug)]
pub struct Export {
    /// `model.onnx`.
    pub model: Vec<u8>,
    /// `signature.json`.
    pub signature: Signature,
    /// `README.md`.
    pub readme: String,
}

/// What stops an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The checkpoint lacks a variable the plan has.
    #[error("the checkpoint has no tensor `{0}` that the plan needs")]
    MissingTensor(String),
    /// A variable's shape is not the plan's.
    #[error("the checkpoint's `{name}` is {found:?}, but the plan makes it {expected:?}")]
    WrongShape {
        /// The variable.
        name: String,
        /// In the checkpoint.
        found: Vec<usize>,
        /// In the plan.
        expected: Vec<usize>,
    },
    /// Two inputs, or an input and an output, would share a name.
    #[error("two of the model's inputs or outputs would be named `{0}`: rename the data column or the feature")]
    NameClash(String),
    /// The weights do not fit in one ONNX file.
    #[error(
        "the model's weights take {bytes} bytes, past protobuf's 2 GiB limit on one ONNX file; \
         est does not write ONNX external data yet"
    )]
    TooLarge {
        /// Bytes of weights.
        bytes: u64,
    },
    /// `--out` holds files already.
    #[error("`{0}` exists and is not empty: choose another --out, or remove it")]
    NotEmpty(Utf8PathBuf),
    /// `--out` is a file.
    #[error("`{0}` exists and is not a folder")]
    NotAFolder(Utf8PathBuf),
    /// A file could not be written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// To what.
        path: Utf8PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The plan and the graph disagree: a bug, never the user's doing.
    #[error("{0}: this is a bug in est; please report it with the .est file")]
    Bug(String),
    /// The README template failed.
    #[error("cannot render the README: {0}")]
    Readme(#[from] minijinja::Error),
}

/// The export of `entry`'s `tensors`, trained with `plan`. The README's snippet is fed the first
/// row of `example`, when there is one.
pub fn export(
    plan: &Plan,
    entry: &Entry,
    tensors: &BTreeMap<String, HostTensor>,
    example: Option<&Table>,
) -> Result<Export, ExportError> {
    // Refused before a tensor is copied: the plan knows every variable's size.
    let bytes: u64 = plan.model.variables.iter().map(|v| 4 * v.shape.iter().product::<u64>()).sum();
    if bytes >= PROTOBUF_LIMIT {
        return Err(ExportError::TooLarge { bytes });
    }
    let inputs = signature::inputs(plan)?;
    let outputs = signature::outputs(plan);
    let graph = build::graph(plan, tensors, &inputs, &outputs)?;
    if graph.weight_bytes() >= PROTOBUF_LIMIT {
        return Err(ExportError::TooLarge { bytes: graph.weight_bytes() });
    }
    let uses_ml = graph.uses_ml;
    let doc = format!("est pipeline `{}` at global step {}", plan.pipeline, entry.step);
    let signature = Signature {
        format: "est-export/1".into(),
        pipeline: plan.pipeline.clone(),
        global_step: entry.step,
        checkpoint: entry.file.clone(),
        checkpoint_sha256: entry.sha256.clone(),
        fingerprint: entry.fingerprint.clone(),
        opset: signature::Opsets { onnx: OPSET, ml: uses_ml.then_some(ML_OPSET) },
        missing: plan.data.missing.clone(),
        inputs,
        outputs,
    };
    let mut opset_import = vec![onnx::OperatorSetIdProto { domain: String::new(), version: OPSET }];
    if uses_ml {
        opset_import.push(onnx::OperatorSetIdProto { domain: graph::ML.into(), version: ML_OPSET });
    }
    let props = [
        ("pipeline", plan.pipeline.clone()),
        ("global_step", entry.step.to_string()),
        ("checkpoint", entry.file.clone()),
        ("checkpoint_sha256", entry.sha256.clone()),
        ("model_fingerprint", entry.fingerprint.model.clone()),
        ("optimizer_fingerprint", entry.fingerprint.optimizer.clone()),
        ("est_version", env!("CARGO_PKG_VERSION").to_string()),
    ];
    let model = onnx::ModelProto {
        ir_version: IR_VERSION,
        opset_import,
        producer_name: "est".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: String::new(),
        model_version: entry.step as i64,
        doc_string: doc.clone(),
        graph: Some(graph.finish(&plan.pipeline, doc)),
        metadata_props: props
            .into_iter()
            .map(|(key, value)| onnx::StringStringEntryProto { key: key.into(), value })
            .collect(),
    };
    let readme = readme::render(&signature, example)?;
    Ok(Export { model: model.encode_to_vec(), signature, readme })
}

/// Writes the export's files into `out`, which must not exist or be an empty folder: first into
/// a temporary folder beside it, then renamed into place.
pub fn write(export: &Export, out: &Utf8Path) -> Result<(), ExportError> {
    let io = |action, path: &Utf8Path| {
        let path = path.to_owned();
        move |source| ExportError::Io { action, path, source }
    };
    match std::fs::metadata(out) {
        Ok(m) if !m.is_dir() => return Err(ExportError::NotAFolder(out.to_owned())),
        Ok(_) => {
            if std::fs::read_dir(out).map_err(io("list", out))?.next().is_some() {
                return Err(ExportError::NotEmpty(out.to_owned()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("read", out)(e)),
    }
    let parent = match out.parent() {
        Some(p) if !p.as_str().is_empty() => p.to_owned(),
        _ => Utf8PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
    let name = out.file_name().unwrap_or("export");
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        std::fs::create_dir_all(&tmp).map_err(io("create", &tmp))?;
        let signature = serde_json::to_string_pretty(&export.signature).map_err(|e| io("encode", &tmp)(e.into()))?;
        let signature = format!("{signature}\n");
        let files: [(&str, &[u8]); 3] = [
            ("model.onnx", &export.model),
            ("signature.json", signature.as_bytes()),
            ("README.md", export.readme.as_bytes()),
        ];
        for (file, bytes) in files {
            // Named where it was going: the temporary folder is gone after a failure.
            crate::checkpoint::atomic::write(&tmp.join(file), bytes).map_err(io("write", &out.join(file)))?;
        }
        if out.exists() {
            std::fs::remove_dir(out).map_err(io("replace", out))?;
        }
        std::fs::rename(&tmp, out).map_err(io("rename into", out))?;
        crate::checkpoint::atomic::sync_dir(&parent).map_err(io("sync", &parent))
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written
}
