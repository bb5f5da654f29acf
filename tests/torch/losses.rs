//! est's weighted losses against PyTorch's: for the same logits, labels and example weights, the
//! batch loss `sum(w · loss) / n` and its gradient with respect to the logits, through autograd and
//! through the written-out step, to 1e-6. With the libtorch venv present the reference is
//! recomputed in Python; otherwise the recorded one is used.

use serde::Deserialize;
use tch::{Device, Tensor};

use est::data::{Labels, Table};
use est::plan::HeadKind;
use est_torch::lower::{Inputs, Model};
use est_torch::train::direct::head_gradient;

use crate::common::{compile_text, read};

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    head: HeadKind,
    width: i64,
    logits: Vec<f32>,
    labels: Vec<f64>,
    weights: Vec<f32>,
    loss: f64,
    grad: Vec<f32>,
}

fn recorded() -> String {
    read("tests/reference/losses.json")
}

/// The reference computed now, when the venv with torch is there.
fn live() -> Option<String> {
    crate::common::torch_reference("losses.py")
}

/// A model with `kind`'s head over a file with a label and a weight column.
fn model(dir: &std::path::Path, kind: HeadKind) -> Model {
    let csv = dir.join("d.csv");
    std::fs::write(&csv, "x,y,w\n1,0,1\n").unwrap();
    let model = match kind {
        HeadKind::MultiClass => "linear_classifier { n_classes = 3 }",
        HeadKind::Binary => "linear_classifier { n_classes = 2 }",
        HeadKind::Regression => "linear_regressor {}",
    };
    let text = format!(
        "pipeline p {{\n  data {{ train = \"{}\", label = y, weight = w }}\n  features {{ numeric x }}\n  model {model}\n}}\n",
        csv.display()
    );
    let plan = compile_text("p.est", &text).unwrap_or_else(|d| panic!("{d:?}")).plan;
    Model::build(&plan, Device::Cpu, None).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.contiguous().view([-1])).unwrap()
}

fn assert_close(what: &str, got: f64, want: f64) {
    assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "{what}: {got} against torch's {want}");
}

fn check(reference: &Reference) {
    assert_eq!(reference.cases.len(), 3);
    let tmp = tempfile::tempdir().unwrap();
    for case in &reference.cases {
        let model = model(tmp.path(), case.head);
        assert_eq!(model.head.kind, case.head);
        let rows = case.weights.len();
        let labels = match case.head {
            HeadKind::Regression => Labels::Values(case.labels.iter().map(|&y| y as f32).collect()),
            _ => Labels::Classes(case.labels.iter().map(|&y| y as i64).collect()),
        };
        let table = Table { rows, labels: Some(labels), weights: Some(case.weights.clone()), ..Table::default() };
        let x = Inputs::from_table(table, Device::Cpu, &model).unwrap();
        let logits = Tensor::from_slice(&case.logits).view([rows as i64, case.width]).set_requires_grad(true);

        let loss = est_torch::train::batch_loss(&model.head, &logits, &x).unwrap();
        let grad = Tensor::run_backward(&[&loss], &[&logits], false, false).remove(0);
        let (direct_loss, direct_grad) =
            head_gradient(case.head, &logits.detach(), x.labels.as_ref().unwrap(), x.weights.as_ref()).unwrap();
        for (way, loss, grad) in
            [("autograd", loss.double_value(&[]), values(&grad)), ("written-out", direct_loss, values(&direct_grad))]
        {
            let what = format!("{:?} through {way}", case.head);
            assert_close(&format!("{what}: the loss"), loss, case.loss);
            assert_eq!(grad.len(), case.grad.len(), "{what}");
            for (i, (&g, &want)) in grad.iter().zip(&case.grad).enumerate() {
                assert_close(&format!("{what}: the gradient's element {i}"), f64::from(g), f64::from(want));
            }
        }
        // A weight of 0 leaves its row out of the gradient.
        assert!(values(&direct_grad).chunks(case.width as usize).next().unwrap().iter().all(|&g| g == 0.0));
    }
}

#[test]
fn weighted_losses_match_the_recorded_reference() {
    check(&serde_json::from_str(&recorded()).unwrap());
}

#[test]
fn weighted_losses_match_pytorch_now() {
    let Some(live) = live() else {
        eprintln!("EST_PYTHON is not set: the recorded reference was checked instead");
        return;
    };
    let live: Reference = serde_json::from_str(&live).unwrap();
    check(&live);
    // The recorded file must still be what torch computes.
    let recorded: Reference = serde_json::from_str(&recorded()).unwrap();
    for (a, b) in live.cases.iter().zip(&recorded.cases) {
        assert_close(&format!("{:?}: the recorded loss", a.head), b.loss, a.loss);
        assert_eq!(a.grad.len(), b.grad.len());
        for (x, y) in a.grad.iter().zip(&b.grad) {
            assert_close(&format!("{:?}: the recorded gradient", a.head), f64::from(*y), f64::from(*x));
        }
    }
}
