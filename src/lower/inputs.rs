//! A table's columns as device tensors, and batches gathered from them by row index.

use std::collections::BTreeMap;

use tch::{Device, Kind, Tensor};

use super::LowerError;
use crate::data::{Labels, Table};

/// Typed columns on a device: the whole table, or one batch of it.
pub struct Inputs {
    numeric: BTreeMap<String, Tensor>,
    ids: BTreeMap<String, Tensor>,
    /// Class ids (int64) or values (float), `[rows]`.
    pub labels: Option<Tensor>,
    pub rows: i64,
}

impl Inputs {
    pub fn from_table(table: &Table, device: Device) -> Result<Inputs, LowerError> {
        let rows = table.rows as i64;
        let mut numeric = BTreeMap::new();
        for (name, column) in &table.numeric {
            let t = Tensor::f_from_slice(&column.values)?.f_view([rows, column.shape as i64])?.f_to_device(device)?;
            numeric.insert(name.clone(), t);
        }
        let mut ids = BTreeMap::new();
        for (name, column) in &table.ids {
            let t = Tensor::f_from_slice(&column.ids)?.f_view([rows, column.width as i64])?.f_to_device(device)?;
            ids.insert(name.clone(), t);
        }
        let labels = match &table.labels {
            Some(Labels::Classes(c)) => Some(Tensor::f_from_slice(c)?.f_to_device(device)?),
            Some(Labels::Values(v)) => Some(Tensor::f_from_slice(v)?.f_to_device(device)?),
            None => None,
        };
        Ok(Inputs { numeric, ids, labels, rows })
    }

    /// The rows at `index` (int64, on the same device).
    pub fn gather(&self, index: &Tensor) -> Result<Inputs, LowerError> {
        let pick = |t: &Tensor| t.f_index_select(0, index);
        let mut numeric = BTreeMap::new();
        for (name, t) in &self.numeric {
            numeric.insert(name.clone(), pick(t)?);
        }
        let mut ids = BTreeMap::new();
        for (name, t) in &self.ids {
            ids.insert(name.clone(), pick(t)?);
        }
        let labels = self.labels.as_ref().map(pick).transpose()?;
        Ok(Inputs { numeric, ids, labels, rows: index.size()[0] })
    }

    /// Rows `start..end`, without copying.
    pub fn slice(&self, start: i64, end: i64) -> Result<Inputs, LowerError> {
        let cut = |t: &Tensor| t.f_slice(0, start, end, 1);
        let mut numeric = BTreeMap::new();
        for (name, t) in &self.numeric {
            numeric.insert(name.clone(), cut(t)?);
        }
        let mut ids = BTreeMap::new();
        for (name, t) in &self.ids {
            ids.insert(name.clone(), cut(t)?);
        }
        let labels = self.labels.as_ref().map(cut).transpose()?;
        Ok(Inputs { numeric, ids, labels, rows: end - start })
    }

    pub fn numeric(&self, name: &str) -> Result<&Tensor, LowerError> {
        self.numeric.get(name).ok_or_else(|| LowerError::MissingVariable(format!("column {name}")))
    }

    pub fn ids(&self, name: &str) -> Result<&Tensor, LowerError> {
        self.ids.get(name).ok_or_else(|| LowerError::MissingVariable(format!("column {name}")))
    }

    /// Labels as float, for losses that take them so.
    pub fn float_labels(&self) -> Result<Option<Tensor>, LowerError> {
        Ok(self.labels.as_ref().map(|l| l.f_to_kind(Kind::Float)).transpose()?)
    }
}
