//! Derives widths, the head and the variable list from a checked spec.

use camino::Utf8Path;

use super::*;
use crate::check::CheckedSpec;
use crate::pipeline::{ModelSpec, Normalize};

/// The plan for a checked spec compiled from `source`.
pub fn plan(spec: &CheckedSpec, source: &Utf8Path) -> Plan {
    let mut features: Vec<FeaturePlan> = spec
        .features
        .iter()
        .map(|f| FeaturePlan { feature: f.clone(), width: width(&f.kind, &spec.features) })
        .collect();
    features.sort_by(|a, b| a.feature.name.cmp(&b.feature.name));

    let head = head(&spec.model);
    let dnn = spec
        .model
        .dnn
        .as_ref()
        .map(|d| DnnPlan { spec: d.clone(), input_width: d.inputs.iter().map(|n| width_of(&features, n)).sum() });
    let variables = variables(&features, &spec.model, dnn.as_ref(), head.logits);
    let mut plan = Plan {
        format: FORMAT,
        pipeline: spec.name.clone(),
        source: source.to_owned(),
        fingerprint: Fingerprints { model: String::new(), optimizer: String::new() },
        data: spec.data.clone(),
        features,
        model: ModelPlan { kind: spec.model.kind, head, dnn, linear: spec.model.linear.clone(), variables },
        optimizers: spec.optimizers.clone(),
        train: spec.train.clone(),
        eval: spec.eval.clone(),
        early_stop: spec.early_stop.clone(),
        checkpoint: spec.checkpoint.clone(),
        summaries: spec.summaries.clone(),
    };
    plan.fingerprint = fingerprint::fingerprints(&plan);
    plan
}

fn width_of(features: &[FeaturePlan], name: &str) -> u64 {
    features.iter().find(|f| f.feature.name == name).map_or(0, |f| f.width)
}

fn buckets(kind: &FeatureKind, all: &[Feature]) -> u64 {
    match kind {
        FeatureKind::Categorical { ids, .. } => ids.buckets(),
        FeatureKind::Crossed { hash_buckets, .. } => *hash_buckets,
        FeatureKind::Bucketized { boundaries, .. } => boundaries.len() as u64 + 1,
        FeatureKind::Embedding { source, .. } | FeatureKind::Indicator { source } => {
            all.iter().find(|f| &f.name == source).map_or(0, |f| buckets(&f.kind, all))
        }
        FeatureKind::Numeric { .. } => 0,
    }
}

fn width(kind: &FeatureKind, all: &[Feature]) -> u64 {
    match kind {
        FeatureKind::Numeric { shape, .. } => *shape as u64,
        FeatureKind::Embedding { dimension, .. } => *dimension as u64,
        other => buckets(other, all),
    }
}

fn head(model: &ModelSpec) -> Head {
    match model.n_classes {
        Some(n) if n > 2 => Head { kind: HeadKind::MultiClass, n_classes: Some(n), logits: n as u64 },
        Some(n) => Head { kind: HeadKind::Binary, n_classes: Some(n), logits: 1 },
        None => Head { kind: HeadKind::Regression, n_classes: None, logits: 1 },
    }
}

/// tf.estimator's variable names, kernels as [in, out].
fn variables(features: &[FeaturePlan], model: &ModelSpec, dnn: Option<&DnnPlan>, logits: u64) -> Vec<Variable> {
    let mut vars = Vec::new();
    let mut push = |name: String, shape: Vec<u64>, trainable: bool, part: Scope| {
        vars.push(Variable { name, shape, trainable, part });
    };
    let embedding_table = |name: &str| -> Option<Vec<u64>> {
        let f = features.iter().find(|f| f.feature.name == name)?;
        match &f.feature.kind {
            FeatureKind::Embedding { source, dimension, .. } => {
                let rows = features.iter().find(|s| &s.feature.name == source)?.width;
                Some(vec![rows, *dimension as u64])
            }
            _ => None,
        }
    };
    // Statistics frozen at the first training, for the numeric columns the model reads directly.
    let direct = dnn.iter().flat_map(|d| &d.spec.inputs).chain(model.linear.iter().flat_map(|l| &l.inputs));
    let mut normalized: Vec<&str> = Vec::new();
    for name in direct {
        let Some(f) = features.iter().find(|f| &f.feature.name == name) else {
            continue;
        };
        let FeatureKind::Numeric { normalize, .. } = &f.feature.kind else {
            continue;
        };
        let stats = match normalize {
            Normalize::None => continue,
            Normalize::Zscore => ["mean", "std"],
            Normalize::Minmax => ["min", "max"],
        };
        if normalized.contains(&name.as_str()) {
            continue;
        }
        normalized.push(name);
        for stat in stats {
            push(format!("normalization/{name}/{stat}"), vec![1], false, Scope::All);
        }
    }
    if let Some(dnn) = dnn {
        for input in &dnn.spec.inputs {
            if let Some(shape) = embedding_table(input) {
                push(
                    format!("dnn/input_from_feature_columns/input_layer/{input}/embedding_weights"),
                    shape,
                    true,
                    Scope::Dnn,
                );
            }
        }
        let mut fan_in = dnn.input_width;
        for (i, &units) in dnn.spec.hidden_units.iter().enumerate() {
            let units = units as u64;
            push(format!("dnn/hiddenlayer_{i}/kernel"), vec![fan_in, units], true, Scope::Dnn);
            push(format!("dnn/hiddenlayer_{i}/bias"), vec![units], true, Scope::Dnn);
            if dnn.spec.batch_norm {
                let prefix = format!("dnn/hiddenlayer_{i}/batchnorm_{i}");
                push(format!("{prefix}/gamma"), vec![units], true, Scope::Dnn);
                push(format!("{prefix}/beta"), vec![units], true, Scope::Dnn);
                push(format!("{prefix}/moving_mean"), vec![units], false, Scope::Dnn);
                push(format!("{prefix}/moving_variance"), vec![units], false, Scope::Dnn);
            }
            fan_in = units;
        }
        push("dnn/logits/kernel".into(), vec![fan_in, logits], true, Scope::Dnn);
        push("dnn/logits/bias".into(), vec![logits], true, Scope::Dnn);
    }
    if model.kind.is_baseline() {
        push("baseline/bias".into(), vec![logits], true, Scope::All);
    }
    if let Some(linear) = &model.linear {
        for input in &linear.inputs {
            if let Some(shape) = embedding_table(input) {
                push(format!("linear/linear_model/{input}/embedding_weights"), shape, true, Scope::Linear);
            }
            push(
                format!("linear/linear_model/{input}/weights"),
                vec![width_of(features, input), logits],
                true,
                Scope::Linear,
            );
        }
        push("linear/linear_model/bias_weights".into(), vec![logits], true, Scope::Linear);
    }
    vars
}
