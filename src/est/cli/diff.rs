//! `est diff A B`: what changed between a model_dir's latest checkpoint (or a `.est` file) and a
//! `.est` file, as the guard would report it.

use camino::Utf8Path;

use super::{exit, front};
use crate::checkpoint::Store;
use crate::diff::report::{self, Mode};
use crate::diff::{self, NewSource};

pub fn diff(old: &Utf8Path, new: &Utf8Path, color: bool) -> i32 {
    let (source, compiled) = match front::load(new, color) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let (old_plan, checkpoint) = if old.is_dir() {
        match Store::new(old).latest_meta() {
            Ok(Some((entry, meta))) => (meta.plan, Some(entry)),
            Ok(None) => {
                eprintln!("error: no checkpoint in `{old}`");
                return exit::FAILED;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return exit::FAILED;
            }
        }
    } else {
        match front::load(old, color) {
            Ok((_, c)) => (c.plan, None),
            Err(code) => return code,
        }
    };
    let spans = NewSource { spans: &compiled.spans, text: &source.text };
    let d = diff::diff(&old_plan, &compiled.plan, Some(&spans));
    let mode = Mode::OnDemand { old: old.as_str(), checkpoint: checkpoint.as_ref() };
    print!("{}", report::render(&d, &mode, new.as_str()));
    if d.model_compatible() && d.optimizer_compatible() {
        exit::OK
    } else {
        exit::INCOMPATIBLE
    }
}
