//! One optimizer step's mechanics: which rows the next batch holds, and its gradients, written
//! out on the CPU or through autograd elsewhere, applied by each optimizer to its flat buffer.

use std::collections::VecDeque;

use est::data::order::{Batch, Batcher};
use tch::{Device, Tensor};

use super::direct::Direct;
use super::loss::{batch_loss, StepLoss};
use super::session::Session;
use super::snapshot::{Snapshot, Write};
use super::TrainError;
use crate::lower::Inputs;

/// The row indexes of a run's batches, on the training device.
pub struct Batches {
    batcher: Batcher,
    batch_size: usize,
    /// Rows an epoch plan has left to read; `None` for plans counted in steps.
    rows_left: Option<u64>,
    /// The current epoch's permutation, on the device, which crosses there once per epoch.
    permutation: Option<(u64, Tensor)>,
    device: Device,
}

impl Batches {
    /// Batches of `batch_size` rows drawn by `batcher`; an epoch plan's last one holds what is
    /// left of `rows_left`.
    pub fn new(batcher: Batcher, batch_size: usize, rows_left: Option<u64>, device: Device) -> Batches {
        Batches { batcher, batch_size, rows_left, permutation: None, device }
    }

    /// The next batch's rows.
    pub fn next(&mut self) -> Result<Tensor, TrainError> {
        let count = self.rows_left.map_or(self.batch_size, |left| (left as usize).min(self.batch_size));
        if let Some(left) = self.rows_left.as_mut() {
            *left -= count as u64;
        }
        // A batch inside one epoch is a slice of that epoch's permutation.
        Ok(match self.batcher.next_batch(count) {
            Batch::Within { epoch, start, len } => {
                let on_device = match self.permutation.take() {
                    Some((e, p)) if e == epoch => p,
                    _ => Tensor::f_from_slice(self.batcher.permutation())?.f_to_device(self.device)?,
                };
                let index = on_device.f_narrow(0, start as i64, len as i64)?;
                self.permutation = Some((epoch, on_device));
                index
            }
            Batch::Across(rows) => Tensor::f_from_slice(&rows)?.f_to_device(self.device)?,
        })
    }

    /// Where the next batch starts, as a checkpoint stores it.
    pub fn order(&self) -> est::data::order::DataOrder {
        self.batcher.order()
    }
}

/// How a step's gradients are made and applied.
pub struct Backprop {
    /// Each optimizer group's flat buffer.
    flats: Vec<Tensor>,
    /// Per group, the variables autograd differentiates, in flat-buffer order.
    leaves: Vec<Vec<Tensor>>,
    /// The written-out step, on the CPU; `None` trains through autograd.
    direct: Option<Direct>,
    /// Whether updates of embedding tables cover every row, as for tests that hold the updates
    /// of touched rows to them.
    dense: bool,
}

impl Backprop {
    /// For batches of up to `batch_size` rows of `session`'s model.
    pub fn new(session: &Session, batch_size: usize) -> Result<Backprop, TrainError> {
        let model = &session.model;
        let flats = model.groups.iter().map(|g| g.flat.shallow_clone()).collect();
        let leaves = model
            .groups
            .iter()
            .map(|g| g.members.iter().map(|&(i, _, _)| model.params[i].tensor.shallow_clone()).collect())
            .collect();
        let direct = Direct::new(model, batch_size as i64)?;
        Ok(Backprop { flats, leaves, direct, dense: false })
    }

    /// Updates every row of every table, where the step would update only the touched rows.
    pub fn dense_updates(mut self) -> Backprop {
        self.dense = true;
        self
    }

    /// Trains on batch `x`: the loss, its gradients, each optimizer's update. With `taps`, hands
    /// out each hidden layer's output; tells each save being copied (`saving`) what the update
    /// is about to write. Does not move the global step.
    pub fn step(
        &mut self,
        session: &mut Session,
        x: &Inputs,
        seed: u64,
        taps: Option<&mut Vec<Tensor>>,
        saving: &mut VecDeque<Snapshot>,
    ) -> Result<StepLoss, TrainError> {
        let step = session.global_step;
        if let Some(direct) = self.direct.as_mut() {
            let value = direct.step(&session.model, x, step, seed, taps)?;
            let touched = if self.dense { vec![Vec::new(); self.flats.len()] } else { direct.touched() };
            let groups = session.optimizers.iter_mut().zip(&self.flats).zip(direct.grads()).zip(&touched);
            for (g, (((opt, flat), grad), rows)) in groups.enumerate() {
                let writes = opt.writes(rows);
                saving.iter_mut().for_each(|s| s.before_write(g, &writes));
                opt.update_rows(flat, grad, rows, step)?;
            }
            return Ok(StepLoss::Known(value));
        }
        let logits = session.model.forward_tapped(x, true, step, seed, taps)?;
        let loss = batch_loss(&session.model.head, &logits, x)?;
        // Gradients straight from autograd (nothing accumulates, nothing to zero), laid end to
        // end like the flat buffers.
        let all: Vec<&Tensor> = self.leaves.iter().flatten().collect();
        let mut grads = Tensor::f_run_backward(&[&loss], &all, false, false)?.into_iter();
        let groups = session.optimizers.iter_mut().zip(&self.flats).zip(&self.leaves);
        for (g, ((opt, flat), members)) in groups.enumerate() {
            let parts: Vec<Tensor> =
                grads.by_ref().take(members.len()).map(|g| g.f_view([-1])).collect::<Result<_, _>>()?;
            saving.iter_mut().for_each(|s| s.before_write(g, &Write::All));
            opt.update(flat, parts, step)?;
        }
        Ok(StepLoss::Pending(loss))
    }
}
