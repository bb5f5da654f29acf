//! Training through the real CLI: accuracy on the shipped pipelines, exact resume for every
//! optimizer, predict against evaluate, weighted rows, and the errors bad data gets.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use est::checkpoint::format::decode;
use est::checkpoint::HostTensor;

use crate::common::root;

pub fn est(dir: &Path, args: &[&str]) -> Output {
    Command::new(crate::common::est_bin())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the est binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn data(name: &str) -> String {
    root().join("pipelines/data").join(name).to_string()
}

/// iris with the given model and optimizer blocks, logging every step.
fn iris(model: &str, optimizer: &str) -> String {
    format!(
        "pipeline resume {{
  data {{ train = \"{}\", eval = \"{}\", label = Species }}
  features {{ numeric SepalLength, numeric SepalWidth, numeric PetalLength {{ normalize = zscore }}, numeric PetalWidth }}
  {model}
  {optimizer}
  train {{ batch_size = 32, steps = 200, seed = 5 }}
  checkpoint {{ save_every = 1000 steps }}
  summaries {{ log_every = 1 }}
}}
",
        data("iris_training.csv"),
        data("iris_test.csv")
    )
}

/// `step = N, loss = X` lines, without the rate.
pub fn losses(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("step = "))
        .map(|l| l.split(", steps/sec").next().unwrap_or(l).to_string())
        .collect()
}

fn latest(dir: &Path) -> (est::checkpoint::Meta, BTreeMap<String, HostTensor>) {
    let store = est::checkpoint::Store::new(camino::Utf8Path::from_path(dir).unwrap());
    let manifest = store.manifest().unwrap().unwrap();
    let entry = manifest.checkpoints.last().unwrap();
    decode(&std::fs::read(dir.join(&entry.file)).unwrap()).unwrap()
}

fn exact_resume(pipeline: &str) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("p.est"), pipeline).unwrap();
    let whole = est(tmp.path(), &["train", "p.est", "--steps", "200", "--model-dir", "whole"]);
    ok(&whole);
    let first = est(tmp.path(), &["train", "p.est", "--steps", "100", "--model-dir", "split"]);
    ok(&first);
    let second = est(tmp.path(), &["train", "p.est", "--steps", "100", "--model-dir", "split"]);
    ok(&second);
    assert!(text(&second.stderr).contains("restored ckpt-100.safetensors (step 100)"), "{}", text(&second.stderr));

    let whole_losses = losses(&text(&whole.stderr));
    let mut split_losses = losses(&text(&first.stderr));
    split_losses.extend(losses(&text(&second.stderr)));
    assert_eq!(whole_losses.len(), 200);
    assert_eq!(whole_losses, split_losses, "the loss sequence changed across the restart");

    let (meta_a, tensors_a) = latest(&tmp.path().join("whole"));
    let (meta_b, tensors_b) = latest(&tmp.path().join("split"));
    assert_eq!(meta_a.global_step, 200);
    assert_eq!(meta_b.global_step, 200);
    assert_eq!(meta_a.data_order, meta_b.data_order);
    assert_eq!(tensors_a.keys().collect::<Vec<_>>(), tensors_b.keys().collect::<Vec<_>>());
    assert!(tensors_a.keys().any(|k| k.starts_with("optimizer/")), "no optimizer state in the checkpoint");
    for (name, a) in &tensors_a {
        assert!(a == &tensors_b[name], "`{name}` differs bit for bit after the restart");
    }
}

#[test]
fn exact_resume_adagrad() {
    exact_resume(&iris(
        "model dnn_classifier { hidden_units = [10, 10], n_classes = 3 }",
        "optimizer adagrad { learning_rate = 0.05 }",
    ));
}

#[test]
fn exact_resume_adam_with_dropout_and_batch_norm() {
    exact_resume(&iris(
        "model dnn_classifier { hidden_units = [16, 8], n_classes = 3, dropout = 0.2, batch_norm = true }",
        "optimizer adam { learning_rate = 0.01, amsgrad = true, clip_norm = 1.0 }",
    ));
}

#[test]
fn exact_resume_sgd_nesterov_with_dropout() {
    exact_resume(&iris(
        "model dnn_classifier { hidden_units = [10], n_classes = 3, dropout = 0.2 }",
        "optimizer sgd { learning_rate = 0.05, momentum = 0.9, nesterov = true, weight_decay = 0.001, decay = exponential { decay_steps = 50, decay_rate = 0.5 } }",
    ));
}

#[test]
fn exact_resume_rmsprop_with_clipping() {
    exact_resume(&iris(
        "model dnn_classifier { hidden_units = [10], n_classes = 3, activation = tanh }",
        "optimizer rmsprop { learning_rate = 0.01, momentum = 0.5, centered = true, clip_norm = 0.5 }",
    ));
}

#[test]
fn exact_resume_ftrl() {
    exact_resume(&iris(
        "model linear_classifier { n_classes = 3 }",
        "optimizer ftrl { learning_rate = 0.2, l1 = 0.01, l2 = 0.01 }",
    ));
}

#[test]
fn exact_resume_dnn_with_embeddings() {
    exact_resume(&format!(
        "pipeline resume {{
  data {{ train = \"{}\", label = species, label_vocabulary = [\"Adelie\", \"Chinstrap\", \"Gentoo\"], missing = \"NA\" }}
  features {{
    numeric bill_length_mm {{ default = 43.8, normalize = zscore }}
    categorical island {{ vocabulary = [\"Biscoe\", \"Dream\", \"Torgersen\"] }}
    categorical sex {{ vocabulary = [\"female\", \"male\"], oov_buckets = 1 }}
    embedding island_embedding = island {{ dimension = 2, combiner = mean }}
    embedding sex_embedding = sex {{ dimension = 2, combiner = sqrtn }}
  }}
  model dnn_classifier {{ hidden_units = [8], n_classes = 3, inputs = [bill_length_mm, island_embedding, sex_embedding] }}
  optimizer adagrad {{ learning_rate = 0.1 }}
  train {{ batch_size = 32, steps = 200, seed = 3 }}
  checkpoint {{ save_every = 1000 steps }}
  summaries {{ log_every = 1 }}
}}
",
        data("penguins_train.csv")
    ));
}

#[test]
fn exact_resume_wide_and_deep_with_two_optimizers() {
    let text = std::fs::read_to_string(root().join("pipelines/penguins.est")).unwrap();
    let text = text
        .replace("\"data/", &format!("\"{}/", root().join("pipelines/data")))
        .replace("steps      = 1000", "steps      = 200")
        .replace("log_every = 100", "log_every = 1")
        .replace("save_every = 500 steps", "save_every = 1000 steps")
        .replace("every = 500 steps\n", "every = 1000 steps\n");
    exact_resume(&text);
}

fn evaluate_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["evaluate"];
    all.extend_from_slice(args);
    all.push("--json");
    serde_json::from_str(&ok(&est(dir, &all))).unwrap()
}

#[test]
fn iris_reaches_ninety_percent_in_a_thousand_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let file = root().join("pipelines/iris.est");
    ok(&est(tmp.path(), &["train", file.as_str(), "--steps", "1000", "--model-dir", "iris"]));
    let metrics = evaluate_json(tmp.path(), &[file.as_str(), "--model-dir", "iris"]);
    assert_eq!(metrics["global_step"], 1000);
    let accuracy = metrics["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.90, "accuracy {accuracy}");
    for key in ["average_loss", "loss"] {
        assert!(metrics[key].as_f64().unwrap() < 0.5, "{key} {metrics}");
    }
}

#[test]
fn penguins_reaches_ninety_five_percent_and_predict_agrees_with_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let file = root().join("pipelines/penguins.est");
    let out = est(tmp.path(), &["train", file.as_str(), "--model-dir", "penguins"]);
    let summary = ok(&out);
    assert!(summary.starts_with("trained penguins: step 0 → 1000 in "), "{summary}");
    assert!(text(&out.stderr).contains("eval: accuracy = "), "evaluation during training:\n{}", text(&out.stderr));
    let metrics = evaluate_json(tmp.path(), &[file.as_str(), "--model-dir", "penguins"]);
    let accuracy = metrics["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.95, "accuracy {accuracy}");

    let test = data("penguins_test.csv");
    let lines = ok(&est(tmp.path(), &["predict", file.as_str(), "--model-dir", "penguins", "--input", &test]));
    let labels: Vec<String> = std::fs::read_to_string(&test)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let predictions: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(predictions.len(), labels.len());
    let mut right = 0;
    for (p, label) in predictions.iter().zip(&labels) {
        let probabilities: Vec<f64> =
            p["probabilities"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(probabilities.len(), 3);
        assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{p}");
        let id = p["class_ids"][0].as_i64().unwrap() as usize;
        assert_eq!(probabilities.iter().cloned().fold(0.0, f64::max), probabilities[id]);
        right += usize::from(p["classes"][0].as_str().unwrap() == label);
    }
    assert_eq!(right as f64 / labels.len() as f64, accuracy, "predict and evaluate disagree");

    let csv = ok(&est(
        tmp.path(),
        &["predict", file.as_str(), "--model-dir", "penguins", "--input", &test, "--format", "csv"],
    ));
    assert_eq!(csv.lines().next(), Some("class_id,class,probability_Adelie,probability_Chinstrap,probability_Gentoo"));
    assert_eq!(csv.lines().count(), labels.len() + 1);
}

/// A pipeline over `csv` (written into the temp dir) and the error `est train` gives for it.
fn train_error(csv: &str, penguins: bool) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("data.csv");
    std::fs::write(&path, csv).unwrap();
    let pipeline = if penguins {
        "pipeline p {
  data { train = \"data.csv\", label = species, label_vocabulary = [\"Adelie\", \"Gentoo\"] }
  features { numeric bill_length_mm }
  model dnn_classifier { hidden_units = [4] }
}
"
    } else {
        "pipeline p {
  data { train = \"data.csv\", label = Species }
  features { numeric SepalLength, numeric SepalWidth }
  model dnn_classifier { hidden_units = [4], n_classes = 3 }
}
"
    };
    std::fs::write(tmp.path().join("p.est"), pipeline).unwrap();
    let out = est(tmp.path(), &["train", "p.est", "--steps", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!tmp.path().join("models").exists(), "a failed run left a model_dir");
    (text(&out.stderr), path.to_string_lossy().into_owned())
}

#[test]
fn a_row_with_the_wrong_field_count_is_named() {
    let (stderr, path) = train_error("SepalLength,SepalWidth,Species\n5.1,3.5,0\n4.9,3.0,1,7\n", false);
    assert_eq!(stderr, format!("error: {path}:3:11: expected 3 fields, found 4\n"));
}

#[test]
fn a_non_numeric_value_is_named() {
    let (stderr, path) = train_error("SepalLength,SepalWidth,Species\n5.1,3.5,0\n4.9,abc,1\n", false);
    assert_eq!(stderr, format!("error: {path}:3:5: `SepalWidth` must be a number, found `abc`\n"));
}

#[test]
fn a_label_outside_n_classes_is_named() {
    let (stderr, path) = train_error("SepalLength,SepalWidth,Species\n5.1,3.5,0\n4.9,3.0,3\n", false);
    assert_eq!(stderr, format!("error: {path}:3:9: label 3 is outside 0..2 (`n_classes` is 3)\n"));
}

#[test]
fn a_label_outside_the_vocabulary_is_named() {
    let (stderr, path) = train_error("species,bill_length_mm\nAdelie,39.1\nGentu,46.1\n", true);
    assert_eq!(
        stderr,
        format!("error: {path}:3:1: label `Gentu` is not in `label_vocabulary`; did you mean `Gentoo`?\n")
    );
}

#[test]
fn a_file_with_a_header_only_is_named() {
    let (stderr, path) = train_error("SepalLength,SepalWidth,Species\n", false);
    assert_eq!(stderr, format!("error: `{path}` has no rows\n"));
}

#[test]
fn an_empty_file_is_named_with_the_line_that_reads_it() {
    let (stderr, _) = train_error("", false);
    assert!(stderr.starts_with("error: cannot read data file `"), "{stderr}");
    assert!(stderr.contains("data.csv`: the file is empty: no header row\n  ┌─ p.est:2:18\n"), "{stderr}");
}

#[test]
fn a_missing_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = root().join("pipelines/iris.est");
    ok(&est(tmp.path(), &["train", file.as_str(), "--steps", "1", "--model-dir", "m"]));
    let out = est(tmp.path(), &["evaluate", file.as_str(), "--model-dir", "m", "--data", "nowhere.csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "error: cannot read `nowhere.csv`: No such file or directory (os error 2)\n");
    let missing = est(tmp.path(), &["evaluate", file.as_str(), "--model-dir", "empty"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(text(&missing.stderr), "error: no checkpoint in `empty`: train first with `est train`\n");
}

#[test]
fn ctrl_c_writes_a_checkpoint_and_exits_cleanly() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let file = root().join("pipelines/iris.est");
    let mut child = Command::new(crate::common::est_bin())
        .args(["train", file.as_str(), "--steps", "100000000", "--model-dir", "m"])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Wait until training is under way, past the first log lines.
    for line in lines.by_ref() {
        if line.unwrap().starts_with("step = 300,") {
            break;
        }
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{rest:?}");
    let summary = text(&out.stdout);
    assert!(summary.starts_with("interrupted iris: step 0 → "), "{summary}");
    let step: u64 = summary.split(" → ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(step >= 300);
    let (meta, _) = latest(&tmp.path().join("m"));
    assert_eq!(meta.global_step, step, "the checkpoint is not at the step training stopped");
    let again = est(tmp.path(), &["train", file.as_str(), "--steps", "1", "--model-dir", "m"]);
    ok(&again);
    assert!(text(&again.stderr).contains(&format!("restored ckpt-{step}.safetensors")));
}

fn train_and_evaluate(pipeline: &str, args: &[&str]) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("p.est"), pipeline).unwrap();
    let mut train = vec!["train", "p.est"];
    train.extend_from_slice(args);
    ok(&est(tmp.path(), &train));
    evaluate_json(tmp.path(), &["p.est"])
}

#[test]
fn a_binary_classifier_reports_tf_binary_metrics() {
    let pipeline = format!(
        "pipeline sex {{
  data {{ train = \"{0}\", eval = \"{1}\", label = sex, label_vocabulary = [\"female\", \"male\"], missing = \"NA\", bad_rows = skip }}
  features {{
    numeric bill_depth_mm {{ normalize = zscore }}
    numeric body_mass_g {{ normalize = zscore }}
    categorical species {{ vocabulary = [\"Adelie\", \"Chinstrap\", \"Gentoo\"] }}
    indicator species_indicator = species
  }}
  model dnn_classifier {{ hidden_units = [8] }}
  optimizer adam {{ learning_rate = 0.02 }}
  train {{ batch_size = 32, steps = 600 }}
}}
",
        data("penguins_train.csv"),
        data("penguins_test.csv")
    );
    let m = train_and_evaluate(&pipeline, &[]);
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "accuracy",
            "accuracy_baseline",
            "auc",
            "average_loss",
            "global_step",
            "label/mean",
            "loss",
            "precision",
            "prediction/mean",
            "recall"
        ]
    );
    assert!(m["auc"].as_f64().unwrap() > 0.85, "{m}");
    assert!(m["accuracy"].as_f64().unwrap() > m["accuracy_baseline"].as_f64().unwrap(), "{m}");
    let label_mean = m["label/mean"].as_f64().unwrap();
    assert!((0.3..0.7).contains(&label_mean), "{m}");
}

#[test]
fn a_regressor_reports_tf_regression_metrics() {
    let pipeline = format!(
        "pipeline mass {{
  data {{ train = \"{0}\", eval = \"{1}\", label = body_mass_g, missing = \"NA\", bad_rows = skip }}
  features {{
    numeric flipper_length_mm {{ normalize = zscore }}
    numeric bill_depth_mm {{ normalize = zscore }}
  }}
  model dnn_regressor {{ hidden_units = [16] }}
  optimizer adam {{ learning_rate = 0.1 }}
  train {{ batch_size = 32, epochs = 60 }}
}}
",
        data("penguins_train.csv"),
        data("penguins_test.csv")
    );
    let m = train_and_evaluate(&pipeline, &[]);
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["average_loss", "global_step", "label/mean", "loss", "prediction/mean"]);
    let (label, prediction) = (m["label/mean"].as_f64().unwrap(), m["prediction/mean"].as_f64().unwrap());
    assert!((prediction - label).abs() / label < 0.1, "{m}");
    // A root mean squared error well under the spread of body masses (about 800 g).
    assert!(m["average_loss"].as_f64().unwrap().sqrt() < 600.0, "{m}");
}

#[test]
fn epochs_count_passes_over_the_data_with_a_short_last_batch() {
    // 120 rows, two epochs in batches of 32: 7 full batches and one of 16.
    let pipeline =
        iris("model dnn_classifier { hidden_units = [4], n_classes = 3 }", "").replace("steps = 200", "epochs = 2");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("p.est"), pipeline).unwrap();
    let summary = ok(&est(tmp.path(), &["train", "p.est", "--model-dir", "m"]));
    assert!(summary.starts_with("trained resume: step 0 → 8 in "), "{summary}");
    let (meta, _) = latest(&tmp.path().join("m"));
    assert_eq!(meta.data_order, est::data::order::DataOrder { epoch: 1, offset: 120 });
    // max_steps below the global step trains nothing.
    let again = ok(&est(tmp.path(), &["train", "p.est", "--model-dir", "m", "--max-steps", "5"]));
    assert!(again.starts_with("trained resume: step 8 → 8 in "), "{again}");
}

/// Rows of a binary problem, `x,y,label,w`: the label says whether `x + y > 0`, except in the rows
/// weighted 0, where it is flipped, so that a metric counting them would show it.
fn weighted_rows(rng: &mut est::rng::Rng, rows: usize) -> Vec<(String, f64)> {
    (0..rows)
        .map(|_| {
            let (x, y) = (rng.normal(), rng.normal());
            let w = if rng.below(4) == 0 { 0.0 } else { 1.0 };
            let label = u8::from((x + y > 0.0) == (w > 0.0));
            (format!("{x:.4},{y:.4},{label}"), w)
        })
        .collect()
}

fn weighted_csv(rows: &[(String, f64)], weight: impl Fn(f64) -> Option<f64>) -> String {
    let mut csv = String::from("x,y,label,w\n");
    for (row, w) in rows {
        if let Some(w) = weight(*w) {
            csv += &format!("{row},{w}\n");
        }
    }
    csv
}

const WEIGHTED: &str = "pipeline weighted {
  data { train = \"train.csv\", eval = \"eval.csv\", label = label, weight = w }
  features { numeric x, numeric y }
  model linear_classifier { n_classes = 2 }
  optimizer adagrad { learning_rate = 0.3 }
  train { batch_size = 32, steps = 300 }
}
";

#[test]
fn rows_weighted_zero_count_neither_in_training_nor_in_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = est::rng::Rng::new(23);
    let (train, eval) = (weighted_rows(&mut rng, 400), weighted_rows(&mut rng, 300));
    std::fs::write(tmp.path().join("train.csv"), weighted_csv(&train, Some)).unwrap();
    std::fs::write(tmp.path().join("eval.csv"), weighted_csv(&eval, Some)).unwrap();
    // The rows weighted 1 alone, and every row weighted 1.
    std::fs::write(tmp.path().join("ones.csv"), weighted_csv(&eval, |w| (w > 0.0).then_some(w))).unwrap();
    std::fs::write(tmp.path().join("all.csv"), weighted_csv(&eval, |_| Some(1.0))).unwrap();
    std::fs::write(tmp.path().join("p.est"), WEIGHTED).unwrap();
    ok(&est(tmp.path(), &["train", "p.est", "--model-dir", "m"]));

    let weighted = evaluate_json(tmp.path(), &["p.est", "--model-dir", "m"]);
    let ones = evaluate_json(tmp.path(), &["p.est", "--model-dir", "m", "--data", "ones.csv"]);
    let all = evaluate_json(tmp.path(), &["p.est", "--model-dir", "m", "--data", "all.csv"]);
    // Trained on the clean rows only, the model learnt the rule the flipped rows break.
    let accuracy = weighted["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.9, "{weighted}");
    assert!(all["accuracy"].as_f64().unwrap() < accuracy - 0.1, "{all} against {weighted}");
    // Every metric but `loss`, which divides by a batch's rows, is the weight-1 rows' own.
    let keys: Vec<&String> = weighted.as_object().unwrap().keys().collect();
    assert_eq!(keys, ones.as_object().unwrap().keys().collect::<Vec<_>>());
    for key in keys.into_iter().filter(|k| *k != "loss") {
        let (a, b) = (weighted[key].as_f64().unwrap(), ones[key].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{key}: {a} weighted, {b} over the weight-1 rows");
    }
}

#[test]
fn a_negative_weight_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("train.csv");
    std::fs::write(&path, "x,y,label,w\n1,2,1,1\n-1,0.5,0,-2\n").unwrap();
    std::fs::write(tmp.path().join("eval.csv"), "x,y,label,w\n1,2,1,1\n").unwrap();
    std::fs::write(tmp.path().join("p.est"), WEIGHTED).unwrap();
    let out = est(tmp.path(), &["train", "p.est", "--steps", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!("error: {}:3:10: the weight `w` must not be negative, found `-2`\n", path.display())
    );
    assert!(!tmp.path().join("models").exists(), "a failed run left a model_dir");
}
