//! `est export` through the real CLI, held to `est predict` by onnxruntime: every shipped
//! pipeline and every model kind, feature column kind and activation is trained, predicted,
//! exported and run in onnxruntime from its signature alone, and the two must agree to 1e-5.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{project, root};
use crate::training::{est, ok, text};

/// One model to export and compare.
struct Case {
    name: String,
    dir: tempfile::TempDir,
    /// The .est file in `dir`.
    file: String,
    /// The rows to predict, in `dir`.
    csv: String,
    train: Vec<String>,
    export: Vec<String>,
    /// `(row, input, value)` put in place of what the CSV says, for onnxruntime only.
    replace: Vec<Value>,
}

impl Case {
    fn new(name: &str, dir: tempfile::TempDir, file: &str, csv: &str, steps: u64) -> Case {
        Case {
            name: name.into(),
            dir,
            file: file.into(),
            csv: csv.into(),
            train: vec!["--steps".into(), steps.to_string()],
            export: Vec::new(),
            replace: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn python() -> String {
    std::env::var("EST_PYTHON")
        .expect("EST_PYTHON is not set: source scripts/libtorch-env, which installs onnxruntime and onnx into its venv")
}

/// Trains, predicts, featurizes and exports each case, runs every export in onnxruntime in one
/// Python process, and compares. Returns what the script says of each model.
fn check(cases: &[Case]) -> Vec<Value> {
    let mut jobs = Vec::new();
    for case in cases {
        let dir = case.dir.path();
        let mut train = vec!["train", case.file.as_str()];
        train.extend(case.train.iter().map(String::as_str));
        ok(&est(dir, &train));
        let choice: Vec<&str> = case.export.iter().map(String::as_str).collect();
        let mut predict =
            vec!["predict", case.file.as_str(), "--input", case.csv.as_str(), "--output", "predicted.jsonl"];
        predict.extend(&choice);
        ok(&est(dir, &predict));
        let mut export = vec!["export", case.file.as_str(), "--out", "onnx"];
        export.extend(&choice);
        let said = ok(&est(dir, &export));
        assert!(said.starts_with("exported `"), "{said}");
        let ids = ok(&est(dir, &["featurize", case.file.as_str(), "--input", case.csv.as_str()]));
        std::fs::write(case.path("ids.jsonl"), ids).unwrap();
        // Replacements of inputs this model does not have are left out.
        let signature = std::fs::read_to_string(case.path("onnx/signature.json")).unwrap();
        let signature: Value = serde_json::from_str(&signature).unwrap();
        let has = |name: &Value| signature["inputs"].as_array().unwrap().iter().any(|i| &i["name"] == name);
        let replace: Vec<&Value> = case.replace.iter().filter(|r| has(&r[1])).collect();
        jobs.push(serde_json::json!({
            "export": case.path("onnx"),
            "csv": case.path(&case.csv),
            "ids": case.path("ids.jsonl"),
            "out": case.path("onnx.jsonl"),
            "replace": replace,
        }));
    }
    let spec = cases[0].path("jobs.json");
    std::fs::write(&spec, serde_json::to_string(&jobs).unwrap()).unwrap();
    let run = std::process::Command::new(python())
        .arg(root().join("tests/reference/onnx_run.py"))
        .arg(&spec)
        .output()
        .unwrap();
    assert!(run.status.success(), "onnx_run.py failed:\n{}", text(&run.stderr));
    let reports: Vec<Value> = text(&run.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(reports.len(), cases.len());
    for (case, report) in cases.iter().zip(&reports) {
        compare(case);
        describes(case, report);
    }
    reports
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// onnxruntime's outputs against `est predict`'s, row by row, to 1e-5 (relative beyond 1).
fn compare(case: &Case) {
    let predicted = lines(&case.path("predicted.jsonl"));
    let ran = lines(&case.path("onnx.jsonl"));
    assert_eq!(predicted.len(), ran.len(), "{}: rows", case.name);
    for (r, (p, o)) in predicted.iter().zip(&ran).enumerate() {
        let p = p.as_object().unwrap();
        for (key, expected) in p {
            let got = &o[key.as_str()];
            let (expected, got) =
                (expected.as_array().unwrap(), got.as_array().unwrap_or_else(|| panic!("{}: no `{key}`", case.name)));
            assert_eq!(expected.len(), got.len(), "{} row {r}: `{key}`", case.name);
            for (e, g) in expected.iter().zip(got) {
                match (e.as_f64(), g.as_f64()) {
                    _ if key == "class_ids" || key == "classes" => assert_eq!(e, g, "{} row {r}: `{key}`", case.name),
                    (Some(e), Some(g)) => assert!(
                        (e - g).abs() <= 1e-5 * e.abs().max(1.0),
                        "{} row {r}: `{key}` is {g} in onnxruntime, {e} in est predict",
                        case.name
                    ),
                    _ => panic!("{} row {r}: `{key}`: {e} against {g}", case.name),
                }
            }
        }
        assert_eq!(p.len(), o.as_object().unwrap().len(), "{} row {r}: the keys differ: {p:?} against {o}", case.name);
    }
}

/// The model's metadata and initializers name the checkpoint and est's variables.
fn describes(case: &Case, report: &Value) {
    let dir = case.dir.path();
    let plan: Value = serde_json::from_str(&ok(&est(dir, &["compile", case.file.as_str(), "--json"]))).unwrap();
    let signature: Value =
        serde_json::from_str(&std::fs::read_to_string(case.path("onnx/signature.json")).unwrap()).unwrap();
    let meta = &report["metadata"];
    assert_eq!(meta["pipeline"], plan["pipeline"], "{}", case.name);
    assert_eq!(meta["model_fingerprint"], plan["fingerprint"]["model"], "{}", case.name);
    assert_eq!(meta["optimizer_fingerprint"], plan["fingerprint"]["optimizer"], "{}", case.name);
    assert_eq!(meta["global_step"].as_str().unwrap(), signature["global_step"].to_string(), "{}", case.name);
    let checkpoint = plan["checkpoint"]["model_dir"].as_str().unwrap();
    let file = Path::new(checkpoint).join(meta["checkpoint"].as_str().unwrap());
    let sha = est::checkpoint::sha256_hex(&std::fs::read(&file).unwrap());
    assert_eq!(meta["checkpoint_sha256"].as_str().unwrap(), sha, "{}", case.name);
    assert!(report["opsets"]["ai.onnx"].as_i64().unwrap() >= 17, "{}", case.name);
    assert_eq!(report["batch"], serde_json::json!(["N"]), "{}: the batch is dynamic", case.name);
    let initializers: Vec<&str> =
        report["initializers"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for variable in plan["model"]["variables"].as_array().unwrap() {
        let name = variable["name"].as_str().unwrap();
        assert!(initializers.contains(&name), "{}: no initializer `{name}` in {initializers:?}", case.name);
    }
}

fn shipped(pipeline: &str, csv: &str, steps: u64) -> Case {
    let name = pipeline.trim_end_matches(".est");
    Case::new(name, project(pipeline, &[]), pipeline, csv, steps)
}

/// Rows of penguins where a measurement and `sex` are missing, `sex` is outside its vocabulary
/// (its out-of-vocabulary bucket), `island` is missing, and flippers lie on bucket boundaries.
const PENGUIN_EDGES: &str = "\
species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year
Adelie,Dream,NA,18,200,3150,NA,2007
Gentoo,Biscoe,42.6,13.7,190,4950,unknown,2008
Chinstrap,NA,49.1,NA,220,NA,male,2009
Adelie,Torgersen,39.1,18.7,181,3750,male,2007
";

#[test]
fn shipped_pipelines_run_in_onnxruntime_as_est_predicts_them() {
    let iris = shipped("iris.est", "data/iris_test.csv", 200);
    let mut penguins = shipped("penguins.est", "edges.csv", 300);
    let test = std::fs::read_to_string(root().join("pipelines/data/penguins_test.csv")).unwrap();
    let rows: String = test.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(penguins.path("edges.csv"), format!("{PENGUIN_EDGES}{rows}")).unwrap();
    // An island outside the vocabulary gives no id, as a missing one does in est predict.
    penguins.replace.push(serde_json::json!([2, "island", ["Atlantis"]]));
    let mut early = shipped("iris_early_stop.est", "data/iris_test.csv", 300);
    early.export = vec!["--checkpoint".into(), "best".into()];
    let cases = [iris, penguins, early];
    check(&cases);

    let signature: Value =
        serde_json::from_str(&std::fs::read_to_string(cases[1].path("onnx/signature.json")).unwrap()).unwrap();
    let inputs: Vec<(&str, &str)> = signature["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["feed"]["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        inputs,
        [
            ("bill_depth_mm", "numbers"),
            ("bill_length_mm", "numbers"),
            ("body_mass_g", "numbers"),
            ("flipper_length_mm", "numbers"),
            ("island", "vocabulary"),
            ("sex", "ids"),
            ("island_x_sex", "ids"),
        ]
    );
    // The best checkpoint is the one exported.
    let early = &cases[2];
    let manifest: est::checkpoint::Manifest =
        serde_yaml::from_str(&std::fs::read_to_string(early.path("models/iris_early_stop/manifest.yaml")).unwrap())
            .unwrap();
    let objective = est::pipeline::Objective { metric: "average_loss".into(), mode: est::pipeline::Mode::Min };
    let best = manifest.best(&objective)[0].0.step;
    let signature: Value =
        serde_json::from_str(&std::fs::read_to_string(early.path("onnx/signature.json")).unwrap()).unwrap();
    assert_eq!(signature["global_step"], best);
    assert_ne!(Some(best), manifest.checkpoints.last().map(|c| c.step), "the best should not be the latest here");
}

/// A CSV of every kind of column: `x` two numbers, `y` one, `city` any string, `level` an integer
/// in 0..5, `tags` several of a..d, `color` one of three, and three labels.
fn shop_csv() -> String {
    let mut rng = est::rng::Rng::new(11);
    let mut out = String::from("x,y,city,level,tags,color,yes,grade,target\n");
    let cities = ["Lyon", "Oslo", "Lima", "Pune", "Kobe", "Cork", "Bari"];
    let colors = ["red", "green", "blue"];
    for _ in 0..240 {
        let (a, b) = (rng.normal(), rng.normal());
        let y = rng.next_f64() * 3.0 - 1.5;
        let city = cities[(rng.next_f64() * 7.0) as usize % 7];
        let level = (rng.next_f64() * 5.0) as usize % 5;
        let tags: Vec<&str> = ["a", "b", "c", "d"].into_iter().filter(|_| rng.next_f64() < 0.4).collect();
        let color = colors[(rng.next_f64() * 3.0) as usize % 3];
        let score = a - b + y + level as f64 * 0.3 + tags.len() as f64 * 0.2 + if color == "red" { 0.5 } else { 0.0 };
        let yes = if score > 0.5 { "yes" } else { "no" };
        let grade = (score.clamp(-1.49, 1.49) + 1.5) as usize;
        let target = score * 2.0 + rng.normal() * 0.1;
        out.push_str(&format!(
            "{a:.4} {b:.4},{y:.4},{city},{level},{},{color},{yes},{grade},{target:.4}\n",
            tags.join("|")
        ));
    }
    out
}

/// Rows on every edge: missing numbers (defaults), missing ids of each kind, values on bucket
/// boundaries, an unseen city, padded multivalent fields.
const SHOP_EDGES: &str = "\
x,y,city,level,tags,color,yes,grade,target
NA,0.5,Nowhere,NA,,NA,yes,1,0
1 2,-1,,4, a | b |d,blue,no,0,1
0.25 -0.5,NA,Lyon,0,c,red,yes,2,2
-3 3,1,Oslo,2,a|b|c|d,green,no,1,-1
";

fn shop(name: &str, model: &str, label: &str, vocabulary: bool) -> Case {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.csv"), shop_csv()).unwrap();
    let edges: String = shop_csv().lines().skip(1).take(40).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("edges.csv"), format!("{SHOP_EDGES}{edges}")).unwrap();
    let vocabulary = if vocabulary { ", label_vocabulary = [\"no\", \"yes\"]" } else { "" };
    let optimizers = if model.starts_with("dnn_linear_combined") {
        "dnn_optimizer adam { learning_rate = 0.01 }\n  linear_optimizer ftrl { learning_rate = 0.2 }"
    } else {
        "optimizer adam { learning_rate = 0.01 }"
    };
    let text = format!(
        r#"pipeline {name} {{
  data {{ train = "shop.csv", label = {label}{vocabulary}, missing = ["NA", ""] }}
  features {{
    numeric x {{ shape = 2, default = 0.5, normalize = zscore }}
    numeric y {{ default = 0, normalize = minmax }}
    numeric y_raw = "y" {{ default = 0.25 }}
    categorical city {{ hash_buckets = 20 }}
    categorical city_words = "city" {{ vocabulary = ["Lyon", "Oslo", "Lima"], oov_buckets = 2 }}
    categorical level {{ identity = 5 }}
    categorical tags {{ vocabulary = ["a", "b", "c", "d"], separator = "|" }}
    categorical color {{ vocabulary = ["red", "green", "blue"] }}
    categorical warm = "color" {{ vocabulary = ["blue", "red", "green"] }}
    bucketized y_buckets = y {{ boundaries = [-1, 0, 0.5, 1] }}
    crossed color_x_level = [color, level] {{ hash_buckets = 30 }}
    crossed tags_x_color = [tags, color] {{ hash_buckets = 40 }}
    embedding tags_embedding = tags {{ dimension = 3, combiner = sqrtn }}
    embedding city_embedding = city {{ dimension = 2, combiner = sum }}
    embedding level_embedding = level {{ dimension = 2, combiner = mean }}
    indicator color_indicator = color
    indicator level_indicator = level
    indicator words_indicator = city_words
  }}
  model {model}
  {optimizers}
  train {{ batch_size = 32, seed = 3 }}
  checkpoint {{ model_dir = "m" }}
  summaries {{ log_every = 1000 }}
}}
"#
    );
    std::fs::write(dir.path().join("shop.est"), text).unwrap();
    let mut case = Case::new(name, dir, "shop.est", "edges.csv", 60);
    // A colour outside the vocabulary and a level outside 0..5 give no id, as missing ones do.
    case.replace.push(serde_json::json!([0, "color", ["purple"]]));
    case.replace.push(serde_json::json!([0, "level", [99]]));
    case
}

const LINEAR_INPUTS: &str = "[x, y, y_raw, city, city_words, level, tags, color, warm, y_buckets, color_x_level, \
                             tags_x_color, tags_embedding, color_indicator]";

#[test]
fn every_model_kind_and_column_kind_runs_in_onnxruntime_as_est_predicts_it() {
    let cases = [
        shop("linear_binary", &format!("linear_classifier {{ n_classes = 2, inputs = {LINEAR_INPUTS} }}"), "yes", true),
        shop("linear_regressor", &format!("linear_regressor {{ inputs = {LINEAR_INPUTS} }}"), "target", false),
        shop(
            "dnn_multiclass",
            "dnn_classifier { n_classes = 3, hidden_units = [8, 4], inputs = [x, y, y_raw, y_buckets, \
             tags_embedding, city_embedding, level_embedding, color_indicator, level_indicator, words_indicator] }",
            "grade",
            false,
        ),
        shop(
            "dnn_regressor",
            "dnn_regressor { hidden_units = [8], activation = tanh, batch_norm = true, dropout = 0.3, \
             inputs = [x, y, tags_embedding, color_indicator] }",
            "target",
            false,
        ),
        shop(
            "wide_deep_binary",
            "dnn_linear_combined_classifier { n_classes = 2, hidden_units = [6], activation = elu, \
             linear_inputs = [city, level, tags_x_color, color_x_level], dnn_inputs = [x, city_embedding, tags_embedding] }",
            "yes",
            true,
        ),
        shop(
            "wide_deep_regressor",
            "dnn_linear_combined_regressor { hidden_units = [6, 3], batch_norm = true, \
             linear_inputs = [color, y_buckets, city_words], dnn_inputs = [x, y, level_indicator] }",
            "target",
            false,
        ),
        shop("baseline_classifier", "baseline_classifier { n_classes = 3 }", "grade", false),
        shop("baseline_regressor", "baseline_regressor { }", "target", false),
    ];
    check(&cases);

    // Two features of one column share its input (`y`); a column read two ways gets a second
    // one, named after the feature (`warm`).
    let signature: Value =
        serde_json::from_str(&std::fs::read_to_string(cases[0].path("onnx/signature.json")).unwrap()).unwrap();
    let inputs: Vec<(&str, &str, Value)> = signature["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["feed"]["kind"].as_str().unwrap(), i["shape"].clone()))
        .collect();
    let n = |k: Value| serde_json::json!(["N", k]);
    assert_eq!(
        inputs,
        [
            ("city", "ids", n(1.into())),
            ("city_words", "ids", n(1.into())),
            ("color", "vocabulary", n(1.into())),
            ("level", "identity", n(1.into())),
            ("tags", "ids", n("K_tags".into())),
            ("warm", "vocabulary", n(1.into())),
            ("x", "numbers", n(2.into())),
            ("y", "numbers", n(1.into())),
            ("color_x_level", "ids", n(1.into())),
            ("tags_x_color", "ids", n("K_tags_x_color".into())),
        ]
    );
}

#[test]
fn every_activation_runs_in_onnxruntime_as_est_predicts_it() {
    let activations = ["relu", "relu6", "elu", "selu", "gelu", "tanh", "sigmoid", "swish", "leaky_relu", "linear"];
    let cases: Vec<Case> = activations
        .iter()
        .map(|a| {
            let edit = format!("hidden_units = [10, 10]\n    activation = {a}");
            let dir = project("iris.est", &[("hidden_units = [10, 10]", edit.as_str())]);
            Case::new(a, dir, "iris.est", "data/iris_test.csv", 40)
        })
        .collect();
    check(&cases);
}

#[test]
fn the_readme_snippet_runs_and_its_hash_matches_featurize() {
    let case =
        shop("linear_binary", &format!("linear_classifier {{ n_classes = 2, inputs = {LINEAR_INPUTS} }}"), "yes", true);
    let dir = case.dir.path();
    ok(&est(dir, &["train", "shop.est", "--steps", "20"]));
    let said = ok(&est(dir, &["export", "shop.est"]));
    assert!(said.contains("to m/export/20:"), "{said}");
    let readme = std::fs::read_to_string(dir.join("m/export/20/README.md")).unwrap();
    let blocks: Vec<&str> = readme.split("```python\n").skip(1).map(|b| b.split("```").next().unwrap()).collect();
    assert_eq!(blocks.len(), 2, "{readme}");
    assert_eq!(blocks[0].lines().count(), 5, "the snippet is five lines:\n{}", blocks[0]);
    assert_eq!(blocks[1], est::export::HASH_PYTHON);
    assert_eq!(blocks[1].lines().count(), 12);
    let run = std::process::Command::new(python())
        .arg("-c")
        .arg(blocks[0])
        .current_dir(dir.join("m/export/20"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}\n{}", text(&run.stderr), blocks[0]);
    assert!(text(&run.stdout).starts_with("[["), "{}", text(&run.stdout));

    // The Python hash and vocabulary rules, fed the raw fields, give featurize's ids.
    let ids = ok(&est(dir, &["featurize", "shop.est", "--input", "edges.csv"]));
    let script = format!(
        "{hash}
import csv, json, sys
rows = list(csv.DictReader(open('edges.csv')))
words = ['Lyon', 'Oslo', 'Lima']
colors = ['red', 'green', 'blue']
tag_ids = {{'a': 0, 'b': 1, 'c': 2, 'd': 3}}
for row, line in zip(rows, sys.stdin):
    got = json.loads(line)
    city = row['city'].strip()
    want_city = [] if city in ('', 'NA') else [bucket(city, 20)]
    want_words = [] if city in ('', 'NA') else [words.index(city) if city in words else 3 + bucket(city, 2)]
    tags = [tag_ids[t.strip()] for t in row['tags'].split('|') if t.strip()] if row['tags'].strip() not in ('', 'NA') else []
    color = row['color'].strip()
    level = row['level'].strip()
    cross_cl = [] if color == 'NA' or level == 'NA' else [cross([colors.index(color), int(level)], 30)]
    cross_tc = [] if color == 'NA' else [cross([t, colors.index(color)], 40) for t in tags]
    want = {{'city': want_city, 'city_words': want_words, 'tags': tags, 'color_x_level': cross_cl, 'tags_x_color': cross_tc}}
    assert got == want, (row, got, want)
print(len(rows))
",
        hash = est::export::HASH_PYTHON
    );
    let mut child = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(ids.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "44");
}

#[test]
fn export_refuses_what_it_cannot_write() {
    let dir = project("iris.est", &[]);
    let path = dir.path();
    let none = est(path, &["export", "iris.est"]);
    assert_eq!(none.status.code(), Some(1));
    assert_eq!(
        text(&none.stderr),
        "error: `models/iris` holds no checkpoint to export: train first (`est train iris.est`)\n"
    );
    ok(&est(path, &["train", "iris.est", "--steps", "10"]));
    ok(&est(path, &["export", "iris.est"]));
    let again = est(path, &["export", "iris.est"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        text(&again.stderr),
        "error: cannot export `iris.est`: `models/iris/export/10` exists and is not empty: choose another --out, or remove it\n"
    );
    std::fs::create_dir(path.join("empty")).unwrap();
    ok(&est(path, &["export", "iris.est", "--out", "empty"]));
    assert!(path.join("empty/model.onnx").exists());
    let missing = est(path, &["export", "iris.est", "--checkpoint", "7"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("7"), "{}", text(&missing.stderr));
    // No temporary folder is left behind by any of them.
    let left: Vec<String> = std::fs::read_dir(path.join("models/iris/export"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["10"]);
    // A changed model is refused by the guard before a tensor is read.
    let text_before = std::fs::read_to_string(path.join("iris.est")).unwrap();
    std::fs::write(path.join("iris.est"), text_before.replace("[10, 10]", "[20, 20]")).unwrap();
    let changed = est(path, &["export", "iris.est", "--out", "changed"]);
    assert_eq!(changed.status.code(), Some(3));
    assert!(text(&changed.stderr).contains("hidden_units"), "{}", text(&changed.stderr));
    assert!(!path.join("changed").exists());
}
