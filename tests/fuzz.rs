//! Near-valid `.est` text, mutated at random, through the parser and checker: every input gets
//! an answer (a plan or diagnostics with spans inside the text), none panics.

use proptest::prelude::*;

use crate::common::{compile_text, read};

const SEEDS: [&str; 5] = [
    "pipelines/iris.est",
    "pipelines/penguins.est",
    "tests/spec/ok_compact.est",
    "tests/spec/ok_dnn_regressor.est",
    "tests/spec/ok_linear_regressor.est",
];

const TOKENS: [&str; 28] = [
    "{",
    "}",
    "[",
    "]",
    "=",
    ",",
    "\n",
    "\"",
    "#",
    " steps",
    "1e999",
    "-1",
    "0",
    "99999999999999999999",
    "1.5",
    "20m",
    "ó",
    "\u{0}",
    "\r\n",
    "numeric",
    "model",
    "pipeline",
    "embedding e = ",
    "[a, b]",
    "x { }",
    "\\",
    "true",
    "dnn_classifier",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, token: usize },
    DuplicateLine { line: usize },
    SwapLines { a: usize, b: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..12usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert { at, token }),
        any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, m: &Mutation) -> String {
    match *m {
        Mutation::Delete { at, len } => {
            let start = boundary(text, at);
            let end = boundary(text, (start + len).min(text.len()));
            format!("{}{}", &text[..start], &text[end.max(start)..])
        }
        Mutation::Insert { at, token } => {
            let at = boundary(text, at);
            format!("{}{}{}", &text[..at], TOKENS[token], &text[at..])
        }
        Mutation::DuplicateLine { line } => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let i = line % lines.len();
                lines.insert(i, lines[i]);
            }
            lines.join("\n")
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let n = lines.len();
                lines.swap(a % n, b % n);
            }
            lines.join("\n")
        }
        Mutation::Truncate { at } => text[..boundary(text, at)].to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_pipelines_get_an_answer_not_a_panic(
        seed in 0..SEEDS.len(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let path = SEEDS[seed];
        let mut text = read(path);
        for m in &mutations {
            text = apply(&text, m);
        }
        match compile_text(path, &text) {
            Ok(compiled) => prop_assert!(!compiled.plan.fingerprint.model.is_empty()),
            Err(diagnostics) => {
                prop_assert!(!diagnostics.is_empty());
                for d in &diagnostics {
                    prop_assert!(d.span.start <= d.span.end && d.span.end <= text.len(), "{d:?} outside the text");
                    prop_assert!(!d.message().is_empty());
                }
                let rendered = est::render::render(&diagnostics, path, &text, false);
                prop_assert!(rendered.contains("error"));
            }
        }
    }
}
