//! Turns diagnostics into the text a user reads: file, line and column, the source line with the
//! span underlined, and the help. Tests snapshot the plain rendering.

use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, termcolor, Config, Styles, StylesWriter};

use crate::diagnostic::{plural, Diagnostic};

/// Renders every diagnostic followed by a one-line count. `color` adds ANSI colours.
pub fn render(diagnostics: &[Diagnostic], file_name: &str, source: &str, color: bool) -> String {
    let file = SimpleFile::new(file_name, source);
    let config = Config::default();
    let mut out = String::new();
    for diagnostic in diagnostics {
        let report = to_report(diagnostic, source.len());
        let text = if color {
            let styles = Styles::default();
            let mut buffer = termcolor::Buffer::ansi();
            let mut writer = StylesWriter::new(&mut buffer, &styles);
            match term::emit_to_write_style(&mut writer, &config, &file, &report) {
                Ok(()) => String::from_utf8_lossy(buffer.as_slice()).into_owned(),
                Err(_) => plain_fallback(diagnostic, file_name, source),
            }
        } else {
            term::emit_into_string(&config, &file, &report)
                .unwrap_or_else(|_| plain_fallback(diagnostic, file_name, source))
        };
        out.push_str(&text);
    }
    let n = diagnostics.len();
    out.push_str(&format!("error: `{file_name}` has {n} {}\n", plural(n, "error", "errors")));
    out
}

fn to_report(diagnostic: &Diagnostic, len: usize) -> Report<()> {
    let clamp = |s: crate::span::Span| s.start.min(len)..s.end.min(len).max(s.start.min(len));
    let mut labels = vec![Label::primary((), clamp(diagnostic.span)).with_message(diagnostic.label())];
    if let Some((span, text)) = diagnostic.related() {
        labels.push(Label::secondary((), clamp(span)).with_message(text));
    }
    let mut report = Report::error().with_message(diagnostic.message()).with_labels(labels);
    if let Some(help) = &diagnostic.help {
        report = report.with_notes(vec![format!("help: {help}")]);
    }
    report
}

// Only reached if a span falls outside the file, which would be a bug; still say something useful.
fn plain_fallback(diagnostic: &Diagnostic, file_name: &str, source: &str) -> String {
    let (line, col) = diagnostic.span.line_col(source);
    format!("error: {}\n  at {file_name}:{line}:{col}\n", diagnostic.message())
}
