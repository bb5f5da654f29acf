//! A table's columns as device tensors, and batches gathered from them by row index. Every
//! numeric column lives in one normalised `[rows, width]` block, laid out in the plan's
//! `numeric_order`, so a batch of them is one gather and the DNN's numeric inputs are one slice of it.

use std::collections::BTreeMap;

use tch::{Device, Kind, Tensor};

use super::{blob, LowerError, Model};
use std::sync::Mutex;

use crate::crew::Crew;
use crate::memory::{slice, slice_mut, Element};
use est::data::{Labels, Table};
use est::pipeline::{FeatureKind, Normalize};

/// Typed columns on a device: the whole table, or one batch of it.
pub struct Inputs {
    /// Every numeric column, normalised, side by side.
    block: Option<Tensor>,
    /// Where each numeric column sits in `block`: offset and width.
    layout: BTreeMap<String, (i64, i64)>,
    ids: BTreeMap<String, Tensor>,
    /// Class ids (int64) or values (float), `[rows]`.
    pub labels: Option<Tensor>,
    /// Each example's weight (float, `[rows]`), when the pipeline weights them.
    pub weights: Option<Tensor>,
    /// Rows held.
    pub rows: i64,
}

impl Inputs {
    /// The table's columns, numeric ones normalised with the model's frozen statistics. Takes
    /// the table: its columns become CPU tensors without a copy (the numeric block normalised
    /// in place), and on another device are freed once copied there.
    pub fn from_table(table: Table, device: Device, model: &Model) -> Result<Inputs, LowerError> {
        let rows = table.rows as i64;
        let Table { numeric, ids: id_columns, labels, weights, .. } = table;
        let values = numeric.values;
        let width = numeric.width;
        let mut layout = BTreeMap::new();
        // Per element of a row: what to subtract and divide by (0 and 1 leave it as it is).
        let (mut shift, mut scale) = (vec![0f32; width], vec![1f32; width]);
        for column in &numeric.columns {
            let (s, c) = model.normalization(&column.name)?;
            shift[column.offset..column.offset + column.shape].fill(s);
            scale[column.offset..column.offset + column.shape].fill(c);
            layout.insert(column.name.clone(), (column.offset as i64, column.shape as i64));
        }
        let block = if width > 0 && !values.is_empty() {
            Some(blob::floats(normalized(values, &shift, &scale), &[rows, width as i64])?.f_to_device(device)?)
        } else {
            None
        };
        let mut ids = BTreeMap::new();
        for (name, column) in id_columns {
            ids.insert(name, blob::longs(column.ids, &[rows, column.width as i64])?.f_to_device(device)?);
        }
        let labels = match labels {
            Some(Labels::Classes(c)) => Some(blob::longs(c, &[rows])?.f_to_device(device)?),
            Some(Labels::Values(v)) => Some(blob::floats(v, &[rows])?.f_to_device(device)?),
            None => None,
        };
        let weights = weights.map(|w| blob::floats(w, &[rows])?.f_to_device(device)).transpose()?;
        Ok(Inputs { block, layout, ids, labels, weights, rows })
    }

    fn map(&self, rows: i64, f: impl Fn(&Tensor) -> Result<Tensor, tch::TchError>) -> Result<Inputs, LowerError> {
        let mut ids = BTreeMap::new();
        for (name, t) in &self.ids {
            ids.insert(name.clone(), f(t)?);
        }
        Ok(Inputs {
            block: self.block.as_ref().map(&f).transpose()?,
            layout: self.layout.clone(),
            ids,
            labels: self.labels.as_ref().map(&f).transpose()?,
            weights: self.weights.as_ref().map(&f).transpose()?,
            rows,
        })
    }

    /// The rows at `index` (int64, on the same device). On the CPU each column is copied in one
    /// pass, the columns shared out among the crew.
    pub fn gather(&self, index: &Tensor) -> Result<Inputs, LowerError> {
        // SAFETY: the index is a batch's slice of an epoch's order, which nothing writes.
        let Some(rows) = (unsafe { slice::<i64>(index) }) else {
            return self.map(index.size()[0], |t| t.f_index_select(0, index));
        };
        // Every column's fresh tensor first (or its index_select where the copy does not fit),
        // then the copies side by side, then the batch of them, in `map`'s order.
        let columns = self.columns();
        let outs: Vec<Result<Tensor, tch::TchError>> = columns
            .iter()
            .map(|t| match (t.kind(), fits(t, rows)) {
                (Kind::Float | Kind::Int64, true) => {
                    let mut shape = t.size();
                    shape[0] = rows.len() as i64;
                    Tensor::f_empty(&shape, (t.kind(), Device::Cpu))
                }
                _ => t.f_index_select(0, index),
            })
            .collect();
        let copies: Vec<Mutex<Copy>> = columns
            .iter()
            .zip(&outs)
            .filter(|(t, _)| fits(t, rows))
            .filter_map(|(t, out)| Some(Mutex::new(Copy::of(t, out.as_ref().ok()?)?)))
            .collect();
        Crew::shared().run(copies.len(), &|i| {
            if let Ok(mut copy) = copies[i].lock() {
                copy.run(rows);
            }
        })?;
        drop(copies);
        let outs = std::cell::RefCell::new(outs.into_iter());
        let gathered = self.map(index.size()[0], |_| {
            outs.borrow_mut().next().unwrap_or_else(|| Err(tch::TchError::Shape("a column without its batch".into())))
        })?;
        Ok(gathered)
    }

    /// Every tensor held, in the order `map` visits them.
    fn columns(&self) -> Vec<&Tensor> {
        let mut out: Vec<&Tensor> = self.ids.values().collect();
        out.extend(self.block.iter().chain(&self.labels).chain(&self.weights));
        out
    }

    /// Rows `start..end`, without copying.
    pub fn slice(&self, start: i64, end: i64) -> Result<Inputs, LowerError> {
        self.map(end - start, |t| t.f_slice(0, start, end, 1))
    }

    /// Numeric columns `names`, which are adjacent in the block, as one `[rows, width]` slice.
    pub fn numeric_run(&self, names: &[String]) -> Result<Tensor, LowerError> {
        let missing = || LowerError::MissingVariable(format!("column {}", names.join(", ")));
        let block = self.block.as_ref().ok_or_else(missing)?;
        let (first, _) = self.layout.get(names.first().ok_or_else(missing)?).ok_or_else(missing)?;
        let (last, width) = self.layout.get(names.last().ok_or_else(missing)?).ok_or_else(missing)?;
        let total = last + width - first;
        if total == block.size()[1] {
            return Ok(block.shallow_clone());
        }
        Ok(block.f_narrow(1, *first, total)?)
    }

    /// Numeric column `name`, `[rows, shape]`.
    pub fn numeric(&self, name: &str) -> Result<Tensor, LowerError> {
        self.numeric_run(&[name.to_string()])
    }

    /// Whether `b` directly follows `a` in the block.
    pub fn adjacent(&self, a: &str, b: &str) -> bool {
        match (self.layout.get(a), self.layout.get(b)) {
            (Some((oa, wa)), Some((ob, _))) => oa + wa == *ob,
            _ => false,
        }
    }

    /// The ids of column `name`, `[rows, width]`, `-1` for none.
    pub fn ids(&self, name: &str) -> Result<&Tensor, LowerError> {
        self.ids.get(name).ok_or_else(|| LowerError::MissingVariable(format!("column {name}")))
    }

    /// Labels as float, for losses that take them so.
    pub fn float_labels(&self) -> Result<Option<Tensor>, LowerError> {
        Ok(self.labels.as_ref().map(|l| l.f_to_kind(Kind::Float)).transpose()?)
    }
}

impl Model {
    /// `(shift, scale)` that normalise a numeric column: `(x - shift) / scale`.
    pub fn normalization(&self, name: &str) -> Result<(f32, f32), LowerError> {
        let normalize = self.features.iter().find(|f| f.feature.name == name).and_then(|f| match f.feature.kind {
            FeatureKind::Numeric { normalize, .. } => Some(normalize),
            _ => None,
        });
        let value = |stat: &str| -> Result<f32, LowerError> {
            Ok(self.param(&format!("normalization/{name}/{stat}"))?.f_double_value(&[0])? as f32)
        };
        match normalize {
            Some(Normalize::Zscore) if self.has_param(&format!("normalization/{name}/mean")) => {
                Ok((value("mean")?, value("std")?))
            }
            Some(Normalize::Minmax) if self.has_param(&format!("normalization/{name}/min")) => {
                let (min, max) = (value("min")?, value("max")?);
                Ok((min, max - min))
            }
            _ => Ok((0.0, 1.0)),
        }
    }
}

/// `(values - shift) / scale`, row by row, in place, split across the cores.
fn normalized(mut values: Vec<f32>, shift: &[f32], scale: &[f32]) -> Vec<f32> {
    let width = shift.len();
    if shift.iter().all(|&s| s == 0.0) && scale.iter().all(|&c| c == 1.0) {
        return values;
    }
    let rows = values.len() / width;
    let threads = est::data::cores().clamp(1, 8);
    let per = rows.div_ceil(threads).max(1) * width;
    std::thread::scope(|scope| {
        for part in values.chunks_mut(per) {
            scope.spawn(move || {
                for row in part.chunks_exact_mut(width) {
                    for ((x, &s), &c) in row.iter_mut().zip(shift).zip(scale) {
                        *x = (*x - s) / c;
                    }
                }
            });
        }
    });
    values
}

/// Whether rows `index` of `t` can be copied in one pass: a contiguous CPU tensor, the index
/// within its rows. Anything else is left to `index_select`, errors included.
fn fits(t: &Tensor, index: &[i64]) -> bool {
    let rows = t.size().first().copied().unwrap_or(0);
    t.device() == Device::Cpu && t.is_contiguous() && index.iter().all(|&r| r >= 0 && r < rows)
}

/// A column's rows to copy into a batch's fresh tensor, in one pass: `index_select` copies
/// each row with a call of its own, which for the narrow id columns of click data cost more
/// than the step's matrix products.
struct Rows<'a, T> {
    from: &'a [T],
    to: &'a mut [T],
    width: usize,
}

enum Copy<'a> {
    Float(Rows<'a, f32>),
    Long(Rows<'a, i64>),
}

impl<'a> Copy<'a> {
    /// The copy of rows of `from` into `to`, a fresh tensor of as many of its rows as the
    /// index has; `None` for another kind.
    fn of(from: &'a Tensor, to: &'a Tensor) -> Option<Copy<'a>> {
        match from.kind() {
            Kind::Float => Some(Copy::Float(Rows::of(from, to)?)),
            Kind::Int64 => Some(Copy::Long(Rows::of(from, to)?)),
            _ => None,
        }
    }

    fn run(&mut self, index: &[i64]) {
        match self {
            Copy::Float(c) => c.run(index),
            Copy::Long(c) => c.run(index),
        }
    }
}

impl<'a, T: Element> Rows<'a, T> {
    fn of(from: &'a Tensor, to: &'a Tensor) -> Option<Rows<'a, T>> {
        let rows = *from.size().first()?;
        // SAFETY: a table's column, which nothing writes while batches are gathered from it,
        // and a fresh tensor of the gather's own, which only this copy writes.
        let (from, to) = unsafe { (slice::<T>(from)?, slice_mut::<T>(to)?) };
        let width = if rows == 0 { 0 } else { from.len() / rows as usize };
        Some(Rows { from, to, width })
    }

    fn run(&mut self, index: &[i64]) {
        let (from, width) = (self.from, self.width);
        if width == 1 {
            for (o, &r) in self.to.iter_mut().zip(index) {
                *o = from[r as usize];
            }
        } else if width > 1 {
            for (o, &r) in self.to.chunks_exact_mut(width).zip(index) {
                o.copy_from_slice(&from[r as usize * width..][..width]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_pass_copy_gives_index_select_s_rows() {
        let index = [4i64, 0, 4, 2];
        let at = Tensor::from_slice(&index);
        let floats = Tensor::arange(15, (Kind::Float, Device::Cpu)).view([5, 3]);
        let narrow = Tensor::arange(5, (Kind::Int64, Device::Cpu)).view([5, 1]);
        let wide = Tensor::arange(10, (Kind::Int64, Device::Cpu)).view([5, 2]);
        for from in [&floats, &narrow, &wide] {
            assert!(fits(from, &index));
            let out = Tensor::empty([4, from.size()[1]], (from.kind(), Device::Cpu));
            Copy::of(from, &out).expect("a float or int64 tensor").run(&index);
            assert!(out.equal(&from.index_select(0, &at)));
        }
        // Anything else is left to index_select, which reports it.
        assert!(!fits(&narrow, &[5]));
        assert!(!fits(&narrow, &[-1]));
        assert!(!fits(&floats.tr(), &[0]));
        assert!(Copy::of(&narrow.to_kind(Kind::Int), &narrow).is_none());
    }
}
