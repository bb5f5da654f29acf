//! A training step with backpropagation written out, for every model on the CPU. The matrix
//! products stay libtorch's, written into buffers that live as long as the run; the loss, its
//! gradient, the activations' derivatives, the bias gradients and the gradients of looked-up
//! weights are one pass each in Rust. Gradients land in one flat buffer per optimizer, laid out
//! like its variables. Autograd would run the same products, but also some twenty small kernels
//! with their allocations and its engine's bookkeeping per step.

mod dnn;
mod kernels;
mod linear;

use est::pipeline::Activation;
use est::plan::HeadKind;
use std::cell::RefCell;

use tch::{Device, Kind, Tensor};

use super::TrainError;
use crate::lower::{Done, InputEmbedding, Inputs, Model};
use crate::memory::{slice, slice_mut};
use dnn::Dnn;
use kernels::head_loss;
use linear::Linear;

/// What the written-out step cannot take: a batch it was not built for, or a model or buffer
/// that breaks its assumptions (a bug in est).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// More rows than its buffers hold, or none.
    #[error("a batch of {rows} rows; the buffers hold 1 to {capacity}")]
    BatchSize {
        /// The batch's rows.
        rows: i64,
        /// The most the buffers hold.
        capacity: i64,
    },
    /// A model with neither a DNN nor a linear part.
    #[error("a model without parts")]
    NoParts,
    /// A batch without labels.
    #[error("a training batch without labels")]
    NoLabels,
    /// A hidden layer whose gradient buffer was not made.
    #[error("a hidden layer without a gradient buffer")]
    NoGradientBuffer,
    /// Batch normalisation statistics that do not match the layer.
    #[error("batch normalisation statistics of another width")]
    NormWidth,
    /// An id column that does not match its embedding.
    #[error("the ids of `{0}` do not fit its embedding")]
    IdsLayout(String),
    /// An id past its embedding's rows.
    #[error("id {id} of `{column}` is outside its embedding")]
    IdOutOfRange {
        /// The id.
        id: i64,
        /// The id column.
        column: String,
    },
    /// An activation whose derivative the step does not write out.
    #[error("{0:?} has no written-out derivative")]
    NoDerivative(Activation),
    /// A class label past the head's classes.
    #[error("label {0} is outside the head's classes")]
    LabelOutOfRange(i64),
    /// Class labels in another layout than int64 on the CPU, one per row.
    #[error("class labels must be int64 on the cpu, one per row")]
    ClassLabels,
    /// Regression labels in another layout than float on the CPU, one per row.
    #[error("regression labels must be float on the cpu, one per row")]
    ValueLabels,
    /// Example weights in another layout than float on the CPU, one per row.
    #[error("example weights must be float on the cpu, one per row")]
    Weights,
    /// A piece of the step run by a helper thread panicked.
    #[error(transparent)]
    Helper(#[from] crate::crew::Panicked),
    /// A buffer that is not a contiguous float CPU tensor.
    #[error("a buffer of the written-out step is not a contiguous float tensor on the cpu")]
    Layout,
}

/// `t`'s floats, to write, or the error that says it has another layout.
///
/// # Safety
/// As `memory::slice_mut`: nothing else touches `t`'s memory while the slice lives.
#[allow(clippy::mut_from_ref)]
unsafe fn buffer(t: &Tensor) -> Result<&mut [f32], StepError> {
    // SAFETY: the caller's promise.
    unsafe { slice_mut(t) }.ok_or(StepError::Layout)
}

/// `t`'s floats, to read, or the error that says it has another layout.
///
/// # Safety
/// As `memory::slice`: nothing writes `t`'s memory while the slice lives.
unsafe fn values(t: &Tensor) -> Result<&[f32], StepError> {
    // SAFETY: the caller's promise.
    unsafe { slice(t) }.ok_or(StepError::Layout)
}

/// A batch's example weights, one per row, if it has them.
fn example_weights(weights: Option<&Tensor>, n: i64) -> Result<Option<&[f32]>, StepError> {
    let Some(weights) = weights else { return Ok(None) };
    // SAFETY: a batch's weights, which nothing writes during the step.
    let weights = unsafe { slice::<f32>(weights) }.filter(|w| w.len() as i64 == n).ok_or(StepError::Weights)?;
    Ok(Some(weights))
}

/// The head's loss over `logits` and its gradient with respect to them, as the written-out step
/// computes them: for tests that hold it to another implementation of the loss.
pub fn head_gradient(
    head: HeadKind,
    logits: &Tensor,
    labels: &Tensor,
    weights: Option<&Tensor>,
) -> Result<(f64, Tensor), TrainError> {
    let (n, width) = logits.size2()?;
    let grad = logits.f_detach_copy()?.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?;
    let bias = Tensor::f_zeros([width], (Kind::Float, Device::Cpu))?;
    let weights = example_weights(weights, n)?;
    // SAFETY: the gradient and the bias are fresh tensors of this function's own.
    let loss = head_loss(head, unsafe { buffer(&grad)? }, labels, weights, unsafe { buffer(&bias)? })?;
    Ok((loss, grad))
}

/// Weights looked up by id and combined, and the view of their gradient.
pub(super) struct Embedding {
    input: InputEmbedding,
    /// Its table, sharing the variable's memory but outside autograd.
    table: Tensor,
    grad: Tensor,
    /// Its optimizer group, and where its table starts in the group's flat buffer.
    group: usize,
    offset: i64,
    /// The rows of the table the last step's gradient touched: the others are zero.
    touched: RefCell<Touched>,
}

/// Rows of a table, each once, and a mark per row of the table.
#[derive(Default)]
pub(super) struct Touched {
    rows: Vec<u32>,
    mark: Vec<bool>,
}

/// The rows of one member of an optimizer group that a step's gradient touched; every other
/// element of the member's gradient is zero.
#[derive(Clone, Debug)]
pub struct TouchedRows {
    /// Where the member starts in the group's flat buffer, in elements.
    pub offset: usize,
    /// Its elements.
    pub len: usize,
    /// Elements per row.
    pub width: usize,
    /// The rows touched, each once.
    pub rows: Vec<u32>,
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
pub(super) struct Views<'a> {
    model: &'a Model,
    grads: &'a [Tensor],
    covered: Vec<bool>,
}

impl Views<'_> {
    /// The gradient view of parameter `i`, in its own shape, if an optimizer updates it.
    pub(super) fn of(&mut self, i: usize) -> Result<Option<Tensor>, TrainError> {
        Ok(self.placed(i)?.map(|(grad, _, _)| grad))
    }

    /// As `of`, with the optimizer group and the offset in its flat buffer.
    fn placed(&mut self, i: usize) -> Result<Option<(Tensor, usize, i64)>, TrainError> {
        self.covered[i] = true;
        for (g, (group, grad)) in self.model.groups.iter().zip(self.grads).enumerate() {
            if let Some(k) = group.members.iter().position(|&(p, _, _)| p == i) {
                let view = group.view(grad, k, &self.model.params[i].tensor.size())?;
                return Ok(Some((view, g, group.members[k].1)));
            }
        }
        Ok(None)
    }

    pub(super) fn embedding(&mut self, input: InputEmbedding) -> Result<Option<Embedding>, TrainError> {
        let table = self.model.params[input.param].tensor.f_detach()?;
        Ok(self.placed(input.param)?.map(|(grad, group, offset)| Embedding {
            input,
            table,
            grad,
            group,
            offset,
            touched: RefCell::default(),
        }))
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

    /// Per optimizer group, the embedding tables (and linear weights looked up by id) among its
    /// members and the rows of each that the last step touched.
    pub fn touched(&self) -> Vec<Vec<TouchedRows>> {
        let mut out = vec![Vec::new(); self.grads.len()];
        let dnn = self.dnn.iter().flat_map(|d| d.embeddings());
        for e in dnn.chain(self.linear.iter().flat_map(|l| l.embeddings())) {
            let touched = e.touched.borrow();
            out[e.group].push(TouchedRows {
                offset: e.offset as usize,
                len: e.grad.numel(),
                width: e.input.dimension as usize,
                rows: touched.rows.clone(),
            });
        }
        out
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
            return Err(StepError::BatchSize { rows: n, capacity: self.batch }.into());
        }
        let pass = self.dnn.as_ref().map(|dnn| dnn.forward(model, x, n, step, seed, taps)).transpose()?;
        // The linear part outside autograd, added as autograd's forward pass adds the two parts.
        let linear = self.linear.as_ref().map(|_| tch::no_grad(|| model.linear_part(x))).transpose()?;
        let logits = match (&pass, linear) {
            (Some(pass), linear) => {
                let mut logits = pass.logits().shallow_clone();
                if let Some(part) = linear {
                    logits.f_add_(&part).done()?;
                }
                logits
            }
            // A fresh `[n, logits]` sum, which the loss may overwrite: the check requires a
            // linear part to have inputs, so it is never the bias itself.
            (None, Some(part)) => part,
            (None, None) => return Err(StepError::NoParts.into()),
        };
        let labels = x.labels.as_ref().ok_or(StepError::NoLabels)?;
        let bias = match (&self.dnn, &self.linear) {
            (Some(dnn), _) => dnn.logits_bias_grad(),
            (None, Some(linear)) => &linear.bias,
            (None, None) => return Err(StepError::NoParts.into()),
        };
        let weights = example_weights(x.weights.as_ref(), n)?;
        // SAFETY: the logits are a buffer of the step's own, the bias gradient a view into
        // another; nothing else touches them meanwhile.
        let loss = head_loss(self.head, unsafe { buffer(&logits)? }, labels, weights, unsafe { buffer(bias)? })?;
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
