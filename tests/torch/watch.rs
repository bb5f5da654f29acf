//! `est watch` as a child process in a temporary folder, every wait bounded: a bad edit, a
//! learning-rate edit, a hidden_units edit, an editor's rename save, a data edit, and Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::project;

struct Watch {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

const PATIENCE: Duration = Duration::from_secs(60);

impl Watch {
    /// Copies iris and its data into a temp folder, with endless steps, and starts watching.
    fn start() -> Watch {
        Watch::start_with(&[])
    }

    fn start_with(flags: &[&str]) -> Watch {
        let dir = project("iris.est", &[("steps      = 200", "steps      = 100000000")]);
        let mut child = Command::new(crate::common::est_bin())
            .args(["watch", "iris.est"])
            .args(flags)
            .current_dir(dir.path())
            // Several watch sessions share two cores here; one thread each keeps them moving.
            .env("OMP_NUM_THREADS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let watch = Watch { child: Some(child), lines, dir };
        watch.wait_for(0, "first training steps", |l| l.starts_with("step = 100,"));
        watch
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn len(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The index of the first line at or after `from` that matches, waiting for it.
    fn wait_for(&self, from: usize, what: &str, matches: impl Fn(&str) -> bool) -> usize {
        let start = Instant::now();
        loop {
            if let Some(i) = self.lines.lock().unwrap().iter().skip(from).position(|l| matches(l)) {
                return from + i;
            }
            assert!(start.elapsed() < PATIENCE, "no {what} within {PATIENCE:?}; output:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn line(&self, i: usize) -> String {
        self.lines.lock().unwrap()[i].clone()
    }

    fn edit(&self, old: &str, new: &str) {
        let path = self.path("iris.est");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(old), "{old}");
        std::fs::write(&path, text.replacen(old, new, 1)).unwrap();
    }

    /// Saves as editors do: a temporary file, renamed over the original.
    fn edit_by_rename(&self, old: &str, new: &str) {
        let path = self.path("iris.est");
        let text = std::fs::read_to_string(&path).unwrap();
        let tmp = self.path(".iris.est.swp");
        std::fs::write(&tmp, text.replacen(old, new, 1)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    fn interrupt(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "est watch did not stop:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn steps_after(&self, from: usize) -> Vec<u64> {
        self.lines.lock().unwrap()[from..]
            .iter()
            .filter_map(|l| l.strip_prefix("step = "))
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn latest_step(dir: &Path) -> u64 {
    let store = est::checkpoint::Store::new(camino::Utf8Path::from_path(dir).unwrap());
    store.latest_meta().unwrap().unwrap().0.step
}

#[test]
fn a_bad_edit_shows_the_error_and_the_run_goes_on() {
    let w = Watch::start();
    let at = w.len();
    w.edit("hidden_units", "hiden_units");
    let error = w.wait_for(at, "the diagnostic", |l| l == "error: unknown key `hiden_units` in `model`");
    w.wait_for(error, "the note", |l| {
        l == "watch: `iris.est` has errors; the current run goes on until a save fixes them"
    });
    let before = w.steps_after(at);
    let last = *before.last().unwrap_or(&0);
    w.wait_for(error, "more training", |l| {
        l.starts_with("step = ") && l[7..].split(',').next().unwrap().parse::<u64>().unwrap() > last + 200
    });
    assert!(!w.output()[..].contains("restored"), "the run restarted:\n{}", w.output());
}

#[test]
fn a_learning_rate_edit_continues_from_its_checkpoint() {
    let w = Watch::start();
    let at = w.len();
    w.edit("learning_rate = 0.05", "learning_rate = 0.1");
    let changed = w.wait_for(at, "the change", |l| {
        l == "watch: `iris.est` changed: optimizer.learning_rate 0.05 → 0.1; continuing from a checkpoint with the new settings"
    });
    let restored = w.wait_for(changed, "the restore", |l| l.starts_with("restored ckpt-"));
    let step: u64 = w.line(restored)["restored ckpt-".len()..].split('.').next().unwrap().parse().unwrap();
    w.wait_for(restored, "steps after the restore", |l| l.starts_with("step = "));
    let steps = w.steps_after(0);
    assert!(steps.windows(2).all(|p| p[1] > p[0]), "the global step went back: {steps:?}");
    assert!(w.steps_after(restored).iter().all(|s| *s > step));
    assert!(w.steps_after(0).iter().filter(|s| **s <= step).count() > 0);
    assert!(w.output().contains("last change: optimizer.learning_rate 0.05 → 0.1"));
}

#[test]
fn a_hidden_units_edit_trains_a_new_model_dir_and_leaves_the_old_one() {
    let w = Watch::start();
    let at = w.len();
    w.edit("hidden_units = [10, 10]", "hidden_units = [20, 20]");
    let report = w.wait_for(at, "the report", |l| {
        l == "watch: `iris.est` now describes another model; the checkpoints in `models/iris` no longer fit"
    });
    w.wait_for(report, "the changed key", |l| l.contains("model.hidden_units  [10, 10] → [20, 20]  (iris.est:17)"));
    let moved =
        w.wait_for(report, "the new model_dir", |l| l.starts_with("watch: training a fresh model in models/iris-"));
    let new_dir = w.line(moved)["watch: training a fresh model in ".len()..].split(';').next().unwrap().to_string();
    let old = std::fs::read(w.path("models/iris/manifest.yaml")).unwrap();
    let first = w.wait_for(moved, "training in the new folder", |l| l.starts_with("step = 1,"));
    w.wait_for(first, "more training", |l| l.starts_with("step = 300,"));
    assert_eq!(std::fs::read(w.path("models/iris/manifest.yaml")).unwrap(), old, "the old model_dir changed");
    assert!(w.path(&new_dir).join("manifest.yaml").exists(), "no checkpoint in {new_dir}");
    assert!(w.path("models/iris").join("manifest.yaml").exists());
}

#[test]
fn an_editor_style_rename_save_is_seen() {
    let w = Watch::start();
    let at = w.len();
    w.edit_by_rename("batch_size = 100", "batch_size = 50");
    w.wait_for(at, "the change", |l| {
        l.starts_with("watch: `iris.est` changed: eval.batch_size 100 → 50, train.batch_size 100 → 50;")
    });
}

#[test]
fn a_data_edit_evaluates_the_new_data_then_continues() {
    let w = Watch::start();
    let at = w.len();
    let csv = std::fs::read_to_string(w.path("data/iris_test.csv")).unwrap();
    let first_rows: Vec<&str> = csv.lines().take(11).collect();
    std::fs::write(w.path("data/iris_test.csv"), first_rows.join("\n") + "\n").unwrap();
    let evaluated =
        w.wait_for(at, "the evaluation", |l| l.starts_with("watch: evaluated on data/iris_test.csv: accuracy = "));
    let restored = w.wait_for(evaluated, "the restart", |l| l.starts_with("restored ckpt-"));
    w.wait_for(restored, "more training", |l| l.starts_with("step = "));
}

#[test]
fn ctrl_c_checkpoints_and_exits() {
    let mut w = Watch::start();
    let status = w.interrupt();
    assert_eq!(status.code(), Some(130), "{}", w.output());
    let last = w.wait_for(0, "the goodbye", |l| l.starts_with("watch: stopped at step "));
    let step: u64 = w.line(last)["watch: stopped at step ".len()..].split(';').next().unwrap().parse().unwrap();
    assert_eq!(latest_step(&w.path("models/iris")), step);
}

#[test]
fn on_incompatible_warm_start_starts_the_new_model_dir_from_the_old_tensors() {
    let w = Watch::start_with(&["--on-incompatible", "warm-start"]);
    let at = w.len();
    w.edit("hidden_units = [10, 10]", "hidden_units = [10, 20]");
    let moved = w.wait_for(at, "the action", |l| {
        l.starts_with("watch: training in models/iris-") && l.contains("warm-started from models/iris")
    });
    w.wait_for(moved, "the warm start", |l| {
        l.starts_with("note: warm start from ")
            && l.contains("loaded 3 (dnn/hiddenlayer_0/kernel, dnn/hiddenlayer_0/bias, dnn/logits/bias)")
    });
}
