//! pest pairs to the syntax tree. The `Rule` enum stays in this file: pest errors become
//! `Diagnostic`s here, with rules renamed to what a user would call them.

// A parse stops at its first error, so one large `Err` on the cold path costs nothing.
#![allow(clippy::result_large_err)]

use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest::Parser as _;

use crate::diagnostic::{Diagnostic, DiagnosticKind};
use crate::span::{Span, Spanned};
use crate::spec::ast::*;

#[derive(pest_derive::Parser)]
#[grammar = "../../grammar/est.pest"]
struct EstParser;

/// Parses a whole file. On failure, the one syntax error (pest stops at the first).
pub fn parse(text: &str) -> Result<Ast, Diagnostic> {
    pest::set_error_detail(true);
    let mut pairs = EstParser::parse(Rule::file, text).map_err(|e| syntax_error(&e, text))?;
    let file = pairs.next().ok_or_else(|| internal(Span::default()))?;
    let pipeline =
        file.into_inner().find(|p| p.as_rule() == Rule::pipeline).ok_or_else(|| internal(Span::default()))?;
    let span = span_of(&pipeline);
    let mut name = None;
    let mut items = Vec::new();
    for pair in pipeline.into_inner() {
        match pair.as_rule() {
            Rule::name => name = Some(build_name(pair)),
            Rule::body => items = build_body(pair)?.items,
            _ => {}
        }
    }
    let name = name.ok_or_else(|| internal(span))?;
    Ok(Ast { name, items, span })
}

fn span_of(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

// The grammar guarantees every shape this file relies on; reaching this is a bug in est.
fn internal(span: Span) -> Diagnostic {
    Diagnostic::new(
        DiagnosticKind::Syntax { expected: vec![], found: "input the parser cannot represent".into() },
        span,
    )
    .with_help("this is a bug in est; please report it with the file")
}

fn build_body(pair: Pair<Rule>) -> Result<Body, Diagnostic> {
    let span = span_of(&pair);
    let mut items = Vec::new();
    for inner in pair.into_inner() {
        match inner.as_rule() {
            Rule::entry => items.push(Item::Entry(build_entry(inner)?)),
            Rule::decl => items.push(Item::Decl(build_decl(inner)?)),
            _ => {}
        }
    }
    Ok(Body { items, span })
}

fn build_entry(pair: Pair<Rule>) -> Result<Entry, Diagnostic> {
    let span = span_of(&pair);
    let mut key = None;
    let mut value = None;
    for inner in pair.into_inner() {
        match inner.as_rule() {
            Rule::ident if key.is_none() => key = Some(Spanned::new(inner.as_str().to_string(), span_of(&inner))),
            _ => value = Some(build_value(inner)?),
        }
    }
    match (key, value) {
        (Some(key), Some(value)) => Ok(Entry { key, value, span }),
        _ => Err(internal(span)),
    }
}

fn build_decl(pair: Pair<Rule>) -> Result<Decl, Diagnostic> {
    let span = span_of(&pair);
    let mut kind = None;
    let mut name = None;
    let mut source = None;
    let mut body = None;
    for inner in pair.into_inner() {
        match inner.as_rule() {
            Rule::ident => kind = Some(Spanned::new(inner.as_str().to_string(), span_of(&inner))),
            Rule::name => name = Some(build_name(inner)),
            Rule::source => source = Some(build_source(inner)),
            Rule::body => body = Some(build_body(inner)?),
            _ => {}
        }
    }
    let kind = kind.ok_or_else(|| internal(span))?;
    Ok(Decl { kind, name, source, body, span })
}

fn build_source(pair: Pair<Rule>) -> Source {
    let span = span_of(&pair);
    let mut one = None;
    let mut list = None;
    for inner in pair.into_inner() {
        match inner.as_rule() {
            Rule::name => one = Some(build_name(inner)),
            Rule::name_list => list = Some(inner.into_inner().map(build_name).collect()),
            _ => {}
        }
    }
    match (one, list) {
        (Some(name), _) => Source::One(name),
        (None, list) => Source::List(list.unwrap_or_default(), span),
    }
}

fn build_name(pair: Pair<Rule>) -> Spanned<String> {
    let span = span_of(&pair);
    let text = match pair.into_inner().next() {
        Some(inner) if inner.as_rule() == Rule::string => unescape(inner),
        Some(inner) => inner.as_str().to_string(),
        None => String::new(),
    };
    Spanned::new(text, span)
}

fn unescape(string: Pair<Rule>) -> String {
    let raw = string.into_inner().next().map_or("", |inner| inner.as_str());
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn build_value(pair: Pair<Rule>) -> Result<Value, Diagnostic> {
    let span = span_of(&pair);
    let text = pair.as_str();
    let too_large = || {
        Diagnostic::new(DiagnosticKind::Syntax { expected: vec![], found: format!("number `{text}`") }, span)
            .with_help("numbers must fit in 64 bits")
    };
    let digits = |s: &str| s.replace('_', "");
    let kind = match pair.as_rule() {
        Rule::int => ValueKind::Int(digits(text).parse().map_err(|_| too_large())?),
        Rule::float => {
            let x: f64 = digits(text).parse().map_err(|_| too_large())?;
            if !x.is_finite() {
                return Err(too_large());
            }
            ValueKind::Float(x)
        }
        Rule::boolean => ValueKind::Bool(text == "true"),
        Rule::string => ValueKind::Str(unescape(pair)),
        Rule::ident => ValueKind::Ident(text.to_string()),
        Rule::duration => ValueKind::Duration(parse_duration(&digits(text)).ok_or_else(too_large)?),
        Rule::steps => {
            let number: String = text.chars().take_while(|c| c.is_ascii_digit() || *c == '_').collect();
            ValueKind::Steps(digits(&number).parse().map_err(|_| too_large())?)
        }
        Rule::list => ValueKind::List(pair.into_inner().map(build_value).collect::<Result<_, _>>()?),
        Rule::object => {
            let mut kind = None;
            let mut body = None;
            for inner in pair.into_inner() {
                match inner.as_rule() {
                    Rule::ident => kind = Some(Spanned::new(inner.as_str().to_string(), span_of(&inner))),
                    Rule::body => body = Some(build_body(inner)?),
                    _ => {}
                }
            }
            match (kind, body) {
                (Some(kind), Some(body)) => ValueKind::Object(kind, body),
                _ => return Err(internal(span)),
            }
        }
        _ => return Err(internal(span)),
    };
    Ok(Value { kind, span })
}

/// Seconds in `30s`, `1.5h`, `250ms`.
fn parse_duration(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    };
    let seconds = number.parse::<f64>().ok()? * scale;
    seconds.is_finite().then_some(seconds)
}

/// What a user would call each rule, for "expected ..." messages.
fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::file | Rule::pipeline | Rule::pipeline_kw => "`pipeline NAME { ... }`",
        Rule::body => "`{`",
        Rule::entry => "`key = value`",
        Rule::decl => "a block or column",
        Rule::source => "a column name or `[columns]`",
        Rule::name_list => "`[columns]`",
        Rule::name => "a name",
        Rule::object | Rule::list | Rule::duration | Rule::steps | Rule::float | Rule::int => "a value",
        Rule::boolean | Rule::string | Rule::string_inner => "a value",
        Rule::steps_kw => "`steps`",
        Rule::ident => "a name",
        Rule::EOI => "the end of the file",
        _ => return None,
    })
}

fn syntax_error(error: &pest::error::Error<Rule>, text: &str) -> Diagnostic {
    let pos = match error.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let rest = &text[pos.min(text.len())..];
    let line_end = rest.find('\n').map_or(text.len(), |i| pos + i);
    if rest.starts_with('"') && !text[pos + 1..line_end].contains('"') {
        return Diagnostic::new(
            DiagnosticKind::Syntax {
                expected: vec!["a closing `\"` on the same line".into()],
                found: "an unterminated string".into(),
            },
            Span::new(pos, line_end),
        );
    }
    let mut expected = expected_at(error);
    let (found, end) = found_at(text, pos);
    // A value where `=` could go means the `=` was forgotten: say only that.
    let starts_value = rest.starts_with(|c: char| c == '[' || c == '-' || c.is_ascii_digit());
    if starts_value && expected.iter().any(|e| e == "`=`") {
        expected = vec!["`=`".into()];
    }
    let mut diagnostic = Diagnostic::new(
        DiagnosticKind::Syntax { expected: expected.clone(), found: found.clone() },
        Span::new(pos, end),
    );
    if found == "the end of the file" && expected.iter().any(|e| e == "`}`") {
        diagnostic = diagnostic.with_help("a `{` above is never closed");
    } else if expected.iter().any(|e| e == "the end of the file") {
        diagnostic = diagnostic.with_help("the pipeline's closing `}` comes before this; is there an extra `}` above?");
    } else if expected.iter().any(|e| e.starts_with("`pipeline"))
        && crate::suggestion::suggest(found.trim_matches('`'), ["pipeline"]).is_some()
    {
        diagnostic = diagnostic.with_help("did you mean `pipeline`?");
    }
    diagnostic
}

/// What the parser would have accepted at the error, in words, most specific first.
fn expected_at(error: &pest::error::Error<Rule>) -> Vec<String> {
    let mut expected: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !expected.contains(&s) {
            expected.push(s);
        }
    };
    if let Some(attempts) = error.parse_attempts() {
        for token in attempts.expected_tokens() {
            // Only punctuation is worth naming; ranges and words are parts of rules named below.
            match token.to_string().as_str() {
                "\n" | "\r\n" | "\r" => push("a newline".into()),
                t @ ("=" | "{" | "}" | "[" | "]" | ",") => push(format!("`{t}`")),
                _ => {}
            }
        }
    }
    if let ErrorVariant::ParsingError { positives, .. } = &error.variant {
        for rule in positives {
            if let Some(d) = describe(*rule) {
                push(d.to_string());
            }
        }
    }
    let has = |e: &Vec<String>, s: &str| e.iter().any(|x| x == s);
    if has(&expected, "a value") {
        // After `=`, a value covers names, lists and a derived column's source.
        expected.retain(|e| !matches!(e.as_str(), "a name" | "`[`" | "a column name or `[columns]`"));
    }
    if expected.iter().any(|e| e.starts_with("`pipeline")) {
        expected.retain(|e| e != "a newline");
    }
    if expected.is_empty() {
        expected.push("`pipeline NAME { ... }`".into());
    }
    expected
}

/// Names what stands at `pos` and how far it reaches.
fn found_at(text: &str, pos: usize) -> (String, usize) {
    let rest = &text[pos.min(text.len())..];
    match rest.chars().next() {
        None => ("the end of the file".into(), pos),
        Some('\n') | Some('\r') => ("the end of the line".into(), pos),
        Some(c) if c.is_alphanumeric() || c == '_' => {
            let word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.').collect();
            let end = pos + word.len();
            (format!("`{word}`"), end)
        }
        Some(c) => (format!("`{c}`"), pos + c.len_utf8()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_seconds() {
        assert_eq!(parse_duration("20m"), Some(1200.0));
        assert_eq!(parse_duration("1.5h"), Some(5400.0));
        assert_eq!(parse_duration("250ms"), Some(0.25));
        assert_eq!(parse_duration("1d"), Some(86400.0));
    }

    #[test]
    fn values_parse_to_their_kinds() {
        let ast = parse(
            "pipeline p {\n  b {\n    i = -3, f = 1.5e-3, s = \"a\\\"b\", t = true\n    d = 30s, n = 500 steps, u = 10_000\n    l = [1,\n      2]\n    o = exponential { decay_rate = 0.5 }\n  }\n}\n",
        )
        .unwrap();
        let Item::Decl(block) = &ast.items[0] else { panic!("expected a block") };
        let values: Vec<&ValueKind> = block
            .body
            .as_ref()
            .unwrap()
            .items
            .iter()
            .map(|item| match item {
                Item::Entry(e) => &e.value.kind,
                Item::Decl(_) => panic!("expected entries"),
            })
            .collect();
        assert_eq!(values[0], &ValueKind::Int(-3));
        assert_eq!(values[1], &ValueKind::Float(1.5e-3));
        assert_eq!(values[2], &ValueKind::Str("a\"b".into()));
        assert_eq!(values[3], &ValueKind::Bool(true));
        assert_eq!(values[4], &ValueKind::Duration(30.0));
        assert_eq!(values[5], &ValueKind::Steps(500));
        assert_eq!(values[6], &ValueKind::Int(10_000));
        assert!(matches!(values[7], ValueKind::List(l) if l.len() == 2));
        assert!(matches!(values[8], ValueKind::Object(k, _) if k.node == "exponential"));
    }

    #[test]
    fn syntax_errors_name_what_was_expected() {
        let err = parse("pipeline p {\n  model dnn {\n    hidden_units [10]\n  }\n}\n").unwrap_err();
        let DiagnosticKind::Syntax { expected, found } = &err.kind else { panic!() };
        assert_eq!(found, "`[`");
        assert!(expected.iter().any(|e| e == "`=`"), "{expected:?}");
    }
}
