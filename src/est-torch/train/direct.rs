//! A training step with backpropagation written out, for every model on the CPU. The matrix
//! products stay libtorch's, written into buffers that live as long as the run; the loss, its
//! gradient, the activations' derivatives, the bias gradients and the gradients of looked-up
//! weights are one pass each in Rust. Gradients land in one flat buffer per optimizer, laid out
//! like its variables. Autograd would run the same products, but also some twenty small kernels
//! with their allocations and its engine's bookkeeping per step.

use tch::{Device, Kind, Tensor};

use super::optim::Done;
use super::TrainError;
use crate::lower::{InputEmbedding, Inputs, LinearInput, Model, NORM_EPSILON, NORM_MOMENTUM};
use est::pipeline::{Activation, Combiner};
use est::plan::{DnnPlan, HeadKind};

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
    /// `[batch, out]`: the output before an activation whose derivative needs it.
    pre: Option<Tensor>,
    /// `[batch, out]`: the gradient of the loss at the output, for hidden layers.
    delta: Option<Tensor>,
    /// With dropout, for hidden layers: `[batch, out]` each, the kept units scaled by
    /// 1 / (1 − rate) or 0, and the output times that, which the next layer reads.
    dropout: Option<(Tensor, Tensor)>,
    norm: Option<Norm>,
}

impl Layer {
    /// Hidden layer `l`, or the logits layer when `l` is the count of hidden layers.
    fn new(
        model: &Model,
        plan: &DnnPlan,
        l: usize,
        batch: i64,
        views: &mut Views,
    ) -> Result<Option<Layer>, TrainError> {
        let hidden = l < plan.spec.hidden_units.len();
        let name = if hidden { format!("dnn/hiddenlayer_{l}") } else { "dnn/logits".into() };
        let (Some(k), Some(b)) =
            (model.param_index(&format!("{name}/kernel")), model.param_index(&format!("{name}/bias")))
        else {
            return Ok(None);
        };
        let (Some(grad_kernel), Some(grad_bias)) = (views.of(k)?, views.of(b)?) else { return Ok(None) };
        let kernel = model.params[k].tensor.f_detach()?;
        let buffer = || Tensor::f_zeros([batch, kernel.size()[1]], (Kind::Float, Device::Cpu));
        let needs_input = matches!(plan.spec.activation, Activation::Gelu | Activation::Swish);
        let norm = if hidden && plan.spec.batch_norm {
            let Some(norm) = Norm::new(model, l, views)? else { return Ok(None) };
            Some(norm)
        } else {
            None
        };
        Ok(Some(Layer {
            bias: model.params[b].tensor.f_detach()?,
            grad_kernel,
            grad_bias,
            out: buffer()?,
            pre: (hidden && needs_input).then(buffer).transpose()?,
            delta: hidden.then(buffer).transpose()?,
            dropout: if hidden && plan.spec.dropout > 0.0 { Some((buffer()?, buffer()?)) } else { None },
            norm,
            kernel,
        }))
    }
}

/// Batch normalisation after a hidden layer.
struct Norm {
    gamma: Tensor,
    beta: Tensor,
    /// The moving statistics, which the forward pass updates in place.
    mean: Tensor,
    variance: Tensor,
    grad_gamma: Tensor,
    grad_beta: Tensor,
}

impl Norm {
    fn new(model: &Model, l: usize, views: &mut Views) -> Result<Option<Norm>, TrainError> {
        let param = |name: &str| model.param_index(&format!("dnn/hiddenlayer_{l}/batchnorm_{l}/{name}"));
        let (Some(g), Some(b), Some(m), Some(v)) =
            (param("gamma"), param("beta"), param("moving_mean"), param("moving_variance"))
        else {
            return Ok(None);
        };
        let (Some(grad_gamma), Some(grad_beta)) = (views.of(g)?, views.of(b)?) else { return Ok(None) };
        Ok(Some(Norm {
            gamma: model.params[g].tensor.f_detach()?,
            beta: model.params[b].tensor.f_detach()?,
            mean: model.params[m].tensor.shallow_clone(),
            variance: model.params[v].tensor.shallow_clone(),
            grad_gamma,
            grad_beta,
        }))
    }
}

/// A batch's way through one batch normalisation: its input, output, and the batch's mean and
/// inverse standard deviation per unit.
struct Normed {
    input: Tensor,
    output: Tensor,
    mean: Tensor,
    invstd: Tensor,
}

/// Weights looked up by id and combined, and the view of their gradient.
struct Embedding {
    input: InputEmbedding,
    grad: Tensor,
}

/// The DNN part.
struct Dnn {
    layers: Vec<Layer>,
    /// The embeddings among its inputs.
    embeddings: Vec<Embedding>,
    /// `[batch, input width]`: the gradient at the input layer, when embeddings need it.
    input_grad: Option<Tensor>,
    activation: Activation,
    dropout: f64,
}

/// One input of the linear part.
enum Term {
    /// Weights looked up by id and summed.
    Ids(Embedding),
    /// A dense value times weights: the weights outside autograd, the view of their gradient,
    /// and an embedding's table.
    Dense { name: String, weights: Tensor, grad: Tensor, table: Option<Embedding> },
}

/// The linear part: the view of its bias's gradient and its inputs.
struct Linear {
    bias: Tensor,
    terms: Vec<Term>,
}

/// One batch's way through the DNN, which its backward pass reads.
struct Pass {
    input: Tensor,
    /// Each layer's output, the logits last.
    outs: Vec<Tensor>,
    /// Each layer's output before its activation, where the derivative needs it.
    pres: Vec<Option<Tensor>>,
    /// Per hidden layer with dropout: its mask and its output after dropout.
    dropped: Vec<Option<(Tensor, Tensor)>>,
    /// Per hidden layer with batch normalisation.
    normed: Vec<Option<Normed>>,
}

impl Pass {
    /// What layer `i` reads.
    fn below(&self, i: usize) -> &Tensor {
        match i {
            0 => &self.input,
            _ => match &self.normed[i - 1] {
                Some(normed) => &normed.output,
                None => self.kept(i - 1),
            },
        }
    }

    /// Layer `i`'s output after dropout.
    fn kept(&self, i: usize) -> &Tensor {
        self.dropped[i].as_ref().map_or(&self.outs[i], |(_, kept)| kept)
    }
}

/// The buffers and views a run's steps reuse.
pub struct Direct {
    dnn: Option<Dnn>,
    linear: Option<Linear>,
    head: HeadKind,
    batch: i64,
    /// Per optimizer group, gradients laid out like its flat buffer.
    grads: Vec<Tensor>,
}

/// Views into the gradient buffers, and which variables have one handed out.
struct Views<'a> {
    model: &'a Model,
    grads: &'a [Tensor],
    covered: Vec<bool>,
}

impl Views<'_> {
    /// The gradient view of parameter `i`, in its own shape, if an optimizer updates it.
    fn of(&mut self, i: usize) -> Result<Option<Tensor>, TrainError> {
        self.covered[i] = true;
        for (group, grad) in self.model.groups.iter().zip(self.grads) {
            if let Some(k) = group.members.iter().position(|&(p, _, _)| p == i) {
                return Ok(Some(group.view(grad, k, &self.model.params[i].tensor.size())?));
            }
        }
        Ok(None)
    }

    fn embedding(&mut self, input: InputEmbedding) -> Result<Option<Embedding>, TrainError> {
        Ok(self.of(input.param)?.map(|grad| Embedding { input, grad }))
    }
}

impl Direct {
    /// Buffers for batches of up to `batch` rows, or `None` when the model needs autograd.
    pub fn new(model: &Model, batch: i64) -> Result<Option<Direct>, TrainError> {
        if model.device != Device::Cpu || model.params.iter().any(|p| p.tensor.kind() != Kind::Float) {
            return Ok(None);
        }
        let grads: Vec<Tensor> = model.groups.iter().map(|g| g.flat.f_zeros_like()).collect::<Result<_, _>>()?;
        let mut views = Views { model, grads: &grads, covered: vec![false; model.params.len()] };
        let dnn = if model.dnn().is_some() {
            let Some(dnn) = Dnn::new(model, batch, &mut views)? else { return Ok(None) };
            Some(dnn)
        } else {
            None
        };
        let linear = if model.has_linear() {
            let Some(linear) = Linear::new(model, &mut views)? else { return Ok(None) };
            Some(linear)
        } else {
            None
        };
        // Every variable an optimizer updates must have had its view handed out, or its
        // gradient would be left out.
        let complete = model.groups.iter().flat_map(|g| &g.members).all(|&(i, _, _)| views.covered[i]);
        if !complete || dnn.is_none() && linear.is_none() {
            return Ok(None);
        }
        Ok(Some(Direct { dnn, linear, head: model.head.kind, batch, grads }))
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
        let pass = self.dnn.as_ref().map(|dnn| dnn.forward(model, x, n, step, seed, taps)).transpose()?;
        // The linear part outside autograd, added as autograd's forward pass adds the two parts.
        let linear = self.linear.as_ref().map(|_| tch::no_grad(|| model.linear_part(x))).transpose()?;
        let logits = match (&pass, linear) {
            (Some(pass), linear) => {
                let mut logits = pass.outs[pass.outs.len() - 1].shallow_clone();
                if let Some(part) = linear {
                    logits.f_add_(&part).done()?;
                }
                logits
            }
            // A fresh `[n, logits]` sum, which the loss may overwrite: the check requires a
            // linear part to have inputs, so it is never the bias itself.
            (None, Some(part)) => part,
            (None, None) => return Err(TrainError::Lower("a model without parts".into())),
        };
        let labels = x.labels.as_ref().ok_or_else(|| TrainError::Lower("a training batch without labels".into()))?;
        let bias = match (&self.dnn, &self.linear) {
            (Some(dnn), _) => &dnn.layers[dnn.layers.len() - 1].grad_bias,
            (None, Some(linear)) => &linear.bias,
            (None, None) => return Err(TrainError::Lower("a model without parts".into())),
        };
        // SAFETY: the logits are a contiguous float CPU buffer of the step's own, the bias
        // gradient a contiguous view of the same width into another; nothing else touches them
        // meanwhile.
        let loss = unsafe { head_loss(self.head, floats_mut(&logits), labels, floats_mut(bias))? };
        if let Some(linear) = &self.linear {
            if self.dnn.is_some() {
                // Both biases are added to every row's logits: the same gradient.
                linear.bias.shallow_clone().f_copy_(bias)?;
            }
            linear.backward(model, x, &logits)?;
        }
        if let (Some(dnn), Some(pass)) = (&self.dnn, &pass) {
            dnn.backward(x, pass, n)?;
        }
        Ok(loss)
    }
}

impl Dnn {
    fn new(model: &Model, batch: i64, views: &mut Views) -> Result<Option<Dnn>, TrainError> {
        let Some(plan) = model.dnn() else { return Ok(None) };
        let hidden = plan.spec.hidden_units.len();
        let mut layers = Vec::with_capacity(hidden + 1);
        for l in 0..=hidden {
            match Layer::new(model, plan, l, batch, views)? {
                Some(layer) => layers.push(layer),
                None => return Ok(None),
            }
        }
        let mut embeddings = Vec::new();
        for input in model.input_embeddings()? {
            let Some(embedding) = views.embedding(input)? else { return Ok(None) };
            embeddings.push(embedding);
        }
        let input_grad = (!embeddings.is_empty())
            .then(|| Tensor::f_zeros([batch, plan.input_width as i64], (Kind::Float, Device::Cpu)))
            .transpose()?;
        let (activation, dropout) = (plan.spec.activation, plan.spec.dropout);
        Ok(Some(Dnn { layers, embeddings, input_grad, activation, dropout }))
    }

    /// The layers' outputs for a batch of `n` rows, the logits (without the linear part) last.
    fn forward(
        &self,
        model: &Model,
        x: &Inputs,
        n: i64,
        step: u64,
        seed: u64,
        taps: Option<&mut Vec<Tensor>>,
    ) -> Result<Pass, TrainError> {
        let rows = |t: &Tensor| t.f_narrow(0, 0, n);
        // Outside autograd: an embedding's table is a variable that requires its gradient.
        let input = tch::no_grad(|| model.dnn_input(x))?;
        let outs: Vec<Tensor> = self.layers.iter().map(|l| rows(&l.out)).collect::<Result<_, _>>()?;
        let dropped = self
            .layers
            .iter()
            .map(|l| l.dropout.as_ref().map(|(mask, kept)| Ok::<_, TrainError>((rows(mask)?, rows(kept)?))).transpose())
            .collect::<Result<_, _>>()?;
        let pres = self.layers.iter().map(|l| l.pre.as_ref().map(rows).transpose()).collect::<Result<_, _>>()?;
        let mut pass = Pass { input, outs, pres, dropped, normed: Vec::with_capacity(self.layers.len()) };
        if self.dropout > 0.0 {
            crate::lower::seed_dropout(seed, step);
        }
        let top = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            match &pass.pres[i] {
                Some(pre) => {
                    layer.bias.f_addmm_out(pre, pass.below(i), &layer.kernel).done()?;
                    match self.activation {
                        Activation::Gelu => pre.f_gelu_out(&pass.outs[i], "none").done()?,
                        _ => pre.f_silu_out(&pass.outs[i]).done()?,
                    }
                }
                None => {
                    layer.bias.f_addmm_out(&pass.outs[i], pass.below(i), &layer.kernel).done()?;
                    if i < top {
                        activate_in_place(&pass.outs[i], self.activation)?;
                    }
                }
            }
            if let Some((mask, kept)) = &pass.dropped[i] {
                // libtorch's dropout, operation for operation, so the masks are autograd's.
                let mut mask = mask.shallow_clone();
                mask.f_bernoulli_float_(1.0 - self.dropout).done()?;
                mask.f_div_scalar_(1.0 - self.dropout).done()?;
                pass.outs[i].f_mul_out(kept, &mask).done()?;
            }
            let normed = match &layer.norm {
                Some(norm) => {
                    // The kernel autograd's forward pass runs, moving statistics included.
                    let input = pass.kept(i).shallow_clone();
                    let (output, mean, invstd, _) = input.f_internal_batch_norm_with_update(
                        Some(&norm.gamma),
                        Some(&norm.beta),
                        &norm.mean,
                        &norm.variance,
                        NORM_MOMENTUM,
                        NORM_EPSILON,
                    )?;
                    Some(Normed { input, output, mean, invstd })
                }
                None => None,
            };
            pass.normed.push(normed);
        }
        if let Some(taps) = taps {
            taps.extend((0..top).map(|i| pass.below(i + 1).shallow_clone()));
        }
        Ok(pass)
    }

    /// The gradients of every layer and input embedding, from the loss's gradient in the
    /// logits' buffer (the logits layer's bias gradient is already there).
    fn backward(&self, x: &Inputs, pass: &Pass, n: i64) -> Result<(), TrainError> {
        let top = self.layers.len() - 1;
        for i in (0..=top).rev() {
            let delta = if i == top { pass.outs[top].shallow_clone() } else { self.delta(i, n)? };
            pass.below(i).f_tr()?.f_mm_out(&self.layers[i].grad_kernel, &delta).done()?;
            if i == 0 {
                if let Some(input_grad) = &self.input_grad {
                    let input_grad = input_grad.f_narrow(0, 0, n)?;
                    delta.f_mm_out(&input_grad, &self.layers[0].kernel.f_tr()?).done()?;
                    for e in &self.embeddings {
                        embedding_grad(e, &input_grad, x.ids(&e.input.ids)?)?;
                    }
                }
            } else {
                let down = self.delta(i - 1, n)?;
                delta.f_mm_out(&down, &self.layers[i].kernel.f_tr()?).done()?;
                // SAFETY: `down`, the layer's output and its mask are distinct contiguous
                // `[n, width]` buffers, the bias gradient a contiguous view of `width` floats.
                if let (Some(normed), Some(norm)) = (&pass.normed[i - 1], &self.layers[i - 1].norm) {
                    normalization_grad(norm, normed, &down)?;
                }
                unsafe {
                    if let Some((mask, _)) = &pass.dropped[i - 1] {
                        for (d, m) in floats_mut(&down).iter_mut().zip(&*floats_mut(mask)) {
                            *d *= m;
                        }
                    }
                    let mut activation = self.activation;
                    if let Some(pre) = &pass.pres[i - 1] {
                        // libtorch's own derivative, from the output before the activation.
                        match activation {
                            Activation::Gelu => pre.f_gelu_backward_grad_input(&down, &down, "none").done()?,
                            _ => pre.f_silu_backward_grad_input(&down, &down).done()?,
                        }
                        activation = Activation::Linear;
                    }
                    backward_rows(
                        activation,
                        floats_mut(&down),
                        floats_mut(&pass.outs[i - 1]),
                        floats_mut(&self.layers[i - 1].grad_bias),
                    )
                };
            }
        }
        Ok(())
    }

    fn delta(&self, i: usize, n: i64) -> Result<Tensor, TrainError> {
        let delta = self.layers[i]
            .delta
            .as_ref()
            .ok_or_else(|| TrainError::Lower("a hidden layer without a gradient buffer".into()))?;
        Ok(delta.f_narrow(0, 0, n)?)
    }
}

impl Linear {
    fn new(model: &Model, views: &mut Views) -> Result<Option<Linear>, TrainError> {
        let Some(b) = model.param_index("linear/linear_model/bias_weights") else { return Ok(None) };
        let Some(bias) = views.of(b)? else { return Ok(None) };
        let mut terms = Vec::new();
        for input in model.linear_inputs().iter().cloned() {
            terms.push(match input {
                LinearInput::Ids(input) => match views.embedding(input)? {
                    Some(embedding) => Term::Ids(embedding),
                    None => return Ok(None),
                },
                LinearInput::Dense { name, weights, table } => {
                    let Some(grad) = views.of(weights)? else { return Ok(None) };
                    let table = match table {
                        Some(input) => match views.embedding(input)? {
                            Some(embedding) => Some(embedding),
                            None => return Ok(None),
                        },
                        None => None,
                    };
                    Term::Dense { name, weights: model.params[weights].tensor.f_detach()?, grad, table }
                }
            });
        }
        Ok(Some(Linear { bias, terms }))
    }

    /// The gradients of every weight from the loss's gradient at the logits, `[n, logits]`
    /// (the bias's is already there).
    fn backward(&self, model: &Model, x: &Inputs, upstream: &Tensor) -> Result<(), TrainError> {
        for term in &self.terms {
            match term {
                Term::Ids(e) => embedding_grad(e, upstream, x.ids(&e.input.ids)?)?,
                Term::Dense { name, weights, grad, table } => {
                    let value = tch::no_grad(|| model.linear_dense(name, x))?;
                    value.f_tr()?.f_mm_out(grad, upstream).done()?;
                    if let Some(e) = table {
                        let at_value = upstream.f_mm(&weights.f_tr()?)?;
                        embedding_grad(e, &at_value, x.ids(&e.input.ids)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Through a batch normalisation, in place: `delta` becomes the gradient at its input, and
/// gamma's and beta's gradients are written.
fn normalization_grad(norm: &Norm, normed: &Normed, delta: &Tensor) -> Result<(), TrainError> {
    let width = norm.grad_beta.numel();
    let input = normed.input.f_contiguous()?;
    let (mean, invstd) = (normed.mean.f_contiguous()?, normed.invstd.f_contiguous()?);
    // SAFETY: contiguous float CPU tensors: the gradient a buffer of the step's own, the input,
    // statistics and gamma read only, gamma's and beta's gradients views of `width` floats in
    // the gradient buffer; all distinct.
    let (delta, input, mean, invstd, gamma, grad_gamma, grad_beta) = unsafe {
        (
            floats_mut(delta),
            &*floats_mut(&input),
            &*floats_mut(&mean),
            &*floats_mut(&invstd),
            &*floats_mut(&norm.gamma),
            floats_mut(&norm.grad_gamma),
            floats_mut(&norm.grad_beta),
        )
    };
    if [mean.len(), invstd.len(), gamma.len()] != [width; 3] || delta.len() != input.len() {
        return Err(TrainError::Lower("batch normalisation statistics of another width".into()));
    }
    let n = (delta.len() / width) as f32;
    grad_gamma.fill(0.0);
    grad_beta.fill(0.0);
    for (d, x) in delta.chunks_exact(width).zip(input.chunks_exact(width)) {
        for j in 0..width {
            grad_beta[j] += d[j];
            grad_gamma[j] += d[j] * (x[j] - mean[j]) * invstd[j];
        }
    }
    for (d, x) in delta.chunks_exact_mut(width).zip(input.chunks_exact(width)) {
        for j in 0..width {
            let normalized = (x[j] - mean[j]) * invstd[j];
            d[j] = (d[j] - grad_beta[j] / n - normalized * grad_gamma[j] / n) * invstd[j] * gamma[j];
        }
    }
    Ok(())
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

/// `delta ← delta × activation′`, the derivative taken from the layer's output before dropout,
/// and the bias gradient as the column sums of the result.
fn backward_rows(activation: Activation, delta: &mut [f32], out: &[f32], bias: &mut [f32]) {
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
