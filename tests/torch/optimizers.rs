//! est's optimizers against torch.optim (and Keras's FTRL): the same gradients must give the same
//! weights and state to 1e-6. With the libtorch venv present the reference is recomputed in
//! Python; otherwise the recorded one is used.

use serde::Deserialize;
use tch::Tensor;

use est::pipeline::Optimizer;
use est_torch::train::optim::{clip_global_norm, OptimizerState};

use crate::common::read;

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
    crate::common::torch_reference("optimizers.py")
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

/// The one-pass Adagrad over a flat buffer gives torch.optim's weights and state, and declines
/// (changing nothing) what it does not cover.
#[test]
fn fused_adagrad_matches_torch_optim() {
    let reference: Reference = serde_json::from_str(&recorded()).unwrap();
    let mut fused = 0;
    for case in &reference.cases {
        let flat = Tensor::from_slice(&case.initial.concat());
        let mut optimizer = OptimizerState::new(&case.optimizer, vec![0], &[&flat]).unwrap();
        for (i, step) in case.steps.iter().enumerate() {
            let parts: Vec<Tensor> = step.grads.iter().map(|g| Tensor::from_slice(g)).collect();
            let Some(done) = optimizer.apply_fused(&flat, &parts, case.optimizer.learning_rate) else {
                assert!(case.name != "adagrad", "the plain Adagrad case was declined");
                assert_eq!((optimizer.step, values(&flat)), (0, case.initial.concat()), "{}", case.name);
                break;
            };
            done.unwrap();
            fused += 1;
            assert_close(&format!("{} step {}", case.name, i + 1), &values(&flat), &step.params.concat());
        }
        if case.name == "adagrad" {
            assert_close("adagrad accumulator", &values(&optimizer.slots[0][0]), &case.state["accumulator"].concat());
        }
    }
    assert_eq!(fused, 5);
}

/// On a model-sized buffer the one pass and the tensor form agree to rounding (libtorch fuses
/// `acc + g·g` into one multiply-add), step after step.
#[test]
fn fused_adagrad_agrees_with_the_tensor_form() {
    let config: est::pipeline::Optimizer = serde_json::from_str(
        r#"{"scope": "all", "kind": "adagrad", "learning_rate": 0.05, "decay": null, "clip_norm": null,
            "weight_decay": 0.0, "initial_accumulator": 0.1, "epsilon": 1e-07}"#,
    )
    .unwrap();
    let _rng = crate::common::torch_rng();
    tch::manual_seed(3);
    let start = Tensor::randn([100_003], (tch::Kind::Float, tch::Device::Cpu));
    let (fused, plain) = (start.copy(), start.copy());
    let mut a = OptimizerState::new(&config, vec![0], &[&fused]).unwrap();
    let mut b = OptimizerState::new(&config, vec![0], &[&plain]).unwrap();
    for _ in 0..20 {
        let g = Tensor::randn([100_003], (tch::Kind::Float, tch::Device::Cpu));
        let parts = [g.narrow(0, 0, 40_000).contiguous(), g.narrow(0, 40_000, 60_003).contiguous()];
        a.apply_fused(&fused, &parts, 0.05).expect("a plain Adagrad buffer takes the one pass").unwrap();
        b.apply(&[plain.shallow_clone()], &[g], 0.05).unwrap();
    }
    let gap = (&fused - &plain).abs().max().double_value(&[]);
    let moved = (&fused - &start).abs().max().double_value(&[]);
    assert!(gap <= 1e-6 && moved > 0.1, "gap {gap}, moved {moved}");
    let acc_gap = (&a.slots[0][0] - &b.slots[0][0]).abs().max().double_value(&[]);
    assert!(acc_gap <= 1e-6 * b.slots[0][0].abs().max().double_value(&[]), "accumulators differ by {acc_gap}");
}
