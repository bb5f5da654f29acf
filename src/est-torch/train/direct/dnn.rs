//! The DNN part of the written-out step: its layers' buffers, the forward pass as autograd's
//! forward pass computes it, and the backward pass through activations, dropout and batch
//! normalisation.

use est::pipeline::Activation;
use est::plan::DnnPlan;
use tch::{Device, Kind, Tensor};

use super::kernels::{activate_in_place, backward_rows, embedding_grads, embedding_rows};
use super::{buffer, values, Embedding, StepError, Views};
use crate::lower::{DnnColumn, Done, Inputs, Model, NORM_EPSILON, NORM_MOMENTUM};
use crate::train::TrainError;

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

/// The input layer, written by the step when embeddings are among the DNN's inputs: their rows
/// are looked up and combined in one pass each, straight into their columns, where the tensor
/// program takes some seven operations per embedding and a concatenation.
struct InputLayer {
    /// `[batch, input width]`.
    buffer: Tensor,
    /// The inputs that are not embeddings, which libtorch copies into their columns.
    columns: Vec<DnnColumn>,
}

impl InputLayer {
    /// The input layer of a batch of `n` rows.
    fn fill(&self, model: &Model, x: &Inputs, n: i64, embeddings: &[Embedding]) -> Result<Tensor, TrainError> {
        let input = self.buffer.f_narrow(0, 0, n)?;
        let width = self.buffer.size()[1] as usize;
        let mut run: Vec<String> = Vec::new();
        let mut at = 0;
        let flush = |run: &mut Vec<String>, at: i64| -> Result<(), TrainError> {
            if !run.is_empty() {
                let part = x.numeric_run(run)?;
                input.f_narrow(1, at, part.size()[1])?.f_copy_(&part)?;
                run.clear();
            }
            Ok(())
        };
        for column in &self.columns {
            // Numeric columns next to each other in the block go over in one copy.
            if column.numeric && run.last().is_some_and(|last| x.adjacent(last, &column.name)) {
                run.push(column.name.clone());
                continue;
            }
            flush(&mut run, at)?;
            if column.numeric {
                (at, run) = (column.offset, vec![column.name.clone()]);
            } else {
                let part = tch::no_grad(|| model.dnn_column(&column.name, x))?;
                input.f_narrow(1, column.offset, column.width)?.f_copy_(&part)?;
            }
        }
        flush(&mut run, at)?;
        // SAFETY: a buffer of the step's own; the copies into it are done.
        let values = unsafe { buffer(&input)? };
        embedding_rows(&with_ids(embeddings, x)?, values, width)?;
        Ok(input)
    }
}

/// Each embedding with the batch's ids it looks up.
fn with_ids<'a>(embeddings: &'a [Embedding], x: &'a Inputs) -> Result<Vec<(&'a Embedding, &'a Tensor)>, TrainError> {
    embeddings.iter().map(|e| Ok((e, x.ids(&e.input.ids)?))).collect()
}

/// The DNN part.
pub(super) struct Dnn {
    layers: Vec<Layer>,
    /// The embeddings among its inputs.
    embeddings: Vec<Embedding>,
    input_layer: Option<InputLayer>,
    /// `[batch, input width]`: the gradient at the input layer, when embeddings need it.
    input_grad: Option<Tensor>,
    activation: Activation,
    dropout: f64,
}

/// One batch's way through the DNN, which its backward pass reads.
pub(super) struct Pass {
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
    /// The logits layer's output: the logits without the linear part, then the loss's gradient.
    pub(super) fn logits(&self) -> &Tensor {
        &self.outs[self.outs.len() - 1]
    }

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

impl Dnn {
    /// The gradient view of the logits layer's bias.
    pub(super) fn logits_bias_grad(&self) -> &Tensor {
        &self.layers[self.layers.len() - 1].grad_bias
    }

    pub(super) fn new(model: &Model, batch: i64, views: &mut Views) -> Result<Option<Dnn>, TrainError> {
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
        let wide = || Tensor::f_zeros([batch, plan.input_width as i64], (Kind::Float, Device::Cpu));
        let input_grad = (!embeddings.is_empty()).then(wide).transpose()?;
        let input_layer = match embeddings.is_empty() {
            true => None,
            false => {
                let taken: Vec<i64> = embeddings.iter().map(|e| e.input.offset).collect();
                let columns = model.dnn_columns()?.into_iter().filter(|c| !taken.contains(&c.offset)).collect();
                Some(InputLayer { buffer: wide()?, columns })
            }
        };
        let (activation, dropout) = (plan.spec.activation, plan.spec.dropout);
        Ok(Some(Dnn { layers, embeddings, input_layer, input_grad, activation, dropout }))
    }

    /// The layers' outputs for a batch of `n` rows, the logits (without the linear part) last.
    pub(super) fn forward(
        &self,
        model: &Model,
        x: &Inputs,
        n: i64,
        step: u64,
        seed: u64,
        taps: Option<&mut Vec<Tensor>>,
    ) -> Result<Pass, TrainError> {
        let rows = |t: &Tensor| t.f_narrow(0, 0, n);
        let input = match &self.input_layer {
            Some(layer) => layer.fill(model, x, n, &self.embeddings)?,
            // Outside autograd: the model's variables require their gradients.
            None => tch::no_grad(|| model.dnn_input(x))?,
        };
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

    /// The embeddings among its inputs.
    pub(super) fn embeddings(&self) -> impl Iterator<Item = &Embedding> {
        self.embeddings.iter()
    }

    /// The gradients of every layer and input embedding, from the loss's gradient in the
    /// logits' buffer (the logits layer's bias gradient is already there).
    pub(super) fn backward(&self, x: &Inputs, pass: &Pass, n: i64) -> Result<(), TrainError> {
        let top = self.layers.len() - 1;
        for i in (0..=top).rev() {
            let delta = if i == top { pass.outs[top].shallow_clone() } else { self.delta(i, n)? };
            pass.below(i).f_tr()?.f_mm_out(&self.layers[i].grad_kernel, &delta).done()?;
            if i == 0 {
                if let Some(input_grad) = &self.input_grad {
                    let input_grad = input_grad.f_narrow(0, 0, n)?;
                    delta.f_mm_out(&input_grad, &self.layers[0].kernel.f_tr()?).done()?;
                    embedding_grads(&with_ids(&self.embeddings, x)?, &input_grad)?;
                }
            } else {
                let down = self.delta(i - 1, n)?;
                delta.f_mm_out(&down, &self.layers[i].kernel.f_tr()?).done()?;
                if let (Some(normed), Some(norm)) = (&pass.normed[i - 1], &self.layers[i - 1].norm) {
                    normalization_grad(norm, normed, &down)?;
                }
                if let Some((mask, _)) = &pass.dropped[i - 1] {
                    // SAFETY: `down` and the mask are distinct buffers of the step's own.
                    let (down, mask) = unsafe { (buffer(&down)?, values(mask)?) };
                    for (d, m) in down.iter_mut().zip(mask) {
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
                // SAFETY: `down`, the layer's output and its bias gradient (a view into the
                // gradient buffer) are distinct buffers of the step's own.
                let (down, out, bias) =
                    unsafe { (buffer(&down)?, values(&pass.outs[i - 1])?, buffer(&self.layers[i - 1].grad_bias)?) };
                backward_rows(activation, down, out, bias);
            }
        }
        Ok(())
    }

    fn delta(&self, i: usize, n: i64) -> Result<Tensor, TrainError> {
        let delta = self.layers[i].delta.as_ref().ok_or(StepError::NoGradientBuffer)?;
        Ok(delta.f_narrow(0, 0, n)?)
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
            buffer(delta)?,
            values(&input)?,
            values(&mean)?,
            values(&invstd)?,
            values(&norm.gamma)?,
            buffer(&norm.grad_gamma)?,
            buffer(&norm.grad_beta)?,
        )
    };
    if [mean.len(), invstd.len(), gamma.len()] != [width; 3] || delta.len() != input.len() {
        return Err(StepError::NormWidth.into());
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
