//! Evaluation with tf.estimator's metric keys: `accuracy`, `average_loss`, `loss`, and for binary
//! classifiers `auc`, `precision`, `recall`, `accuracy_baseline`, `label/mean`,
//! `prediction/mean`; regressors get `average_loss`, `loss`, `label/mean`, `prediction/mean`.
//! With a weight column each example counts by its weight, as tf.estimator weights its metrics.

use std::collections::BTreeMap;

use est::pipeline::Files;
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
pub fn run(plan: &Plan, opts: &RunOptions, data: Option<&Files>) -> Result<Metrics, TrainError> {
    let path = data.or(plan.data.eval.as_ref()).ok_or(TrainError::NoEvalData)?;
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
    // Unweighted, every example counts once: the same sums, bit for bit, as without weights.
    let weights = match &used.weights {
        Some(w) => host(w)?,
        None => vec![1.0; losses.len()],
    };
    let total = weights.iter().sum::<f64>();
    let weighted = |values: &[f64]| -> f64 { values.iter().zip(&weights).map(|(v, w)| v * w).sum() };
    let mean = |values: &[f64]| ratio(weighted(values), total);
    let mut m = BTreeMap::new();
    m.insert("average_loss".into(), mean(&losses));
    // The mean of per-batch losses, each summed by weight over the batch's rows, as
    // tf.estimator's `loss`.
    let batch_means: Vec<f64> = losses
        .chunks(batch_size)
        .zip(weights.chunks(batch_size))
        .map(|(l, w)| l.iter().zip(w).map(|(l, w)| l * w).sum::<f64>() / l.len() as f64)
        .collect();
    m.insert("loss".into(), batch_means.iter().sum::<f64>() / batch_means.len().max(1) as f64);
    match model.head.kind {
        HeadKind::MultiClass => {
            let predicted = host(&logits.f_argmax(1, false)?)?;
            m.insert("accuracy".into(), mean(&agreement(&predicted, &labels)));
        }
        HeadKind::Binary => {
            let probs = host(&logits.f_squeeze_dim(1)?.f_sigmoid()?)?;
            let predicted: Vec<f64> = probs.iter().map(|p| if *p > 0.5 { 1.0 } else { 0.0 }).collect();
            let label_mean = mean(&labels);
            let count = |p: f64, l: f64| -> f64 {
                predicted
                    .iter()
                    .zip(&labels)
                    .zip(&weights)
                    .filter(|((a, b), _)| **a == p && **b == l)
                    .map(|(_, w)| w)
                    .sum()
            };
            let (tp, fp, fn_) = (count(1.0, 1.0), count(1.0, 0.0), count(0.0, 1.0));
            m.insert("accuracy".into(), mean(&agreement(&predicted, &labels)));
            m.insert("accuracy_baseline".into(), label_mean.max(1.0 - label_mean));
            let auc =
                if used.weights.is_some() { weighted_auc(&probs, &labels, &weights) } else { auc(&probs, &labels) };
            m.insert("auc".into(), auc);
            m.insert("precision".into(), ratio(tp, tp + fp));
            m.insert("recall".into(), ratio(tp, tp + fn_));
            m.insert("label/mean".into(), label_mean);
            m.insert("prediction/mean".into(), mean(&probs));
        }
        HeadKind::Regression => {
            let predictions = host(&logits.f_squeeze_dim(1)?)?;
            m.insert("label/mean".into(), mean(&labels));
            m.insert("prediction/mean".into(), mean(&predictions));
        }
    }
    Ok(m)
}

/// `a / b`, or 0 when nothing counts (tf's `div_no_nan`): no rows, or weights that are all 0.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// 1 where the prediction is the label, 0 elsewhere.
fn agreement(predicted: &[f64], labels: &[f64]) -> Vec<f64> {
    predicted.iter().zip(labels).map(|(p, l)| if p == l { 1.0 } else { 0.0 }).collect()
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

/// The exact area under the ROC curve with weighted examples: each positive–negative pair
/// counts by the product of their weights, ties half.
fn weighted_auc(scores: &[f64], labels: &[f64], weights: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // The negatives' weight scored below the tie group at hand, and the pairs counted so far.
    let (mut below, mut pairs, mut positives) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let (mut pos, mut neg) = (0.0, 0.0);
        for &k in &order[i..=j] {
            if labels[k] == 1.0 {
                pos += weights[k];
            } else {
                neg += weights[k];
            }
        }
        pairs += pos * (below + neg / 2.0);
        positives += pos;
        below += neg;
        i = j + 1;
    }
    if positives == 0.0 || below == 0.0 {
        return 0.0;
    }
    pairs / (positives * below)
}

#[cfg(test)]
mod tests {
    #[test]
    fn auc_counts_ordered_pairs() {
        assert_eq!(super::auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]), 0.75);
        assert_eq!(super::auc(&[0.5, 0.5], &[0.0, 1.0]), 0.5);
        assert_eq!(super::auc(&[0.2, 0.9], &[0.0, 1.0]), 1.0);
    }

    #[test]
    fn weighted_auc_counts_pairs_by_their_weights() {
        let (scores, labels) = ([0.1, 0.4, 0.35, 0.8, 0.35, 0.6], [0.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
        // Unit weights are the plain area; a weight of 2 is the row twice, a weight of 0 no row.
        assert_eq!(super::weighted_auc(&scores, &labels, &[1.0; 6]), super::auc(&scores, &labels));
        let weights = [2.0, 0.0, 1.0, 3.0, 1.0, 0.0];
        let (mut s, mut l) = (Vec::new(), Vec::new());
        for ((&score, &label), &w) in scores.iter().zip(&labels).zip(&weights) {
            for _ in 0..w as usize {
                s.push(score);
                l.push(label);
            }
        }
        assert_eq!(super::weighted_auc(&scores, &labels, &weights), super::auc(&s, &l));
        // Positives 0.35 (1) and 0.8 (3) over negatives 0.1 (2) and 0.35 (1, a tie, half):
        // (1·2 + 1·1/2 + 3·2 + 3·1) / (4 · 3).
        assert_eq!(super::weighted_auc(&scores, &labels, &weights), 11.5 / 12.0);
        assert_eq!(super::weighted_auc(&scores, &labels, &[0.0, 0.0, 1.0, 1.0, 0.0, 1.0]), 0.0);
    }
}
