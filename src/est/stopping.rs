//! Early stopping as a pure function of the evaluations so far: the best value, when it was
//! reached, and how many evaluations have passed without beating it. The state travels in every
//! checkpoint, so a resumed run (or one whose `patience` was raised) decides as one run would.

use serde::{Deserialize, Serialize};

use crate::pipeline::{EarlyStopSpec, Mode};

/// Where early stopping stands after the evaluations so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StopState {
    /// The metric watched; a state kept for another metric or mode starts over.
    pub metric: String,
    /// Which way it improves.
    pub mode: Mode,
    /// The best value so far.
    pub best: f64,
    /// The global step of the evaluation that reached it.
    pub best_step: u64,
    /// Evaluations since the best, which did not beat it by more than `min_delta`.
    pub since: u32,
}

/// Why a run stopped early, as the summary line says it.
#[derive(Clone, Debug, PartialEq)]
pub struct Stopped {
    /// The global step it stopped at.
    pub step: u64,
    /// The state that decided it.
    pub state: StopState,
    /// The best checkpoint's file, when it is still kept.
    pub kept: Option<String>,
}

impl StopState {
    /// The state after an evaluation at `step` gave `value`, from `previous` (which is dropped
    /// when it watched another metric or mode).
    pub fn observe(previous: Option<&StopState>, spec: &EarlyStopSpec, step: u64, value: f64) -> StopState {
        let objective = &spec.objective;
        let previous = previous.filter(|p| p.metric == objective.metric && p.mode == objective.mode);
        // A value that is not a number never becomes the best: it counts as no improvement.
        let improved = value.is_finite() && previous.is_none_or(|p| objective.improves(value, p.best, spec.min_delta));
        let fresh = |best: f64, since: u32| StopState {
            metric: objective.metric.clone(),
            mode: objective.mode,
            best,
            best_step: step,
            since,
        };
        match previous {
            _ if improved => fresh(value, 0),
            Some(p) => StopState { since: p.since.saturating_add(1), ..p.clone() },
            // The worst value there is, so the first real one improves on it.
            None => fresh(objective.cost(f64::INFINITY), 1),
        }
    }

    /// Whether `spec` stops a run at `step` in this state.
    pub fn stops(&self, spec: &EarlyStopSpec, step: u64) -> bool {
        self.metric == spec.objective.metric
            && self.mode == spec.objective.mode
            && self.since >= spec.patience
            && step >= spec.min_steps
    }
}

impl std::fmt::Display for Stopped {
    /// `stopped early at step 1300: average_loss has not improved for 5 evaluations (best
    /// 0.0412 at step 800, ckpt-800 kept)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.state;
        let evaluations = if s.since == 1 { "evaluation" } else { "evaluations" };
        let kept = match &self.kept {
            Some(file) => format!("{} kept", file.trim_end_matches(".safetensors")),
            None => "its checkpoint is not kept: set `keep_best = 1` in `checkpoint` to keep it".into(),
        };
        write!(
            f,
            "stopped early at step {}: {} has not improved for {} {evaluations} (best {} at step {}, {kept})",
            self.step,
            s.metric,
            s.since,
            significant(s.best, 4),
            s.best_step
        )
    }
}

/// `x` to `digits` significant digits, without trailing zeros: 0.041234 → 0.04123.
pub fn significant(x: f64, digits: i32) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Objective;

    fn spec(patience: u32, min_delta: f64, min_steps: u64) -> EarlyStopSpec {
        EarlyStopSpec { objective: Objective::default(), patience, min_delta, min_steps }
    }

    fn run(spec: &EarlyStopSpec, values: &[f64]) -> (StopState, Option<u64>) {
        let mut state: Option<StopState> = None;
        for (i, &v) in values.iter().enumerate() {
            let step = (i as u64 + 1) * 100;
            let next = StopState::observe(state.as_ref(), spec, step, v);
            if next.stops(spec, step) {
                return (next, Some(step));
            }
            state = Some(next);
        }
        (state.unwrap(), None)
    }

    #[test]
    fn stops_after_patience_evaluations_without_improvement() {
        let (state, stop) = run(&spec(2, 0.0, 0), &[0.9, 0.5, 0.6, 0.55, 0.4]);
        assert_eq!(stop, Some(400));
        assert_eq!((state.best, state.best_step, state.since), (0.5, 200, 2));
    }

    #[test]
    fn an_improvement_within_min_delta_does_not_count() {
        let (_, stop) = run(&spec(2, 0.1, 0), &[0.9, 0.85, 0.81, 0.7]);
        assert_eq!(stop, Some(300));
    }

    #[test]
    fn never_stops_before_min_steps() {
        let (state, stop) = run(&spec(1, 0.0, 500), &[0.5, 0.6, 0.7, 0.8, 0.9, 1.0]);
        assert_eq!(stop, Some(500));
        assert_eq!(state.since, 4);
    }

    #[test]
    fn a_state_for_another_metric_starts_over() {
        let old = StopState { metric: "accuracy".into(), mode: Mode::Max, best: 0.9, best_step: 100, since: 7 };
        let next = StopState::observe(Some(&old), &spec(3, 0.0, 0), 200, 0.4);
        assert_eq!((next.metric.as_str(), next.best, next.best_step, next.since), ("average_loss", 0.4, 200, 0));
        assert!(!old.stops(&spec(3, 0.0, 0), 200));
    }

    #[test]
    fn a_value_that_is_not_a_number_never_becomes_the_best() {
        let (state, stop) = run(&spec(2, 0.0, 0), &[f64::NAN, 0.5, f64::NAN, 0.4, f64::NAN, f64::NAN]);
        assert_eq!(stop, Some(600));
        assert_eq!((state.best, state.best_step), (0.4, 400));
    }

    #[test]
    fn a_raised_patience_lets_a_stopped_run_continue() {
        let state = StopState { metric: "average_loss".into(), mode: Mode::Min, best: 0.1, best_step: 800, since: 5 };
        assert!(state.stops(&spec(5, 0.0, 0), 1300));
        assert!(!state.stops(&spec(8, 0.0, 0), 1300));
    }

    #[test]
    fn the_summary_line_says_why() {
        let state =
            StopState { metric: "average_loss".into(), mode: Mode::Min, best: 0.041234, best_step: 800, since: 5 };
        let line = Stopped { step: 1300, state, kept: Some("ckpt-800.safetensors".into()) }.to_string();
        assert_eq!(
            line,
            "stopped early at step 1300: average_loss has not improved for 5 evaluations (best 0.04123 at step 800, ckpt-800 kept)"
        );
        assert_eq!(significant(1234.5678, 4), "1235");
        assert_eq!(significant(0.5, 4), "0.5");
    }
}
