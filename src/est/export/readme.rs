//! The README an export carries: how to run the model with onnxruntime in five lines, fed a real
//! row of the pipeline's data, what each input and output is, and est's hash in Python for the
//! inputs that take ids.

use minijinja::{context, Environment};

use super::signature::{Dim, Feed, Input, Signature};
use crate::data::Table;

/// est's hash (`data::hash`) in Python, for callers that compute ids themselves.
pub const HASH_PYTHON: &str = r#"MASK = (1 << 64) - 1
def hash64(data: bytes) -> int:  # FNV-1a 64, then SplitMix64's finaliser
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & MASK
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & MASK
    return h ^ (h >> 31)
def bucket(value: str, buckets: int) -> int:  # hash_buckets, oov_buckets
    return hash64(value.encode("utf-8")) % buckets
def cross(ids: list, buckets: int) -> int:  # a crossed column: its sources' ids, in order
    return hash64(b"".join(i.to_bytes(8, "little", signed=True) for i in ids)) % buckets
"#;

const TEMPLATE: &str = include_str!("README.md.jinja");

/// The README for `signature`, its snippet fed row 0 of `example` when there is one.
pub fn render(signature: &Signature, example: Option<&Table>) -> Result<String, minijinja::Error> {
    let feeds: Vec<String> =
        signature.inputs.iter().map(|i| format!("{}: {}", json(&i.name), python_value(i, example))).collect();
    let shape = |dims: &[Dim]| {
        dims.iter()
            .map(|d| match d {
                Dim::Fixed(n) => n.to_string(),
                Dim::Named(s) => s.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let inputs: Vec<_> = signature
        .inputs
        .iter()
        .map(|i| context! { name => i.name, elem => i.elem, shape => shape(&i.shape), how => i.how })
        .collect();
    let outputs: Vec<_> = signature
        .outputs
        .iter()
        .map(|o| context! { name => o.name, elem => o.elem, shape => shape(&o.shape), how => o.how })
        .collect();
    let ids: Vec<&str> =
        signature.inputs.iter().filter(|i| matches!(i.feed, Feed::Ids { .. })).map(|i| i.name.as_str()).collect();
    let first = signature.outputs.iter().find(|o| o.name == "probabilities").unwrap_or(&signature.outputs[0]);
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_template("README.md", TEMPLATE)?;
    env.get_template("README.md")?.render(context! {
        s => signature,
        feeds => format!("{{{}}}", feeds.join(", ")),
        shown => first.name,
        inputs => inputs,
        outputs => outputs,
        ids => ids,
        hash => HASH_PYTHON,
        version => env!("CARGO_PKG_VERSION"),
    })
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// Input `input` for one row, as a numpy expression: row 0 of `table`, or a placeholder.
fn python_value(input: &Input, table: Option<&Table>) -> String {
    let feature = input.features.first().map(String::as_str).unwrap_or("");
    let row_ids = |t: &Table| -> Option<Vec<i64>> {
        let c = t.ids.get(feature)?;
        Some(c.ids.get(..c.width)?.iter().copied().filter(|&id| id >= 0).collect())
    };
    let longs = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    match &input.feed {
        Feed::Numbers { shape, .. } => {
            let values = table
                .and_then(|t| t.numeric.values_of(feature))
                .and_then(|v| v.get(..*shape).map(<[f32]>::to_vec))
                .unwrap_or_else(|| vec![0.0; *shape]);
            let values: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
            format!("np.array([[{}]], np.float32)", values.join(", "))
        }
        Feed::Vocabulary { vocabulary } => {
            let value = match table.and_then(row_ids) {
                Some(ids) => ids.first().and_then(|&id| vocabulary.get(id as usize)).cloned().unwrap_or_default(),
                None => vocabulary.first().cloned().unwrap_or_default(),
            };
            format!("np.array([[{}]], object)", json(&value))
        }
        Feed::Identity { .. } => {
            let id = table.and_then(row_ids).and_then(|ids| ids.first().copied()).unwrap_or(0);
            format!("np.array([[{id}]], np.int64)")
        }
        Feed::Ids { .. } => {
            let mut ids = table.and_then(row_ids).unwrap_or_default();
            if ids.is_empty() {
                ids.push(-1);
            }
            format!("np.array([[{}]], np.int64)", longs(&ids))
        }
        Feed::Rows => "np.zeros(1, np.int64)".into(),
    }
}
