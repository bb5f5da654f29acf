//! The heads' losses: softmax cross entropy, sigmoid cross entropy and squared error, per
//! example and as a batch's (weighted) mean, and a training step's loss as the step left it.

use est::plan::{Head, HeadKind};
use tch::{Kind, Tensor};

use super::TrainError;
use crate::lower::Inputs;

/// Mean loss of a batch, as the head defines it. Weighted examples are summed by weight and
/// divided by the batch's rows, not its total weight: tf.estimator's `SUM_OVER_BATCH_SIZE`.
pub fn batch_loss(head: &Head, logits: &Tensor, x: &Inputs) -> Result<Tensor, TrainError> {
    if let Some(weights) = &x.weights {
        return Ok(example_losses(head, logits, x)?.f_mul(weights)?.f_mean(Kind::Float)?);
    }
    if let (HeadKind::MultiClass, Some(labels)) = (head.kind, &x.labels) {
        // One fused kernel instead of a loss per example and a mean.
        return Ok(logits.f_log_softmax(1, Kind::Float)?.f_nll_loss::<Tensor>(
            labels,
            None,
            tch::Reduction::Mean,
            -100,
        )?);
    }
    Ok(example_losses(head, logits, x)?.f_mean(Kind::Float)?)
}

/// One loss per example: softmax cross entropy, sigmoid cross entropy or squared error.
pub fn example_losses(head: &Head, logits: &Tensor, x: &Inputs) -> Result<Tensor, TrainError> {
    let labels = x.labels.as_ref().ok_or(TrainError::NoEvalData)?;
    Ok(match head.kind {
        HeadKind::MultiClass => {
            logits.f_log_softmax(1, Kind::Float)?.f_nll_loss::<Tensor>(labels, None, tch::Reduction::None, -100)?
        }
        HeadKind::Binary => logits.f_squeeze_dim(1)?.f_binary_cross_entropy_with_logits::<Tensor>(
            &labels.f_to_kind(Kind::Float)?,
            None,
            None,
            tch::Reduction::None,
        )?,
        HeadKind::Regression => {
            let d = logits.f_squeeze_dim(1)?.f_sub(labels)?;
            d.f_mul(&d)?
        }
    })
}

/// A step's loss: autograd's, read only when needed (reading syncs with the device), or the
/// written-out step's value.
pub enum StepLoss {
    /// A scalar tensor on the training device.
    Pending(Tensor),
    /// Already on the host.
    Known(f64),
}

impl StepLoss {
    /// The loss on the host.
    pub fn value(&self) -> Result<f64, TrainError> {
        Ok(match self {
            StepLoss::Pending(loss) => loss.f_double_value(&[])?,
            StepLoss::Known(value) => *value,
        })
    }
}
