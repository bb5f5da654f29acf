//! `est watch`: trains, and on every save of the `.est` file or its data decides what the edit
//! means (est::watch::classify) and acts: show errors and carry on, restart from a checkpoint
//! with new settings, move to a new model_dir, or evaluate on new data. Everything is printed
//! as lines on stdout, so a session can be piped and logged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use crate::train::{self, RunOptions, Start, Summary, TrainError};
use est::checkpoint::Store;
use est::cli::args::{OnIncompatible, WatchArgs};
use est::cli::{exit, guard};
use est::diff::report::{self, Mode};
use est::diff::{self, Diff, NewSource};
use est::pipeline::TrainLength;
use est::plan::Plan;
use est::watch::classify::{classify, data_files, Verdict};
use est::{Compiled, Source};

use crate::cli::metrics_line;
use crate::console::Console;

struct Running {
    handle: JoinHandle<Result<Summary, TrainError>>,
    stop: Arc<AtomicBool>,
}

struct Session {
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
}

fn say(text: &str) {
    println!("watch: {text}");
}

fn load(file: &Utf8Path) -> Result<(Compiled, Source), String> {
    let source = Source::read(file).map_err(|e| format!("error: {e}\n"))?;
    let base = source.base_dir().map_err(|e| format!("error: {e}\n"))?;
    match est::compile(&source, &base) {
        Ok(compiled) => Ok((compiled, source)),
        Err(diagnostics) => Err(est::render::render(&diagnostics, source.path.as_str(), &source.text, false)),
    }
}

/// `<model_dir>-<model fingerprint><optimizer fingerprint prefix>`: a folder per model.
fn sibling(dir: &Utf8Path, plan: &Plan) -> Utf8PathBuf {
    let name = dir.file_name().unwrap_or("model");
    let fp = &plan.fingerprint;
    dir.with_file_name(format!("{name}-{}{}", fp.model, &fp.optimizer[..8.min(fp.optimizer.len())]))
}

fn compatible(dir: &Utf8Path, plan: &Plan) -> bool {
    match Store::new(dir).latest_meta() {
        Ok(Some((entry, _))) => entry.fingerprint == plan.fingerprint,
        Ok(None) => true,
        Err(_) => false,
    }
}

impl Session {
    fn plan(&self) -> Option<&Plan> {
        self.compiled.as_ref().map(|(c, _)| &c.plan)
    }

    fn home(&self, plan: &Plan) -> Utf8PathBuf {
        self.flag_dir.clone().unwrap_or_else(|| plan.checkpoint.model_dir.clone())
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

    fn start(&mut self, how: Start) -> Option<Running> {
        let plan = self.plan()?.clone();
        let dir = self.model_dir.clone()?;
        let max_steps = self.target(&dir, &plan);
        // Epoch plans run their epochs again on each restart: they cannot be counted in steps
        // before the data is read.
        let opts = RunOptions { max_steps, model_dir: Some(dir.clone()), start: how, ..RunOptions::default() };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        say(&format!("training in {}", guard::display(&dir)));
        self.idle = false;
        let handle = std::thread::spawn(move || train::run(&plan, &opts, &mut Console::lines(), &flag));
        Some(Running { handle, stop })
    }

    /// The block shown after each run: where it ended, the last evaluation, what changed.
    fn status(&self, result: Result<Summary, TrainError>) {
        let summary = match result {
            Ok(s) => s,
            Err(e) => {
                say(&format!("the run stopped: {e}"));
                return;
            }
        };
        let loss = summary.last_loss.map_or(String::new(), |l| format!(", loss {}", l as f32));
        let mut parts = vec![format!("step {}{loss}", summary.to_step)];
        if let Some(plan) = self.plan() {
            if plan.data.eval.is_some() {
                let opts = RunOptions { model_dir: Some(summary.model_dir.clone()), ..RunOptions::default() };
                match train::evaluate::run(plan, &opts, None) {
                    Ok(m) => parts.push(metrics_line(&m)),
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
}

pub fn run(args: &WatchArgs) -> i32 {
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
    let mut s = Session {
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
    };
    let mut running: Option<Running> = None;
    match load(&s.typed) {
        Ok(loaded) => {
            let home = s.home(&loaded.0.plan);
            s.model_dir = Some(if compatible(&home, &loaded.0.plan) { home } else { sibling(&home, &loaded.0.plan) });
            s.compiled = Some(loaded);
            running = s.start(Start::Resume);
        }
        Err(rendered) => {
            print!("{rendered}");
            say(&format!("`{}` has errors; waiting for a save that fixes them", s.shown));
        }
    }
    let mut files = s.watched();
    let (mut _watcher, mut changes) = match est::watch::files::watch(&files, Duration::from_millis(200)) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    loop {
        if interrupted.load(Ordering::SeqCst) {
            return match running.take() {
                Some(r) => {
                    r.stop.store(true, Ordering::SeqCst);
                    match r.handle.join() {
                        Ok(Ok(summary)) => {
                            say(&format!("stopped at step {}; checkpoint saved", summary.to_step));
                            exit::INTERRUPTED
                        }
                        Ok(Err(e)) => {
                            say(&format!("stopped: {e}"));
                            exit::FAILED
                        }
                        Err(_) => exit::FAILED,
                    }
                }
                None => {
                    say("stopped");
                    exit::INTERRUPTED
                }
            };
        }
        if running.as_ref().is_some_and(|r| r.handle.is_finished()) {
            if let Some(r) = running.take() {
                s.status(r.handle.join().unwrap_or_else(|_| Err(TrainError::ThreadStopped)));
                s.idle = true;
                let names: Vec<String> = files.iter().map(|f| guard::display(f)).collect();
                say(&format!("waiting for changes to {}", names.join(", ")));
            }
        }
        let batch = match changes.recv_timeout(Duration::from_millis(100)) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                eprintln!("error: the file watcher stopped");
                return exit::FAILED;
            }
        };
        running = handle(&mut s, &batch, running);
        let now = s.watched();
        if now != files {
            files = now;
            match est::watch::files::watch(&files, Duration::from_millis(200)) {
                Ok((w, c)) => {
                    _watcher = w;
                    changes = c;
                }
                Err(e) => say(&format!("cannot watch the new files: {e}")),
            }
        }
    }
}

/// Stops a run at its next step boundary; it writes a checkpoint as it ends.
fn stop(running: Option<Running>) -> Option<Result<Summary, TrainError>> {
    let r = running?;
    r.stop.store(true, Ordering::SeqCst);
    Some(r.handle.join().unwrap_or_else(|_| Err(TrainError::ThreadStopped)))
}

fn handle(s: &mut Session, batch: &[Utf8PathBuf], running: Option<Running>) -> Option<Running> {
    let new = if batch.contains(&s.file) { Some(load(&s.typed)) } else { None };
    let Some(current) = s.plan().cloned() else {
        // No valid plan yet: only a save that fixes the file matters.
        return match new {
            Some(Ok(loaded)) => {
                let home = s.home(&loaded.0.plan);
                s.model_dir =
                    Some(if compatible(&home, &loaded.0.plan) { home } else { sibling(&home, &loaded.0.plan) });
                s.compiled = Some(loaded);
                say(&format!("`{}` checks now", s.shown));
                s.start(Start::Resume)
            }
            Some(Err(rendered)) => {
                print!("{rendered}");
                running
            }
            None => running,
        };
    };
    let compiled_ref = match &new {
        Some(Ok((c, source))) => Some((c, source.text.as_str())),
        _ => None,
    };
    match classify(batch, &s.file, &current, compiled_ref) {
        Verdict::Unchanged => {
            if new.is_some() {
                say(&format!("`{}` saved, nothing that matters changed", s.shown));
            }
            running
        }
        Verdict::Invalid => {
            if let Some(Err(rendered)) = &new {
                print!("{rendered}");
            }
            let state = if running.is_some() { "the current run goes on" } else { "training waits" };
            say(&format!("`{}` has errors; {state} until a save fixes them", s.shown));
            running
        }
        Verdict::Training(d) => {
            let change = d.training_summary();
            say(&format!("`{}` changed: {change}; continuing from a checkpoint with the new settings", s.shown));
            s.last_change = Some(change);
            if let Some(result) = stop(running) {
                s.status(result);
            }
            s.compiled = new.and_then(Result::ok);
            s.start(Start::Resume)
        }
        Verdict::Incompatible(d) => {
            let Some(Ok(loaded)) = new else { return running };
            incompatible(s, d, loaded, running)
        }
        Verdict::Data(paths) => {
            let names: Vec<String> = paths.iter().map(|p| guard::display(p)).collect();
            say(&format!("{} changed", names.join(", ")));
            s.last_change = Some(format!("{} edited", names.join(", ")));
            let was_running = running.is_some();
            if let Some(result) = stop(running) {
                s.status(result);
            }
            if let (Some(plan), Some(dir)) = (s.plan(), s.model_dir.clone()) {
                let opts = RunOptions { model_dir: Some(dir), ..RunOptions::default() };
                for path in &paths {
                    if Some(path) == plan.data.predict.as_ref() {
                        continue;
                    }
                    match train::evaluate::run(plan, &opts, Some(path)) {
                        Ok(m) => say(&format!("evaluated on {}: {}", guard::display(path), metrics_line(&m))),
                        Err(e) => say(&format!("cannot evaluate on {}: {e}", guard::display(path))),
                    }
                }
            }
            if was_running || !s.idle {
                s.start(Start::Resume)
            } else {
                None
            }
        }
    }
}

fn incompatible(s: &mut Session, d: Diff, loaded: (Compiled, Source), running: Option<Running>) -> Option<Running> {
    let Some(old_dir) = s.model_dir.clone() else { return running };
    let home = s.home(&loaded.0.plan);
    // Back to a model the home folder holds (an edit undone): resume it there.
    let target = if compatible(&home, &loaded.0.plan) { home } else { sibling(&home, &loaded.0.plan) };
    let resumes = Store::new(&target).latest_meta().ok().flatten().is_some();
    let action = match (s.on_incompatible, resumes) {
        (OnIncompatible::Stop, _) => "training stops until the next edit".to_string(),
        (_, true) => format!("resuming the matching checkpoints in {}", guard::display(&target)),
        (OnIncompatible::Fresh, false) => {
            format!(
                "training a fresh model in {}; {} stays as it is",
                guard::display(&target),
                guard::display(&old_dir)
            )
        }
        (OnIncompatible::WarmStart, false) => format!(
            "training in {}, warm-started from {} where names and shapes still match; {} stays as it is",
            guard::display(&target),
            guard::display(&old_dir),
            guard::display(&old_dir)
        ),
    };
    s.last_change =
        Some(d.model.iter().chain(&d.optimizer).map(|c| c.key.as_str()).collect::<Vec<_>>().join(", ") + " changed");
    // The run stops first, so the report names the checkpoint it just wrote.
    if let Some(result) = stop(running) {
        s.status(result);
    }
    let checkpoint = Store::new(&old_dir).latest_meta().ok().flatten().map(|(e, _)| e);
    let shown = guard::display(&old_dir);
    // The report compares with the plan the run used, the same as the guard would.
    let current = s.plan().cloned();
    let d = match &current {
        Some(plan) => {
            diff::diff(plan, &loaded.0.plan, Some(&NewSource { spans: &loaded.0.spans, text: &loaded.1.text }))
        }
        None => d,
    };
    let mode = Mode::Watch { model_dir: &shown, checkpoint: checkpoint.as_ref(), action: &action };
    print!("{}", report::render(&d, &mode, &s.shown));
    s.compiled = Some(loaded);
    if s.on_incompatible == OnIncompatible::Stop {
        s.idle = true;
        return None;
    }
    let how = if resumes || s.on_incompatible == OnIncompatible::Fresh {
        Start::Resume
    } else {
        Start::WarmStartFrom(old_dir)
    };
    s.model_dir = Some(target);
    s.start(how)
}
