//! A training step with backpropagation written out, for the common model: a DNN on the CPU
//! without batch normalisation, over any input columns. The matrix products stay libtorch's,
//! written into buffers that live as long as the run; the loss, its gradient, the activations'
//! derivatives, the bias gradients and the embeddings' gradients are one pass each in Rust. Gradients land in one flat buffer per optimizer,
//! laid out like its variables. Autograd would run the same products, but also some twenty small
//! kernels with their allocations and its engine's bookkeeping per step.

use tch::{Device, Kind, Tensor};

use super::optim::Done;
use super::TrainError;
use crate::lower::{InputEmbedding, Inputs, Model};
use crate::plan::{Activation, Combiner, HeadKind};

/// One dense layer: `out = activation(input × kernel + bias)`.
struct Layer {
    /// `[in, out]` and `[out]`, sharing the variables' memory but outside autograd.
    kernel: Tensor,
    bias: Tensor,
    /// Views into the flat gradient buffer, shaped like the variables.
    grad_kernel: Tensor,
    grad_bias: Tensor,
    /// `[batch, out]`: the layer's output (for the logits layer, then the loss's gradient).
    out: Tensor,
    /// `[batch, out]`: the gradient of the loss at the output, for hidden layers.
    delta: Option<Tensor>,
    /// With dropout, for hidden layers: `[batch, out]` each, the kept units scaled by
    /// 1 / (1 − rate) or 0, and the output times that, which the next layer reads.
    dropout: Option<(Tensor, Tensor)>,
}

/// An embedding in the input layer and the view of its table's gradient.
struct Embedding {
    input: InputEmbedding,
    grad: Tensor,
}

/// The buffers and views a run's steps reuse.
pub struct Direct {
    layers: Vec<Layer>,
    embeddings: Vec<Embedding>,
    /// `[batch, input width]`: the gradient at the input layer, when embeddings need it.
    input_grad: Option<Tensor>,
    activation: Activation,
    dropout: f64,
    head: HeadKind,
    batch: i64,
    /// Per optimizer group, gradients laid out like its flat buffer.
    grads: Vec<Tensor>,
}

impl Direct {
    /// Buffers for batches of up to `batch` rows, or `None` when the model needs autograd.
    pub fn new(model: &Model, batch: i64) -> Result<Option<Direct>, TrainError> {
        let Some(dnn) = model.dnn() else { return Ok(None) };
        let supported = !matches!(dnn.spec.activation, Activation::Gelu | Activation::Swish);
        if model.device != Device::Cpu
            || model.has_linear()
            || dnn.spec.batch_norm
            || !supported
            || model.params.iter().any(|p| p.tensor.kind() != Kind::Float)
        {
            return Ok(None);
        }
        let mut names: Vec<String> = (0..dnn.spec.hidden_units.len()).map(|i| format!("dnn/hiddenlayer_{i}")).collect();
        names.push("dnn/logits".into());
        let inputs = model.input_embeddings()?;
        // Every variable an optimizer updates must be one of these kernels, biases and tables,
        // or its gradient would be left out.
        let mut covered = vec![false; model.params.len()];
        for e in &inputs {
            covered[e.param] = true;
        }
        let mut wanted = Vec::new();
        for name in &names {
            for part in ["kernel", "bias"] {
                let Some(i) = model.param_index(&format!("{name}/{part}")) else { return Ok(None) };
                covered[i] = true;
                wanted.push(i);
            }
        }
        if model.groups.iter().flat_map(|g| &g.members).any(|&(i, _, _)| !covered[i]) {
            return Ok(None);
        }
        let grads: Vec<Tensor> = model.groups.iter().map(|g| g.flat.f_zeros_like()).collect::<Result<_, _>>()?;
        // The gradient view of parameter `i`, in its own shape.
        let grad_view = |i: usize| -> Result<Option<Tensor>, TrainError> {
            for (group, grad) in model.groups.iter().zip(&grads) {
                if let Some(k) = group.members.iter().position(|&(p, _, _)| p == i) {
                    return Ok(Some(group.view(grad, k, &model.params[i].tensor.size())?));
                }
            }
            Ok(None)
        };
        let mut layers = Vec::with_capacity(names.len());
        for (l, pair) in wanted.chunks(2).enumerate() {
            let (k, b) = (pair[0], pair[1]);
            let (Some(grad_kernel), Some(grad_bias)) = (grad_view(k)?, grad_view(b)?) else { return Ok(None) };
            let kernel = model.params[k].tensor.f_detach()?;
            let width = kernel.size()[1];
            let out = Tensor::f_zeros([batch, width], (Kind::Float, Device::Cpu))?;
            let hidden = l + 1 < names.len();
            let buffer = || Tensor::f_zeros([batch, width], (Kind::Float, Device::Cpu));
            let delta = hidden.then(buffer).transpose()?;
            let dropout = if hidden && dnn.spec.dropout > 0.0 { Some((buffer()?, buffer()?)) } else { None };
            let bias = model.params[b].tensor.f_detach()?;
            layers.push(Layer { kernel, bias, grad_kernel, grad_bias, out, delta, dropout });
        }
        let mut embeddings = Vec::with_capacity(inputs.len());
        for input in inputs {
            let Some(grad) = grad_view(input.param)? else { return Ok(None) };
            embeddings.push(Embedding { input, grad });
        }
        let input_grad = (!embeddings.is_empty())
            .then(|| Tensor::f_zeros([batch, dnn.input_width as i64], (Kind::Float, Device::Cpu)))
            .transpose()?;
        let (activation, dropout, head) = (dnn.spec.activation, dnn.spec.dropout, model.head.kind);
        Ok(Some(Direct { layers, embeddings, input_grad, activation, dropout, head, batch, grads }))
    }

    /// The gradient buffers, one per optimizer group, as the last step left them.
    pub fn grads(&self) -> &[Tensor] {
        &self.grads
    }

    /// Forward and backward over one batch at `step` of a run seeded `seed`: fills the gradient
    /// buffers and returns the batch's mean loss. Dropout draws the masks autograd's forward pass
    /// would. With `taps`, hands out each hidden layer's output; they are views of buffers the
    /// next step overwrites.
    pub fn step(
        &mut self,
        model: &Model,
        x: &Inputs,
        step: u64,
        seed: u64,
        taps: Option<&mut Vec<Tensor>>,
    ) -> Result<f64, TrainError> {
        let n = x.rows;
        if n == 0 || n > self.batch {
            return Err(TrainError::Lower(format!("a batch of {n} rows; the buffers hold 1 to {}", self.batch)));
        }
        // Outside autograd: an embedding's table is a variable that requires its gradient.
        let input = tch::no_grad(|| model.dnn_input(x))?;
        let rows = |t: &Tensor| t.f_narrow(0, 0, n);
        let outs: Vec<Tensor> = self.layers.iter().map(|l| rows(&l.out)).collect::<Result<_, _>>()?;
        // Per hidden layer with dropout: its mask and its output after dropout.
        let dropped: Vec<Option<(Tensor, Tensor)>> = self
            .layers
            .iter()
            .map(|l| l.dropout.as_ref().map(|(mask, kept)| Ok::<_, TrainError>((rows(mask)?, rows(kept)?))).transpose())
            .collect::<Result<_, _>>()?;
        // What layer `i` reads.
        let below = |i: usize| match i {
            0 => &input,
            _ => dropped[i - 1].as_ref().map_or(&outs[i - 1], |(_, kept)| kept),
        };
        if self.dropout > 0.0 {
            crate::lower::seed_dropout(seed, step);
        }
        let top = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            layer.bias.f_addmm_out(&outs[i], below(i), &layer.kernel).done()?;
            if i < top {
                activate_in_place(&outs[i], self.activation)?;
            }
            if let Some((mask, kept)) = &dropped[i] {
                // libtorch's dropout, operation for operation, so the masks are autograd's.
                let mut mask = mask.shallow_clone();
                mask.f_bernoulli_float_(1.0 - self.dropout).done()?;
                mask.f_div_scalar_(1.0 - self.dropout).done()?;
                outs[i].f_mul_out(kept, &mask).done()?;
            }
        }
        if let Some(taps) = taps {
            taps.extend((0..top).map(|i| below(i + 1).shallow_clone()));
        }
        let labels = x.labels.as_ref().ok_or_else(|| TrainError::Lower("a training batch without labels".into()))?;
        // SAFETY: `outs[top]` is a contiguous float CPU tensor, the bias gradient a contiguous
        // view of the same width into another buffer; nothing else touches them meanwhile.
        let loss =
            unsafe { head_loss(self.head, floats_mut(&outs[top]), labels, floats_mut(&self.layers[top].grad_bias))? };
        for i in (0..=top).rev() {
            let delta = if i == top { outs[top].shallow_clone() } else { self.delta(i, n)? };
            below(i).f_tr()?.f_mm_out(&self.layers[i].grad_kernel, &delta).done()?;
            if i == 0 {
                if let Some(input_grad) = &self.input_grad {
                    let input_grad = rows(input_grad)?;
                    delta.f_mm_out(&input_grad, &self.layers[0].kernel.f_tr()?).done()?;
                    for e in &self.embeddings {
                        embedding_grad(e, &input_grad, x.ids(&e.input.ids)?)?;
                    }
                }
            } else {
                let down = self.delta(i - 1, n)?;
                delta.f_mm_out(&down, &self.layers[i].kernel.f_tr()?).done()?;
                // SAFETY: as above: `down`, `outs[i - 1]` and the mask are distinct contiguous
                // `[n, width]` buffers, the bias gradient a contiguous view of `width` floats.
                unsafe {
                    let mask = dropped[i - 1].as_ref().map(|(mask, _)| &*floats_mut(mask));
                    backward_rows(
                        self.activation,
                        floats_mut(&down),
                        floats_mut(&outs[i - 1]),
                        mask,
                        floats_mut(&self.layers[i - 1].grad_bias),
                    )
                };
            }
        }
        Ok(loss)
    }

    fn delta(&self, i: usize, n: i64) -> Result<Tensor, TrainError> {
        let delta = self.layers[i]
            .delta
            .as_ref()
            .ok_or_else(|| TrainError::Lower("a hidden layer without a gradient buffer".into()))?;
        Ok(delta.f_narrow(0, 0, n)?)
    }
}

/// The gradient of an embedding's table: each row's gradient at the input layer, weighted as
/// the combiner weighted the row's ids, added to the rows of the ids it looked up.
fn embedding_grad(e: &Embedding, input_grad: &Tensor, ids: &Tensor) -> Result<(), TrainError> {
    let (n, k) = ids.size2()?;
    let width = input_grad.size2()?.1 as usize;
    let (offset, dimension) = (e.input.offset as usize, e.input.dimension as usize);
    let rows = e.grad.size()[0];
    if ids.kind() != Kind::Int64 || !ids.is_contiguous() || offset + dimension > width {
        return Err(TrainError::Lower(format!("the ids of `{}` do not fit its embedding", e.input.ids)));
    }
    // SAFETY: `ids` is a contiguous int64 CPU tensor (checked above), read only; the input
    // gradient a contiguous `[n, width]` buffer and the table's gradient a contiguous view of
    // its own, distinct from it.
    let (ids, input_grad, grad) = unsafe {
        (
            std::slice::from_raw_parts(ids.data_ptr().cast::<i64>(), (n * k) as usize),
            &*floats_mut(input_grad),
            floats_mut(&e.grad),
        )
    };
    grad.fill(0.0);
    for (row, upstream) in ids.chunks_exact(k as usize).zip(input_grad.chunks_exact(width)) {
        let upstream = &upstream[offset..offset + dimension];
        let count = row.iter().filter(|&&id| id >= 0).count().max(1) as f32;
        for &id in row.iter().filter(|&&id| id >= 0) {
            if id >= rows {
                return Err(TrainError::Lower(format!("id {id} of `{}` is outside its embedding", e.input.ids)));
            }
            let target = &mut grad[id as usize * dimension..][..dimension];
            for (t, &g) in target.iter_mut().zip(upstream) {
                // As autograd divides the combined rows: by the count, or by its square root.
                *t += match e.input.combiner {
                    Combiner::Sum => g,
                    Combiner::Mean => g / count,
                    Combiner::Sqrtn => g / count.sqrt(),
                };
            }
        }
    }
    Ok(())
}

/// The elements of a contiguous float CPU tensor.
///
/// # Safety
/// `t` must be contiguous, float and on the CPU, and nothing else may access its memory while the
/// slice lives.
unsafe fn floats_mut<'a>(t: &Tensor) -> &'a mut [f32] {
    debug_assert!(t.is_contiguous() && t.kind() == Kind::Float && t.device() == Device::Cpu);
    std::slice::from_raw_parts_mut(t.data_ptr().cast::<f32>(), t.numel())
}

fn activate_in_place(t: &Tensor, activation: Activation) -> Result<(), TrainError> {
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
            // SAFETY: a contiguous float CPU buffer of the step's own.
            for v in unsafe { floats_mut(&t) } {
                *v = v.max(*v * 0.2);
            }
        }
        Activation::Linear => {}
        Activation::Gelu | Activation::Swish => {
            return Err(TrainError::Lower(format!("{activation:?} has no written-out derivative")))
        }
    }
    Ok(())
}

const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;

/// `delta ← delta × mask × activation′`, the derivative taken from the layer's output before
/// dropout, and the bias gradient as the column sums of the result.
fn backward_rows(activation: Activation, delta: &mut [f32], out: &[f32], mask: Option<&[f32]>, bias: &mut [f32]) {
    if let Some(mask) = mask {
        for (d, m) in delta.iter_mut().zip(mask) {
            *d *= m;
        }
    }
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

/// The head's mean loss over the batch. Replaces the logits with the loss's gradient with
/// respect to them and writes its column sums, the logits bias's gradient, to `bias`.
fn head_loss(head: HeadKind, logits: &mut [f32], labels: &Tensor, bias: &mut [f32]) -> Result<f64, TrainError> {
    let width = bias.len();
    let n = logits.len() / width;
    let scale = 1.0 / n as f32;
    bias.fill(0.0);
    // In f32, as libtorch's loss: a loss beyond f32 is infinite, and training stops.
    let mut total = 0f32;
    match head {
        HeadKind::MultiClass | HeadKind::Binary => {
            let classes = int_labels(labels, n)?;
            for (row, &class) in logits.chunks_exact_mut(width).zip(classes) {
                let bad = || TrainError::Lower(format!("label {class} is outside the head's classes"));
                if head == HeadKind::Binary {
                    let y = match class {
                        0 => 0.0,
                        1 => 1.0,
                        _ => return Err(bad()),
                    };
                    let z = row[0];
                    // Sigmoid cross entropy, as libtorch computes it without overflow.
                    total += (1.0 - y) * z + (-z).max(0.0) + ((-z.abs()).exp()).ln_1p();
                    row[0] = (sigmoid(z) - y) * scale;
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
                    total += sum.ln() - picked;
                    // Its gradient: (softmax − one-hot) / n.
                    let inverse = 1.0 / sum;
                    for v in row.iter_mut() {
                        *v *= inverse;
                    }
                    row[class] -= 1.0;
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
            for (row, &y) in logits.chunks_exact_mut(width).zip(values) {
                let d = row[0] - y;
                total += d * d;
                row[0] = 2.0 * d * scale;
                bias[0] += row[0];
            }
        }
    }
    Ok(f64::from(total / n as f32))
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

fn int_labels(labels: &Tensor, n: usize) -> Result<&[i64], TrainError> {
    if labels.kind() != Kind::Int64 || labels.device() != Device::Cpu || !labels.is_contiguous() || labels.numel() != n
    {
        return Err(TrainError::Lower("class labels must be int64 on the cpu, one per row".into()));
    }
    // SAFETY: checked above; the labels are read only.
    Ok(unsafe { std::slice::from_raw_parts(labels.data_ptr().cast::<i64>(), n) })
}

fn float_labels(labels: &Tensor, n: usize) -> Result<&[f32], TrainError> {
    if labels.kind() != Kind::Float || labels.device() != Device::Cpu || !labels.is_contiguous() || labels.numel() != n
    {
        return Err(TrainError::Lower("regression labels must be float on the cpu, one per row".into()));
    }
    // SAFETY: checked above; the labels are read only.
    Ok(unsafe { std::slice::from_raw_parts(labels.data_ptr().cast::<f32>(), n) })
}
