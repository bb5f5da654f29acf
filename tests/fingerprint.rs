//! The fingerprints decide whether a checkpoint can be restored: stable under edits that do not
//! change the model, different under every edit that does.

use est::plan::Fingerprints;

use crate::common::{compile_text, read};

const IRIS: &str = "pipelines/iris.est";
const PENGUINS: &str = "pipelines/penguins.est";

fn fingerprints(path: &str, text: &str) -> Fingerprints {
    match compile_text(path, text) {
        Ok(c) => c.plan.fingerprint,
        Err(d) => panic!("{}", est::render::render(&d, path, text, false)),
    }
}

fn edit(text: &str, old: &str, new: &str) -> String {
    assert!(text.contains(old), "`{old}` is not in the file");
    text.replacen(old, new, 1)
}

/// Moves the block that starts with `header` to just after the pipeline's opening line.
fn hoist(text: &str, header: &str) -> String {
    let start = text.find(header).unwrap_or_else(|| panic!("no {header}"));
    let end = start + text[start..].find("\n  }\n").unwrap() + 5;
    let block = &text[start..end];
    let rest = format!("{}{}", &text[..start], &text[end..]);
    let open = rest.find("{\n").unwrap() + 2;
    format!("{}{}\n{}", &rest[..open], block, &rest[open..])
}

#[test]
fn fingerprint_is_stable_under_reordering_whitespace_and_comments() {
    for path in [IRIS, PENGUINS] {
        let text = read(path);
        let base = fingerprints(path, &text);
        let variants = [
            hoist(&text, "  model "),
            hoist(&hoist(&text, "  checkpoint {"), "  train {"),
            text.replace("\n  ", "\n  # a comment\n\n    ").replace(" = ", "   =   "),
            text.replace("\n", "   # trailing\n"),
        ];
        for variant in variants {
            assert_eq!(fingerprints(path, &variant), base, "{path} changed under:\n{variant}");
        }
    }
}

#[test]
fn fingerprint_ignores_the_order_of_columns_and_inputs() {
    let text = read(IRIS);
    let reordered = edit(
        &text,
        "    numeric SepalLength\n    numeric SepalWidth\n",
        "    numeric SepalWidth\n    numeric SepalLength\n",
    );
    assert_eq!(fingerprints(IRIS, &reordered), fingerprints(IRIS, &text));

    let text = read(PENGUINS);
    let reordered = edit(
        &text,
        "linear_inputs = [island, sex, flipper_buckets, island_x_sex]",
        "linear_inputs = [island_x_sex, flipper_buckets, sex, island]",
    );
    assert_eq!(fingerprints(PENGUINS, &reordered), fingerprints(PENGUINS, &text));
}

#[test]
fn fingerprint_ignores_training_only_edits() {
    let text = read(IRIS);
    let base = fingerprints(IRIS, &text);
    let edits = [
        ("learning_rate = 0.05", "learning_rate = 0.1"),
        ("learning_rate = 0.05", "learning_rate = 0.05, decay = exponential { decay_steps = 100, decay_rate = 0.5 }"),
        ("learning_rate = 0.05", "learning_rate = 0.05, clip_norm = 1.0, weight_decay = 0.01"),
        ("learning_rate = 0.05", "learning_rate = 0.05, initial_accumulator = 0.5, epsilon = 1e-6"),
        ("batch_size = 100", "batch_size = 32"),
        ("steps      = 200", "steps      = 1000"),
        ("steps      = 200", "max_steps  = 5000"),
        ("steps      = 200", "epochs     = 3, shuffle = false, seed = 9, device = cpu"),
        ("\"data/iris_test.csv\"", "\"data/iris_training.csv\""),
        ("\"data/iris_training.csv\"", "\"data/iris_test.csv\""),
        ("label = \"Species\"", "label = \"Species\"\n    missing = \"NA\", delimiter = \",\", bad_rows = skip"),
        ("save_every = 20m", "save_every = 500 steps"),
        ("keep_max   = 10", "keep_max   = 3, keep_every = 2h"),
        ("\"models/iris\"", "\"elsewhere/iris\""),
        ("n_classes    = 3", "n_classes    = 3\n    dropout      = 0.3"),
        (
            "  checkpoint {",
            "  eval { every = 100 steps, steps = 1 }\n  summaries { every = 10, log_every = 10 }\n  checkpoint {",
        ),
    ];
    for (old, new) in edits {
        let edited = edit(&text, old, new);
        assert_eq!(fingerprints(IRIS, &edited), base, "`{old}` → `{new}` changed a fingerprint");
    }
}

#[test]
fn fingerprint_changes_under_every_model_edit() {
    let cases = [
        (IRIS, "hidden_units = [10, 10]", "hidden_units = [20, 20]"),
        (IRIS, "hidden_units = [10, 10]", "hidden_units = [10, 10, 10]"),
        (IRIS, "hidden_units = [10, 10]", "hidden_units = [10]"),
        (IRIS, "n_classes    = 3", "n_classes    = 4"),
        (IRIS, "n_classes    = 3", "n_classes    = 3, activation = tanh"),
        (IRIS, "n_classes    = 3", "n_classes    = 3, batch_norm = true"),
        (IRIS, "    numeric PetalWidth\n", ""),
        (IRIS, "numeric PetalWidth", "numeric PetalWidth { normalize = zscore }"),
        (IRIS, "numeric PetalWidth", "numeric PetalWidth { default = 0 }"),
        (IRIS, "numeric PetalWidth", "numeric PetalWidth = SepalWidth"),
        (IRIS, "dnn_classifier {\n    hidden_units = [10, 10]", "linear_classifier {\n   "),
        (
            PENGUINS,
            "vocabulary = [\"Biscoe\", \"Dream\", \"Torgersen\"]",
            "vocabulary = [\"Biscoe\", \"Dream\", \"Torgersen\", \"Anvers\"]",
        ),
        (
            PENGUINS,
            "vocabulary = [\"Biscoe\", \"Dream\", \"Torgersen\"]",
            "vocabulary = [\"Dream\", \"Biscoe\", \"Torgersen\"]",
        ),
        (PENGUINS, "oov_buckets = 1", "oov_buckets = 2"),
        (PENGUINS, "boundaries = [190, 200, 210, 220]", "boundaries = [190, 200, 210]"),
        (PENGUINS, "boundaries = [190, 200, 210, 220]", "boundaries = [190, 200, 210, 221]"),
        (PENGUINS, "dimension = 2, combiner = mean", "dimension = 3, combiner = mean"),
        (PENGUINS, "dimension = 2, combiner = mean", "dimension = 2, combiner = sqrtn"),
        (PENGUINS, "hash_buckets = 16", "hash_buckets = 32"),
        (PENGUINS, "[\"Adelie\", \"Chinstrap\", \"Gentoo\"]", "[\"Gentoo\", \"Chinstrap\", \"Adelie\"]"),
        (
            PENGUINS,
            "linear_inputs = [island, sex, flipper_buckets, island_x_sex]",
            "linear_inputs = [island, sex, flipper_buckets]",
        ),
        (PENGUINS, "island_embedding, sex_indicator]", "island_embedding]"),
    ];
    for (path, old, new) in cases {
        let text = read(path);
        let before = fingerprints(path, &text);
        let after = fingerprints(path, &edit(&text, old, new));
        assert_ne!(after.model, before.model, "{path}: `{old}` → `{new}` kept the model fingerprint");
    }
}

#[test]
fn optimizer_fingerprint_tracks_the_state_layout_only() {
    let text = read(IRIS);
    let base = fingerprints(IRIS, &text);
    let changes = [
        "optimizer adam {",
        "optimizer sgd {",
        "optimizer sgd {\n    momentum = 0.9",
        "optimizer rmsprop {",
        "optimizer ftrl {",
    ];
    let mut seen = vec![base.optimizer.clone()];
    for new in changes {
        let after = fingerprints(IRIS, &edit(&text, "optimizer adagrad {", new));
        assert_eq!(after.model, base.model, "`{new}` changed the model fingerprint");
        assert!(!seen.contains(&after.optimizer), "`{new}` did not change the optimizer fingerprint");
        seen.push(after.optimizer);
    }
    let same = [("optimizer adagrad {", "optimizer adagrad {\n    epsilon = 1e-3")];
    for (old, new) in same {
        assert_eq!(fingerprints(IRIS, &edit(&text, old, new)), base);
    }
    let sgd = edit(&text, "optimizer adagrad {", "optimizer sgd {\n    momentum = 0.9");
    let nesterov = edit(&sgd, "momentum = 0.9", "momentum = 0.5, nesterov = true");
    assert_eq!(fingerprints(IRIS, &sgd), fingerprints(IRIS, &nesterov), "nesterov keeps the same buffers");
}
