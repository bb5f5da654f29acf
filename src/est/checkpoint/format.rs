//! One checkpoint file: safetensors, readable by Python's `safetensors` package, with est's
//! metadata (global step, data order, fingerprints, the full plan) under the `est` key of the
//! header. The header can be read without reading any tensor.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use camino::Utf8Path;
use safetensors::tensor::{Dtype, View};
use serde::{Deserialize, Serialize};

use crate::data::order::DataOrder;
use crate::plan::{Fingerprints, Plan};
use crate::stopping::StopState;

/// The header's `format` value; a checkpoint with another is refused.
pub const FORMAT: &str = "est-checkpoint/1";

/// A tensor copied off its device.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// F32 or I64.
    pub dtype: Dtype,
    /// Row-major dimensions.
    pub shape: Vec<usize>,
    /// Little-endian, row-major.
    pub bytes: Vec<u8>,
}

impl HostTensor {
    /// Float values of `shape`.
    pub fn f32(shape: Vec<usize>, values: &[f32]) -> HostTensor {
        HostTensor { dtype: Dtype::F32, shape, bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect() }
    }

    /// Integer values of `shape`.
    pub fn i64(shape: Vec<usize>, values: &[i64]) -> HostTensor {
        HostTensor { dtype: Dtype::I64, shape, bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect() }
    }

    /// The values, when they are floats.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        (self.dtype == Dtype::F32)
            .then(|| self.bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// What a checkpoint says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// `FORMAT`.
    pub format: String,
    /// Updates applied when it was saved.
    pub global_step: u64,
    /// Where the next batch starts.
    pub data_order: DataOrder,
    /// The plan's model and optimizer fingerprints.
    pub fingerprint: Fingerprints,
    /// Seconds since the Unix epoch.
    pub created: f64,
    /// The est that wrote it.
    pub est_version: String,
    /// The plan it was trained with, so a diff works when the old `.est` file is gone.
    pub plan: Plan,
    /// The global step of the last evaluation during training, so a resumed run evaluates at
    /// the steps one run would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluation: Option<u64>,
    /// Early stopping's state, so a resumed run stops where one run would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<StopState>,
}

/// Why bytes are not a checkpoint est can read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The safetensors library refused the bytes.
    #[error("not a safetensors file: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// The header's length is past any real header's.
    #[error("not a safetensors file: header of {0} bytes")]
    HeaderTooLong(u64),
    /// The file ends inside its header.
    #[error("not a safetensors file: truncated header")]
    Truncated,
    /// The header is not the JSON safetensors writes.
    #[error("not a safetensors file: {0}")]
    HeaderJson(#[source] serde_json::Error),
    /// The header has no `est` entry: safetensors, but not est's.
    #[error("no est metadata in the header")]
    NoMeta,
    /// The `est` entry does not read as est's metadata.
    #[error("unreadable est metadata: {0}")]
    BadMeta(#[source] serde_json::Error),
    /// The metadata names a format this est does not read.
    #[error("written in format `{0}`, which this est does not read")]
    UnknownFormat(String),
}

/// Where each tensor's bytes go in a checkpoint file, decided before any is written, so a
/// file can be written piece by piece from tensors that are still being copied.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The header's length and the header, as the safetensors library writes them.
    pub header: Vec<u8>,
    /// The tensors in the order their bytes follow the header, each with its length in bytes.
    pub order: Vec<(String, usize)>,
}

impl Layout {
    /// The file's length in bytes.
    pub fn file_len(&self) -> u64 {
        (self.header.len() + self.order.iter().map(|(_, n)| n).sum::<usize>()) as u64
    }
}

/// The layout of a checkpoint of tensors named, typed and shaped as `tensors` say: the one
/// `safetensors::serialize` makes (by falling alignment, then by name; the header padded to 8
/// bytes), so the file is byte for byte the library's.
pub fn layout<'a>(
    meta: &Meta,
    tensors: impl IntoIterator<Item = (&'a str, Dtype, &'a [usize])>,
) -> Result<Layout, FormatError> {
    let json = serde_json::to_string(meta).map_err(FormatError::BadMeta)?;
    let mut tensors: Vec<_> = tensors.into_iter().collect();
    tensors.sort_by(|(a, da, _), (b, db, _)| db.cmp(da).then(a.cmp(b)));
    let (mut infos, mut order, mut offset) = (Vec::new(), Vec::new(), 0);
    for (name, dtype, shape) in tensors {
        let n = shape.iter().product::<usize>() * dtype.bitsize() / 8;
        let info = safetensors::tensor::TensorInfo { dtype, shape: shape.to_vec(), data_offsets: (offset, offset + n) };
        offset += n;
        infos.push((name.to_string(), info));
        order.push((name.to_string(), n));
    }
    let metadata = safetensors::tensor::Metadata::new(Some(HashMap::from([("est".to_string(), json)])), infos)?;
    let mut text = serde_json::to_string(&metadata).map_err(FormatError::HeaderJson)?.into_bytes();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut header = (text.len() as u64).to_le_bytes().to_vec();
    header.extend_from_slice(&text);
    Ok(Layout { header, order })
}

/// The file's bytes for these tensors and this metadata.
pub fn encode(meta: &Meta, tensors: &BTreeMap<String, HostTensor>) -> Result<Vec<u8>, FormatError> {
    let layout = layout(meta, tensors.iter().map(|(k, v)| (k.as_str(), v.dtype, v.shape.as_slice())))?;
    let mut bytes = Vec::with_capacity(layout.file_len() as usize);
    bytes.extend_from_slice(&layout.header);
    for (name, _) in &layout.order {
        bytes.extend_from_slice(&tensors[name].bytes);
    }
    Ok(bytes)
}

/// Every tensor and the metadata.
pub fn decode(bytes: &[u8]) -> Result<(Meta, BTreeMap<String, HostTensor>), FormatError> {
    let st = safetensors::SafeTensors::deserialize(bytes)?;
    let meta = meta_from_header(bytes)?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        tensors.insert(
            name,
            HostTensor { dtype: view.dtype(), shape: view.shape().to_vec(), bytes: view.data().to_vec() },
        );
    }
    Ok((meta, tensors))
}

/// The metadata alone, reading only the header's bytes from the file.
pub fn read_meta(path: &Utf8Path) -> Result<Meta, FormatError> {
    let mut file = std::fs::File::open(path)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)?;
    let n = u64::from_le_bytes(len);
    if n > 100_000_000 {
        return Err(FormatError::HeaderTooLong(n));
    }
    let mut header = vec![0u8; n as usize + 8];
    header[..8].copy_from_slice(&len);
    file.read_exact(&mut header[8..])?;
    meta_from_header(&header)
}

fn meta_from_header(bytes: &[u8]) -> Result<Meta, FormatError> {
    let n = bytes.get(..8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
    let header = n.and_then(|n| bytes.get(8..8 + n as usize)).ok_or(FormatError::Truncated)?;
    #[derive(Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__")]
        metadata: Option<HashMap<String, String>>,
    }
    let parsed: Header = serde_json::from_slice(header).map_err(FormatError::HeaderJson)?;
    let json = parsed.metadata.and_then(|mut m| m.remove("est")).ok_or(FormatError::NoMeta)?;
    let value: serde_json::Value = serde_json::from_str(&json).map_err(FormatError::BadMeta)?;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != FORMAT {
        return Err(FormatError::UnknownFormat(format.to_string()));
    }
    serde_json::from_value(value).map_err(FormatError::BadMeta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source;

    fn meta() -> Meta {
        let root = crate::check::resolve(Utf8Path::new(env!("CARGO_MANIFEST_DIR")), "../..");
        let text = std::fs::read_to_string(root.join("pipelines/iris.est")).unwrap();
        let source = Source { path: root.join("pipelines/iris.est"), text };
        let plan = crate::compile(&source, &root.join("pipelines")).unwrap().plan;
        Meta {
            format: FORMAT.into(),
            global_step: 7,
            data_order: DataOrder::default(),
            fingerprint: plan.fingerprint.clone(),
            created: 1.5,
            est_version: "test".into(),
            plan,
            last_evaluation: None,
            early_stop: None,
        }
    }

    #[test]
    fn encode_writes_the_bytes_safetensors_writes() {
        let mut tensors = BTreeMap::new();
        tensors.insert("b/kernel".to_string(), HostTensor::f32(vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        tensors.insert("a/bias".to_string(), HostTensor::f32(vec![3], &[0.5, -0.5, 0.25]));
        tensors.insert("global_step".to_string(), HostTensor::i64(vec![], &[7]));
        tensors.insert("z/step".to_string(), HostTensor::i64(vec![], &[3]));
        let meta = meta();
        let json = serde_json::to_string(&meta).unwrap();
        let theirs =
            safetensors::tensor::serialize(tensors.iter(), Some(HashMap::from([("est".to_string(), json)]))).unwrap();
        let ours = encode(&meta, &tensors).unwrap();
        assert_eq!(ours, theirs);
        let (back_meta, back) = decode(&ours).unwrap();
        assert_eq!((back_meta, back), (meta, tensors));
    }
}
