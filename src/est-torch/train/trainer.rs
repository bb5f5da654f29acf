//! A training run as a small machine with verbs: `step` trains on one batch, `maybe_log`,
//! `maybe_save` and `maybe_evaluate` each decide on their own cadence whether it is their
//! turn, and `finish` writes the last checkpoint. The state a later feature needs (the last
//! save, the last evaluation, the last loss) lives here in one place.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use est::checkpoint::time::Clock;
use est::checkpoint::{Entry, Evaluation, Retention, Store};
use est::data::order::Batcher;
use est::data::{self, Purpose, Table};
use est::pipeline::Files;
use est::pipeline::TrainLength;
use est::plan::Plan;
use est::stopping::{StopState, Stopped};
use tch::{Device, Tensor};

use super::device::{configure_threads, device};
use super::evaluate::evaluate_model;
use super::loss::StepLoss;
use super::saver::Saver;
use super::session::Session;
use super::step::{Backprop, Batches};
use super::summaries::{record_evaluation, Summaries};
use super::{Metrics, Progress, RunOptions, Summary, TrainError};
use crate::lower::Inputs;

/// Trains as the plan says in the locked `store`, from its latest checkpoint if there is one.
pub(super) fn train(
    plan: &Plan,
    opts: &RunOptions,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
    store: &Store,
) -> Result<Summary, TrainError> {
    let mut trainer = Trainer::new(plan, opts, progress, store)?;
    let interrupted = trainer.run(stop)?;
    trainer.finish(interrupted)
}

/// The latest step's loss, read from the device at most once.
struct LastLoss {
    step: u64,
    loss: StepLoss,
    read: Option<f64>,
}

/// A run in progress.
pub struct Trainer<'a> {
    plan: &'a Plan,
    clock: &'a dyn Clock,
    progress: &'a mut dyn Progress,
    session: Session,
    inputs: Inputs,
    /// The eval file and its rows, when the plan evaluates during training.
    eval: Option<(&'a Files, Inputs)>,
    store: &'a Store,
    summaries: Summaries,
    saver: Saver,
    batches: Batches,
    backprop: Backprop,
    /// The global step the run started from, and where it stops.
    from: u64,
    to: u64,
    started: Instant,
    /// The step and time of the last save.
    last_save: (u64, f64),
    /// The step and time of the last evaluation (or of the start).
    last_eval: (u64, f64),
    /// How long each periodic save held the training thread, in milliseconds.
    pauses: Vec<f64>,
    /// The longest a copy between steps of a save held the training thread, in milliseconds.
    copy_pauses: f64,
    latest: Option<LastLoss>,
    last_loss: Option<f64>,
    last_saved: Option<Entry>,
    /// Set when early stopping ends the run.
    stopped: Option<Stopped>,
}

impl<'a> Trainer<'a> {
    /// Reads the data, restores or builds the model as `opts.start` says, opens the event file
    /// and writes the starting checkpoint when model_dir does not already hold it. The caller
    /// holds `store`'s lock (`run` takes it).
    pub fn new(
        plan: &'a Plan,
        opts: &'a RunOptions,
        progress: &'a mut dyn Progress,
        store: &'a Store,
    ) -> Result<Trainer<'a>, TrainError> {
        let clock = opts.clock.as_ref();
        let device = device(plan)?;
        let Read { table, time, skipped, eval } = Read::files(plan, progress)?;
        // After reading: libtorch's worker threads, once started, spin for a while and would
        // take cores from the reader.
        configure_threads(plan);
        let (session, protect) = Session::start(plan, &opts.start, store, device, &table, clock, progress)?;
        let rows = table.rows;
        let converting = Instant::now();
        let inputs = Inputs::from_table(table, device, &session.model)?;
        let time = time + converting.elapsed();
        progress.note(&format!(
            "read {rows} rows from {} into tensors in {:.3} s",
            plan.data.train,
            time.as_secs_f64()
        ));
        if let Some(note) = skipped {
            progress.note(&note);
        }
        let eval =
            eval.map(|(p, t)| Ok::<_, TrainError>((p, Inputs::from_table(t, device, &session.model)?))).transpose()?;
        let from = session.global_step;
        let summaries = Summaries::open(&store.dir, plan, from, clock)?;
        let (steps, rows_left) = plan_steps(plan, opts, from, rows as u64);
        // A run that early stopping ended stays ended until its patience is raised.
        let stopped = match (&plan.early_stop, &session.early_stop) {
            (Some(spec), Some(state)) if state.stops(spec, from) => {
                Some(Stopped { step: from, state: state.clone(), kept: None })
            }
            _ => None,
        };
        let to = if stopped.is_some() { from } else { from + steps };
        progress.note(&match device {
            Device::Cuda(i) => format!("training on cuda:{i}"),
            _ => {
                let n = tch::get_num_threads();
                format!("training on the cpu, {n} {}", if n == 1 { "thread" } else { "threads" })
            }
        });
        progress.started(from, to);
        let started = Instant::now();
        let c = &plan.checkpoint;
        let retention = Retention { keep_max: c.keep_max, keep_every: c.keep_every, keep_best: c.keep_best };
        let mut saver = Saver::new(store.dir.clone(), retention, protect);
        if store.latest_meta()?.map(|(e, _)| e.step) != Some(from) {
            saver.save(&session, session.meta(plan, clock.now()), None, None)?;
        }
        let now = clock.now();
        // From the checkpoint, so a resumed run evaluates at the steps one run would.
        let last_eval = (session.last_evaluation.unwrap_or(from), now);
        let batcher = Batcher::new(rows, plan.train.seed, plan.train.shuffle, session.data_order);
        let batches = Batches::new(batcher, plan.train.batch_size, rows_left, device);
        let mut backprop = Backprop::new(&session, plan.train.batch_size)?;
        // Dense updates of every table row, to hold the row updates to them (tests, benchmarks).
        if std::env::var_os("EST_DENSE_UPDATES").is_some_and(|v| v == "1") {
            backprop = backprop.dense_updates();
        }
        Ok(Trainer {
            plan,
            clock,
            progress,
            session,
            inputs,
            eval,
            store,
            summaries,
            saver,
            batches,
            backprop,
            from,
            to,
            started,
            last_save: (from, now),
            last_eval,
            pauses: Vec::new(),
            copy_pauses: 0.0,
            latest: None,
            last_loss: None,
            last_saved: None,
            stopped,
        })
    }

    /// Steps until the plan's end or until `stop` is set; whether it was stopped.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<bool, TrainError> {
        while self.session.global_step < self.to {
            if stop.load(Ordering::Relaxed) {
                return Ok(true);
            }
            let taps = self.step()?;
            // One clock reading per step decides the cadences and stamps what this step writes.
            let now = self.clock.now();
            self.maybe_log(now, &taps)?;
            // An evaluation is of a checkpoint: its step is saved, with what it decided.
            let evaluation = self.maybe_evaluate(now)?;
            self.maybe_save(now, evaluation)?;
            self.copy_between_steps()?;
            if self.stopped.is_some() {
                break;
            }
        }
        Ok(false)
    }

    /// Trains on the next batch and moves the global step; the hidden layers' outputs when this
    /// step writes a summary.
    pub fn step(&mut self) -> Result<Vec<Tensor>, TrainError> {
        let index = self.batches.next()?;
        let x = self.inputs.gather(&index)?;
        let mut taps = Vec::new();
        let summarize = self.summarizes(self.session.global_step + 1);
        let seed = self.plan.train.seed;
        let saving = self.saver.copying();
        let loss = self.backprop.step(&mut self.session, &x, seed, summarize.then_some(&mut taps), saving)?;
        self.session.global_step += 1;
        self.session.data_order = self.batches.order();
        self.latest = Some(LastLoss { step: self.session.global_step, loss, read: None });
        Ok(taps)
    }

    /// tf.estimator's SummarySaverHook: the first step of a run, then every `summaries.every`.
    fn summarizes(&self, step: u64) -> bool {
        step == self.from + 1 || step.is_multiple_of(self.plan.summaries.every)
    }

    /// The latest step's loss, read from the device once; a loss that is not finite ends the
    /// run, and nothing after the last save is saved.
    fn loss(&mut self) -> Result<Option<f64>, TrainError> {
        let Some(latest) = self.latest.as_mut() else { return Ok(None) };
        if let Some(value) = latest.read {
            return Ok(Some(value));
        }
        let value = latest.loss.value()?;
        if !value.is_finite() {
            return Err(TrainError::NonFiniteLoss { step: latest.step, value, last_good: self.last_save.0 });
        }
        latest.read = Some(value);
        self.last_loss = Some(value);
        Ok(Some(value))
    }

    /// The summary of a step that writes one, then the step's progress (with its loss on
    /// logging steps), so what the console shows is already in the event file.
    pub fn maybe_log(&mut self, now: f64, taps: &[Tensor]) -> Result<(), TrainError> {
        let step = self.session.global_step;
        let log = step == self.from + 1 || step.is_multiple_of(self.plan.summaries.log_every) || step == self.to;
        let summarize = self.summarizes(step);
        // Reading the loss syncs with the device: only when it is shown or written.
        let loss = if log || summarize { self.loss()? } else { None };
        if summarize {
            self.summaries.step(&self.session.optimizers, step, now, loss, taps)?;
        }
        self.progress.step(step, loss.filter(|_| log));
        Ok(())
    }

    /// A checkpoint when `save_every` says it is time (the last step's is `finish`'s), or
    /// when this step was evaluated, with its `evaluation`.
    pub fn maybe_save(&mut self, now: f64, evaluation: Option<Evaluation>) -> Result<(), TrainError> {
        let step = self.session.global_step;
        let (last_step, last_time) = self.last_save;
        let due = step < self.to && self.plan.checkpoint.save_every.due(step, last_step, now - last_time);
        if !due && evaluation.is_none() {
            return Ok(());
        }
        // A state whose loss is not finite is never saved.
        self.loss()?;
        let pause = Instant::now();
        let finished =
            self.saver.save(&self.session, self.session.meta(self.plan, now), Some(last_step), evaluation)?;
        self.pauses.push(pause.elapsed().as_secs_f64() * 1000.0);
        self.saved(finished);
        self.last_save = (step, now);
        Ok(())
    }

    /// The next part of a save still being copied, if the writer has room for it.
    fn copy_between_steps(&mut self) -> Result<(), TrainError> {
        let pause = Instant::now();
        if self.saver.copy_some()? {
            self.copy_pauses = self.copy_pauses.max(pause.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(())
    }

    /// An evaluation on the eval file when `eval.every` says it is time, and what early
    /// stopping makes of it; the record the manifest keeps with this step's checkpoint.
    pub fn maybe_evaluate(&mut self, now: f64) -> Result<Option<Evaluation>, TrainError> {
        let (Some(every), Some((path, eval))) = (&self.plan.eval.every, &self.eval) else { return Ok(None) };
        let step = self.session.global_step;
        if !every.due(step, self.last_eval.0, now - self.last_eval.1) {
            return Ok(None);
        }
        let path = *path;
        let values = evaluate_model(&self.session.model, eval, self.plan.eval.batch_size, self.plan.eval.steps)?;
        let metrics = Metrics { global_step: step, values, warnings: Vec::new() };
        record_evaluation(self.store, &metrics, path, now)?;
        self.summaries.evaluation(&metrics, now)?;
        self.progress.evaluated(&metrics);
        self.last_eval = (step, now);
        self.session.last_evaluation = Some(step);
        if let Some(spec) = &self.plan.early_stop {
            // The checker admits only metrics evaluation prints.
            if let Some(&value) = metrics.values.get(&spec.objective.metric) {
                let state = StopState::observe(self.session.early_stop.as_ref(), spec, step, value);
                if state.stops(spec, step) {
                    self.stopped = Some(Stopped { step, state: state.clone(), kept: None });
                }
                self.session.early_stop = Some(state);
            }
        }
        Ok(Some(Evaluation {
            global_step: step,
            time: est::checkpoint::time::rfc3339(now),
            data: path.to_string().into(),
            metrics: metrics.values,
            checkpoint: None,
        }))
    }

    /// Reports the saves that have reached disk.
    fn saved(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            self.progress.saved(&entry);
            self.last_saved = Some(entry);
        }
    }

    /// The last checkpoint (if the last step has none yet), every save finished, and the run's
    /// summary. A stopped run ends between checks: its state is saved only if its loss is finite.
    pub fn finish(mut self, interrupted: bool) -> Result<Summary, TrainError> {
        self.loss()?;
        let step = self.session.global_step;
        if self.last_save.0 != step {
            let meta = self.session.meta(self.plan, self.clock.now());
            for entry in self.saver.save(&self.session, meta, Some(self.last_save.0), None)? {
                self.progress.saved(&entry);
            }
        }
        let finished = self.saver.wait()?;
        self.saved(finished);
        if !self.pauses.is_empty() {
            self.pauses.sort_by(f64::total_cmp);
            let (worst, median) = (self.pauses[self.pauses.len() - 1], self.pauses[self.pauses.len() / 2]);
            let between = if self.copy_pauses > 0.0 {
                format!("; copying tables between steps, for at most {:.3} ms a step", self.copy_pauses)
            } else {
                String::new()
            };
            self.progress.note(&format!(
                "{} periodic {} paused the training thread for at most {worst:.3} ms (median {median:.3} ms){between}",
                self.pauses.len(),
                if self.pauses.len() == 1 { "save" } else { "saves" },
            ));
        }
        if let Some(stopped) = self.stopped.as_mut() {
            let best = est::checkpoint::file_name(stopped.state.best_step);
            let manifest = self.store.manifest()?;
            stopped.kept = manifest.is_some_and(|m| m.checkpoints.iter().any(|e| e.file == best)).then_some(best);
        }
        Ok(Summary {
            from_step: self.from,
            to_step: step,
            seconds: self.started.elapsed().as_secs_f64(),
            last_loss: self.last_loss,
            checkpoint: self.last_saved,
            interrupted,
            stopped_early: self.stopped,
            model_dir: self.store.dir.clone(),
        })
    }
}

/// What a run reads before it trains.
struct Read<'p> {
    table: Table,
    /// How long reading the training file took.
    time: Duration,
    /// What `bad_rows = skip` left out of it.
    skipped: Option<String>,
    /// The eval file and its table, when the plan evaluates during training.
    eval: Option<(&'p Files, Table)>,
}

impl<'p> Read<'p> {
    /// The training file, and the eval file when the plan evaluates during training (its
    /// skipped rows noted at once).
    fn files(plan: &'p Plan, progress: &mut dyn Progress) -> Result<Read<'p>, TrainError> {
        let reading = Instant::now();
        let table = data::load(plan, &plan.data.train, Purpose::Labelled)?;
        let time = reading.elapsed();
        let skipped = table.skipped_note(&plan.data.train);
        let eval = match (&plan.eval.every, &plan.data.eval) {
            (Some(_), Some(path)) => {
                let table = data::load(plan, path, Purpose::Labelled)?;
                if let Some(note) = table.skipped_note(path) {
                    progress.note(&note);
                }
                Some((path, table))
            }
            _ => None,
        };
        Ok(Read { table, time, skipped, eval })
    }
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
