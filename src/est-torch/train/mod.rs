//! Plan to trained checkpoints: restores the latest checkpoint in model_dir (weights, optimizer
//! state, data order, global step), trains, evaluates and predicts. A resumed run continues
//! bit for bit where the previous one stopped.

pub mod direct;
pub mod evaluate;
pub mod optim;
pub mod predict;
mod saver;
pub mod schedule;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};
use tch::{Device, Kind, Tensor};

use crate::lower::{torch_message, Inputs, LowerError, Model};
use direct::Direct;
use est::checkpoint::time::{Clock, SystemClock};
use est::checkpoint::{self, CheckpointError, Entry, Evaluation, HostTensor, Meta, Retention, Store};
use est::data::order::{Batch, Batcher, DataOrder};
use est::data::{self, DataError, Purpose, Table};
use est::events::{EventWriter, Item};
use est::pipeline::*;
use est::plan::*;
use optim::OptimizerState;

pub use evaluate::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Events(#[from] est::events::EventError),
    #[error("libtorch: {0}")]
    Torch(String),
    #[error("{0}")]
    Lower(String),
    #[error(
        "the latest checkpoint in `{dir}` was trained with another model (fingerprint {old}, this pipeline has {new})"
    )]
    IncompatibleModel { dir: Utf8PathBuf, old: String, new: String },
    #[error(
        "the latest checkpoint in `{dir}` holds state of another optimizer (fingerprint {old}, this pipeline has {new})"
    )]
    IncompatibleOptimizer { dir: Utf8PathBuf, old: String, new: String },
    #[error("`{name}` in `{path}` has shape {found:?}, the plan says {expected:?}")]
    ShapeMismatch { path: Utf8PathBuf, name: String, found: Vec<usize>, expected: Vec<usize> },
    #[error("`{path}` lacks the tensor `{name}`")]
    MissingTensor { path: Utf8PathBuf, name: String },
    #[error("no checkpoint in `{dir}`: train first with `est train`")]
    NoCheckpoint { dir: Utf8PathBuf },
    #[error("the pipeline names no eval data: set `eval` in `data` or pass --data")]
    NoEvalData,
    #[error("device `{0}`: {1}")]
    Device(String, String),
    #[error("the loss was {value} at step {step}; training stopped, and nothing after the checkpoint of step {last_good} was saved")]
    NonFiniteLoss { step: u64, value: f64, last_good: u64 },
    #[error("`{tensor}` holds {value} at step {step}; training stopped, and nothing after the checkpoint of step {last_good} was saved")]
    NonFiniteState { step: u64, tensor: String, value: f32, last_good: u64 },
}

impl From<tch::TchError> for TrainError {
    fn from(e: tch::TchError) -> Self {
        TrainError::Torch(torch_message(&e))
    }
}

impl From<LowerError> for TrainError {
    fn from(e: LowerError) -> Self {
        TrainError::Lower(e.to_string())
    }
}

/// What the command line may override.
#[derive(Clone)]
pub struct RunOptions {
    pub steps: Option<u64>,
    pub max_steps: Option<u64>,
    pub model_dir: Option<Utf8PathBuf>,
    pub start: Start,
    /// Wall-clock time for checkpoint cadence and timestamps; tests pass their own.
    pub clock: Arc<dyn Clock>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { steps: None, max_steps: None, model_dir: None, start: Start::Resume, clock: Arc::new(SystemClock) }
    }
}

/// How a run treats the checkpoints already in model_dir.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// Continue from the latest, which must match the plan.
    #[default]
    Resume,
    /// Archive them and start from scratch.
    Fresh,
    /// Archive them and start from their tensors where name and shape still match.
    WarmStart,
    /// Start an empty model_dir from the latest checkpoint of another, where names and shapes
    /// match; the other is only read.
    WarmStartFrom(Utf8PathBuf),
    /// Continue from the latest's weights with new optimizer state.
    ResetOptimizer,
}

/// Where training stands, for whoever shows it. Library code prints nothing itself.
pub trait Progress {
    fn restored(&mut self, _entry: &Entry, _warnings: &[String]) {}
    fn started(&mut self, _from: u64, _to: u64) {}
    /// Every step; `loss` only every `log_every` steps, where reading it costs a device sync.
    fn step(&mut self, _step: u64, _loss: Option<f64>) {}
    fn saved(&mut self, _entry: &Entry) {}
    fn evaluated(&mut self, _metrics: &Metrics) {}
    fn note(&mut self, _text: &str) {}
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct Summary {
    pub from_step: u64,
    pub to_step: u64,
    pub seconds: f64,
    pub last_loss: Option<f64>,
    pub checkpoint: Option<Entry>,
    pub interrupted: bool,
    pub model_dir: Utf8PathBuf,
}

pub fn model_dir(plan: &Plan, opts_dir: Option<&Utf8Path>) -> Utf8PathBuf {
    opts_dir.map_or_else(|| plan.checkpoint.model_dir.clone(), Utf8Path::to_owned)
}

/// Sets libtorch's thread count for the plan: `auto` gives small models one thread (iris runs
/// faster alone than with an OpenMP team that spends its time in barriers) and large ones every
/// core. The cut is a million multiply-adds per training step.
pub fn configure_threads(plan: &Plan) {
    let cores = est::data::cores();
    let n = match plan.train.threads {
        est::pipeline::Threads::Fixed(n) => n,
        est::pipeline::Threads::Auto => {
            let widths: Vec<u64> = plan
                .model
                .variables
                .iter()
                .filter(|v| v.name.ends_with("/kernel"))
                .map(|v| v.shape.iter().product())
                .collect();
            let per_row: u64 = widths.iter().sum::<u64>()
                + plan.model.linear.as_ref().map_or(0, |l| l.inputs.len() as u64 * plan.model.head.logits);
            if per_row * plan.train.batch_size as u64 >= 1_000_000 {
                cores
            } else {
                1
            }
        }
    };
    tch::set_num_threads(n as i32);
}

/// The device the plan asks for, if this machine has it.
pub fn device(plan: &Plan) -> Result<Device, TrainError> {
    match plan.train.device {
        est::pipeline::Device::Cpu => Ok(Device::Cpu),
        est::pipeline::Device::Auto => Ok(if tch::Cuda::is_available() { Device::Cuda(0) } else { Device::Cpu }),
        est::pipeline::Device::Cuda(index) => {
            let i = index.unwrap_or(0);
            let name = String::from(plan.train.device.clone());
            if !tch::Cuda::is_available() {
                return Err(TrainError::Device(name, "CUDA is not available on this machine".into()));
            }
            if i as i64 >= tch::Cuda::device_count() {
                return Err(TrainError::Device(
                    name,
                    format!("this machine has {} CUDA devices", tch::Cuda::device_count()),
                ));
            }
            Ok(Device::Cuda(i))
        }
    }
}

/// A model with the optimizer state and position it was saved with.
pub struct Session {
    pub model: Model,
    pub optimizers: Vec<OptimizerState>,
    pub global_step: u64,
    pub data_order: DataOrder,
}

/// What `bad_rows = skip` left out of `path`, if anything.
pub(crate) fn skipped(table: &Table, path: &Utf8Path) -> Option<String> {
    (table.skipped > 0).then(|| {
        let first = table.first_skipped.as_deref().unwrap_or("");
        let rows = if table.skipped == 1 { "row" } else { "rows" };
        format!("skipped {} bad {rows} of `{path}`; the first: {first}", table.skipped)
    })
}

/// Checks the latest checkpoint's fingerprints against the plan, reading only its header.
fn guard(plan: &Plan, store: &Store, check_optimizer: bool) -> Result<(), TrainError> {
    let Some((_, meta)) = store.latest_meta()? else {
        return Ok(());
    };
    if meta.fingerprint.model != plan.fingerprint.model {
        return Err(TrainError::IncompatibleModel {
            dir: store.dir.clone(),
            old: meta.fingerprint.model,
            new: plan.fingerprint.model.clone(),
        });
    }
    if check_optimizer && meta.fingerprint.optimizer != plan.fingerprint.optimizer {
        return Err(TrainError::IncompatibleOptimizer {
            dir: store.dir.clone(),
            old: meta.fingerprint.optimizer,
            new: plan.fingerprint.optimizer.clone(),
        });
    }
    Ok(())
}

/// One optimizer per flat group of the model, in the plan's order.
fn optimizers_for(plan: &Plan, model: &Model) -> Result<Vec<OptimizerState>, TrainError> {
    let mut out = Vec::new();
    for (g, (config, group)) in plan.optimizers.iter().zip(&model.groups).enumerate() {
        out.push(OptimizerState::new(config, vec![g], &[&group.flat])?);
    }
    Ok(out)
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

impl Session {
    /// A fresh model, initialised from the plan and the training table's statistics.
    pub fn fresh(plan: &Plan, device: Device, train: Option<&Table>) -> Result<Session, TrainError> {
        let model = Model::build(plan, device, train)?;
        let optimizers = optimizers_for(plan, &model)?;
        Ok(Session { model, optimizers, global_step: 0, data_order: DataOrder::default() })
    }

    /// The latest checkpoint in `store`, after the fingerprint guard; `None` when there is none.
    pub fn restore(
        plan: &Plan,
        store: &Store,
        device: Device,
        with_optimizer: bool,
    ) -> Result<Option<(Session, Entry, Vec<String>)>, TrainError> {
        guard(plan, store, with_optimizer)?;
        let Some(loaded) = store.load_latest()? else {
            return Ok(None);
        };
        let path = store.dir.join(&loaded.entry.file);
        let mut session = Session::fresh(plan, device, None)?;
        for p in &session.model.params {
            restore_tensor(&path, &p.name, &p.tensor, &loaded.tensors)?;
        }
        if with_optimizer {
            let Session { model, optimizers, .. } = &mut session;
            for (opt, group) in optimizers.iter_mut().zip(&model.groups) {
                let scope = opt.config.scope;
                for (s, slot) in opt.config.kind.slots().iter().enumerate() {
                    for (k, &(pi, _, _)) in group.members.iter().enumerate() {
                        let param = &model.params[pi];
                        let view = group.view(&opt.slots[0][s], k, &param.tensor.size())?;
                        restore_tensor(
                            &path,
                            &OptimizerState::slot_name(scope, &param.name, slot),
                            &view,
                            &loaded.tensors,
                        )?;
                    }
                }
                let step_name = OptimizerState::step_name(scope);
                let step = loaded
                    .tensors
                    .get(&step_name)
                    .ok_or_else(|| TrainError::MissingTensor { path: path.clone(), name: step_name.clone() })?;
                opt.step = step
                    .bytes
                    .get(..8)
                    .map_or(0, |b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
            }
        }
        session.global_step = loaded.meta.global_step;
        session.data_order = loaded.meta.data_order;
        Ok(Some((session, loaded.entry, loaded.warnings)))
    }

    /// The tensors to save at `step`, unless one holds a NaN or an infinity: a finite loss
    /// does not prove the update after it was finite.
    fn saveable(&self, step: u64, last_good: u64) -> Result<BTreeMap<String, HostTensor>, TrainError> {
        let tensors = self.host_tensors()?;
        for (name, t) in &tensors {
            if t.dtype != safetensors::Dtype::F32 {
                continue;
            }
            let mut values = t.bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            // A pass without branches (it vectorises) on the training thread; the search only on failure.
            if !values.clone().fold(false, |bad, v| bad | !v.is_finite()) {
                continue;
            }
            if let Some(value) = values.find(|v| !v.is_finite()) {
                return Err(TrainError::NonFiniteState { step, tensor: name.clone(), value, last_good });
            }
        }
        Ok(tensors)
    }

    /// Every tensor a checkpoint holds, copied to the host.
    pub fn host_tensors(&self) -> Result<BTreeMap<String, HostTensor>, TrainError> {
        let mut out = BTreeMap::new();
        // Flat buffers cross to the host whole, then split by name: one copy per buffer.
        for group in &self.model.groups {
            split(&to_host(&group.flat)?, group, &self.model, |name| name.to_string(), &mut out);
        }
        for p in self.model.params.iter().filter(|p| !p.trainable) {
            out.insert(p.name.clone(), to_host(&p.tensor)?);
        }
        for (opt, group) in self.optimizers.iter().zip(&self.model.groups) {
            let scope = opt.config.scope;
            for (slot, flat) in opt.config.kind.slots().iter().zip(&opt.slots[0]) {
                let name = |param: &str| OptimizerState::slot_name(scope, param, slot);
                split(&to_host(flat)?, group, &self.model, name, &mut out);
            }
            out.insert(OptimizerState::step_name(scope), HostTensor::i64(vec![], &[opt.step]));
        }
        out.insert("global_step".into(), HostTensor::i64(vec![], &[self.global_step as i64]));
        Ok(out)
    }

    /// The metadata a checkpoint of this session carries.
    pub fn meta(&self, plan: &Plan, created: f64) -> Meta {
        Meta {
            format: checkpoint::format::FORMAT.into(),
            global_step: self.global_step,
            data_order: self.data_order,
            fingerprint: plan.fingerprint.clone(),
            created,
            est_version: env!("CARGO_PKG_VERSION").into(),
            plan: plan.clone(),
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

/// Cuts a host copy of a flat buffer laid out like `group` into one tensor per member.
fn split(
    flat: &HostTensor,
    group: &crate::lower::Group,
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

fn to_host(t: &Tensor) -> Result<HostTensor, TrainError> {
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

/// Mean loss of a batch, as the head defines it.
pub fn batch_loss(head: &Head, logits: &Tensor, x: &Inputs) -> Result<Tensor, TrainError> {
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
enum StepLoss {
    Pending(Tensor),
    Known(f64),
}

impl StepLoss {
    fn value(&self) -> Result<f64, TrainError> {
        Ok(match self {
            StepLoss::Pending(loss) => loss.f_double_value(&[])?,
            StepLoss::Known(value) => *value,
        })
    }
}

/// One optimizer's update of its flat buffer from the gradients of its members, end to end.
fn update(opt: &mut OptimizerState, flat: &Tensor, parts: Vec<Tensor>, step: u64) -> Result<(), TrainError> {
    let lr = schedule::learning_rate(opt.config.learning_rate, opt.config.decay.as_ref(), step);
    if let Some(done) = opt.apply_fused(flat, &parts, lr) {
        return Ok(done?);
    }
    let grads = [if parts.len() == 1 { parts[0].shallow_clone() } else { Tensor::f_cat(&parts, 0)? }];
    if let Some(clip) = opt.config.clip_norm {
        optim::clip_global_norm(&grads, clip)?;
    }
    Ok(opt.apply(std::slice::from_ref(flat), &grads, lr)?)
}

/// Steps this run takes from `global_step`, and how many rows its last batch may hold.
fn plan_steps(plan: &Plan, opts: &RunOptions, global_step: u64, rows: u64) -> (u64, Option<u64>) {
    let batch = plan.train.batch_size as u64;
    if let Some(steps) = opts.steps {
        return (steps, None);
    }
    if let Some(max) = opts.max_steps {
        return (max.saturating_sub(global_step), None);
    }
    match plan.train.length {
        TrainLength::Steps { steps } => (steps, None),
        TrainLength::MaxSteps { max_steps } => (max_steps.saturating_sub(global_step), None),
        TrainLength::Epochs { epochs } => {
            let total = epochs * rows;
            (total.div_ceil(batch), Some(total))
        }
    }
}

fn due(cadence: &Cadence, step: u64, last_step: u64, elapsed: f64) -> bool {
    match cadence {
        Cadence::Steps { steps } => step >= last_step + steps,
        Cadence::Seconds { seconds } => elapsed >= *seconds,
    }
}

/// Trains as the plan says, from the latest checkpoint in model_dir if there is one.
pub fn run(
    plan: &Plan,
    opts: &RunOptions,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<Summary, TrainError> {
    let dir = model_dir(plan, opts.model_dir.as_deref());
    // The folders this run creates, innermost first.
    let created: Vec<Utf8PathBuf> =
        dir.ancestors().take_while(|d| !d.as_str().is_empty() && !d.exists()).map(Utf8Path::to_owned).collect();
    let store = Store::new(&dir);
    // A second writer learns at once, before any data is read.
    let lock = store.lock()?;
    let result = run_locked(plan, opts, progress, stop, &store);
    drop(lock);
    if result.is_err() && !created.is_empty() {
        // A run that failed before writing anything leaves no empty folders behind; a folder
        // that holds anything stays.
        let _ = std::fs::remove_file(dir.join(".lock"));
        for folder in &created {
            if std::fs::remove_dir(folder).is_err() {
                break;
            }
        }
    }
    result
}

fn run_locked(
    plan: &Plan,
    opts: &RunOptions,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
    store: &Store,
) -> Result<Summary, TrainError> {
    let dir = store.dir.clone();
    let clock = opts.clock.as_ref();
    let device = device(plan)?;
    let reading = std::time::Instant::now();
    let table = data::load(plan, &plan.data.train, Purpose::Labelled)?;
    let mut read_time = reading.elapsed();
    let skipped_note = skipped(&table, &plan.data.train);
    let eval_table = match (&plan.eval.every, &plan.data.eval) {
        (Some(_), Some(path)) => {
            let table = data::load(plan, path, Purpose::Labelled)?;
            if let Some(note) = skipped(&table, path) {
                progress.note(&note);
            }
            Some((path, table))
        }
        _ => None,
    };
    // After reading: libtorch's worker threads, once started, spin for a while and would take
    // cores from the reader.
    configure_threads(plan);
    let (mut session, protect) = start(plan, &opts.start, store, device, &table, clock, progress)?;
    let rows = table.rows;
    let converting = std::time::Instant::now();
    let inputs = Inputs::from_table(table, device, &session.model)?;
    read_time += converting.elapsed();
    progress.note(&format!(
        "read {rows} rows from {} into tensors in {:.3} s",
        plan.data.train,
        read_time.as_secs_f64()
    ));
    if let Some(note) = skipped_note {
        progress.note(&note);
    }
    let eval_inputs = eval_table
        .map(|(p, t)| Ok::<_, TrainError>((p, Inputs::from_table(t, device, &session.model)?)))
        .transpose()?;

    let from = session.global_step;
    let mut events = EventWriter::create(&dir, clock.now())?;
    if from > 0 {
        events.restarted_after(from, clock.now())?;
    }
    let plan_text = format!("```yaml\n{}```", plan.to_yaml());
    events.summary(from, clock.now(), &[Item::Text("plan", &plan_text)])?;
    let mut eval_events: Option<EventWriter> = None;
    let mut last_summary: Option<(u64, f64)> = None;
    let (steps, row_budget) = plan_steps(plan, opts, from, rows as u64);
    let to = from + steps;
    progress.note(&match device {
        Device::Cuda(i) => format!("training on cuda:{i}"),
        _ => {
            let n = tch::get_num_threads();
            format!("training on the cpu, {n} {}", if n == 1 { "thread" } else { "threads" })
        }
    });
    progress.started(from, to);
    let started = std::time::Instant::now();

    let retention = Retention { keep_max: plan.checkpoint.keep_max, keep_every: plan.checkpoint.keep_every };
    let mut saver = saver::Saver::new(dir.clone(), retention, protect);
    let mut last_saved: Option<Entry> = None;
    let mut last_save_step = store.latest_meta()?.map(|(e, _)| e.step);
    if last_save_step != Some(from) {
        saver.save(session.meta(plan, clock.now()), session.host_tensors()?)?;
        last_save_step = Some(from);
    }
    let mut last_save_time = clock.now();
    // How long each periodic save held the training thread, in milliseconds.
    let mut pauses: Vec<f64> = Vec::new();
    let mut last_eval = (from, clock.now());

    let mut batcher = Batcher::new(rows, plan.train.seed, plan.train.shuffle, session.data_order);
    let batch_size = plan.train.batch_size;
    let mut rows_left = row_budget;
    let mut permutation: Option<(u64, Tensor)> = None;
    let mut last_loss = None;
    let mut interrupted = false;
    let log_every = plan.summaries.log_every;
    let flats: Vec<Tensor> = session.model.groups.iter().map(|g| g.flat.shallow_clone()).collect();
    // Per group, the variables autograd differentiates, in flat-buffer order.
    let leaves: Vec<Vec<Tensor>> = session
        .model
        .groups
        .iter()
        .map(|g| g.members.iter().map(|&(i, _, _)| session.model.params[i].tensor.shallow_clone()).collect())
        .collect();
    let all_leaves: Vec<&Tensor> = leaves.iter().flatten().collect();
    // On the CPU a model trains with its backpropagation written out; on a GPU through autograd.
    let mut direct = Direct::new(&session.model, batch_size as i64)?;

    // The last step's loss, unread until the final save checks it.
    let mut unchecked: Option<(u64, StepLoss)> = None;
    while session.global_step < to {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let count = rows_left.map_or(batch_size, |left| (left as usize).min(batch_size));
        if let Some(left) = rows_left.as_mut() {
            *left -= count as u64;
        }
        // A batch inside one epoch is a slice of that epoch's permutation, which crosses to the
        // device once per epoch.
        let index = match batcher.next_batch(count) {
            Batch::Within { epoch, start, len } => {
                let on_device = match permutation.take() {
                    Some((e, p)) if e == epoch => p,
                    _ => Tensor::f_from_slice(batcher.permutation())?.f_to_device(device)?,
                };
                let index = on_device.f_narrow(0, start as i64, len as i64)?;
                permutation = Some((epoch, on_device));
                index
            }
            Batch::Across(rows) => Tensor::f_from_slice(&rows)?.f_to_device(device)?,
        };
        let x = inputs.gather(&index)?;
        let next = session.global_step + 1;
        // tf.estimator's SummarySaverHook: the first step of a run, then every `summaries.every`.
        let summarize = next == from + 1 || next % plan.summaries.every == 0;
        let mut taps = Vec::new();
        let loss = if let Some(direct) = direct.as_mut() {
            let value = direct.step(
                &session.model,
                &x,
                session.global_step,
                plan.train.seed,
                summarize.then_some(&mut taps),
            )?;
            for ((opt, flat), grad) in session.optimizers.iter_mut().zip(&flats).zip(direct.grads()) {
                update(opt, flat, vec![grad.shallow_clone()], session.global_step)?;
            }
            StepLoss::Known(value)
        } else {
            let logits = session.model.forward_tapped(
                &x,
                true,
                session.global_step,
                plan.train.seed,
                summarize.then_some(&mut taps),
            )?;
            let loss = batch_loss(&session.model.head, &logits, &x)?;
            // Gradients straight from autograd (nothing accumulates, nothing to zero), laid end
            // to end like the flat buffers.
            let mut grads = Tensor::f_run_backward(&[&loss], &all_leaves, false, false)?.into_iter();
            for ((opt, flat), members) in session.optimizers.iter_mut().zip(&flats).zip(&leaves) {
                let parts: Vec<Tensor> =
                    grads.by_ref().take(members.len()).map(|g| g.f_view([-1])).collect::<Result<_, _>>()?;
                update(opt, flat, parts, session.global_step)?;
            }
            StepLoss::Pending(loss)
        };
        session.global_step += 1;
        session.data_order = batcher.order();
        let step = session.global_step;

        // One clock reading per step decides the cadences and stamps what this step writes.
        let now = clock.now();
        let save_now =
            step < to && due(&plan.checkpoint.save_every, step, last_save_step.unwrap_or(from), now - last_save_time);
        let log_now = step == from + 1 || step % log_every == 0 || step == to;
        // Reading the loss syncs with the device: only when it is logged or about to be saved,
        // and a state whose loss is not finite is never saved.
        let loss_value = if log_now || save_now || summarize {
            let value = loss.value()?;
            if !value.is_finite() {
                return Err(TrainError::NonFiniteLoss { step, value, last_good: last_save_step.unwrap_or(from) });
            }
            last_loss = Some(value);
            unchecked = None;
            Some(value)
        } else {
            unchecked = Some((step, loss));
            None
        };
        // Written before the step is reported, so what the console shows is already in the events.
        if summarize {
            write_summary(&mut events, plan, &session, step, now, loss_value, &taps, &mut last_summary)?;
        }
        progress.step(step, loss_value.filter(|_| log_now));

        if save_now {
            let pause = std::time::Instant::now();
            let tensors = session.saveable(step, last_save_step.unwrap_or(from))?;
            let finished = saver.save(session.meta(plan, now), tensors)?;
            pauses.push(pause.elapsed().as_secs_f64() * 1000.0);
            for entry in finished {
                progress.saved(&entry);
                last_saved = Some(entry);
            }
            last_save_step = Some(step);
            last_save_time = now;
        }
        if let (Some(every), Some((path, eval))) = (&plan.eval.every, &eval_inputs) {
            if due(every, step, last_eval.0, now - last_eval.1) {
                let values = evaluate::evaluate_model(&session.model, eval, plan.eval.batch_size, plan.eval.steps)?;
                let metrics = Metrics { global_step: step, values, warnings: Vec::new() };
                record(store, &metrics, path, now)?;
                if eval_events.is_none() {
                    eval_events = Some(EventWriter::create(&dir.join(checkpoint::EVAL_DIR), now)?);
                }
                if let Some(w) = eval_events.as_mut() {
                    write_metrics(w, &metrics, now)?;
                }
                progress.evaluated(&metrics);
                last_eval = (step, now);
            }
        }
    }
    // An interrupted run ends between checks: its state is saved only if its loss is finite.
    if let Some((step, loss)) = unchecked {
        let value = loss.value()?;
        if !value.is_finite() {
            return Err(TrainError::NonFiniteLoss { step, value, last_good: last_save_step.unwrap_or(from) });
        }
        last_loss = Some(value);
    }
    if last_save_step != Some(session.global_step) {
        let tensors = session.saveable(session.global_step, last_save_step.unwrap_or(from))?;
        for entry in saver.save(session.meta(plan, clock.now()), tensors)? {
            progress.saved(&entry);
        }
    }
    for entry in saver.wait()? {
        progress.saved(&entry);
        last_saved = Some(entry);
    }
    if !pauses.is_empty() {
        pauses.sort_by(f64::total_cmp);
        progress.note(&format!(
            "{} periodic {} paused the training thread for at most {:.3} ms (median {:.3} ms)",
            pauses.len(),
            if pauses.len() == 1 { "save" } else { "saves" },
            pauses[pauses.len() - 1],
            pauses[pauses.len() / 2]
        ));
    }
    Ok(Summary {
        from_step: from,
        to_step: session.global_step,
        seconds: started.elapsed().as_secs_f64(),
        last_loss,
        checkpoint: last_saved,
        interrupted,
        model_dir: dir,
    })
}

/// The session a run starts from, and the checkpoint it restored (which retention keeps).
fn start(
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
        Start::Resume | Start::ResetOptimizer => match Session::restore(plan, store, device, *how == Start::Resume)? {
            Some((session, entry, warnings)) => {
                progress.restored(&entry, &warnings);
                if *how == Start::ResetOptimizer {
                    progress.note("the optimizer state starts afresh; weights, step and data order are restored");
                }
                Ok((session, Some(entry.file)))
            }
            None => Ok((fresh()?, None)),
        },
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
            let folder = match how {
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

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!("({})", names.join(", "))
    }
}

/// Training scalars and hidden-layer summaries under tf.estimator's tags.
#[allow(clippy::too_many_arguments)]
fn write_summary(
    events: &mut EventWriter,
    plan: &Plan,
    session: &Session,
    step: u64,
    now: f64,
    loss: Option<f64>,
    taps: &[Tensor],
    last: &mut Option<(u64, f64)>,
) -> Result<(), TrainError> {
    let mut scalars: Vec<(String, f32)> = Vec::new();
    if let Some(loss) = loss {
        scalars.push(("loss".into(), loss as f32));
    }
    if let Some((last_step, last_time)) = *last {
        if now > last_time {
            scalars.push(("global_step/sec".into(), ((step - last_step) as f64 / (now - last_time)) as f32));
        }
    }
    *last = Some((step, now));
    for opt in &session.optimizers {
        let tag = match opt.config.scope {
            Scope::All => "learning_rate".to_string(),
            scope => format!("learning_rate/{}", scope.word()),
        };
        let lr = schedule::learning_rate(opt.config.learning_rate, opt.config.decay.as_ref(), step - 1);
        scalars.push((tag, lr as f32));
    }
    let mut histograms: Vec<(String, Vec<f32>)> = Vec::new();
    for (i, tap) in taps.iter().enumerate() {
        let zero = tap.f_eq(0.0)?.f_to_kind(Kind::Float)?.f_mean(Kind::Float)?.f_double_value(&[])?;
        scalars.push((format!("dnn/hiddenlayer_{i}/fraction_of_zero_values"), zero as f32));
        if plan.summaries.histograms {
            let host = tap.f_to_device(Device::Cpu)?.f_contiguous()?.f_view([-1])?;
            histograms.push((format!("dnn/hiddenlayer_{i}/activation"), Vec::<f32>::try_from(&host)?));
        }
    }
    let mut items: Vec<Item> = scalars.iter().map(|(t, v)| Item::Scalar(t, *v)).collect();
    items.extend(histograms.iter().map(|(t, v)| Item::Histogram(t, v)));
    Ok(events.summary(step, now, &items)?)
}

/// Evaluation metrics at the checkpoint's step, as tf.estimator wrote them to model_dir/eval.
pub fn write_metrics(events: &mut EventWriter, metrics: &Metrics, now: f64) -> Result<(), TrainError> {
    let items: Vec<Item> = metrics.values.iter().map(|(k, v)| Item::Scalar(k, *v as f32)).collect();
    Ok(events.summary(metrics.global_step, now, &items)?)
}

/// Writes an evaluation to model_dir/eval/, where `est inspect` finds it.
fn record(store: &Store, metrics: &Metrics, data: &Utf8Path, now: f64) -> Result<(), TrainError> {
    Ok(store.record_evaluation(&Evaluation {
        global_step: metrics.global_step,
        time: checkpoint::time::rfc3339(now),
        data: data.to_owned(),
        metrics: metrics.values.clone(),
    })?)
}
