//! Training progress for people: a bar on a terminal, `step = …, loss = …` lines otherwise.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::train::{Metrics, Progress};
use est::checkpoint::Entry;

/// Progress on stderr, or lines on stdout in watch mode.
pub struct Console {
    bar: Option<ProgressBar>,
    last_log: Option<(u64, Instant)>,
    /// The global step the run started from.
    first: u64,
    /// Watch mode: plain lines on stdout, never a bar, so a session logs cleanly.
    lines: bool,
}

impl Default for Console {
    fn default() -> Self {
        Console::new()
    }
}

impl Console {
    /// Progress on stderr: a bar on a terminal, lines otherwise.
    pub fn new() -> Console {
        Console { bar: None, last_log: None, first: 0, lines: false }
    }

    /// Plain lines on stdout, for watch mode.
    pub fn lines() -> Console {
        Console { bar: None, last_log: None, first: 0, lines: true }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None if self.lines => println!("{text}"),
            None => eprintln!("{text}"),
        }
    }

    /// Clears the bar, if there is one.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Console {
    fn restored(&mut self, entry: &Entry, warnings: &[String]) {
        for w in warnings {
            self.line(&format!("warning: {w}"));
        }
        self.line(&format!("restored {} (step {})", entry.file, entry.step));
    }

    fn started(&mut self, from: u64, to: u64) {
        if !self.lines && std::io::stderr().is_terminal() && to > from {
            let bar = ProgressBar::new(to - from);
            let style = ProgressStyle::with_template("{bar:30} step {msg} {per_sec:>12} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            self.bar = Some(bar);
        }
        self.first = from;
        self.last_log = Some((from, Instant::now()));
    }

    fn step(&mut self, step: u64, loss: Option<f64>) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if let Some(loss) = loss {
                bar.set_message(format!("{step}, loss {}", loss as f32));
            }
            return;
        }
        let Some(loss) = loss else { return };
        // The first step of a run pays for warm-up, so rates start after it.
        match self.last_log {
            Some((from, when)) if from > self.first => {
                let rate = (step - from) as f64 / when.elapsed().as_secs_f64().max(1e-9);
                self.line(&format!("step = {step}, loss = {}, steps/sec = {rate:.1}", loss as f32));
            }
            _ => self.line(&format!("step = {step}, loss = {}", loss as f32)),
        }
        self.last_log = Some((step, Instant::now()));
    }

    fn saved(&mut self, entry: &Entry) {
        if self.bar.is_none() {
            self.line(&format!("saved {} (step {})", entry.file, entry.step));
        }
    }

    fn evaluated(&mut self, metrics: &Metrics) {
        self.line(&format!("eval: {}", metrics));
    }

    fn note(&mut self, text: &str) {
        self.line(&format!("note: {text}"));
    }
}
