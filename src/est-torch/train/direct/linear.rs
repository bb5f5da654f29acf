//! The linear part of the written-out step: the gradients of its weights from the loss's
//! gradient at the logits.

use tch::Tensor;

use super::kernels::embedding_grad;
use super::{Embedding, Views};
use crate::lower::{Done, Inputs, LinearInput, Model};
use crate::train::TrainError;

/// One input of the linear part.
enum Term {
    /// Weights looked up by id and summed.
    Ids(Embedding),
    /// A dense value times weights: the weights outside autograd, the view of their gradient,
    /// and an embedding's table.
    Dense { name: String, weights: Tensor, grad: Tensor, table: Option<Embedding> },
}

/// The linear part: the view of its bias's gradient and its inputs.
pub(super) struct Linear {
    pub(super) bias: Tensor,
    terms: Vec<Term>,
}

impl Linear {
    pub(super) fn new(model: &Model, views: &mut Views) -> Result<Option<Linear>, TrainError> {
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

    /// The weights looked up by id, and the tables of embeddings it reads.
    pub(super) fn embeddings(&self) -> impl Iterator<Item = &Embedding> {
        self.terms.iter().filter_map(|t| match t {
            Term::Ids(e) => Some(e),
            Term::Dense { table, .. } => table.as_ref(),
        })
    }

    /// The gradients of every weight from the loss's gradient at the logits, `[n, logits]`
    /// (the bias's is already there).
    pub(super) fn backward(&self, model: &Model, x: &Inputs, upstream: &Tensor) -> Result<(), TrainError> {
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
