//! Predictions per row, with the keys tf.estimator's `predict` yielded: `class_ids`, `classes`,
//! `probabilities`, `logits` (and `logistic` for binary classifiers); `predictions` for
//! regressors. Written as JSON lines or CSV.

use std::io::Write;

use est::pipeline::Files;
use serde::Serialize;
use tch::{Kind, Tensor};

use super::device::{configure_threads, device};
use super::{RunOptions, Session, TrainError};
use crate::lower::Inputs;
use est::checkpoint::Store;
use est::data::{self, Purpose};
use est::plan::{HeadKind, Plan};

/// One row's prediction, with tf.estimator's keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Prediction {
    /// A classifier's.
    Class {
        /// The predicted class's id.
        class_ids: [i64; 1],
        /// Its name from `label_vocabulary`, else the id.
        classes: [String; 1],
        /// The positive class's probability, for binary classifiers.
        #[serde(skip_serializing_if = "Option::is_none")]
        logistic: Option<[f32; 1]>,
        /// Each class's probability.
        probabilities: Vec<f32>,
        /// The head's logits.
        logits: Vec<f32>,
    },
    /// A regressor's.
    Value {
        /// The predicted value.
        predictions: [f32; 1],
    },
}

/// Restores the latest checkpoint and predicts every row of `input`; also returns warnings about
/// damaged newer checkpoints passed over.
pub fn run(plan: &Plan, opts: &RunOptions, input: &Files) -> Result<(Vec<Prediction>, Vec<String>), TrainError> {
    let dir = opts.model_dir(plan);
    let store = Store::new(&dir);
    let device = device(plan)?;
    let (session, _, mut warnings) =
        Session::restore(plan, &store, device, false, opts.checkpoint)?.ok_or(TrainError::NoCheckpoint { dir })?;
    let table = data::load(plan, input, Purpose::Unlabelled)?;
    // After reading, as in training: libtorch's threads would take the reader's cores.
    configure_threads(plan);
    // Predictions come one per row read, so a skipped row shifts every one after it.
    warnings.extend(table.skipped_note(input).map(|n| format!("{n}; there is no prediction for them")));
    let rows = table.rows;
    let inputs = Inputs::from_table(table, device, &session.model)?;
    let (logits, _) = super::evaluate::logits(&session.model, &inputs, plan.eval.batch_size, None)?;
    let host = |t: &Tensor| -> Result<Vec<f32>, TrainError> {
        let t = t.f_to_kind(Kind::Float)?.f_to_device(tch::Device::Cpu)?.f_contiguous()?;
        let mut out = vec![0.0; t.numel()];
        let n = out.len();
        t.f_copy_data(&mut out, n)?;
        Ok(out)
    };
    let width = plan.model.head.logits as usize;
    let raw = host(&logits)?;
    let name = |id: i64| -> String {
        plan.data.label_vocabulary.as_ref().and_then(|v| v.get(id as usize).cloned()).unwrap_or_else(|| id.to_string())
    };
    let mut out = Vec::with_capacity(rows);
    for row in raw.chunks(width) {
        out.push(match plan.model.head.kind {
            HeadKind::Regression => Prediction::Value { predictions: [row[0]] },
            HeadKind::Binary => {
                let p = 1.0 / (1.0 + (-row[0]).exp());
                let id = i64::from(p > 0.5);
                Prediction::Class {
                    class_ids: [id],
                    classes: [name(id)],
                    logistic: Some([p]),
                    probabilities: vec![1.0 - p, p],
                    logits: row.to_vec(),
                }
            }
            HeadKind::MultiClass => {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exps: Vec<f32> = row.iter().map(|l| (l - max).exp()).collect();
                let total: f32 = exps.iter().sum();
                let probabilities: Vec<f32> = exps.iter().map(|e| e / total).collect();
                let id = row.iter().enumerate().fold(0, |best, (i, l)| if *l > row[best] { i } else { best }) as i64;
                Prediction::Class {
                    class_ids: [id],
                    classes: [name(id)],
                    logistic: None,
                    probabilities,
                    logits: row.to_vec(),
                }
            }
        });
    }
    Ok((out, warnings))
}

/// `jsonl`: one JSON object per line. `csv`: a header, then one row per prediction.
pub fn write(predictions: &[Prediction], plan: &Plan, csv: bool, out: &mut dyn Write) -> std::io::Result<()> {
    if !csv {
        for p in predictions {
            serde_json::to_writer(&mut *out, p)?;
            out.write_all(b"\n")?;
        }
        return Ok(());
    }
    let classes: Vec<String> = match &plan.data.label_vocabulary {
        Some(v) => v.clone(),
        None => (0..plan.model.head.n_classes.unwrap_or(0)).map(|i| i.to_string()).collect(),
    };
    let mut w = csv::Writer::from_writer(out);
    match plan.model.head.kind {
        HeadKind::Regression => w.write_record(["prediction"])?,
        _ => {
            let mut header = vec!["class_id".to_string(), "class".to_string()];
            header.extend(classes.iter().map(|c| format!("probability_{c}")));
            w.write_record(&header)?;
        }
    }
    for p in predictions {
        match p {
            Prediction::Value { predictions } => w.write_record([predictions[0].to_string()])?,
            Prediction::Class { class_ids, classes, probabilities, .. } => {
                let mut record = vec![class_ids[0].to_string(), classes[0].clone()];
                record.extend(probabilities.iter().map(|p| p.to_string()));
                w.write_record(&record)?;
            }
        }
    }
    w.flush()
}
