//! model_dir under stress: damaged and missing files, retention, a second writer, the clock,
//! Python reading the tensors, and SIGKILL at random moments of saving.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use camino::Utf8Path;
use est::checkpoint::time::Clock;
use est::checkpoint::Store;

use crate::common::root;
use crate::training::{est, ok, text};

fn iris(dir: &Path, extra_checkpoint: &str) {
    let text = std::fs::read_to_string(root().join("pipelines/iris.est"))
        .unwrap()
        .replace("\"data/", &format!("\"{}/", root().join("pipelines/data")))
        .replace("save_every = 20m\n    keep_max   = 10", extra_checkpoint);
    std::fs::write(dir.join("iris.est"), text).unwrap();
}

fn store(dir: &Path) -> Store {
    Store::new(Utf8Path::from_path(&dir.join("models/iris")).unwrap())
}

#[test]
fn retention_keeps_the_newest_on_disk_and_in_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    iris(tmp.path(), "save_every = 5 steps\n    keep_max   = 2");
    ok(&est(tmp.path(), &["train", "iris.est", "--steps", "30"]));
    let manifest = store(tmp.path()).manifest().unwrap().unwrap();
    let steps: Vec<u64> = manifest.checkpoints.iter().map(|e| e.step).collect();
    assert_eq!(steps, vec![25, 30]);
    assert_eq!(manifest.latest.as_deref(), Some("ckpt-30.safetensors"));
    let mut files: Vec<String> = std::fs::read_dir(tmp.path().join("models/iris"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("events.out.tfevents."))
        .collect();
    files.sort();
    assert_eq!(files, [".lock", "ckpt-25.safetensors", "ckpt-30.safetensors", "manifest.yaml"]);
}

#[test]
fn a_damaged_checkpoint_is_passed_over_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    iris(tmp.path(), "save_every = 10 steps");
    ok(&est(tmp.path(), &["train", "iris.est", "--steps", "20"]));
    let path = tmp.path().join("models/iris/ckpt-20.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let out = est(tmp.path(), &["train", "iris.est", "--steps", "1", "--model-dir", "models/iris"]);
    ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: `models/iris/ckpt-20.safetensors` is damaged: its SHA-256 is not the one the manifest recorded; falling back to an older checkpoint"),
        "{stderr}"
    );
    assert!(stderr.contains("restored ckpt-10.safetensors (step 10)"), "{stderr}");
}

#[test]
fn a_missing_or_garbled_manifest_is_rebuilt_from_the_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    iris(tmp.path(), "save_every = 10 steps");
    ok(&est(tmp.path(), &["train", "iris.est", "--steps", "20"]));
    let manifest = tmp.path().join("models/iris/manifest.yaml");
    std::fs::remove_file(&manifest).unwrap();
    let out = est(tmp.path(), &["train", "iris.est", "--steps", "1"]);
    ok(&out);
    assert!(text(&out.stderr).contains("restored ckpt-20.safetensors (step 20)"), "{}", text(&out.stderr));
    std::fs::write(&manifest, "latest: [this is not a manifest").unwrap();
    let out = est(tmp.path(), &["train", "iris.est", "--steps", "1"]);
    ok(&out);
    assert!(text(&out.stderr).contains("restored ckpt-21.safetensors (step 21)"), "{}", text(&out.stderr));
}

#[test]
fn a_second_trainer_is_refused_and_nothing_is_corrupted() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    iris(tmp.path(), "save_every = 50 steps");
    let mut first = Command::new(crate::common::est_bin())
        .args(["train", "iris.est", "--steps", "100000000"])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("step = 100,") {
            break;
        }
    }
    let second = est(tmp.path(), &["train", "iris.est", "--steps", "10"]);
    assert_eq!(second.status.code(), Some(1));
    assert_eq!(
        text(&second.stderr),
        format!(
            "error: `{}/models/iris` is in use by another `est train` (pid {}); wait for it, or train elsewhere with --model-dir\n",
            tmp.path().display(),
            first.id()
        )
    );
    Command::new("kill").args(["-INT", &first.id().to_string()]).status().unwrap();
    let _rest: Vec<String> = lines.map(Result::unwrap).collect();
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let loaded = store(tmp.path()).load_latest().unwrap().unwrap();
    assert!(loaded.warnings.is_empty());
    ok(&est(tmp.path(), &["train", "iris.est", "--steps", "1"]));
}

/// Time that moves one second per training step.
struct StepClock(Arc<AtomicU64>);

impl Clock for StepClock {
    fn now(&self) -> f64 {
        1_800_000_000.0 + self.0.load(Ordering::SeqCst) as f64
    }
}

struct Ticks(Arc<AtomicU64>);

impl est_torch::train::Progress for Ticks {
    fn step(&mut self, _step: u64, _loss: Option<f64>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn save_every_and_keep_every_follow_the_injected_clock() {
    let tmp = tempfile::tempdir().unwrap();
    iris(tmp.path(), "save_every = 10s\n    keep_max   = 2\n    keep_every = 30s");
    let path = tmp.path().join("iris.est");
    let source = est::Source::read(Utf8Path::from_path(&path).unwrap()).unwrap();
    let plan = est::compile(&source, &source.base_dir().unwrap()).unwrap().plan;
    let seconds = Arc::new(AtomicU64::new(0));
    let opts = est_torch::train::RunOptions {
        steps: Some(100),
        clock: Arc::new(StepClock(seconds.clone())),
        ..est_torch::train::RunOptions::default()
    };
    est_torch::train::run(&plan, &opts, &mut Ticks(seconds), &AtomicBool::new(false)).unwrap();
    let manifest = store(tmp.path()).manifest().unwrap().unwrap();
    let kept: Vec<(u64, bool)> = manifest.checkpoints.iter().map(|e| (e.step, e.preserved)).collect();
    // The clock reads s - 1 seconds at step s: saves at steps 0, 11, 21, ..., 91 (10 s apart)
    // and 100; of those falling out of the newest two, each at least 30 s after the last one
    // kept for good (or the first save) is kept for good: steps 31 and 61.
    assert_eq!(kept, vec![(31, true), (61, true), (91, false), (100, false)]);
}

#[test]
fn python_reads_the_tensors_with_safetensors() {
    let Ok(python) = std::env::var("EST_PYTHON") else {
        eprintln!("EST_PYTHON is not set: skipped reading from Python");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    iris(tmp.path(), "save_every = 20m");
    ok(&est(tmp.path(), &["train", "iris.est", "--steps", "5"]));
    let path = tmp.path().join("models/iris/ckpt-5.safetensors");
    let script = "import sys, json\nfrom safetensors.numpy import load_file\nfrom safetensors import safe_open\nt = load_file(sys.argv[1])\nmeta = json.loads(safe_open(sys.argv[1], 'np').metadata()['est'])\nprint(int(t['global_step']), meta['global_step'], t['dnn/hiddenlayer_0/kernel'].shape, round(float(t['dnn/logits/bias'][0]), 6))";
    let out = Command::new(python).args(["-c", script, path.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = std::fs::read(&path).unwrap();
    let (_, tensors) = est::checkpoint::format::decode(&bytes).unwrap();
    let bias = tensors["dnn/logits/bias"].to_f32().unwrap()[0];
    assert_eq!(text(&out.stdout), format!("5 5 (4, 10) {}\n", (bias as f64 * 1e6).round() / 1e6));
}

/// Whether the iris model folder's manifest names a checkpoint of a step after `step`. (A file
/// alone does not count: a kill between a checkpoint's rename and the manifest's write leaves
/// one the next run restores past, and a test waiting on it would kill every later run before
/// it saved.)
fn saved_since(dir: &Path, step: u64) -> bool {
    store(dir).manifest().ok().flatten().and_then(|m| m.checkpoints.last().map(|e| e.step)).is_some_and(|n| n > step)
}

#[test]
fn sigkill_at_random_moments_of_saving_never_leaves_model_dir_unloadable() {
    let tmp = tempfile::tempdir().unwrap();
    // A checkpoint every step: most kills land in or near a save.
    iris(tmp.path(), "save_every = 1 steps\n    keep_max   = 3");
    let mut rng = est::rng::Rng::new(2026);
    let mut last_step = 0;
    let mut mid_write = 0;
    for round in 0..50 {
        let mut command = Command::new(crate::common::est_bin());
        command.args(["train", "iris.est", "--steps", "100000000"]).current_dir(tmp.path());
        // Every other run copies its saves between steps, 64 bytes a step, as big tables are.
        if round % 2 == 1 {
            command.env("EST_SAVE_CHUNK", "64");
        }
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        // Once the run saves (libtorch's start takes longer on a loaded machine), a kill at a
        // random moment lands among its saves, one every step.
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(60) && !saved_since(tmp.path(), last_step) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(rng.below(300)));
        Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
        child.wait().unwrap();
        // A temporary file left behind means the kill landed inside a checkpoint write.
        let leftovers = std::fs::read_dir(tmp.path().join("models/iris"))
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().contains(".tmp-")).count())
            .unwrap_or(0);
        mid_write += usize::from(leftovers > 0);
        let loaded = store(tmp.path()).load_latest().unwrap_or_else(|e| panic!("round {round}: {e}"));
        let Some(loaded) = loaded else { continue };
        assert!(loaded.warnings.is_empty(), "round {round}: {:?}", loaded.warnings);
        assert!(
            loaded.meta.global_step >= last_step,
            "round {round}: went back from {last_step} to {}",
            loaded.meta.global_step
        );
        last_step = loaded.meta.global_step;
    }
    assert!(last_step > 0, "no run got far enough to save");
    assert!(mid_write > 0, "no kill landed inside a write; the test proves less than it claims");
    eprintln!("{mid_write} of 50 kills landed inside a checkpoint write");
    let out = est(tmp.path(), &["train", "iris.est", "--steps", "1"]);
    ok(&out);
    assert!(text(&out.stderr).contains(&format!("restored ckpt-{last_step}.safetensors")), "{}", text(&out.stderr));
}
