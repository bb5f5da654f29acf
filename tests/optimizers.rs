//! est's optimizers against torch.optim (and Keras's FTRL): the same gradients must give the same
//! weights and state to 1e-6. With the libtorch venv present the reference is recomputed in
//! Python; otherwise the recorded one is used.

use serde::Deserialize;
use tch::Tensor;

use est::plan::Optimizer;
use est::train::optim::{clip_global_norm, OptimizerState};

use crate::common::{read, root};

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    optimizer: Optimizer,
    initial: Vec<Vec<f32>>,
    shapes: Vec<Vec<i64>>,
    steps: Vec<Step>,
    state: std::collections::BTreeMap<String, Vec<Vec<f32>>>,
}

#[derive(Deserialize)]
struct Step {
    grads: Vec<Vec<f32>>,
    params: Vec<Vec<f32>>,
}

fn recorded() -> String {
    read("tests/reference/optimizers.json")
}

/// The reference computed now, when the venv with torch is there.
fn live() -> Option<String> {
    let python = std::env::var("EST_PYTHON").ok()?;
    let out = std::process::Command::new(python)
        .arg(root().join("tests/reference/optimizers.py"))
        .output()
        .expect("the reference script runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).unwrap())
}

fn tensor(values: &[f32], shape: &[i64]) -> Tensor {
    Tensor::from_slice(values).reshape(shape)
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-6, "{what}: {got:?} != {want:?}");
    }
}

fn check(reference: &Reference) {
    assert_eq!(reference.cases.len(), 12);
    for case in &reference.cases {
        let params: Vec<Tensor> = case.initial.iter().zip(&case.shapes).map(|(v, s)| tensor(v, s)).collect();
        let like: Vec<&Tensor> = params.iter().collect();
        let mut optimizer = OptimizerState::new(&case.optimizer, vec![0, 1], &like).unwrap();
        for (i, step) in case.steps.iter().enumerate() {
            let grads: Vec<Tensor> = step.grads.iter().zip(&case.shapes).map(|(v, s)| tensor(v, s)).collect();
            if let Some(clip) = case.optimizer.clip_norm {
                clip_global_norm(&grads, clip).unwrap();
            }
            optimizer.apply(&params, &grads, case.optimizer.learning_rate).unwrap();
            for (k, p) in params.iter().enumerate() {
                assert_close(&format!("{} step {} param {k}", case.name, i + 1), &values(p), &step.params[k]);
            }
        }
        let slots = case.optimizer.kind.slots();
        assert_eq!(slots.len(), case.state.len(), "{}: slots {slots:?}", case.name);
        for (s, slot) in slots.iter().enumerate() {
            for k in 0..params.len() {
                let want = &case.state[*slot][k];
                assert_close(&format!("{} {slot} {k}", case.name), &values(&optimizer.slots[k][s]), want);
            }
        }
    }
}

#[test]
fn optimizers_match_the_recorded_reference() {
    check(&serde_json::from_str(&recorded()).unwrap());
}

#[test]
fn optimizers_match_torch_optim_now() {
    let Some(live) = live() else {
        eprintln!("EST_PYTHON is not set: the recorded reference was checked instead");
        return;
    };
    let live: Reference = serde_json::from_str(&live).unwrap();
    check(&live);
    // The recorded file must still be what torch computes.
    let recorded: Reference = serde_json::from_str(&recorded()).unwrap();
    for (a, b) in live.cases.iter().zip(&recorded.cases) {
        for (sa, sb) in a.steps.iter().zip(&b.steps) {
            for (pa, pb) in sa.params.iter().zip(&sb.params) {
                assert_close(&a.name, pa, pb);
            }
        }
    }
}
