//! Early stopping, the best checkpoints and choosing one, through the real CLI, on a pipeline
//! that overfits: 20 training rows of iris and a model of 256 × 256 units.

use std::path::Path;
use std::process::Command;

use est::checkpoint::{Evaluation, Manifest};

use crate::common::root;
use crate::training::{est, ok, text};

/// A folder with the 20-row training file, the eval file and `over.est`, which stops between
/// step 500 and 1000 with the settings given.
fn overfitting(early_stop: &str, checkpoint: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let train = std::fs::read_to_string(root().join("pipelines/data/iris_training.csv")).unwrap();
    let rows: Vec<&str> = train.lines().take(21).collect();
    std::fs::write(tmp.path().join("train.csv"), rows.join("\n") + "\n").unwrap();
    std::fs::copy(root().join("pipelines/data/iris_test.csv"), tmp.path().join("test.csv")).unwrap();
    write_spec(tmp.path(), early_stop, checkpoint);
    tmp
}

fn write_spec(dir: &Path, early_stop: &str, checkpoint: &str) {
    let text = format!(
        "pipeline over {{
  data {{ train = \"train.csv\", eval = \"test.csv\", label = Species }}
  features {{ numeric SepalLength, numeric SepalWidth, numeric PetalLength, numeric PetalWidth }}
  model dnn_classifier {{ hidden_units = [256, 256], n_classes = 3 }}
  optimizer adam {{ learning_rate = 0.0002 }}
  train {{ batch_size = 20, steps = 1000 }}
  eval {{ every = 50 steps }}
  early_stop {{ {early_stop} }}
  checkpoint {{ model_dir = \"m\", {checkpoint} }}
  summaries {{ log_every = 1000 }}
}}
"
    );
    std::fs::write(dir.join("over.est"), text).unwrap();
}

fn manifest(dir: &Path) -> Manifest {
    serde_yaml::from_str(&std::fs::read_to_string(dir.join("m/manifest.yaml")).unwrap()).unwrap()
}

fn loss(e: &Evaluation) -> f64 {
    e.metrics["average_loss"]
}

/// The step early stopping should end at, and the best, replayed from the recorded evaluations.
fn replay(evaluations: &[Evaluation], patience: u32) -> Option<(u64, u64, f64)> {
    let mut best: Option<(u64, f64)> = None;
    let mut since = 0;
    for e in evaluations {
        match best {
            Some((_, b)) if loss(e) >= b => since += 1,
            _ => {
                best = Some((e.global_step, loss(e)));
                since = 0;
            }
        }
        if since >= patience {
            let (step, value) = best?;
            return Some((e.global_step, step, value));
        }
    }
    None
}

/// `stopped early at step S: ...` as `est train` prints it.
fn stop_line(stdout: &str) -> String {
    stdout.lines().find(|l| l.starts_with("stopped early at step ")).unwrap_or_else(|| panic!("{stdout}")).to_string()
}

#[test]
fn training_stops_where_the_evaluations_say_and_keeps_the_best() {
    let tmp = overfitting("patience = 5", "save_every = 30 steps, keep_max = 1, keep_best = 2");
    let out = ok(&est(tmp.path(), &["train", "over.est"]));
    let m = manifest(tmp.path());
    let (stop, best_step, best) = replay(&m.evaluations, 5).expect("the evaluations call for a stop");
    assert!(stop < 1000 && stop > best_step, "stop {stop}, best {best_step}");
    let line = stop_line(&out);
    let expected = format!(
        "stopped early at step {stop}: average_loss has not improved for 5 evaluations (best {} at step {best_step}, ckpt-{best_step} kept)",
        est::stopping::significant(best, 4)
    );
    assert_eq!(line, expected);
    // Every evaluation names a checkpoint that was written at its step.
    assert!(m.evaluations.iter().all(|e| e.checkpoint.as_deref() == Some(&est::checkpoint::file_name(e.global_step))));
    // keep_max = 1 keeps the latest; keep_best = 2 keeps the two best evaluated besides.
    let mut ranked: Vec<&Evaluation> = m.evaluations.iter().collect();
    ranked.sort_by(|a, b| loss(a).total_cmp(&loss(b)).then(a.global_step.cmp(&b.global_step)));
    let mut expected: Vec<u64> = ranked[..2].iter().map(|e| e.global_step).collect();
    expected.push(stop);
    expected.sort();
    expected.dedup();
    let kept: Vec<u64> = m.checkpoints.iter().map(|c| c.step).collect();
    assert_eq!(kept, expected);

    // `--checkpoint best` evaluates the best: the same metrics training recorded for it.
    let json = ok(&est(tmp.path(), &["evaluate", "over.est", "--checkpoint", "best", "--json"]));
    let metrics: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(metrics["global_step"], best_step);
    assert!((metrics["average_loss"].as_f64().unwrap() - best).abs() < 1e-6, "{metrics} against {best}");
    let latest: serde_json::Value =
        serde_json::from_str(ok(&est(tmp.path(), &["evaluate", "over.est", "--json"])).trim()).unwrap();
    assert_eq!(latest["global_step"], stop);
    let by_step =
        ok(&est(tmp.path(), &["predict", "over.est", "--checkpoint", &best_step.to_string(), "--input", "test.csv"]));
    let best_predictions =
        ok(&est(tmp.path(), &["predict", "over.est", "--checkpoint", "best", "--input", "test.csv"]));
    assert_eq!(by_step, best_predictions);

    // A step that names no checkpoint lists the ones there are.
    let out = est(tmp.path(), &["evaluate", "over.est", "--checkpoint", "123"]);
    assert_eq!(out.status.code(), Some(1));
    let steps: Vec<String> = kept.iter().map(u64::to_string).collect();
    let stderr = text(&out.stderr);
    assert!(stderr.contains("has no checkpoint of step 123; it has steps"), "{stderr}");
    assert!(steps.iter().all(|s| stderr.contains(s.as_str())), "{stderr}");

    // The report marks the best point on the eval curve of average_loss, and nowhere else.
    let report = ok(&est(tmp.path(), &["report", "m", "--out", "-"]));
    let mark = format!("class=\"best\" data-step=\"{best_step}\"");
    assert_eq!(report.matches(&mark).count(), 1, "the report marks the best once");
    assert!(report.contains(&format!("<code>ckpt-{best_step}.safetensors</code> (step {best_step}")));

    // inspect marks the best and lists every evaluation.
    let shown = ok(&est(tmp.path(), &["inspect", "m"]));
    assert!(shown.contains(&format!("(best: average_loss = {})", est::stopping::significant(best, 4))), "{shown}");
    let listed = shown.lines().filter(|l| l.trim_start().starts_with("step ") && l.contains("ckpt-")).count();
    assert_eq!(listed, m.evaluations.len(), "{shown}");
}

#[test]
fn a_stopped_run_stays_stopped_until_patience_is_raised() {
    let tmp = overfitting("patience = 3", "save_every = 1000 steps");
    let first = stop_line(&ok(&est(tmp.path(), &["train", "over.est"])));
    let again = ok(&est(tmp.path(), &["train", "over.est"]));
    assert_eq!(stop_line(&again), first, "a second run trains no further");
    let stopped_at = manifest(tmp.path()).checkpoints.last().unwrap().step;

    write_spec(tmp.path(), "patience = 6", "save_every = 1000 steps");
    let out = ok(&est(tmp.path(), &["train", "over.est"]));
    let m = manifest(tmp.path());
    let last = m.checkpoints.last().unwrap().step;
    assert!(last > stopped_at, "the raised patience went on from {stopped_at}: {out}");
    // The state carried over: the run continued counting from the same best.
    if let Some((stop, _, _)) = replay(&m.evaluations, 6) {
        assert_eq!(stop, last);
        assert!(stop_line(&out).contains("has not improved for 6 evaluations"));
    }
}

#[test]
fn two_runs_of_half_the_steps_stop_where_one_run_does() {
    let whole = overfitting("patience = 5", "save_every = 100 steps");
    let one = stop_line(&ok(&est(whole.path(), &["train", "over.est"])));

    let halves = overfitting("patience = 5", "save_every = 100 steps");
    let first = ok(&est(halves.path(), &["train", "over.est", "--steps", "500"]));
    assert!(!first.contains("stopped early"), "the first half stopped: {first}");
    let two = stop_line(&ok(&est(halves.path(), &["train", "over.est", "--steps", "500"])));
    assert_eq!(two, one);
    let (a, b) = (manifest(whole.path()), manifest(halves.path()));
    let values = |m: &Manifest| m.evaluations.iter().map(|e| (e.global_step, loss(e))).collect::<Vec<_>>();
    assert_eq!(values(&a), values(&b));
}

#[test]
fn a_kill_mid_patience_resumes_to_the_same_stop_and_best() {
    let whole = overfitting("patience = 5", "save_every = 10 steps");
    let one = stop_line(&ok(&est(whole.path(), &["train", "over.est"])));
    let reference = manifest(whole.path());
    let (_, best_step, _) = replay(&reference.evaluations, 5).unwrap();

    let killed = overfitting("patience = 5", "save_every = 10 steps");
    let mut child = Command::new(crate::common::est_bin())
        .args(["train", "over.est"])
        .current_dir(killed.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed after the best was evaluated, while patience runs out: a checkpoint past the best
    // and some evaluations after it on disk.
    let path = killed.path().join("m/manifest.yaml");
    loop {
        assert!(child.try_wait().unwrap().is_none(), "training ended before the kill");
        let m: Option<Manifest> = std::fs::read_to_string(&path).ok().and_then(|t| serde_yaml::from_str(&t).ok());
        if m.is_some_and(|m| m.evaluations.iter().filter(|e| e.global_step > best_step).count() >= 2) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = stop_line(&ok(&est(killed.path(), &["train", "over.est"])));
    assert_eq!(resumed, one);
    let values = |m: &Manifest| m.evaluations.iter().map(|e| (e.global_step, loss(e))).collect::<Vec<_>>();
    assert_eq!(values(&manifest(killed.path())), values(&reference));
}

#[test]
fn best_without_evaluations_says_so() {
    let tmp = overfitting("patience = 5", "save_every = 1000 steps");
    let text_without = std::fs::read_to_string(tmp.path().join("over.est"))
        .unwrap()
        .replace("  eval { every = 50 steps }\n", "")
        .replace("  early_stop { patience = 5 }\n", "")
        .replace("steps = 1000", "steps = 20");
    std::fs::write(tmp.path().join("over.est"), text_without).unwrap();
    ok(&est(tmp.path(), &["train", "over.est"]));
    let out = est(tmp.path(), &["evaluate", "over.est", "--checkpoint", "best"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no checkpoint in") && stderr.contains("has an evaluation of `average_loss`"), "{stderr}");
    let out = est(tmp.path(), &["evaluate", "over.est", "--checkpoint", "newest"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// The class frequencies of the iris training file.
fn iris_prior() -> [f64; 3] {
    let train = std::fs::read_to_string(root().join("pipelines/data/iris_training.csv")).unwrap();
    let mut counts = [0f64; 3];
    for line in train.lines().skip(1) {
        let class: usize = line.rsplit(',').next().unwrap().trim().parse().unwrap();
        counts[class] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    counts.map(|c| c / total)
}

#[test]
fn a_baseline_classifier_learns_the_label_prior() {
    let tmp = tempfile::tempdir().unwrap();
    let data = root().join("pipelines/data");
    let spec = format!(
        "pipeline prior {{
  data {{ train = \"{}\", label = Species }}
  model baseline_classifier {{ n_classes = 3 }}
  train {{ batch_size = 120, steps = 600, shuffle = false }}
}}
",
        data.join("iris_training.csv")
    );
    std::fs::write(tmp.path().join("prior.est"), spec).unwrap();
    ok(&est(tmp.path(), &["train", "prior.est"]));
    let out = ok(&est(tmp.path(), &["predict", "prior.est", "--input", data.join("iris_test.csv").as_str()]));
    let prior = iris_prior();
    for line in out.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let p: Vec<f64> = row["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        for (got, want) in p.iter().zip(prior) {
            assert!((got - want).abs() < 1e-3, "probabilities {p:?}, class frequencies {prior:?}");
        }
    }
}

#[test]
fn a_baseline_regressor_learns_the_label_mean() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = "x,y\n1,2.0\n2,3.5\n3,1.0\n4,4.5\n5,3.0\n";
    std::fs::write(tmp.path().join("d.csv"), rows).unwrap();
    let spec = "pipeline mean {
  data { train = \"d.csv\", eval = \"d.csv\", label = y }
  model baseline_regressor { }
  optimizer sgd { learning_rate = 0.1 }
  train { batch_size = 5, steps = 300, shuffle = false }
}
";
    std::fs::write(tmp.path().join("mean.est"), spec).unwrap();
    ok(&est(tmp.path(), &["train", "mean.est"]));
    let metrics: serde_json::Value =
        serde_json::from_str(ok(&est(tmp.path(), &["evaluate", "mean.est", "--json"])).trim()).unwrap();
    assert!((metrics["prediction/mean"].as_f64().unwrap() - 2.8).abs() < 1e-4, "{metrics}");
}

/// README's run of the shipped pipeline is what est says.
#[test]
fn readme_shows_a_real_run() {
    let tmp = crate::common::project("iris_early_stop.est", &[]);
    let out = ok(&est(tmp.path(), &["train", "iris_early_stop.est"]));
    let line = stop_line(&out);
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains(&line), "README does not show `{line}`");
}
