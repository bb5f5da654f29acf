//! A model with its optimizer state and position: built fresh from a plan, restored from a
//! checkpoint (after the fingerprint guard), warm-started from another model's tensors, and
//! copied to the host for saving. The same for training, evaluation and prediction.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use est::checkpoint::time::Clock;
use est::checkpoint::{Choice, Entry, HostTensor, Meta, Store};
use est::data::order::DataOrder;
use est::data::Table;
use est::plan::Plan;
use est::stopping::StopState;
use tch::{Device, Kind, Tensor};

use super::optim::OptimizerState;
use super::{Progress, Start, TrainError};
use crate::lower::{Group, Model};

/// A model with the optimizer state and position it was saved with.
pub struct Session {
    /// The variables.
    pub model: Model,
    /// One per optimizer of the plan, in its order.
    pub optimizers: Vec<OptimizerState>,
    /// Updates applied since the model was initialised.
    pub global_step: u64,
    /// Where the next batch starts in the data.
    pub data_order: DataOrder,
    /// The global step of the last evaluation during training.
    pub last_evaluation: Option<u64>,
    /// Early stopping's state.
    pub early_stop: Option<StopState>,
}

/// A restored session, the checkpoint it came from, and warnings about newer checkpoints that
/// were damaged and passed over.
pub type Restored = (Session, Entry, Vec<String>);

impl Session {
    /// A fresh model, initialised from the plan and the training table's statistics.
    pub fn fresh(plan: &Plan, device: Device, train: Option<&Table>) -> Result<Session, TrainError> {
        let model = Model::build(plan, device, train)?;
        let mut optimizers = Vec::new();
        for (g, (config, group)) in plan.optimizers.iter().zip(&model.groups).enumerate() {
            optimizers.push(OptimizerState::new(config, vec![g], &[&group.flat])?);
        }
        Ok(Session {
            model,
            optimizers,
            global_step: 0,
            data_order: DataOrder::default(),
            last_evaluation: None,
            early_stop: None,
        })
    }

    /// The checkpoint `choice` names in `store`, after the fingerprint guard; `None` when
    /// there is none. Without `with_optimizer` the optimizer's state is left fresh (and may be
    /// of another kind).
    pub fn restore(
        plan: &Plan,
        store: &Store,
        device: Device,
        with_optimizer: bool,
        choice: Choice,
    ) -> Result<Option<Restored>, TrainError> {
        let best_by = &plan.checkpoint.best_by;
        guard(plan, store.chosen_meta(choice, best_by)?, &store.dir, with_optimizer)?;
        let Some(loaded) = store.load_chosen(choice, best_by)? else {
            return Ok(None);
        };
        let path = store.dir.join(&loaded.entry.file);
        let mut session = Session::fresh(plan, device, None)?;
        for p in &session.model.params {
            restore_tensor(&path, &p.name, &p.tensor, &loaded.tensors)?;
        }
        if with_optimizer {
            session.restore_optimizers(&path, &loaded.tensors)?;
        }
        session.global_step = loaded.meta.global_step;
        session.data_order = loaded.meta.data_order;
        session.last_evaluation = loaded.meta.last_evaluation;
        session.early_stop = loaded.meta.early_stop;
        Ok(Some((session, loaded.entry, loaded.warnings)))
    }

    /// Each optimizer's slots and step count from a checkpoint's tensors.
    fn restore_optimizers(
        &mut self,
        path: &Utf8Path,
        tensors: &BTreeMap<String, HostTensor>,
    ) -> Result<(), TrainError> {
        let Session { model, optimizers, .. } = self;
        for (opt, group) in optimizers.iter_mut().zip(&model.groups) {
            let scope = opt.config.scope;
            for (s, slot) in opt.config.kind.slots().iter().enumerate() {
                for (k, &(pi, _, _)) in group.members.iter().enumerate() {
                    let param = &model.params[pi];
                    let view = group.view(&opt.slots[0][s], k, &param.tensor.size())?;
                    restore_tensor(path, &OptimizerState::slot_name(scope, &param.name, slot), &view, tensors)?;
                }
            }
            let step_name = OptimizerState::step_name(scope);
            let step = tensors
                .get(&step_name)
                .ok_or_else(|| TrainError::MissingTensor { path: path.to_owned(), name: step_name.clone() })?;
            opt.step =
                step.bytes.get(..8).map_or(0, |b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
        }
        Ok(())
    }

    /// The session a training run starts from, as `how` says, and the checkpoint it restored
    /// (which retention must keep). `table` is the training data, for fresh statistics.
    pub fn start(
        plan: &Plan,
        how: &Start,
        store: &Store,
        device: Device,
        table: &Table,
        clock: &dyn Clock,
        progress: &mut dyn Progress,
    ) -> Result<(Session, Option<String>), TrainError> {
        let fresh = || Session::fresh(plan, device, Some(table));
        match how {
            Start::Resume | Start::ResetOptimizer => {
                match Session::restore(plan, store, device, *how == Start::Resume, Choice::Latest)? {
                    Some((session, entry, warnings)) => {
                        progress.restored(&entry, &warnings);
                        if *how == Start::ResetOptimizer {
                            progress
                                .note("the optimizer state starts afresh; weights, step and data order are restored");
                        }
                        Ok((session, Some(entry.file)))
                    }
                    None => Ok((fresh()?, None)),
                }
            }
            Start::Fresh => {
                if store.manifest()?.is_some() {
                    let archive = store.archive(clock.now())?;
                    progress.note(&format!("moved the old checkpoints to {archive}"));
                }
                Ok((fresh()?, None))
            }
            Start::WarmStart | Start::WarmStartFrom(_) => {
                let source = match how {
                    Start::WarmStartFrom(dir) => Store::new(dir),
                    _ => Store::new(&store.dir),
                };
                let Some(loaded) = source.load_latest()? else { return Ok((fresh()?, None)) };
                let folder: Utf8PathBuf = match how {
                    Start::WarmStartFrom(dir) => dir.clone(),
                    _ => {
                        let archive = store.archive(clock.now())?;
                        progress.note(&format!("moved the old checkpoints to {archive}"));
                        archive
                    }
                };
                let mut session = fresh()?;
                let path = folder.join(&loaded.entry.file);
                let (reused, initialised) = session.warm_start(&path, &loaded.tensors)?;
                progress.note(&format!(
                    "warm start from {} (step {}): loaded {} {}, initialised {} {}",
                    path,
                    loaded.entry.step,
                    reused.len(),
                    list_or_none(&reused),
                    initialised.len(),
                    list_or_none(&initialised)
                ));
                Ok((session, None))
            }
        }
    }

    /// Every tensor a checkpoint holds, copied to the host.
    pub fn host_tensors(&self) -> Result<BTreeMap<String, HostTensor>, TrainError> {
        let mut out = BTreeMap::new();
        // Flat buffers cross to the host whole, then split by name: one copy per buffer.
        for group in &self.model.groups {
            split(&to_host(&group.flat)?, group, &self.model, |name| name.to_string(), &mut out);
        }
        for (opt, group) in self.optimizers.iter().zip(&self.model.groups) {
            let scope = opt.config.scope;
            for (slot, flat) in opt.config.kind.slots().iter().zip(&opt.slots[0]) {
                let name = |param: &str| OptimizerState::slot_name(scope, param, slot);
                split(&to_host(flat)?, group, &self.model, name, &mut out);
            }
        }
        self.non_group_tensors(&mut out)?;
        Ok(out)
    }

    /// The tensors of a checkpoint outside the optimizer groups: variables no optimizer
    /// updates, the optimizers' update counts and the global step.
    pub fn non_group_tensors(&self, out: &mut BTreeMap<String, HostTensor>) -> Result<(), TrainError> {
        for p in self.model.params.iter().filter(|p| !p.trainable) {
            out.insert(p.name.clone(), to_host(&p.tensor)?);
        }
        for opt in &self.optimizers {
            out.insert(OptimizerState::step_name(opt.config.scope), HostTensor::i64(vec![], &[opt.step]));
        }
        out.insert("global_step".into(), HostTensor::i64(vec![], &[self.global_step as i64]));
        Ok(())
    }

    /// The metadata a checkpoint of this session carries.
    pub fn meta(&self, plan: &Plan, created: f64) -> Meta {
        Meta {
            format: est::checkpoint::format::FORMAT.into(),
            global_step: self.global_step,
            data_order: self.data_order,
            fingerprint: plan.fingerprint.clone(),
            created,
            est_version: env!("CARGO_PKG_VERSION").into(),
            plan: plan.clone(),
            last_evaluation: self.last_evaluation,
            early_stop: self.early_stop.clone(),
        }
    }

    /// Copies every tensor of `tensors` whose name and shape match a variable of this model;
    /// returns the names loaded and the names left as initialised.
    pub fn warm_start(
        &mut self,
        path: &Utf8Path,
        tensors: &BTreeMap<String, HostTensor>,
    ) -> Result<(Vec<String>, Vec<String>), TrainError> {
        let (mut loaded, mut fresh) = (Vec::new(), Vec::new());
        for p in &self.model.params {
            let fits = tensors
                .get(&p.name)
                .is_some_and(|t| t.shape.iter().map(|&d| d as i64).collect::<Vec<_>>() == p.tensor.size());
            if fits {
                restore_tensor(path, &p.name, &p.tensor, tensors)?;
                loaded.push(p.name.clone());
            } else {
                fresh.push(p.name.clone());
            }
        }
        Ok((loaded, fresh))
    }
}

/// Checks a checkpoint's fingerprints (from its header alone) against the plan.
fn guard(plan: &Plan, chosen: Option<(Entry, Meta)>, dir: &Utf8Path, check_optimizer: bool) -> Result<(), TrainError> {
    let Some((_, meta)) = chosen else {
        return Ok(());
    };
    if meta.fingerprint.model != plan.fingerprint.model {
        return Err(TrainError::IncompatibleModel {
            dir: dir.to_owned(),
            old: meta.fingerprint.model,
            new: plan.fingerprint.model.clone(),
        });
    }
    if check_optimizer && meta.fingerprint.optimizer != plan.fingerprint.optimizer {
        return Err(TrainError::IncompatibleOptimizer {
            dir: dir.to_owned(),
            old: meta.fingerprint.optimizer,
            new: plan.fingerprint.optimizer.clone(),
        });
    }
    Ok(())
}

/// Copies `src` into `dst` after checking its shape exactly (libtorch would broadcast).
fn restore_tensor(
    path: &Utf8Path,
    name: &str,
    dst: &Tensor,
    tensors: &BTreeMap<String, HostTensor>,
) -> Result<(), TrainError> {
    let src =
        tensors.get(name).ok_or_else(|| TrainError::MissingTensor { path: path.to_owned(), name: name.into() })?;
    let expected: Vec<usize> = dst.size().iter().map(|&d| d as usize).collect();
    if src.shape != expected {
        return Err(TrainError::ShapeMismatch {
            path: path.to_owned(),
            name: name.into(),
            found: src.shape.clone(),
            expected,
        });
    }
    let kind = match src.dtype {
        safetensors::Dtype::I64 => Kind::Int64,
        _ => Kind::Float,
    };
    let shape: Vec<i64> = expected.iter().map(|&d| d as i64).collect();
    let host = Tensor::f_from_data_size(&src.bytes, &shape, kind)?;
    let _guard = tch::no_grad_guard();
    let mut dst = dst.shallow_clone();
    dst.f_copy_(&host)?;
    Ok(())
}

/// That the float tensors to save at `step` hold no NaN or infinity: a finite loss does not
/// prove the update after it was finite. `last_good` is the step of the last save.
pub(super) fn check_finite(
    tensors: &BTreeMap<String, HostTensor>,
    step: u64,
    last_good: u64,
) -> Result<(), TrainError> {
    for (name, t) in tensors {
        if t.dtype != safetensors::Dtype::F32 {
            continue;
        }
        let mut values = t.bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        if let Some(value) = first_not_finite(&mut values) {
            return Err(TrainError::NonFiniteState { step, tensor: name.clone(), value, last_good });
        }
    }
    Ok(())
}

/// The first value that is not finite.
pub(super) fn first_not_finite(values: &mut (impl Iterator<Item = f32> + Clone)) -> Option<f32> {
    // A pass without branches (it vectorises) on the training thread; the search only on failure.
    if !values.clone().fold(false, |bad, v| bad | !v.is_finite()) {
        return None;
    }
    values.find(|v| !v.is_finite())
}

/// Cuts a host copy of a flat buffer laid out like `group` into one tensor per member.
pub(super) fn split(
    flat: &HostTensor,
    group: &Group,
    model: &Model,
    name: impl Fn(&str) -> String,
    out: &mut BTreeMap<String, HostTensor>,
) {
    for &(pi, offset, len) in &group.members {
        let param = &model.params[pi];
        let shape: Vec<usize> = param.tensor.size().iter().map(|&d| d as usize).collect();
        let bytes = flat.bytes[offset as usize * 4..(offset + len) as usize * 4].to_vec();
        out.insert(name(&param.name), HostTensor { dtype: flat.dtype, shape, bytes });
    }
}

pub(super) fn to_host(t: &Tensor) -> Result<HostTensor, TrainError> {
    let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?;
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let numel = t.numel();
    let (dtype, size) = match t.kind() {
        Kind::Int64 => (safetensors::Dtype::I64, 8),
        _ => (safetensors::Dtype::F32, 4),
    };
    let mut bytes = vec![0u8; numel * size];
    t.f_copy_data_u8(&mut bytes, numel)?;
    Ok(HostTensor { dtype, shape, bytes })
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!("({})", names.join(", "))
    }
}
