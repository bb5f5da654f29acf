//! The written-out step's passes over memory: the head's loss and its gradient, activations
//! and their derivatives, and the gradients of looked-up embedding rows.

use est::pipeline::{Activation, Combiner};
use est::plan::HeadKind;
use tch::Tensor;

use std::sync::Mutex;

use super::{buffer, values, Embedding, StepError, Touched};
use crate::crew::Crew;
use crate::lower::Done;
use crate::memory::slice;
use crate::train::TrainError;

/// One embedding's ids and table, as slices a helper thread can read.
struct Lookup<'a> {
    ids: &'a [i64],
    /// Ids per row.
    k: usize,
    table: &'a [f32],
    offset: usize,
    dimension: usize,
    combiner: Combiner,
    column: &'a str,
}

impl<'a> Lookup<'a> {
    /// `e`'s lookup of `ids` `[n, k]` into an input layer `width` wide.
    ///
    /// # Safety
    /// Nothing writes the ids or the table while the lookup lives.
    unsafe fn of(e: &'a Embedding, ids: &'a Tensor, n: usize, width: usize) -> Result<Lookup<'a>, TrainError> {
        let (rows, k) = ids.size2()?;
        let (offset, dimension) = (e.input.offset as usize, e.input.dimension as usize);
        let layout = || StepError::IdsLayout(e.input.ids.clone());
        if offset + dimension > width || rows as usize != n {
            return Err(layout().into());
        }
        // SAFETY: the caller's promise.
        let (ids, table) = unsafe {
            (slice::<i64>(ids).filter(|ids| ids.len() == n * k as usize).ok_or_else(layout)?, values(&e.table)?)
        };
        Ok(Lookup { ids, k: k as usize, table, offset, dimension, combiner: e.input.combiner, column: &e.input.ids })
    }

    fn rows(&self) -> i64 {
        (self.table.len() / self.dimension.max(1)) as i64
    }

    /// Rows `first..` of the input layer, `input` holding as many whole rows as it can.
    fn fill(&self, input: &mut [f32], width: usize, first: usize) -> Result<(), StepError> {
        let (offset, dimension, k, rows) = (self.offset, self.dimension, self.k, self.rows());
        for (r, out) in input.chunks_exact_mut(width).enumerate() {
            let out = &mut out[offset..offset + dimension];
            out.fill(0.0);
            let mut count = 0u32;
            for &id in &self.ids[(first + r) * k..][..k] {
                if id < 0 {
                    continue;
                }
                if id >= rows {
                    return Err(StepError::IdOutOfRange { id, column: self.column.to_string() });
                }
                count += 1;
                for (o, &t) in out.iter_mut().zip(&self.table[id as usize * dimension..][..dimension]) {
                    *o += t;
                }
            }
            let count = count.max(1) as f32;
            let divisor = match self.combiner {
                Combiner::Sum => continue,
                Combiner::Mean => count,
                Combiner::Sqrtn => count.sqrt(),
            };
            for o in out.iter_mut() {
                *o /= divisor;
            }
        }
        Ok(())
    }
}

/// Runs `f` on each of `pieces` (with its index), shared out among the crew; the first error.
fn shared_out<P: Send>(
    pieces: Vec<P>,
    f: impl Fn(usize, &mut P) -> Result<(), StepError> + Sync,
) -> Result<(), StepError> {
    let pieces: Vec<Mutex<(P, Result<(), StepError>)>> = pieces.into_iter().map(|p| Mutex::new((p, Ok(())))).collect();
    Crew::shared().run(pieces.len(), &|i| {
        if let Ok(mut piece) = pieces[i].lock() {
            let (p, result) = &mut *piece;
            *result = f(i, p);
        }
    })?;
    pieces.into_iter().try_for_each(|p| p.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()).1)
}

/// The embeddings' columns of the input layer `[n, width]`: each row's ids' rows of the table,
/// combined as `lower`'s tensor program combines them (summed in id order, then divided by the
/// count of ids or its square root), so the values are the same. The rows are shared out among
/// the crew.
pub(super) fn embedding_rows(
    embeddings: &[(&Embedding, &Tensor)],
    input: &mut [f32],
    width: usize,
) -> Result<(), TrainError> {
    let n = input.len() / width.max(1);
    // SAFETY: the ids and the tables are read only during the forward pass; the input layer is
    // the caller's buffer, distinct from both.
    let lookups: Vec<Lookup> =
        embeddings.iter().map(|&(e, ids)| unsafe { Lookup::of(e, ids, n, width) }).collect::<Result<_, _>>()?;
    let per = n.div_ceil(PIECES).max(1);
    let pieces: Vec<&mut [f32]> = input.chunks_mut(per * width).collect();
    Ok(shared_out(pieces, |i, rows| lookups.iter().try_for_each(|l| l.fill(rows, width, i * per)))?)
}

/// Pieces a pass over a batch's rows is cut into: several per thread, so that one thread's
/// slower share does not hold up the others.
const PIECES: usize = 8;

/// One embedding's gradient pass, as plain memory a helper thread can take.
struct Scatter<'a> {
    grad: &'a mut [f32],
    touched: &'a mut Touched,
    lookup: Lookup<'a>,
}

impl Scatter<'_> {
    /// Each row's gradient at the input layer, weighted as the combiner weighted the row's ids,
    /// added to the rows of the ids it looked up.
    fn run(&mut self, input_grad: &[f32], width: usize) -> Result<(), StepError> {
        let (l, grad) = (&self.lookup, &mut *self.grad);
        let (offset, dimension, rows) = (l.offset, l.dimension, (grad.len() / l.dimension.max(1)) as i64);
        // Only the rows the last step touched hold anything: zero those, not the table.
        let touched = &mut *self.touched;
        if touched.mark.len() != rows as usize {
            grad.fill(0.0);
            touched.mark = vec![false; rows as usize];
            touched.rows.clear();
        }
        for &r in &touched.rows {
            grad[r as usize * dimension..][..dimension].fill(0.0);
            touched.mark[r as usize] = false;
        }
        touched.rows.clear();
        if l.k == 0 {
            return Ok(());
        }
        for (row, upstream) in l.ids.chunks_exact(l.k).zip(input_grad.chunks_exact(width)) {
            let upstream = &upstream[offset..offset + dimension];
            let count = row.iter().filter(|&&id| id >= 0).count().max(1) as f32;
            for &id in row.iter().filter(|&&id| id >= 0) {
                if id >= rows {
                    return Err(StepError::IdOutOfRange { id, column: l.column.to_string() });
                }
                if !touched.mark[id as usize] {
                    touched.mark[id as usize] = true;
                    touched.rows.push(id as u32);
                }
                let target = &mut grad[id as usize * dimension..][..dimension];
                for (t, &g) in target.iter_mut().zip(upstream) {
                    // As autograd divides the combined rows: by the count, or by its square root.
                    *t += match l.combiner {
                        Combiner::Sum => g,
                        Combiner::Mean => g / count,
                        Combiner::Sqrtn => g / count.sqrt(),
                    };
                }
            }
        }
        Ok(())
    }
}

/// The gradients of the embeddings' tables from the gradient at their input layer `[n, width]`,
/// each table's pass a piece for the crew.
pub(super) fn embedding_grads(embeddings: &[(&Embedding, &Tensor)], input_grad: &Tensor) -> Result<(), TrainError> {
    let (n, width) = input_grad.size2()?;
    let (n, width) = (n as usize, width as usize);
    let mut touched: Vec<std::cell::RefMut<Touched>> = embeddings.iter().map(|(e, _)| e.touched.borrow_mut()).collect();
    let mut scatters: Vec<Scatter> = Vec::with_capacity(embeddings.len());
    for (&(e, ids), touched) in embeddings.iter().zip(touched.iter_mut()) {
        // SAFETY: the ids, the input gradient and the tables are read only here; each table's
        // gradient is a view of its own into the gradient buffer, distinct from the others and
        // from the input gradient.
        let (lookup, grad) = unsafe { (Lookup::of(e, ids, n, width)?, buffer(&e.grad)?) };
        if lookup.table.len() != grad.len() {
            return Err(StepError::IdsLayout(e.input.ids.clone()).into());
        }
        scatters.push(Scatter { grad, touched, lookup });
    }
    // SAFETY: as above; nothing writes the input gradient during the pass.
    let input_grad = unsafe { values(input_grad)? };
    Ok(shared_out(scatters, |_, scatter| scatter.run(input_grad, width))?)
}

/// `embedding_grads` of one embedding, on this thread.
pub(super) fn embedding_grad(e: &Embedding, input_grad: &Tensor, ids: &Tensor) -> Result<(), TrainError> {
    let (n, width) = input_grad.size2()?;
    let (n, width) = (n as usize, width as usize);
    let mut touched = e.touched.borrow_mut();
    // SAFETY: as in `embedding_grads`.
    let (lookup, grad, input_grad) = unsafe { (Lookup::of(e, ids, n, width)?, buffer(&e.grad)?, values(input_grad)?) };
    Ok(Scatter { grad, touched: &mut touched, lookup }.run(input_grad, width)?)
}

pub(super) fn activate_in_place(t: &Tensor, activation: Activation) -> Result<(), TrainError> {
    let mut t = t.shallow_clone();
    match activation {
        Activation::Relu => t.f_relu_().done()?,
        Activation::Relu6 => t.f_relu6_().done()?,
        Activation::Elu => t.f_elu_().done()?,
        Activation::Selu => t.f_selu_().done()?,
        Activation::Tanh => t.f_tanh_().done()?,
        Activation::Sigmoid => t.f_sigmoid_().done()?,
        // tf.nn.leaky_relu's slope, 0.2, as `maximum(x, 0.2 x)` computes it.
        Activation::LeakyRelu => {
            // SAFETY: a buffer of the step's own, which nothing else touches meanwhile.
            for v in unsafe { buffer(&t)? } {
                *v = v.max(*v * 0.2);
            }
        }
        Activation::Linear => {}
        Activation::Gelu | Activation::Swish => return Err(StepError::NoDerivative(activation).into()),
    }
    Ok(())
}

const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;

/// `delta ← delta × activation′`, the derivative taken from the layer's output before dropout,
/// and the bias gradient as the column sums of the result.
pub(super) fn backward_rows(activation: Activation, delta: &mut [f32], out: &[f32], bias: &mut [f32]) {
    match activation {
        Activation::Relu => rows(delta, out, bias, |d, a| if a > 0.0 { d } else { 0.0 }),
        Activation::Relu6 => rows(delta, out, bias, |d, a| if a > 0.0 && a < 6.0 { d } else { 0.0 }),
        Activation::Elu => rows(delta, out, bias, |d, a| if a > 0.0 { d } else { d * (a + 1.0) }),
        Activation::Selu => {
            rows(delta, out, bias, |d, a| if a > 0.0 { d * SELU_SCALE } else { d * (a + SELU_ALPHA * SELU_SCALE) })
        }
        Activation::Tanh => rows(delta, out, bias, |d, a| d * (1.0 - a * a)),
        Activation::Sigmoid => rows(delta, out, bias, |d, a| d * ((1.0 - a) * a)),
        Activation::LeakyRelu => rows(delta, out, bias, |d, a| if a > 0.0 { d } else { d * 0.2 }),
        Activation::Linear | Activation::Gelu | Activation::Swish => rows(delta, out, bias, |d, _| d),
    }
}

#[inline(always)]
fn rows(delta: &mut [f32], out: &[f32], bias: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    let width = bias.len();
    bias.fill(0.0);
    for (d, a) in delta.chunks_exact_mut(width).zip(out.chunks_exact(width)) {
        for ((d, &a), b) in d.iter_mut().zip(a).zip(bias.iter_mut()) {
            // A select, not a branch: half the units of a ReLU layer are off, at random.
            let v = f(*d, a);
            *d = v;
            *b += v;
        }
    }
}

/// The head's mean loss over the batch, each row's loss scaled by its weight, if any, and the
/// sum divided by the rows (tf.estimator's `SUM_OVER_BATCH_SIZE`). Replaces the logits with the
/// loss's gradient with respect to them and writes its column sums, the logits bias's gradient,
/// to `bias`.
pub(super) fn head_loss(
    head: HeadKind,
    logits: &mut [f32],
    labels: &Tensor,
    weights: Option<&[f32]>,
    bias: &mut [f32],
) -> Result<f64, TrainError> {
    let width = bias.len();
    let n = logits.len() / width;
    let scale = 1.0 / n as f32;
    if weights.is_some_and(|w| w.len() != n) {
        return Err(StepError::Weights.into());
    }
    // A weight of 1 changes no bit of the loss or its gradient: unweighted runs stay as they were.
    let weight = |r: usize| weights.and_then(|w| w.get(r)).copied().unwrap_or(1.0);
    bias.fill(0.0);
    // In f32, as libtorch's loss: a loss beyond f32 is infinite, and training stops.
    let mut total = 0f32;
    match head {
        HeadKind::MultiClass | HeadKind::Binary => {
            let classes = int_labels(labels, n)?;
            for (r, (row, &class)) in logits.chunks_exact_mut(width).zip(classes).enumerate() {
                let (w, bad) = (weight(r), || StepError::LabelOutOfRange(class));
                if head == HeadKind::Binary {
                    let y = match class {
                        0 => 0.0,
                        1 => 1.0,
                        _ => return Err(bad().into()),
                    };
                    let z = row[0];
                    // Sigmoid cross entropy, as libtorch computes it without overflow.
                    total += w * ((1.0 - y) * z + (-z).max(0.0) + ((-z.abs()).exp()).ln_1p());
                    row[0] = (sigmoid(z) - y) * (w * scale);
                } else {
                    let class = usize::try_from(class).ok().filter(|&c| c < width).ok_or_else(bad)?;
                    // Softmax cross entropy: log Σ exp(z − max) − (z_class − max).
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let picked = row[class] - max;
                    let mut sum = 0.0;
                    for v in row.iter_mut() {
                        *v = (*v - max).exp();
                        sum += *v;
                    }
                    total += w * (sum.ln() - picked);
                    // Its gradient: (softmax − one-hot) × w / n.
                    let inverse = 1.0 / sum;
                    for v in row.iter_mut() {
                        *v *= inverse;
                    }
                    row[class] -= 1.0;
                    let scale = w * scale;
                    for v in row.iter_mut() {
                        *v *= scale;
                    }
                }
                for (b, &v) in bias.iter_mut().zip(row.iter()) {
                    *b += v;
                }
            }
        }
        HeadKind::Regression => {
            let values = float_labels(labels, n)?;
            for (r, (row, &y)) in logits.chunks_exact_mut(width).zip(values).enumerate() {
                let (w, d) = (weight(r), row[0] - y);
                total += w * (d * d);
                row[0] = 2.0 * d * (w * scale);
                bias[0] += row[0];
            }
        }
    }
    Ok(f64::from(total / n as f32))
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

fn int_labels(labels: &Tensor, n: usize) -> Result<&[i64], StepError> {
    // SAFETY: a batch's labels, which nothing writes during the step.
    unsafe { slice(labels) }.filter(|l| l.len() == n).ok_or(StepError::ClassLabels)
}

fn float_labels(labels: &Tensor, n: usize) -> Result<&[f32], StepError> {
    // SAFETY: a batch's labels, which nothing writes during the step.
    unsafe { slice(labels) }.filter(|l| l.len() == n).ok_or(StepError::ValueLabels)
}
