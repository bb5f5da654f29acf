//! Evaluation with tf.estimator's metric keys: `accuracy`, `average_loss`, `loss`, and for binary
//! classifiers `auc`, `precision`, `recall`, `accuracy_baseline`, `label/mean`,
//! `prediction/mean`; regressors get `average_loss`, `loss`, `label/mean`, `prediction/mean`.

use std::collections::BTreeMap;

use camino::Utf8Path;
use serde::Serialize;
use tch::{Kind, Tensor};

use super::device::{configure_threads, device};
use super::loss::example_losses;
use super::summaries::{record_evaluation, write_metrics};
use super::{RunOptions, Session, TrainError};
use crate::lower::{Inputs, Model};
use est::checkpoint::Store;
use est::data::{self, Purpose};
use est::plan::{HeadKind, Plan};

/// Metrics at a global step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// The checkpoint's step.
    pub global_step: u64,
    /// tf.estimator's metric keys and values.
    pub values: BTreeMap<String, f64>,
    /// Damaged newer checkpoints passed over to reach the one evaluated, and skipped bad rows.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// `accuracy = 0.9667, average_loss = 0.0812, global_step = 1000, loss = 0.0812`, as TF logged.
impl std::fmt::Display for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self.values.iter().map(|(k, v)| format!("{k} = {}", *v as f32)).collect();
        parts.push(format!("global_step = {}", self.global_step));
        parts.sort();
        f.write_str(&parts.join(", "))
    }
}

/// Restores the latest checkpoint and evaluates it on `data` (default: the pipeline's eval file).
pub fn run(plan: &Plan, opts: &RunOptions, data_path: Option<&Utf8Path>) -> Result<Metrics, TrainError> {
    let path = data_path.or(plan.data.eval.as_deref()).ok_or(TrainError::NoEvalData)?;
    let dir = opts.model_dir(plan);
    let store = Store::new(&dir);
    let device = device(plan)?;
    let (session, _, mut warnings) = Session::restore(plan, &store, device, false, opts.checkpoint)?
        .ok_or_else(|| TrainError::NoCheckpoint { dir: dir.clone() })?;
    let table = data::load(plan, path, Purpose::Labelled)?;
    // After reading, as in training: libtorch's threads would take the reader's cores.
    configure_threads(plan);
    warnings.extend(table.skipped_note(path));
    let inputs = Inputs::from_table(table, device, &session.model)?;
    let values = evaluate_model(&session.model, &inputs, plan.eval.batch_size, plan.eval.steps)?;
    let metrics = Metrics { global_step: session.global_step, values, warnings };
    let now = opts.clock.now();
    record_evaluation(&store, &metrics, path, now)?;
    let mut events = est::events::EventWriter::create(&dir.join(est::checkpoint::EVAL_DIR), now)?;
    write_metrics(&mut events, &metrics, now)?;
    Ok(metrics)
}

/// Logits for every row, in order, in batches of `batch_size` (the first `steps` batches).
pub fn logits(
    model: &Model,
    inputs: &Inputs,
    batch_size: usize,
    steps: Option<u64>,
) -> Result<(Tensor, Inputs), TrainError> {
    let _guard = tch::no_grad_guard();
    let rows = inputs.rows;
    let end = steps.map_or(rows, |s| (s as i64 * batch_size as i64).min(rows));
    let mut parts = Vec::new();
    let mut start = 0;
    while start < end {
        let stop = (start + batch_size as i64).min(end);
        parts.push(model.forward(&inputs.slice(start, stop)?, false, 0, 0)?);
        start = stop;
    }
    Ok((Tensor::f_cat(&parts, 0)?, inputs.slice(0, end)?))
}

/// The metrics of `model` on `inputs`.
pub fn evaluate_model(
    model: &Model,
    inputs: &Inputs,
    batch_size: usize,
    steps: Option<u64>,
) -> Result<BTreeMap<String, f64>, TrainError> {
    let (logits, used) = logits(model, inputs, batch_size, steps)?;
    let _guard = tch::no_grad_guard();
    let losses = example_losses(&model.head, &logits, &used)?;
    let host = |t: &Tensor| -> Result<Vec<f64>, TrainError> {
        let t = t.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?.f_contiguous()?;
        let mut out = vec![0.0; t.numel()];
        let n = out.len();
        t.f_copy_data(&mut out, n)?;
        Ok(out)
    };
    let losses = host(&losses)?;
    let labels = host(used.labels.as_ref().ok_or(TrainError::NoEvalData)?)?;
    let n = losses.len().max(1) as f64;
    let mut m = BTreeMap::new();
    let average_loss = losses.iter().sum::<f64>() / n;
    m.insert("average_loss".into(), average_loss);
    // The mean of per-batch mean losses, as tf.estimator's `loss`.
    let batch_means: Vec<f64> = losses.chunks(batch_size).map(|c| c.iter().sum::<f64>() / c.len() as f64).collect();
    m.insert("loss".into(), batch_means.iter().sum::<f64>() / batch_means.len().max(1) as f64);
    match model.head.kind {
        HeadKind::MultiClass => {
            let predicted = host(&logits.f_argmax(1, false)?)?;
            m.insert("accuracy".into(), accuracy(&predicted, &labels));
        }
        HeadKind::Binary => {
            let probs = host(&logits.f_squeeze_dim(1)?.f_sigmoid()?)?;
            let predicted: Vec<f64> = probs.iter().map(|p| if *p > 0.5 { 1.0 } else { 0.0 }).collect();
            let label_mean = labels.iter().sum::<f64>() / n;
            let tp = predicted.iter().zip(&labels).filter(|(p, l)| **p == 1.0 && **l == 1.0).count() as f64;
            let fp = predicted.iter().zip(&labels).filter(|(p, l)| **p == 1.0 && **l == 0.0).count() as f64;
            let fn_ = predicted.iter().zip(&labels).filter(|(p, l)| **p == 0.0 && **l == 1.0).count() as f64;
            m.insert("accuracy".into(), accuracy(&predicted, &labels));
            m.insert("accuracy_baseline".into(), label_mean.max(1.0 - label_mean));
            m.insert("auc".into(), auc(&probs, &labels));
            m.insert("precision".into(), if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 });
            m.insert("recall".into(), if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 });
            m.insert("label/mean".into(), label_mean);
            m.insert("prediction/mean".into(), probs.iter().sum::<f64>() / n);
        }
        HeadKind::Regression => {
            let predictions = host(&logits.f_squeeze_dim(1)?)?;
            m.insert("label/mean".into(), labels.iter().sum::<f64>() / n);
            m.insert("prediction/mean".into(), predictions.iter().sum::<f64>() / n);
        }
    }
    Ok(m)
}

fn accuracy(predicted: &[f64], labels: &[f64]) -> f64 {
    let right = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    right as f64 / labels.len().max(1) as f64
}

/// The exact area under the ROC curve: the chance a positive outscores a negative, ties half.
fn auc(scores: &[f64], labels: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let positives = labels.iter().filter(|l| **l == 1.0).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.0;
    }
    // Mann–Whitney U with average ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] == 1.0 {
                rank_sum += rank;
            }
        }
        i = j + 1;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

#[cfg(test)]
mod tests {
    #[test]
    fn auc_counts_ordered_pairs() {
        assert_eq!(super::auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]), 0.75);
        assert_eq!(super::auc(&[0.5, 0.5], &[0.0, 1.0]), 0.5);
        assert_eq!(super::auc(&[0.2, 0.9], &[0.0, 1.0]), 1.0);
    }
}
