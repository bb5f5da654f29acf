//! Faults tried on purpose: bad data, a loss that blows up, a full or read-only disk, damaged
//! checkpoints, and SIGKILL at random moments of train, evaluate and watch. Each says what was
//! lost (nothing but the steps since the last save).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use camino::Utf8Path;

use crate::common::project;
use crate::training::{est, ok, text};

fn iris_dir(checkpoint: &str) -> tempfile::TempDir {
    project("iris.est", &[("save_every = 20m\n    keep_max   = 10", checkpoint)])
}

fn latest(dir: &Path) -> est::checkpoint::Loaded {
    let store = est::checkpoint::Store::new(Utf8Path::from_path(dir).unwrap());
    store.load_latest().unwrap().expect("a checkpoint")
}

/// `est evaluate --data` on a CSV written with `csv`: the exit code and stderr.
fn evaluate_on(csv: &[u8]) -> (Option<i32>, String, String) {
    let tmp = iris_dir("save_every = 20m");
    ok(&est(tmp.path(), &["train", "iris.est", "--steps", "1"]));
    std::fs::write(tmp.path().join("bad.csv"), csv).unwrap();
    let out = est(tmp.path(), &["evaluate", "iris.est", "--data", "bad.csv"]);
    (out.status.code(), text(&out.stderr), tmp.path().join("bad.csv").display().to_string())
}

const HEADER: &str = "SepalLength,SepalWidth,PetalLength,PetalWidth,Species\n";

#[test]
fn an_empty_field_without_a_missing_marker_is_named() {
    let (code, stderr, _) = evaluate_on(format!("{HEADER}5.1,3.5,1.4,0.2,0\n4.9,,1.4,0.2,0\n").as_bytes());
    assert_eq!(code, Some(1));
    assert_eq!(stderr, "error: bad.csv:3:5: `SepalWidth` is empty; list \"\" in `missing` and give `SepalWidth` a `default` to allow it\n");
}

#[test]
fn invalid_utf8_is_named() {
    let mut csv = format!("{HEADER}5.1,3.5,1.4,0.2,0\n4.9,3.0,1.4,0.2,").into_bytes();
    csv.extend_from_slice(b"\xff\n");
    let (code, stderr, _) = evaluate_on(&csv);
    assert_eq!(code, Some(1));
    assert_eq!(stderr, "error: bad.csv:3:17: `Species` is not valid UTF-8\n");
}

#[test]
fn bad_rows_are_skipped_and_counted_when_the_pipeline_asks() {
    let tmp = iris_dir("save_every = 20m");
    let path = tmp.path().join("iris.est");
    let spec = std::fs::read_to_string(&path)
        .unwrap()
        .replace("label = \"Species\"", "label = \"Species\"\n    bad_rows = skip");
    std::fs::write(&path, spec).unwrap();
    let train = tmp.path().join("data/iris_training.csv");
    let mut csv = std::fs::read_to_string(&train).unwrap();
    csv.push_str("6.1,x,4.7,1.4,1\n6.3,2.5,5.0,1.9\n");
    std::fs::write(&train, csv).unwrap();
    let out = est(tmp.path(), &["train", "iris.est", "--steps", "5"]);
    ok(&out);
    assert!(text(&out.stderr).contains("read 120 rows"), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("note: skipped 2 bad rows of `"), "{stderr}");
    assert!(stderr.contains("iris_training.csv:122:5: `SepalWidth` must be a number, found `x`\n"), "{stderr}");
    std::fs::write(tmp.path().join("bad.csv"), format!("{HEADER}5.1,3.5,1.4,0.2,0\n4.9,3.0,1.4,0.2,7\n")).unwrap();
    let out = est(tmp.path(), &["evaluate", "iris.est", "--data", "bad.csv"]);
    ok(&out);
    assert!(
        text(&out.stderr).contains("warning: skipped 1 bad row of `bad.csv`; the first: bad.csv:3:17: label 7"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(
        tmp.path().join("new.csv"),
        "SepalLength,SepalWidth,PetalLength,PetalWidth\n5.1,3.5,1.4,0.2\n4.9,,1.4,0.2\n6.1,2.8,4.7,1.2\n",
    )
    .unwrap();
    let out = est(tmp.path(), &["predict", "iris.est", "--input", "new.csv"]);
    ok(&out);
    assert_eq!(text(&out.stdout).lines().count(), 2);
    assert!(
        text(&out.stderr)
            .contains("warning: skipped 1 bad row of `new.csv`; the first: new.csv:3:5: `SepalWidth` is empty"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("there is no prediction for them"), "{}", text(&out.stderr));
}

#[test]
fn a_missing_header_column_is_named() {
    let (code, stderr, _) = evaluate_on(b"SepalLength,SepalWidth,PetalLength,Species\n5.1,3.5,1.4,0\n");
    assert_eq!(code, Some(1));
    assert_eq!(stderr, "error: `bad.csv`: there is no column `PetalWidth`; did you mean `SepalWidth`?\n");
}

#[test]
fn a_duplicate_header_is_named() {
    let (code, stderr, _) =
        evaluate_on(b"SepalLength,SepalWidth,PetalLength,PetalWidth,PetalWidth,Species\n5.1,3.5,1.4,0.2,0.2,0\n");
    assert_eq!(code, Some(1));
    assert_eq!(stderr, "error: `bad.csv`: column `PetalWidth` appears twice in the header\n");
}

#[test]
fn a_ten_megabyte_line_gets_a_short_error() {
    let long = "9".repeat(10 << 20);
    let (code, stderr, _) = evaluate_on(format!("{HEADER}5.1,3.5,1.4,0.2,0\n5.0,x{long},1.4,0.2,1\n").as_bytes());
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("error: bad.csv:3:5: `SepalWidth` must be a number, found `x999"),
        "{}",
        &stderr[..200.min(stderr.len())]
    );
    assert!(stderr.ends_with("… (10485761 bytes)`\n"), "{}", &stderr[..200.min(stderr.len())]);
    assert!(stderr.len() < 200);
}

#[test]
fn a_ten_megabyte_category_still_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "y".repeat(10 << 20);
    std::fs::write(tmp.path().join("d.csv"), format!("x,c,label\n1.0,{long},0\n2.0,b,1\n")).unwrap();
    let pipeline = "pipeline p {\n  data { train = \"d.csv\", label = label }\n  features { numeric x, categorical c { hash_buckets = 5 } }\n  model linear_classifier {}\n}\n";
    std::fs::write(tmp.path().join("p.est"), pipeline).unwrap();
    ok(&est(tmp.path(), &["train", "p.est", "--steps", "2"]));
}

#[test]
fn an_unknown_category_without_oov_buckets_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("d.csv"), "x,c,label\n1.0,a,0\n2.0,zz,1\n").unwrap();
    let pipeline = "pipeline p {\n  data { train = \"d.csv\", label = label }\n  features { numeric x, categorical c { vocabulary = [\"a\", \"b\"] } }\n  model linear_classifier {}\n}\n";
    std::fs::write(tmp.path().join("p.est"), pipeline).unwrap();
    let out = est(tmp.path(), &["train", "p.est", "--steps", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let path = tmp.path().join("d.csv");
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {}:3:5: column `c`: `zz` is not in the vocabulary and there are no `oov_buckets`\n",
            path.display()
        )
    );
}

/// `est train iris.est --steps 50` with SGD at `learning_rate`: the exit code and stderr.
fn blow_up(tmp: &Path, learning_rate: &str) -> (Option<i32>, String) {
    let path = tmp.join("iris.est");
    let spec = std::fs::read_to_string(&path).unwrap().replace(
        "optimizer adagrad {\n    learning_rate = 0.05",
        &format!("optimizer sgd {{\n    learning_rate = {learning_rate}"),
    );
    std::fs::write(&path, spec).unwrap();
    let out = est(tmp, &["train", "iris.est", "--steps", "50"]);
    (out.status.code(), text(&out.stderr))
}

fn all_finite(loaded: &est::checkpoint::Loaded) -> bool {
    loaded.tensors.values().filter_map(|t| t.to_f32()).all(|v| v.iter().all(|x| x.is_finite()))
}

#[test]
fn a_loss_that_blows_up_stops_training_and_is_never_saved() {
    let tmp = iris_dir("save_every = 1000 steps");
    let (code, stderr) = blow_up(tmp.path(), "1e38");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("error: the loss was inf at step 50; training stopped, and nothing after the checkpoint of step 0 was saved"),
        "{stderr}"
    );
    assert!(stderr.contains("help: lower the learning rate, or clip gradients with `clip_norm = 1.0`"), "{stderr}");
    let loaded = latest(&tmp.path().join("models/iris"));
    assert_eq!(loaded.meta.global_step, 0);
    assert!(all_finite(&loaded));
}

#[test]
fn weights_that_blow_up_after_a_finite_loss_are_never_saved() {
    // A learning rate beyond f32 turns the first update into infinities while step 1's loss,
    // computed before it, is finite; the save at step 1 must catch it.
    let tmp = iris_dir("save_every = 1 steps");
    let (code, stderr) = blow_up(tmp.path(), "1e39");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("step = 1, loss = 1.27"), "{stderr}");
    assert!(
        stderr.contains("inf at step 1; training stopped, and nothing after the checkpoint of step 0 was saved"),
        "{stderr}"
    );
    let loaded = latest(&tmp.path().join("models/iris"));
    assert_eq!(loaded.meta.global_step, 0);
    assert!(all_finite(&loaded));
}

/// `est train iris.est --steps 10` under `ulimit -f blocks` (blocks of 512 bytes), its saves
/// copied `chunk` bytes a step when given.
fn train_limited(dir: &Path, blocks: u32, chunk: Option<&str>) -> (Option<i32>, String) {
    let script = format!("ulimit -f {blocks}; exec {} train iris.est --steps 10", crate::common::est_bin().display());
    let mut command = Command::new("sh");
    command.args(["-c", &script]).current_dir(dir);
    if let Some(chunk) = chunk {
        command.env("EST_SAVE_CHUNK", chunk);
    }
    let out = command.output().unwrap();
    (out.status.code(), text(&out.stderr))
}

#[test]
fn a_file_size_limit_during_a_save_loses_nothing() {
    let tmp = iris_dir("save_every = 20m");
    let path = tmp.path().join("iris.est");
    // Checkpoints of about 22 kB; the run's event file and the manifest stay under 8 kB.
    let spec = std::fs::read_to_string(&path).unwrap().replace("[10, 10]", "[64, 64]");
    std::fs::write(&path, spec).unwrap();
    ok(&est(tmp.path(), &["train", "iris.est", "--steps", "10"]));
    let dir = tmp.path().join("models/iris");

    // 2 kB: the run's first write, its event file, fails.
    let (code, stderr) = train_limited(tmp.path(), 4, None);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("\nerror: cannot write `") && stderr.contains("File too large"), "{stderr}");
    // 8 kB: training runs and its checkpoint write fails, copied at once or between steps.
    for chunk in [None, Some("256")] {
        let (code, stderr) = train_limited(tmp.path(), 16, chunk);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("ckpt-20.safetensors") && stderr.contains("File too large"), "{chunk:?}: {stderr}");
    }

    let loaded = latest(&dir);
    assert!(loaded.warnings.is_empty());
    assert_eq!(loaded.meta.global_step, 10);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    ok(&est(tmp.path(), &["train", "iris.est", "--steps", "1"]));
}

#[test]
fn an_export_that_cannot_be_written_leaves_nothing_behind() {
    let tmp = iris_dir("save_every = 20m");
    let path = tmp.path().join("iris.est");
    // A model.onnx of about 18 kB.
    let spec = std::fs::read_to_string(&path).unwrap().replace("[10, 10]", "[64, 64]");
    std::fs::write(&path, spec).unwrap();
    ok(&est(tmp.path(), &["train", "iris.est", "--steps", "10"]));
    let command = format!("ulimit -f 16; exec {} export iris.est --out onnx", crate::common::est_bin().display());
    let out = Command::new("sh").args(["-c", &command]).current_dir(tmp.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot export `iris.est`: cannot write `") && stderr.contains("File too large"),
        "{stderr}"
    );
    let left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!left.iter().any(|n| n == "onnx" || n.contains(".tmp-")), "{left:?}");
    let out = est(tmp.path(), &["export", "iris.est", "--out", "onnx"]);
    ok(&out);
    assert!(tmp.path().join("onnx/model.onnx").metadata().unwrap().len() > 8 * 1024);
}

/// A small tmpfs as model_dir, where this machine allows mounting one.
struct Mount(std::path::PathBuf);

impl Mount {
    fn new(at: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(at).ok()?;
        let done = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .ok()?;
        done.status.success().then(|| Mount(at.to_owned()))
    }

    fn read_only(&self) -> bool {
        Command::new("mount").args(["-o", "remount,ro"]).arg(&self.0).status().is_ok_and(|s| s.success())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_and_a_read_only_disk_lose_nothing() {
    let tmp = iris_dir("save_every = 1 steps\n    keep_max   = 100000");
    let Some(mount) = Mount::new(&tmp.path().join("models/iris"), "256k") else {
        eprintln!("cannot mount a tmpfs here: the file-size-limit test covers a full disk");
        return;
    };
    let out = est(tmp.path(), &["train", "iris.est", "--steps", "1000"]);
    assert_eq!(out.status.code(), Some(1), "the disk never filled:\n{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let full = latest(&tmp.path().join("models/iris"));
    assert!(full.warnings.is_empty() && full.meta.global_step > 0, "{:?}", full.warnings);

    assert!(mount.read_only(), "remounting read-only failed");
    let out = est(tmp.path(), &["train", "iris.est", "--steps", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Read-only file system"), "{}", text(&out.stderr));
    let after = latest(&tmp.path().join("models/iris"));
    assert_eq!(after.meta.global_step, full.meta.global_step);
}

#[test]
fn a_truncated_checkpoint_is_passed_over_with_a_warning() {
    let tmp = iris_dir("save_every = 10 steps");
    ok(&est(tmp.path(), &["train", "iris.est", "--steps", "20"]));
    let path = tmp.path().join("models/iris/ckpt-20.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let out = est(tmp.path(), &["evaluate", "iris.est"]);
    ok(&out);
    assert!(text(&out.stdout).contains("global_step = 10"), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("ckpt-20.safetensors` is damaged"), "{}", text(&out.stderr));
    let out = est(tmp.path(), &["predict", "iris.est", "--input", "data/iris_test.csv"]);
    ok(&out);
    assert!(text(&out.stderr).contains("ckpt-20.safetensors` is damaged"), "{}", text(&out.stderr));
    let out = est(tmp.path(), &["train", "iris.est", "--steps", "5"]);
    ok(&out);
    assert!(text(&out.stderr).contains("restored ckpt-10.safetensors (step 10)"), "{}", text(&out.stderr));
    assert_eq!(latest(&tmp.path().join("models/iris")).meta.global_step, 15);
}

/// Kills `est <command>` at a random moment, `rounds` times in all, cycling through train,
/// evaluate and watch, and after each checks that model_dir loads, holds every checkpoint the
/// killed process reported as saved, and takes a new writer.
fn kill_rounds(rounds: usize) {
    let tmp = iris_dir("save_every = 25 steps\n    keep_max   = 3");
    let dir = tmp.path().join("models/iris");
    let mut rng = est::rng::Rng::new(8);
    ok(&est(tmp.path(), &["train", "iris.est", "--steps", "1"]));
    for round in 0..rounds {
        let command: &[&str] = match round % 3 {
            0 => &["train", "iris.est", "--steps", "100000000"],
            1 => &["evaluate", "iris.est"],
            _ => &["watch", "iris.est"],
        };
        let mut child = Command::new(crate::common::est_bin())
            .args(command)
            .current_dir(tmp.path())
            .env("OMP_NUM_THREADS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let saved = Arc::new(Mutex::new(0u64));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let saved = saved.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    // "saved ckpt-N.safetensors" is printed once the write is complete.
                    if let Some(step) = line.strip_prefix("saved ckpt-").and_then(|l| l.split('.').next()?.parse().ok())
                    {
                        let mut s = saved.lock().unwrap();
                        *s = (*s).max(step);
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(150 + rng.below(600)));
        Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
        child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let loaded = latest(&dir);
        assert!(loaded.warnings.is_empty(), "round {round} ({command:?}): {:?}", loaded.warnings);
        let reported = *saved.lock().unwrap();
        assert!(
            loaded.meta.global_step >= reported,
            "round {round} ({command:?}): reported step {reported} saved, but the latest is {}",
            loaded.meta.global_step
        );
    }
    let out = est(tmp.path(), &["train", "iris.est", "--steps", "1"]);
    ok(&out);
}

/// 30 kills in CI; `EST_KILLS=200` for the nightly run RELIABILITY.md reports.
#[test]
fn sigkill_during_train_evaluate_and_watch_never_loses_a_saved_checkpoint() {
    let rounds = std::env::var("EST_KILLS").ok().and_then(|n| n.parse().ok()).unwrap_or(30);
    kill_rounds(rounds);
}
