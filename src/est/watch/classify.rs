//! What a batch of file changes means for the run in progress. Pure: paths and plans in, one
//! verdict out, so every case is a unit test.

use camino::{Utf8Path, Utf8PathBuf};

use crate::diff::{self, Diff, NewSource};
use crate::pipeline::Files;
use crate::plan::Plan;
use crate::Compiled;

/// What a batch of changes means for the run in progress.
#[derive(Debug)]
pub enum Verdict {
    /// Nothing the run depends on changed (a comment, whitespace, an unrelated file).
    Unchanged,
    /// The `.est` file no longer checks; the run goes on.
    Invalid,
    /// Only training settings changed: stop at a step boundary, checkpoint, continue.
    Training(Diff),
    /// The model or the optimizer's state layout changed: the checkpoints no longer fit.
    Incompatible(Diff),
    /// A data file changed (and the plan did not): evaluate on it, then continue.
    Data(Vec<Utf8PathBuf>),
}

/// The data files a plan reads, as written: paths and globs.
pub fn data_files(plan: &Plan) -> Vec<Utf8PathBuf> {
    inputs(plan).flat_map(|f| f.entries().iter().cloned()).collect()
}

fn inputs(plan: &Plan) -> impl Iterator<Item = &Files> {
    let d = &plan.data;
    [Some(&d.train), d.eval.as_ref(), d.predict.as_ref()].into_iter().flatten()
}

/// `changed` are the paths that changed; `new` is the recompiled file (`None`: it has errors),
/// compared with `current`, the plan the run uses.
pub fn classify(
    changed: &[Utf8PathBuf],
    est_file: &Utf8Path,
    current: &Plan,
    new: Option<(&Compiled, &str)>,
) -> Verdict {
    let spec_changed = changed.iter().any(|p| p == est_file);
    if spec_changed {
        let Some((compiled, text)) = new else { return Verdict::Invalid };
        let source = NewSource { spans: &compiled.spans, text };
        let d = diff::diff(current, &compiled.plan, Some(&source));
        if !d.model.is_empty() || !d.optimizer.is_empty() {
            return Verdict::Incompatible(d);
        }
        if !d.training.is_empty() {
            return Verdict::Training(d);
        }
    }
    // A new file that a glob matches is a data change too.
    let data: Vec<Utf8PathBuf> = changed.iter().filter(|p| inputs(current).any(|f| f.names(p))).cloned().collect();
    if data.is_empty() {
        Verdict::Unchanged
    } else {
        Verdict::Data(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source;

    fn compile(text: &str) -> Compiled {
        let root = root();
        let source = Source { path: root.join("pipelines/iris.est"), text: text.to_string() };
        crate::compile(&source, &root.join("pipelines")).unwrap()
    }

    /// The repository root, two folders above this crate's.
    fn root() -> Utf8PathBuf {
        crate::check::resolve(Utf8Path::new(env!("CARGO_MANIFEST_DIR")), "../..")
    }

    fn iris() -> String {
        std::fs::read_to_string(root().join("pipelines/iris.est")).unwrap()
    }

    #[test]
    fn edits_are_classified_by_what_they_touch() {
        let text = iris();
        let current = compile(&text).plan;
        let est = current.source.clone();
        let verdict = |new_text: &str, changed: &[Utf8PathBuf]| {
            let compiled = compile(new_text);
            classify(changed, &est, &current, Some((&compiled, new_text)))
        };
        let spec = [est.clone()];
        assert!(matches!(verdict(&text.replace("# The seed", "# Still the seed"), &spec), Verdict::Unchanged));
        assert!(matches!(
            verdict(&text.replace("learning_rate = 0.05", "learning_rate = 0.1"), &spec),
            Verdict::Training(d) if d.training[0].key == "optimizer.learning_rate"
        ));
        assert!(matches!(
            verdict(&text.replace("[10, 10]", "[20, 20]"), &spec),
            Verdict::Incompatible(d) if d.model[0].key == "model.hidden_units"
        ));
        assert!(
            matches!(verdict(&text.replace("adagrad", "adam"), &spec), Verdict::Incompatible(d) if d.model.is_empty())
        );
        assert!(matches!(classify(&spec, &est, &current, None), Verdict::Invalid));
        let eval = current.data.eval.clone().unwrap().entries()[0].clone();
        assert!(matches!(verdict(&text, std::slice::from_ref(&eval)), Verdict::Data(p) if p == [eval.clone()]));
        assert!(matches!(verdict(&text, &[Utf8PathBuf::from("/elsewhere/notes.txt")]), Verdict::Unchanged));
        // A spec edit wins over a data edit in the same batch: the restart reads the new data too.
        assert!(matches!(
            verdict(&text.replace("batch_size = 100", "batch_size = 50"), &[est.clone(), eval]),
            Verdict::Training(_)
        ));
    }

    #[test]
    fn early_stopping_best_checkpoints_and_weights_are_training_settings() {
        let stopping = "  checkpoint {";
        let text = iris().replace(
            stopping,
            "  eval {\n    every = 50 steps\n  }\n\n  early_stop {\n    patience = 5\n  }\n\n  checkpoint {",
        );
        let current = compile(&text).plan;
        let est = current.source.clone();
        let spec = [est.clone()];
        let keys = |new_text: &str| match classify(&spec, &est, &current, Some((&compile(new_text), new_text))) {
            Verdict::Training(d) => d.training.iter().map(|c| c.key.clone()).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(keys(&text.replace("patience = 5", "patience = 9")), ["early_stop.patience"]);
        // best_by follows the early stop's metric when the file does not set it.
        assert_eq!(
            keys(&text.replace("patience = 5", "patience = 5, metric = accuracy")),
            ["checkpoint.best_by", "early_stop.metric", "early_stop.mode"]
        );
        assert_eq!(keys(&text.replace("keep_max   = 10", "keep_max   = 10, keep_best = 2")), ["checkpoint.keep_best"]);
        let weighted = text.replace("label = \"Species\"", "label = \"Species\", weight = \"SepalWidth\"");
        assert_eq!(keys(&weighted), ["data.weight"]);
    }
}
