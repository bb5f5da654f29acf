//! The fingerprint guard through the real CLI: the seed's hidden_units edit and every edit
//! tf.estimator got wrong or late are refused before any tensor is read, with a report; the ways
//! out (--warm-start, --fresh, --reset-optimizer) each work; a new learning rate is used.

use std::path::Path;

use crate::common::{project, root};
use crate::training::{est, ok, text};

/// A temp folder with the shipped pipelines and their data, trained once (200 steps).
fn trained(pipeline: &str) -> tempfile::TempDir {
    // iris trains 200 steps as shipped; penguins is cut to as many.
    let edits: &[(&str, &str)] =
        if pipeline == "penguins.est" { &[("steps      = 1000", "steps      = 200")] } else { &[] };
    let tmp = project(pipeline, edits);
    ok(&est(tmp.path(), &["train", pipeline]));
    tmp
}

fn edit(dir: &Path, file: &str, old: &str, new: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(old), "{old}");
    std::fs::write(path, text.replacen(old, new, 1)).unwrap();
}

fn manifest(dir: &Path, model_dir: &str) -> String {
    std::fs::read_to_string(dir.join(model_dir).join("manifest.yaml")).unwrap()
}

/// Overwrites the latest checkpoint's tensors, keeping its header and size: a run that read any
/// tensor would find its checksum wrong and fall back to ckpt-0 with a warning.
fn scramble_tensors(dir: &Path, model_dir: &str) {
    let path = dir.join(model_dir).join("ckpt-200.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize + 8;
    bytes[header..].fill(0xff);
    std::fs::write(&path, &bytes).unwrap();
}

fn refused(dir: &Path, file: &str, args: &[&str]) -> String {
    let before = manifest(dir, &format!("models/{}", file.trim_end_matches(".est")));
    let mut all = vec!["train", file];
    all.extend_from_slice(args);
    let out = est(dir, &all);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        manifest(dir, &format!("models/{}", file.trim_end_matches(".est"))),
        before,
        "a refused run changed model_dir"
    );
    text(&out.stderr)
}

#[test]
fn the_seeds_hidden_units_edit_is_refused_with_a_report() {
    let tmp = trained("iris.est");
    let dir = tmp.path();
    edit(dir, "iris.est", "hidden_units = [10, 10]", "hidden_units = [20, 20]");
    scramble_tensors(dir, "models/iris");
    let report = refused(dir, "iris.est", &[]);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[TIME]");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("guard_hidden_units", report));
    // README shows this report; only the time may differ.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let time = |s: &str| s.split("(step 200, written ").nth(1).map(|t| t[..20].to_string()).unwrap_or_default();
    let shown = report.replace(&time(&report), &time(&readme));
    assert!(readme.contains(&format!("```\n{shown}```")), "README's guard report differs from:\n{report}");

    // evaluate and predict refuse the same way.
    let out = est(dir, &["evaluate", "iris.est"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("`est evaluate` stopped before reading any tensor"), "{}", text(&out.stderr));
}

#[test]
fn every_edit_tensorflow_got_wrong_is_refused_and_named() {
    let cases: [(&str, &str, &str, &str); 9] = [
        ("iris.est", "hidden_units = [10, 10]", "hidden_units = [20, 20]", "model.hidden_units  [10, 10] → [20, 20]"),
        (
            "iris.est",
            "hidden_units = [10, 10]",
            "hidden_units = [10, 10, 10]",
            "model.hidden_units  [10, 10] → [10, 10, 10]",
        ),
        ("iris.est", "hidden_units = [10, 10]", "hidden_units = [10]", "dnn/hiddenlayer_1/kernel  gone, was [10, 10]"),
        ("iris.est", "n_classes    = 3", "n_classes    = 4", "model.n_classes     3 → 4"),
        (
            "iris.est",
            "n_classes    = 3",
            "n_classes    = 3, activation = tanh",
            "dnn/hiddenlayer_0/kernel  [4, 10], same shape, different meaning",
        ),
        ("iris.est", "optimizer adagrad", "optimizer adam", "optimizer.kind   adagrad → adam"),
        ("iris.est", "optimizer adagrad", "optimizer sgd", "optimizer.kind   adagrad → sgd"),
        ("iris.est", "    numeric SepalWidth\n", "", "features.SepalWidth.kind    numeric → (removed)"),
        (
            "penguins.est",
            "vocabulary = [\"Biscoe\", \"Dream\", \"Torgersen\"]",
            "vocabulary = [\"Biscoe\", \"Torgersen\", \"Dream\"]",
            "features.island.vocabulary",
        ),
    ];
    let iris = trained("iris.est");
    let penguins = trained("penguins.est");
    for (file, old, new, named) in cases {
        let dir = if file == "iris.est" { iris.path() } else { penguins.path() };
        let original = std::fs::read_to_string(dir.join(file)).unwrap();
        edit(dir, file, old, new);
        let report = refused(dir, file, &[]);
        let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(squeeze(&report).contains(&squeeze(named)), "`{old}` → `{new}` did not name `{named}`:\n{report}");
        std::fs::write(dir.join(file), original).unwrap();
    }
    // The vocabulary reorder keeps every shape: the report says which tensors change meaning.
    edit(penguins.path(), "penguins.est", "\"Dream\", \"Torgersen\"]", "\"Torgersen\", \"Dream\"]");
    let report = refused(penguins.path(), "penguins.est", &[]);
    for tensor in [
        "linear/linear_model/island/weights",
        "linear/linear_model/island_x_sex/weights",
        "dnn/input_from_feature_columns/input_layer/island_embedding/embedding_weights",
    ] {
        assert!(report.contains(&format!("  {tensor} ")), "{tensor} missing from:\n{report}");
    }
}

fn weights(dir: &Path, model_dir: &str, step: u64, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(dir.join(model_dir).join(format!("ckpt-{step}.safetensors"))).unwrap();
    let (_, tensors) = est::checkpoint::format::decode(&bytes).unwrap();
    tensors[name].to_f32().unwrap()
}

#[test]
fn a_new_learning_rate_is_accepted_and_used() {
    let tmp = trained("iris.est");
    let dir = tmp.path();
    let copy = |to: &str| {
        std::fs::create_dir_all(dir.join(to)).unwrap();
        for f in std::fs::read_dir(dir.join("models/iris")).unwrap() {
            let f = f.unwrap();
            if f.file_type().unwrap().is_file() {
                std::fs::copy(f.path(), dir.join(to).join(f.file_name())).unwrap();
            }
        }
    };
    copy("tiny");
    copy("large");
    let before = weights(dir, "models/iris", 200, "dnn/hiddenlayer_0/kernel");
    edit(dir, "iris.est", "learning_rate = 0.05", "learning_rate = 1e-9");
    let out = est(dir, &["train", "iris.est", "--steps", "1", "--model-dir", "tiny"]);
    ok(&out);
    assert!(
        text(&out.stderr).contains("note: changed since the checkpoint: optimizer.learning_rate 0.05 → 1e-9\n"),
        "{}",
        text(&out.stderr)
    );
    let tiny = weights(dir, "tiny", 201, "dnn/hiddenlayer_0/kernel");
    edit(dir, "iris.est", "learning_rate = 1e-9", "learning_rate = 0.5");
    ok(&est(dir, &["train", "iris.est", "--steps", "1", "--model-dir", "large"]));
    let large = weights(dir, "large", 201, "dnn/hiddenlayer_0/kernel");
    let moved = |w: &[f32]| w.iter().zip(&before).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(moved(&tiny) < 1e-7, "a learning rate of 1e-9 moved a weight by {}", moved(&tiny));
    assert!(moved(&large) > 1e-3, "a learning rate of 0.5 moved the weights by only {}", moved(&large));
}

#[test]
fn warm_start_loads_what_still_fits_and_archives_the_rest() {
    let tmp = trained("iris.est");
    let dir = tmp.path();
    let logits_bias = weights(dir, "models/iris", 200, "dnn/logits/bias");
    edit(dir, "iris.est", "hidden_units = [10, 10]", "hidden_units = [10, 20]");
    let out = est(dir, &["train", "iris.est", "--warm-start", "--steps", "0"]);
    ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("loaded 3 (dnn/hiddenlayer_0/kernel, dnn/hiddenlayer_0/bias, dnn/logits/bias), initialised 3 (dnn/hiddenlayer_1/kernel, dnn/hiddenlayer_1/bias, dnn/logits/kernel)"),
        "{stderr}"
    );
    assert_eq!(weights(dir, "models/iris", 0, "dnn/logits/bias"), logits_bias);
    let archives: Vec<_> = std::fs::read_dir(dir.join("models/iris/archive")).unwrap().collect();
    assert_eq!(archives.len(), 1);
    let archive = archives[0].as_ref().unwrap().path();
    assert!(archive.join("ckpt-200.safetensors").exists() && archive.join("manifest.yaml").exists());
}

#[test]
fn fresh_archives_and_starts_over_and_reset_optimizer_keeps_the_weights() {
    let tmp = trained("iris.est");
    let dir = tmp.path();
    edit(dir, "iris.est", "optimizer adagrad", "optimizer adam");
    let before = weights(dir, "models/iris", 200, "dnn/logits/kernel");
    let out = est(dir, &["train", "iris.est", "--reset-optimizer", "--steps", "1"]);
    ok(&out);
    assert!(text(&out.stderr).contains("restored ckpt-200.safetensors (step 200)"));
    let after = weights(dir, "models/iris", 201, "dnn/logits/kernel");
    assert!(before.iter().zip(&after).all(|(a, b)| (a - b).abs() < 0.1), "the weights were not kept");
    let (meta, tensors) =
        est::checkpoint::format::decode(&std::fs::read(dir.join("models/iris/ckpt-201.safetensors")).unwrap()).unwrap();
    assert_eq!(meta.global_step, 201);
    assert!(tensors.contains_key("optimizer/all/dnn/logits/kernel/exp_avg"));
    ok(&est(dir, &["export", "iris.est"]));

    edit(dir, "iris.est", "hidden_units = [10, 10]", "hidden_units = [4]");
    let out = est(dir, &["train", "iris.est", "--fresh", "--steps", "3"]);
    let summary = ok(&out);
    assert!(summary.starts_with("trained iris: step 0 → 3 in "), "{summary}");
    let archive = std::fs::read_dir(dir.join("models/iris/archive")).unwrap().next().unwrap().unwrap().path();
    for kept in ["ckpt-200.safetensors", "ckpt-201.safetensors", "manifest.yaml", "export/201/model.onnx"] {
        assert!(archive.join(kept).exists(), "{kept} was not archived");
    }
    // The old model's exports go with its checkpoints.
    assert!(!dir.join("models/iris/export").exists());
}

#[test]
fn inspect_lists_checkpoints_plan_and_last_evaluation() {
    let tmp = trained("iris.est");
    let dir = tmp.path();
    let metrics: serde_json::Value = serde_json::from_str(&ok(&est(dir, &["evaluate", "iris.est", "--json"]))).unwrap();
    let report = ok(&est(dir, &["inspect", "models/iris"]));
    let lines: Vec<&str> = report.lines().collect();
    assert!(lines[0].starts_with("models/iris: pipeline `iris` ("), "{report}");
    assert!(lines[0].ends_with("iris.est), 2 checkpoints, latest ckpt-200.safetensors"), "{report}");
    let squeezed: Vec<String> = report.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert!(squeezed.contains(&"model.hidden_units [10, 10]".to_string()), "{report}");
    assert!(report.contains("(latest)"), "{report}");
    let accuracy = metrics["accuracy"].as_f64().unwrap() as f32;
    assert!(report.contains("Last evaluation: step 200 on "), "{report}");
    assert!(report.contains(&format!("accuracy = {accuracy}")), "{report}");

    let json: serde_json::Value = serde_json::from_str(&ok(&est(dir, &["inspect", "models/iris", "--json"]))).unwrap();
    assert_eq!(json["plan"]["pipeline"], "iris");
    assert_eq!(json["manifest"]["checkpoints"].as_array().unwrap().len(), 2);
    assert_eq!(json["manifest"]["latest"], "ckpt-200.safetensors");
    assert_eq!(json["evaluation"]["global_step"], 200);
    assert_eq!(json["evaluation"]["metrics"]["accuracy"], metrics["accuracy"]);

    let diff = est(dir, &["diff", "models/iris", "iris.est"]);
    assert_eq!(diff.status.code(), Some(0));
    let written = json["manifest"]["checkpoints"][1]["time"].as_str().unwrap();
    assert_eq!(
        text(&diff.stdout),
        format!("`models/iris` → `iris.est`: no changes\n\nThe latest checkpoint there is ckpt-200.safetensors (step 200, written {written}).\n")
    );
}
