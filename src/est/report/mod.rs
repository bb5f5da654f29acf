//! model_dir to a run report: the spec, the checkpoint history, the last metrics, and the curves
//! of every scalar in the event files as inline SVG. HTML (one self-contained file, autoescaped)
//! or Markdown. No libtorch: it reads only files.

pub mod svg;

use base64::Engine;
use camino::{Utf8Path, Utf8PathBuf};
use minijinja::{context, Environment, Value};
use serde::Serialize;

use crate::checkpoint::format::{read_meta, FormatError};
use crate::checkpoint::{Entry, Evaluation, Store, EVAL_DIR};
use crate::events::{self, PointValue};
use crate::plan::Plan;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// model_dir holds no checkpoint to report on.
    #[error("no checkpoint in `{0}`")]
    NoCheckpoint(Utf8PathBuf),
    /// model_dir could not be read.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// The latest checkpoint's header could not be read.
    #[error("cannot read `{path}`: {source}")]
    Meta {
        /// The checkpoint.
        path: Utf8PathBuf,
        /// Why.
        source: FormatError,
    },
    /// An event file could not be read.
    #[error(transparent)]
    Events(#[from] events::EventError),
    /// A template failed: a bug in est.
    #[error("cannot render the report: {0}")]
    Render(#[from] minijinja::Error),
}

/// One scalar series.
#[derive(Clone, Debug, Serialize)]
pub struct Curve {
    /// `loss`, or `eval/accuracy` for evaluation metrics.
    pub tag: String,
    /// `(step, value)`, by step.
    pub points: Vec<(u64, f32)>,
}

/// Everything a report shows.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// The model_dir.
    pub model_dir: Utf8PathBuf,
    /// The latest checkpoint's plan.
    pub plan: Plan,
    /// Every retained checkpoint.
    pub checkpoints: Vec<Entry>,
    /// The latest's file.
    pub latest: String,
    /// The last evaluation recorded.
    pub evaluation: Option<Evaluation>,
    /// Training curves, then evaluation curves.
    pub curves: Vec<Curve>,
    /// The best checkpoint by `best_by` among those evaluated during training.
    pub best: Option<Best>,
}

/// The best checkpoint evaluated during training.
#[derive(Clone, Debug, Serialize)]
pub struct Best {
    /// Its file.
    pub file: String,
    /// Its step.
    pub step: u64,
    /// `best_by`'s metric.
    pub metric: String,
    /// Its value there.
    pub value: f64,
}

/// Everything a report of `dir` shows.
pub fn gather(dir: &Utf8Path) -> Result<RunReport, ReportError> {
    let store = Store::new(dir);
    let manifest = store.manifest()?.ok_or_else(|| ReportError::NoCheckpoint(dir.to_owned()))?;
    let latest =
        manifest.latest.clone().or_else(|| manifest.checkpoints.last().map(|e| e.file.clone())).unwrap_or_default();
    let path = dir.join(&latest);
    let meta = read_meta(&path).map_err(|source| ReportError::Meta { path: path.clone(), source })?;
    let mut curves = Vec::new();
    for (sub, prefix) in [(dir.to_owned(), ""), (dir.join(EVAL_DIR), "eval/")] {
        let points = events::read_dir(&sub)?;
        let mut tags: Vec<&str> =
            points.iter().filter(|p| matches!(p.value, PointValue::Scalar(_))).map(|p| p.tag.as_str()).collect();
        tags.sort();
        tags.dedup();
        for tag in tags {
            curves.push(Curve { tag: format!("{prefix}{tag}"), points: events::series(&points, tag) });
        }
    }
    let objective = &meta.plan.checkpoint.best_by;
    let best = manifest.best(objective).first().map(|(e, value)| Best {
        file: e.file.clone(),
        step: e.step,
        metric: objective.metric.clone(),
        value: *value,
    });
    Ok(RunReport {
        best,
        model_dir: dir.to_owned(),
        plan: meta.plan,
        checkpoints: manifest.checkpoints,
        latest,
        evaluation: store.last_evaluation()?,
        curves,
    })
}

const HTML: &str = include_str!("report.html.jinja");
const MARKDOWN: &str = include_str!("report.md.jinja");

fn render(
    report: &RunReport,
    name: &str,
    template: &str,
    chart: impl Fn(&Curve) -> Value,
) -> Result<String, ReportError> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // `.html` turns on HTML escaping for every value that is not marked safe.
    env.add_template(name, template)?;
    let charts: Vec<Value> = report.curves.iter().map(chart).collect();
    let metrics: Vec<(String, String)> =
        report.evaluation.iter().flat_map(|e| e.metrics.iter().map(|(k, v)| (k.clone(), format!("{v}")))).collect();
    let tmpl = env.get_template(name)?;
    Ok(tmpl.render(context! {
        r => report,
        plan_yaml => report.plan.to_yaml(),
        charts => charts,
        metrics => metrics,
    })?)
}

/// The best checkpoint's step, on the eval curve of the metric that chose it.
fn best_on(report: &RunReport, curve: &Curve) -> Option<u64> {
    report.best.as_ref().filter(|b| curve.tag == format!("eval/{}", b.metric)).map(|b| b.step)
}

/// One self-contained page: no script, no stylesheet or font from elsewhere.
pub fn html(report: &RunReport) -> Result<String, ReportError> {
    render(report, "report.html", HTML, |c| Value::from_safe_string(svg::chart(&c.tag, &c.points, best_on(report, c))))
}

/// Markdown, with the curves as SVG data URIs.
pub fn markdown(report: &RunReport) -> Result<String, ReportError> {
    render(report, "report.md", MARKDOWN, |c| {
        let data = base64::engine::general_purpose::STANDARD.encode(svg::chart(&c.tag, &c.points, best_on(report, c)));
        Value::from(format!("![{}](data:image/svg+xml;base64,{data})", c.tag))
    })
}
