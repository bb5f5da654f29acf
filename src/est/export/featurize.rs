//! The ids an exported model takes as inputs, from a table read as `est predict` reads it: one
//! JSON object per row, each id input's name mapped to its ids (no padding), so any caller can
//! feed the hashed, crossed, out-of-vocabulary and multivalent columns.

use std::io::Write;

use super::signature::{self, Feed};
use super::ExportError;
use crate::data::Table;
use crate::plan::Plan;

/// Writes each row's ids as a JSON line.
pub fn write(plan: &Plan, table: &Table, out: &mut dyn Write) -> Result<(), ExportError> {
    let inputs = signature::inputs(plan)?;
    let columns: Vec<(String, Option<&crate::data::IdColumn>)> = inputs
        .iter()
        .filter_map(|i| match &i.feed {
            Feed::Ids { feature, .. } => Some((json(&i.name), table.ids.get(feature))),
            _ => None,
        })
        .collect();
    let io = |source| ExportError::Io { action: "write", path: "standard output".into(), source };
    let mut line = String::new();
    for row in 0..table.rows {
        line.clear();
        line.push('{');
        for (k, (key, column)) in columns.iter().enumerate() {
            if k > 0 {
                line.push(',');
            }
            line.push_str(key);
            line.push_str(":[");
            if let Some(c) = column {
                let ids = c.ids[row * c.width..(row + 1) * c.width].iter().filter(|&&id| id >= 0);
                for (j, id) in ids.enumerate() {
                    if j > 0 {
                        line.push(',');
                    }
                    line.push_str(&id.to_string());
                }
            }
            line.push(']');
        }
        line.push_str("}\n");
        out.write_all(line.as_bytes()).map_err(io)?;
    }
    out.flush().map_err(io)
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}
