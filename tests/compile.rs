//! Snapshots of what the compiler says: the plan for every passing file, the rendered errors for
//! every failing one. Each snapshot shows its input.

use std::path::Path;

use crate::common::{compile_text, root, settings};

fn relative(path: &Path) -> String {
    path.strip_prefix(root().as_std_path()).map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}

/// A snapshot body that shows the input above the output, so each can be reviewed alone.
fn with_input(input: &str, output: &str) -> String {
    format!("{}\n──────── est says ────────\n{}", input.trim_end(), output)
}

fn snapshot_compile(kind: &str, path: &Path) {
    let name = relative(path);
    let text = std::fs::read_to_string(path).unwrap();
    let yaml = match compile_text(&name, &text) {
        Ok(compiled) => compiled.plan.to_yaml(),
        Err(diagnostics) => panic!("{}", est::render::render(&diagnostics, &name, &text, false)),
    };
    let mut settings = settings();
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(kind, with_input(&text, &yaml)));
}

#[test]
fn every_shipped_pipeline_compiles() {
    insta::glob!("../pipelines", "*.est", |path| snapshot_compile("pipeline", path));
}

#[test]
fn passing_fixtures_compile() {
    insta::glob!("spec", "ok_*.est", |path| snapshot_compile("plan", path));
}

#[test]
fn failing_fixtures_report_every_error() {
    insta::glob!("spec", "err_*.est", |path| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let diagnostics = match compile_text(&relative(path), &text) {
            Ok(_) => panic!("{name} compiled, but it has a mistake"),
            Err(d) => d,
        };
        let rendered = est::render::render(&diagnostics, &name, &text, false);
        let mut settings = settings();
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!("errors", with_input(&text, &rendered)));
    });
}

#[test]
fn one_run_reports_all_errors() {
    let text = "pipeline p {
  data { train = \"../../pipelines/data/iris_training.csv\", label = Species }
  features { numerc SepalLength, numeric PetalLenght }
  model dnn_classifier { hiden_units = [10], n_classes = 1 }
  checkpoint { keep_max = 0 }
}
";
    let diagnostics = compile_text("tests/spec/inline.est", text).unwrap_err();
    let messages: Vec<String> = diagnostics.iter().map(|d| d.message()).collect();
    assert_eq!(
        messages,
        [
            "unknown column kind `numerc`",
            format!("column `PetalLenght` is not in the header of `{}/pipelines/data/iris_training.csv`", root())
                .as_str(),
            "unknown key `hiden_units` in `model`",
            "`n_classes` must be at least 2, found 1",
            "`keep_max` must be at least 1, found 0",
        ]
    );
}

#[test]
fn the_error_corpus_covers_every_kind_of_mistake() {
    let corpus: Vec<_> = std::fs::read_dir(root().join("tests/spec"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("err_"))
        .collect();
    assert!(corpus.len() >= 25, "only {} broken files", corpus.len());
    let mut kinds = std::collections::BTreeSet::new();
    for entry in corpus {
        let path = entry.path();
        let text = std::fs::read_to_string(&path).unwrap();
        for d in compile_text(&relative(&path), &text).unwrap_err() {
            kinds.insert(format!("{:?}", d.kind).split([' ', '{', '(']).next().unwrap().to_string());
        }
    }
    let expected = [
        "Syntax",
        "UnknownBlock",
        "DuplicateBlock",
        "MissingBlock",
        "MalformedBlock",
        "MisplacedItem",
        "UnknownKey",
        "DuplicateKey",
        "MissingKey",
        "KeyNotForModel",
        "ConflictingKeys",
        "WrongType",
        "MissingUnit",
        "OutOfRange",
        "EmptyHiddenUnits",
        "UnknownValue",
        "UnknownModel",
        "UnknownOptimizer",
        "UnknownDecay",
        "UnknownColumnKind",
        "UnknownColumn",
        "DuplicateColumn",
        "InvalidColumnName",
        "WrongSourceKind",
        "TooFewCrossed",
        "SparseColumnInDnn",
        "LabelAsFeature",
        "CategoricalWithoutBuckets",
        "UnsortedBoundaries",
        "ClassCountMismatch",
        "MissingDataFile",
        "UnreadableDataFile",
        "UnknownDataColumn",
        "LabelNotInData",
    ];
    let missing: Vec<&str> = expected.iter().copied().filter(|k| !kinds.contains(*k)).collect();
    assert!(missing.is_empty(), "no broken file shows {missing:?}");
}

/// README shows iris.est and an error for it: both must be what est really has and says.
#[test]
fn readme_examples_are_true() {
    let readme = crate::common::read("README.md");
    let iris = crate::common::read("pipelines/iris.est");
    assert!(readme.contains(&format!("```\n{iris}```")), "README's pipeline differs from pipelines/iris.est");

    let broken = iris.replacen("hidden_units", "hiden_units", 1);
    let diagnostics = compile_text("pipelines/iris.est", &broken).unwrap_err();
    let rendered = est::render::render(&diagnostics, "pipelines/iris.est", &broken, false);
    assert!(readme.contains(&format!("```\n{rendered}```")), "README's error example differs from:\n{rendered}");
}

/// Every key and model kind early stopping brought is in README's tables.
#[test]
fn readme_documents_stopping_weights_and_baselines() {
    let readme = crate::common::read("README.md");
    for key in ["metric", "mode", "patience", "min_delta", "min_steps", "keep_best", "best_by", "weight"] {
        assert!(readme.contains(&format!("\n| `{key}` |")), "README's tables do not document `{key}`");
    }
    for words in
        ["### `early_stop`", "`baseline_classifier`", "`baseline_regressor`", "--checkpoint latest\\|best\\|STEP"]
    {
        assert!(readme.contains(words), "README does not mention {words}");
    }
}
