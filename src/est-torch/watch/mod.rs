//! `est watch`: trains, and on every save of the `.est` file or its data asks `decide` what the
//! edit means and carries it out: show errors and carry on, restart from a checkpoint with new
//! settings, move to a new model_dir, or evaluate on new data. Everything is printed as lines
//! on stdout, so a session can be piped and logged.

pub mod decide;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use est::checkpoint::Store;
use est::cli::args::{OnIncompatible, WatchArgs};
use est::cli::{exit, guard};
use est::diff::report::{self, Mode};
use est::diff::{self, NewSource};
use est::pipeline::Files;
use est::pipeline::TrainLength;
use est::plan::Plan;
use est::watch::classify::data_files;
use est::watch::files::FileWatcher;
use est::{Compiled, Source};

use crate::console::Console;
use crate::train::{self, RunOptions, Start, Summary, TrainError};
use decide::{decide, place, Decision, Folders, Reloaded, Situation};

/// How long file events settle before they count as one edit.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// A run on its own thread.
struct Running {
    handle: JoinHandle<Result<Summary, TrainError>>,
    stop: Arc<AtomicBool>,
}

impl Running {
    /// Stops the run at its next step boundary; it writes a checkpoint as it ends.
    fn stop(self) -> Result<Summary, TrainError> {
        self.stop.store(true, Ordering::SeqCst);
        self.join()
    }

    fn join(self) -> Result<Summary, TrainError> {
        self.handle.join().unwrap_or(Err(TrainError::ThreadStopped))
    }
}

/// The model folders as the store reads them.
struct OnDisk;

impl Folders for OnDisk {
    fn fits(&self, dir: &Utf8Path, plan: &Plan) -> bool {
        match Store::new(dir).latest_meta() {
            Ok(Some((entry, _))) => entry.fingerprint == plan.fingerprint,
            Ok(None) => true,
            Err(_) => false,
        }
    }

    fn holds_checkpoints(&self, dir: &Utf8Path) -> bool {
        Store::new(dir).latest_meta().ok().flatten().is_some()
    }
}

/// A watch session.
struct Watch {
    /// The `.est` file, absolute, as file events name it.
    file: Utf8PathBuf,
    /// As the user typed it, for reading and messages.
    typed: Utf8PathBuf,
    shown: String,
    on_incompatible: OnIncompatible,
    flag_dir: Option<Utf8PathBuf>,
    compiled: Option<(Compiled, Source)>,
    /// Where the current model trains; moves when an edit makes the old checkpoints unfit.
    model_dir: Option<Utf8PathBuf>,
    /// Per model_dir, the step the session found it at: `steps` count from there.
    base: HashMap<Utf8PathBuf, u64>,
    /// Set when training waits for an edit (`--on-incompatible stop`, or a finished run).
    idle: bool,
    last_change: Option<String>,
    running: Option<Running>,
}

fn say(text: &str) {
    println!("watch: {text}");
}

fn load(file: &Utf8Path) -> Reloaded {
    let source = Source::read(file).map_err(|e| format!("error: {e}\n"))?;
    let base = source.base_dir().map_err(|e| format!("error: {e}\n"))?;
    match est::compile(&source, &base) {
        Ok(compiled) => Ok((compiled, source)),
        Err(diagnostics) => Err(est::render::render(&diagnostics, source.path.as_str(), &source.text, false)),
    }
}

impl Watch {
    fn plan(&self) -> Option<&Plan> {
        self.compiled.as_ref().map(|(c, _)| &c.plan)
    }

    /// The step this run trains to: the plan's `steps` counted from where the session found
    /// the folder, or its `max_steps`.
    fn target(&mut self, dir: &Utf8Path, plan: &Plan) -> Option<u64> {
        let base = *self
            .base
            .entry(dir.to_owned())
            .or_insert_with(|| Store::new(dir).latest_meta().ok().flatten().map_or(0, |(e, _)| e.step));
        match plan.train.length {
            TrainLength::Steps { steps } => Some(base + steps),
            TrainLength::MaxSteps { max_steps } => Some(max_steps),
            TrainLength::Epochs { .. } => None,
        }
    }

    fn start(&mut self, how: Start) {
        let (Some(plan), Some(dir)) = (self.plan().cloned(), self.model_dir.clone()) else { return };
        let max_steps = self.target(&dir, &plan);
        // Epoch plans run their epochs again on each restart: they cannot be counted in steps
        // before the data is read.
        let opts = RunOptions { max_steps, model_dir: Some(dir.clone()), start: how, ..RunOptions::default() };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        say(&format!("training in {}", guard::display(&dir)));
        self.idle = false;
        let handle = std::thread::spawn(move || train::run(&plan, &opts, &mut Console::lines(), &flag));
        self.running = Some(Running { handle, stop });
    }

    /// The line shown after each run: where it ended, the last evaluation, what changed.
    fn status(&self, result: Result<Summary, TrainError>) {
        let summary = match result {
            Ok(s) => s,
            Err(e) => {
                say(&format!("the run stopped: {e}"));
                return;
            }
        };
        if let Some(stopped) = &summary.stopped_early {
            // Raising `patience` in the file continues the run.
            say(&stopped.to_string());
        }
        let loss = summary.last_loss.map_or(String::new(), |l| format!(", loss {}", l as f32));
        let mut parts = vec![format!("step {}{loss}", summary.to_step)];
        if let Some(plan) = self.plan() {
            if plan.data.eval.is_some() {
                let opts = RunOptions { model_dir: Some(summary.model_dir.clone()), ..RunOptions::default() };
                match train::evaluate::run(plan, &opts, None) {
                    Ok(m) => parts.push(m.to_string()),
                    Err(e) => parts.push(format!("no evaluation ({e})")),
                }
            }
        }
        parts.push(format!("model_dir {}", guard::display(&summary.model_dir)));
        if let Some(change) = &self.last_change {
            parts.push(format!("last change: {change}"));
        }
        say(&format!("status: {}", parts.join("; ")));
    }

    fn watched(&self) -> Vec<Utf8PathBuf> {
        let mut files = vec![self.file.clone()];
        if let Some(plan) = self.plan() {
            files.extend(data_files(plan));
        }
        files
    }

    /// What to do about a batch of changes, from the facts as they are now.
    fn decide(&self, batch: &[Utf8PathBuf], new: Option<&Reloaded>) -> Decision {
        let situation = Situation {
            file: &self.file,
            shown: &self.shown,
            current: self.plan(),
            model_dir: self.model_dir.as_deref(),
            flag_dir: self.flag_dir.as_deref(),
            on_incompatible: self.on_incompatible,
            running: self.running.is_some(),
            idle: self.idle,
        };
        decide(&situation, batch, new, &OnDisk)
    }

    /// Carries a decision out, in its fields' order; `new` is the reloaded file it was made from.
    fn apply(&mut self, d: Decision, new: Option<Reloaded>) {
        if let Some(errors) = &d.errors {
            print!("{errors}");
        }
        for line in &d.say {
            say(line);
        }
        if d.last_change.is_some() {
            self.last_change = d.last_change;
        }
        if d.stop {
            if let Some(run) = self.running.take() {
                self.status(run.stop());
            }
        }
        self.evaluate(&d.evaluate);
        let new = new.and_then(Result::ok);
        if let (Some(action), Some((compiled, source))) = (&d.report, &new) {
            self.report(action, compiled, source);
        }
        if d.adopt {
            self.compiled = new;
        }
        if d.model_dir.is_some() {
            self.model_dir = d.model_dir;
        }
        if let Some(idle) = d.idle {
            self.idle = idle;
        }
        if let Some(how) = d.start {
            self.start(how);
        }
    }

    /// The latest checkpoint evaluated on each of `paths`.
    fn evaluate(&self, paths: &[Utf8PathBuf]) {
        let (Some(plan), Some(dir)) = (self.plan(), &self.model_dir) else { return };
        let opts = RunOptions { model_dir: Some(dir.clone()), ..RunOptions::default() };
        for path in paths {
            match train::evaluate::run(plan, &opts, Some(&Files::one(path.clone()))) {
                Ok(m) => say(&format!("evaluated on {}: {}", guard::display(path), m)),
                Err(e) => say(&format!("cannot evaluate on {}: {e}", guard::display(path))),
            }
        }
    }

    /// The guard's report of a model change, compared with the plan the run used (as the guard
    /// would), naming the checkpoint the stopped run just wrote.
    fn report(&self, action: &str, compiled: &Compiled, source: &Source) {
        let Some(old_dir) = &self.model_dir else { return };
        let checkpoint = Store::new(old_dir).latest_meta().ok().flatten().map(|(e, _)| e);
        let Some(current) = self.plan() else { return };
        let d = diff::diff(current, &compiled.plan, Some(&NewSource { spans: &compiled.spans, text: &source.text }));
        let shown = guard::display(old_dir);
        let mode = Mode::Watch { model_dir: &shown, checkpoint: checkpoint.as_ref(), action };
        print!("{}", report::render(&d, &mode, &self.shown));
    }

    /// Ctrl-C: stops the run with a checkpoint; the exit code.
    fn interrupted(&mut self) -> i32 {
        match self.running.take().map(Running::stop) {
            Some(Ok(summary)) => {
                say(&format!("stopped at step {}; checkpoint saved", summary.to_step));
                exit::INTERRUPTED
            }
            Some(Err(e)) => {
                say(&format!("stopped: {e}"));
                exit::FAILED
            }
            None => {
                say("stopped");
                exit::INTERRUPTED
            }
        }
    }

    /// A run that ended on its own: its status, then the wait for an edit.
    fn finished(&mut self, files: &[Utf8PathBuf]) {
        if let Some(run) = self.running.take_if(|r| r.handle.is_finished()) {
            self.status(run.join());
            self.idle = true;
            let names: Vec<String> = files.iter().map(|f| guard::display(f)).collect();
            say(&format!("waiting for changes to {}", names.join(", ")));
        }
    }
}

/// Runs `est watch` until Ctrl-C; the exit code.
pub fn run(args: &WatchArgs) -> i32 {
    if args.no_cache {
        est::data::cache::disable();
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let _ = ctrlc::set_handler(move || {
        // A second Ctrl-C leaves at once; every write est makes is atomic.
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(exit::INTERRUPTED);
        }
    });
    let file = match std::env::current_dir().ok().and_then(|c| Utf8PathBuf::from_path_buf(c).ok()) {
        Some(cwd) => est::check::resolve(&cwd, args.file.as_str()),
        None => args.file.clone(),
    };
    let mut w = Watch {
        shown: args.file.to_string(),
        typed: args.file.clone(),
        file,
        on_incompatible: args.on_incompatible,
        flag_dir: args.model_dir.clone(),
        compiled: None,
        model_dir: None,
        base: HashMap::new(),
        idle: false,
        last_change: None,
        running: None,
    };
    match load(&w.typed) {
        Ok(loaded) => {
            w.model_dir = Some(place(&loaded.0.plan, w.flag_dir.as_deref(), &OnDisk));
            w.compiled = Some(loaded);
            w.start(Start::Resume);
        }
        Err(rendered) => {
            print!("{rendered}");
            say(&format!("`{}` has errors; waiting for a save that fixes them", w.shown));
        }
    }
    let mut files = w.watched();
    let (mut _watcher, mut changes) = match watch_files(&files) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    loop {
        if interrupted.load(Ordering::SeqCst) {
            return w.interrupted();
        }
        w.finished(&files);
        let batch = match changes.recv_timeout(Duration::from_millis(100)) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                eprintln!("error: the file watcher stopped");
                return exit::FAILED;
            }
        };
        let new = batch.contains(&w.file).then(|| load(&w.typed));
        let decision = w.decide(&batch, new.as_ref());
        w.apply(decision, new);
        let now = w.watched();
        if now != files {
            files = now;
            match watch_files(&files) {
                Ok((new_watcher, new_changes)) => {
                    // The old watcher stops as it is replaced.
                    _watcher = new_watcher;
                    changes = new_changes;
                }
                Err(e) => say(&format!("cannot watch the new files: {e}")),
            }
        }
    }
}

fn watch_files(
    files: &[Utf8PathBuf],
) -> Result<(FileWatcher, Receiver<Vec<Utf8PathBuf>>), est::watch::files::WatchError> {
    est::watch::files::watch(files, DEBOUNCE)
}
