//! The `optimizer` blocks (or `dnn_optimizer` and `linear_optimizer` for wide & deep models):
//! kind, hyper-parameters with tf.estimator's defaults, and the learning-rate decay.

use super::fields::{out_of_range, Ctx, Fields};
use crate::diagnostic::{Diagnostic, DiagnosticKind};
use crate::pipeline::*;
use crate::span::Span;
use crate::spec::{Decl, Item, ValueKind};

const COMMON: [&str; 5] = ["learning_rate", "decay", "clip_norm", "weight_decay", "lazy"];

fn own_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "adagrad" => &["initial_accumulator", "epsilon"],
        "adam" => &["beta1", "beta2", "epsilon", "amsgrad"],
        "sgd" => &["momentum", "nesterov"],
        "rmsprop" => &["rho", "momentum", "epsilon", "centered"],
        "ftrl" => &["learning_rate_power", "initial_accumulator", "l1", "l2", "l2_shrinkage", "beta"],
        _ => &[],
    }
}

/// tf.estimator's default optimizer and learning rate for each model part.
fn default_for(scope: Scope, model: ModelKind, linear_inputs: usize) -> (&'static str, f64) {
    match (scope, model.is_combined()) {
        // DNNLinearCombined: Adagrad at 0.001 and Ftrl at min(0.005, 1/sqrt(#linear columns)).
        (Scope::Dnn, _) => ("adagrad", 0.001),
        (Scope::Linear, _) => ("ftrl", (1.0 / (linear_inputs.max(1) as f64).sqrt()).min(0.005)),
        (Scope::All, true) => ("adagrad", 0.001),
        (Scope::All, false) if model.has_dnn() => ("adagrad", 0.05),
        // BaselineClassifier and BaselineRegressor: Ftrl at 0.3.
        (Scope::All, false) if model.is_baseline() => ("ftrl", 0.3),
        (Scope::All, false) => ("ftrl", 0.2),
    }
}

/// `[optimizer, dnn_optimizer, linear_optimizer]` blocks as written, any of them absent.
pub fn check(
    ctx: &mut Ctx,
    blocks: [Option<&Decl>; 3],
    model: ModelKind,
    linear_inputs: usize,
) -> Option<Vec<Optimizer>> {
    let [all, dnn, linear] = blocks;
    if !model.is_combined() {
        for decl in [dnn, linear].into_iter().flatten() {
            ctx.report(
                Diagnostic::new(
                    DiagnosticKind::KeyNotForModel { key: decl.kind.node.clone(), model: model.word().into() },
                    decl.kind.span,
                )
                .with_help("only wide & deep models have two halves; use `optimizer`"),
            );
        }
        if dnn.is_some() || linear.is_some() {
            return None;
        }
        return Some(vec![one(ctx, all, Scope::All, model, linear_inputs)?]);
    }
    if let Some(all) = all {
        for split in [dnn, linear].into_iter().flatten() {
            ctx.error(
                DiagnosticKind::ConflictingKeys {
                    key: split.kind.node.clone(),
                    other: "optimizer".into(),
                    other_span: all.kind.span,
                },
                split.kind.span,
            );
        }
        if dnn.is_some() || linear.is_some() {
            return None;
        }
        return Some(vec![one(ctx, Some(all), Scope::All, model, linear_inputs)?]);
    }
    let dnn = one(ctx, dnn, Scope::Dnn, model, linear_inputs);
    let linear = one(ctx, linear, Scope::Linear, model, linear_inputs);
    Some(vec![dnn?, linear?])
}

fn one(ctx: &mut Ctx, decl: Option<&Decl>, scope: Scope, model: ModelKind, linear_inputs: usize) -> Option<Optimizer> {
    let (default_kind, default_rate) = default_for(scope, model, linear_inputs);
    let block = scope.block();
    let (kind, items, header) = match decl {
        None => (default_kind.to_string(), &[][..], Default::default()),
        Some(decl) => named(ctx, decl, block)?,
    };
    let allowed: Vec<&str> = COMMON.iter().chain(own_keys(&kind)).copied().collect();
    let elsewhere = |key: &str| {
        let owners: Vec<&str> = OptimizerKind::WORDS.iter().copied().filter(|k| own_keys(k).contains(&key)).collect();
        (!owners.is_empty()).then(|| format!("`{key}` is a setting of {}, not {kind}", owners.join(" and ")))
    };
    let f = Fields::new(ctx, block, &format!("{block} {kind}"), header, items, &allowed, &elsewhere);
    let optimizer_kind = rule(ctx, &f, &kind)?;
    let decay = if f.has("decay") { Some(decay(ctx, &f)?) } else { None };
    let learning_rate = match &decay {
        Some(Decay::Piecewise { values, .. }) => {
            if f.conflict(ctx, "learning_rate", "decay") {
                return None;
            }
            values[0]
        }
        _ => positive(ctx, &f, "learning_rate", default_rate)?,
    };
    let clip_norm = if f.has("clip_norm") { Some(positive(ctx, &f, "clip_norm", 0.0)?) } else { None };
    let weight_decay = non_negative(ctx, &f, "weight_decay", 0.0)?;
    let lazy = if f.has("lazy") { f.bool(ctx, "lazy")? } else { false };
    Some(Optimizer { scope, kind: optimizer_kind, learning_rate, decay, clip_norm, weight_decay, lazy })
}

/// An optimizer block's kind (`optimizer adam { ... }`), its items and the kind's span.
fn named<'a>(ctx: &mut Ctx, decl: &'a Decl, block: &str) -> Option<(String, &'a [Item], Span)> {
    let Some(name) = &decl.name else {
        ctx.report(
            Diagnostic::new(
                DiagnosticKind::MalformedBlock { block: block.into(), problem: "needs an optimizer kind".into() },
                decl.kind.span,
            )
            .with_help(format!("write `{block} adagrad {{ ... }}`; the kinds are {}", OptimizerKind::WORDS.join(", "))),
        );
        return None;
    };
    if !OptimizerKind::WORDS.contains(&name.node.as_str()) {
        ctx.report(
            Diagnostic::new(DiagnosticKind::UnknownOptimizer { name: name.node.clone() }, name.span)
                .suggesting(&name.node, OptimizerKind::WORDS),
        );
        return None;
    }
    if let Some(source) = &decl.source {
        ctx.error(
            DiagnosticKind::MalformedBlock { block: block.into(), problem: "takes no `= ...`".into() },
            source.span(),
        );
        return None;
    }
    ctx.spans.insert(format!("{block}.kind"), name.span);
    let items: &[Item] = decl.body.as_ref().map_or(&[], |b| b.items.as_slice());
    Some((name.node.clone(), items, name.span))
}

/// The update rule `kind` with its hyper-parameters, torch.optim's defaults (Keras's for FTRL).
fn rule(ctx: &mut Ctx, f: &Fields, kind: &str) -> Option<OptimizerKind> {
    Some(match kind {
        "adagrad" => OptimizerKind::Adagrad {
            initial_accumulator: non_negative(ctx, f, "initial_accumulator", 0.1)?,
            epsilon: positive(ctx, f, "epsilon", 1e-7)?,
        },
        "adam" => OptimizerKind::Adam {
            beta1: unit(ctx, f, "beta1", 0.9)?,
            beta2: unit(ctx, f, "beta2", 0.999)?,
            epsilon: positive(ctx, f, "epsilon", 1e-7)?,
            amsgrad: flag(ctx, f, "amsgrad")?,
        },
        "sgd" => {
            let momentum = unit(ctx, f, "momentum", 0.0)?;
            let nesterov = flag(ctx, f, "nesterov")?;
            if nesterov && momentum == 0.0 {
                out_of_range(ctx, "nesterov", "needs a `momentum` above 0".into(), f.span("nesterov")?);
                return None;
            }
            OptimizerKind::Sgd { momentum, nesterov }
        }
        "rmsprop" => OptimizerKind::Rmsprop {
            rho: unit(ctx, f, "rho", 0.9)?,
            momentum: unit(ctx, f, "momentum", 0.0)?,
            epsilon: positive(ctx, f, "epsilon", 1e-7)?,
            centered: flag(ctx, f, "centered")?,
        },
        _ => {
            let learning_rate_power = if f.has("learning_rate_power") {
                f.float_where(ctx, "learning_rate_power", |x| x <= 0.0, "must be at most 0")?.node
            } else {
                -0.5
            };
            OptimizerKind::Ftrl {
                learning_rate_power,
                initial_accumulator: positive(ctx, f, "initial_accumulator", 0.1)?,
                l1: non_negative(ctx, f, "l1", 0.0)?,
                l2: non_negative(ctx, f, "l2", 0.0)?,
                l2_shrinkage: non_negative(ctx, f, "l2_shrinkage", 0.0)?,
                beta: non_negative(ctx, f, "beta", 0.0)?,
            }
        }
    })
}

/// `key` if set, above 0; else `default`.
fn positive(ctx: &mut Ctx, f: &Fields, key: &str, default: f64) -> Option<f64> {
    if !f.has(key) {
        return Some(default);
    }
    f.float_where(ctx, key, |x| x > 0.0, "must be greater than 0").map(|v| v.node)
}

/// `key` if set, at least 0; else `default`.
fn non_negative(ctx: &mut Ctx, f: &Fields, key: &str, default: f64) -> Option<f64> {
    if !f.has(key) {
        return Some(default);
    }
    f.float_where(ctx, key, |x| x >= 0.0, "must be at least 0").map(|v| v.node)
}

/// `key` if set, in `[0, 1)`; else `default`.
fn unit(ctx: &mut Ctx, f: &Fields, key: &str, default: f64) -> Option<f64> {
    if !f.has(key) {
        return Some(default);
    }
    f.float_where(ctx, key, |x| (0.0..1.0).contains(&x), "must be at least 0 and below 1").map(|v| v.node)
}

/// `key` if set; else false.
fn flag(ctx: &mut Ctx, f: &Fields, key: &str) -> Option<bool> {
    if f.has(key) {
        f.bool(ctx, key)
    } else {
        Some(false)
    }
}

fn decay_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "exponential" | "inverse_time" => &["decay_steps", "decay_rate", "staircase"],
        "polynomial" => &["decay_steps", "end_learning_rate", "power", "cycle"],
        "cosine" => &["decay_steps", "alpha"],
        "piecewise" => &["boundaries", "values"],
        _ => &[],
    }
}

/// `decay = exponential { decay_steps = 1000, decay_rate = 0.96 }`.
fn decay(ctx: &mut Ctx, outer: &Fields) -> Option<Decay> {
    let value = outer.value(ctx, "decay")?;
    let ValueKind::Object(kind, body) = &value.kind else {
        ctx.report(
            Diagnostic::new(
                DiagnosticKind::WrongType {
                    key: "decay".into(),
                    expected: "a schedule such as `exponential { ... }`",
                    found: value.kind.describe(),
                },
                value.span,
            )
            .with_help("write `decay = exponential { decay_steps = 1000, decay_rate = 0.96 }`"),
        );
        return None;
    };
    if !Decay::WORDS.contains(&kind.node.as_str()) {
        ctx.report(
            Diagnostic::new(DiagnosticKind::UnknownDecay { name: kind.node.clone() }, kind.span)
                .suggesting(&kind.node, Decay::WORDS),
        );
        return None;
    }
    let path = format!("{}.decay", outer.path);
    let display = format!("decay {}", kind.node);
    let f = Fields::new(ctx, &path, &display, kind.span, &body.items, decay_keys(&kind.node), &|_| None);
    let steps = |ctx: &mut Ctx| -> Option<u64> {
        f.require(ctx, "decay_steps", &display);
        f.steps(ctx, "decay_steps").map(|s| s.node)
    };
    let flag = |ctx: &mut Ctx, key: &str| -> Option<bool> {
        if f.has(key) {
            f.bool(ctx, key)
        } else {
            Some(false)
        }
    };
    let rate = |ctx: &mut Ctx| -> Option<f64> {
        f.require(ctx, "decay_rate", &display);
        f.float_where(ctx, "decay_rate", |x| x > 0.0, "must be greater than 0").map(|v| v.node)
    };
    let number_or = |ctx: &mut Ctx, key: &str, default: f64| -> Option<f64> {
        if f.has(key) {
            f.float_where(ctx, key, |x| x >= 0.0, "must be at least 0").map(|v| v.node)
        } else {
            Some(default)
        }
    };
    Some(match kind.node.as_str() {
        "exponential" => {
            Decay::Exponential { decay_steps: steps(ctx)?, decay_rate: rate(ctx)?, staircase: flag(ctx, "staircase")? }
        }
        "inverse_time" => {
            Decay::InverseTime { decay_steps: steps(ctx)?, decay_rate: rate(ctx)?, staircase: flag(ctx, "staircase")? }
        }
        "polynomial" => Decay::Polynomial {
            decay_steps: steps(ctx)?,
            end_learning_rate: number_or(ctx, "end_learning_rate", 0.0001)?,
            power: number_or(ctx, "power", 1.0)?,
            cycle: flag(ctx, "cycle")?,
        },
        "cosine" => Decay::Cosine { decay_steps: steps(ctx)?, alpha: number_or(ctx, "alpha", 0.0)? },
        _ => {
            f.require(ctx, "boundaries", &display);
            f.require(ctx, "values", &display);
            let boundaries = f.list(ctx, "boundaries", "a step count", |v| match v {
                ValueKind::Int(i) if *i >= 0 => Some(*i as u64),
                ValueKind::Steps(s) => Some(*s),
                _ => None,
            });
            let values = f.list(ctx, "values", "a learning rate", |v| match v {
                ValueKind::Float(x) if *x > 0.0 => Some(*x),
                ValueKind::Int(i) if *i > 0 => Some(*i as f64),
                _ => None,
            });
            let (boundaries, values) = (boundaries?, values?);
            if let Some(w) = boundaries.windows(2).find(|w| w[1].node <= w[0].node) {
                ctx.error(DiagnosticKind::UnsortedBoundaries { key: "boundaries".into() }, w[1].span);
                return None;
            }
            if boundaries.is_empty() || values.len() != boundaries.len() + 1 {
                out_of_range(
                    ctx,
                    "values",
                    format!(
                        "must have one more entry than `boundaries` ({}), found {}",
                        boundaries.len(),
                        values.len()
                    ),
                    f.span("values")?,
                );
                return None;
            }
            Decay::Piecewise {
                boundaries: boundaries.into_iter().map(|b| b.node).collect(),
                values: values.into_iter().map(|v| v.node).collect(),
            }
        }
    })
}
