//! Event files as TensorBoard reads them: every tag, step and value est logged, for training and
//! evaluation, after a SIGKILL mid-run and across a restart.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use camino::Utf8Path;
use est::events::{self, PointValue};

use crate::common::root;
use crate::training::{est, ok, text};

fn pipeline(dir: &Path, steps: u64) {
    let text = std::fs::read_to_string(root().join("pipelines/penguins.est"))
        .unwrap()
        .replace("\"data/", &format!("\"{}/", root().join("pipelines/data")))
        .replace("steps      = 1000", &format!("steps      = {steps}"))
        .replace("every     = 50\n    log_every = 100", "every     = 10\n    log_every = 10")
        .replace("every = 500 steps", "every = 50 steps")
        .replace("save_every = 500 steps", "save_every = 20 steps");
    std::fs::write(dir.join("p.est"), text).unwrap();
}

/// What TensorBoard's EventAccumulator reads in `dir`, or `None` without the Python venv.
fn tensorboard(dir: &Path) -> Option<serde_json::Value> {
    let python = std::env::var("EST_PYTHON").ok()?;
    let out = Command::new(python).arg(root().join("tests/reference/read_events.py")).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

type Scalars = BTreeMap<String, Vec<(u64, f32)>>;
type Histograms = BTreeMap<String, Vec<(u64, f64)>>;
type Texts = BTreeMap<String, Vec<(u64, String)>>;

/// est's own reading of the same files, in TensorBoard's shape.
fn own(dir: &Path) -> (Scalars, Histograms, Texts) {
    let points = events::read_dir(Utf8Path::from_path(dir).unwrap()).unwrap();
    let (mut scalars, mut histograms, mut texts) = (Scalars::new(), BTreeMap::new(), BTreeMap::new());
    for p in points {
        match p.value {
            PointValue::Scalar(v) => scalars.entry(p.tag).or_insert_with(Vec::new).push((p.step, v)),
            PointValue::Histogram(n) => histograms.entry(p.tag).or_insert_with(Vec::new).push((p.step, n)),
            PointValue::Text(t) => texts.entry(p.tag).or_insert_with(Vec::new).push((p.step, t)),
        }
    }
    (scalars, histograms, texts)
}

/// Checks that TensorBoard sees exactly what est's reader sees.
fn agree(dir: &Path) {
    let (scalars, histograms, texts) = own(dir);
    let Some(tb) = tensorboard(dir) else {
        eprintln!("EST_PYTHON is not set: TensorBoard itself was not asked");
        return;
    };
    let tb_scalars: Scalars = tb["scalars"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let points =
                v.as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap() as f32)).collect();
            (k.clone(), points)
        })
        .collect();
    assert_eq!(tb_scalars, scalars, "TensorBoard reads other scalars than est wrote");
    let tb_histograms: Histograms = tb["histograms"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap())).collect(),
            )
        })
        .collect();
    assert_eq!(tb_histograms, histograms);
    let tb_texts: Texts = tb["text"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].as_u64().unwrap(), p[1].as_str().unwrap().to_string()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(tb_texts, texts);
}

fn logged_losses(stderr: &str) -> Vec<(u64, f32)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("step = "))
        .map(|l| {
            let mut parts = l.split(", ");
            let step = parts.next().unwrap().parse().unwrap();
            let loss = parts.next().unwrap().trim_start_matches("loss = ").parse().unwrap();
            (step, loss)
        })
        .collect()
}

#[test]
fn tensorboard_reads_every_tag_step_and_value_of_train_and_eval() {
    let tmp = tempfile::tempdir().unwrap();
    pipeline(tmp.path(), 100);
    let out = est(tmp.path(), &["train", "p.est", "--model-dir", "m"]);
    ok(&out);
    let metrics: serde_json::Value =
        serde_json::from_str(&ok(&est(tmp.path(), &["evaluate", "p.est", "--model-dir", "m", "--json"]))).unwrap();
    let model_dir = tmp.path().join("m");

    let (scalars, histograms, texts) = own(&model_dir);
    let tags: Vec<&str> = scalars.keys().map(String::as_str).collect();
    assert_eq!(
        tags,
        [
            "dnn/hiddenlayer_0/fraction_of_zero_values",
            "dnn/hiddenlayer_1/fraction_of_zero_values",
            "global_step/sec",
            "learning_rate/dnn",
            "learning_rate/linear",
            "loss"
        ]
    );
    let steps: Vec<u64> = scalars["loss"].iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    assert_eq!(scalars["loss"], logged_losses(&text(&out.stderr)), "event losses differ from the logged ones");
    assert!(scalars["learning_rate/dnn"].iter().all(|(_, v)| *v == 0.01));
    assert!(scalars["dnn/hiddenlayer_0/fraction_of_zero_values"].iter().all(|(_, v)| (0.0..=1.0).contains(v)));
    assert_eq!(histograms["dnn/hiddenlayer_1/activation"].len(), 11);
    // Batches of 32 rows through 8 units.
    assert!(histograms["dnn/hiddenlayer_1/activation"].iter().all(|(_, n)| *n == 32.0 * 8.0));
    assert!(texts["plan"][0].1.contains("pipeline: penguins"), "{:?}", texts["plan"]);
    agree(&model_dir);

    let (eval, _, _) = own(&model_dir.join("eval"));
    assert_eq!(eval.keys().collect::<Vec<_>>(), ["accuracy", "average_loss", "loss"]);
    // Evaluation during training at steps 50 and 100, then `est evaluate` at 100.
    assert_eq!(eval["accuracy"].iter().map(|(s, _)| *s).collect::<Vec<_>>(), [50, 100, 100]);
    for key in ["accuracy", "average_loss", "loss"] {
        assert_eq!(eval[key].last().unwrap().1, metrics[key].as_f64().unwrap() as f32, "{key}");
    }
    agree(&model_dir.join("eval"));
}

#[test]
fn a_killed_run_leaves_readable_events_and_a_restart_merges_by_step() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    pipeline(tmp.path(), 100_000_000);
    let mut child = Command::new(crate::common::est_bin())
        .args(["train", "p.est", "--model-dir", "m"])
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("step = 150,") {
            break;
        }
    }
    Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap();
    let model_dir = tmp.path().join("m");
    let (before, _, _) = own(&model_dir);
    let killed_at = before["loss"].last().unwrap().0;
    assert!(killed_at >= 150);
    agree(&model_dir);

    let resumed = est::checkpoint::Store::new(Utf8Path::from_path(&model_dir).unwrap())
        .latest_meta()
        .unwrap()
        .unwrap()
        .1
        .global_step;
    let out = est(tmp.path(), &["train", "p.est", "--model-dir", "m", "--steps", "30"]);
    ok(&out);
    let (after, _, _) = own(&model_dir);
    let steps: Vec<u64> = after["loss"].iter().map(|(s, _)| *s).collect();
    let mut sorted = steps.clone();
    sorted.dedup();
    assert_eq!(sorted, steps, "a step appears twice after the restart");
    assert_eq!(*steps.last().unwrap(), resumed + 30);
    // What the killed run logged after its last checkpoint was replaced by the resumed run's.
    let relogged: Vec<(u64, f32)> =
        logged_losses(&text(&out.stderr)).into_iter().filter(|(s, _)| *s % 10 == 0).collect();
    for (step, loss) in relogged {
        assert!(after["loss"].contains(&(step, loss)), "step {step} shows another run's loss");
    }
    agree(&model_dir);
}

#[test]
fn the_report_is_self_contained_and_agrees_with_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    pipeline(tmp.path(), 100);
    ok(&est(tmp.path(), &["train", "p.est", "--model-dir", "m"]));
    ok(&est(tmp.path(), &["evaluate", "p.est", "--model-dir", "m"]));
    assert_eq!(ok(&est(tmp.path(), &["report", "m", "--out", "r.html"])), "wrote r.html\n");
    let html = std::fs::read_to_string(tmp.path().join("r.html")).unwrap();
    let inspect: serde_json::Value = serde_json::from_str(&ok(&est(tmp.path(), &["inspect", "m", "--json"]))).unwrap();

    let page = scraper::Html::parse_document(&html);
    assert!(page.errors.is_empty(), "{:?}", page.errors);
    let select = |css: &str| scraper::Selector::parse(css).unwrap();
    // One curve per scalar: six from training, three from evaluation.
    let svgs: Vec<_> = page.select(&select("svg.curve")).collect();
    let tags: Vec<&str> = svgs.iter().map(|s| s.value().attr("data-tag").unwrap()).collect();
    assert_eq!(
        tags,
        [
            "dnn/hiddenlayer_0/fraction_of_zero_values",
            "dnn/hiddenlayer_1/fraction_of_zero_values",
            "global_step/sec",
            "learning_rate/dnn",
            "learning_rate/linear",
            "loss",
            "eval/accuracy",
            "eval/average_loss",
            "eval/loss"
        ]
    );
    for svg in html.split("<svg").skip(1) {
        let svg = format!("<svg{}", &svg[..svg.find("</svg>").unwrap() + 6]);
        roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not XML ({e}): {svg}"));
    }
    for forbidden in ["<script", "<link", "src=", "url("] {
        assert!(!html.contains(forbidden), "the page refers to something outside it: {forbidden}");
    }

    let metrics = inspect["evaluation"]["metrics"].as_object().unwrap();
    let shown: Vec<(String, f64)> = page
        .select(&select("td[data-metric]"))
        .map(|td| (td.value().attr("data-metric").unwrap().to_string(), td.inner_html().parse().unwrap()))
        .collect();
    assert_eq!(shown.len(), metrics.len());
    for (name, value) in shown {
        assert_eq!(Some(value), metrics[&name].as_f64(), "{name}");
    }
    let steps: Vec<u64> = page.select(&select("td[data-step]")).map(|td| td.inner_html().parse().unwrap()).collect();
    let shas: Vec<&str> =
        page.select(&select("code[data-sha256]")).map(|c| c.value().attr("data-sha256").unwrap()).collect();
    let checkpoints = inspect["manifest"]["checkpoints"].as_array().unwrap();
    assert_eq!(steps, checkpoints.iter().map(|c| c["step"].as_u64().unwrap()).collect::<Vec<_>>());
    assert_eq!(shas, checkpoints.iter().map(|c| c["sha256"].as_str().unwrap()).collect::<Vec<_>>());

    let markdown = ok(&est(tmp.path(), &["report", "m", "--format", "md", "--out", "-"]));
    assert_eq!(markdown.matches("](data:image/svg+xml;base64,").count(), 9);
    assert!(markdown.contains("| accuracy | "));
}
