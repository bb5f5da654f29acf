//! The training step with its backpropagation written out, against autograd on the same batch:
//! the same loss and the same gradients for every head, activation, kind of column and model,
//! with dropout and batch normalisation, and with example weights.

use est::data::{self, Purpose};
use est_torch::lower::{Inputs, Model};
use est_torch::train::direct::Direct;
use tch::{Device, Tensor};

use crate::common::{compile_text, root};

fn data(name: &str) -> String {
    root().join("pipelines/data").join(name).to_string()
}

/// A pipeline over the penguins' measurements (and, as an indicator, their island) predicting
/// `label` with `model`.
fn penguins(label: &str, model: &str) -> String {
    let column = label.split(',').next().unwrap_or(label);
    let features: String = [
        "numeric bill_length_mm { normalize = zscore }",
        "numeric bill_depth_mm { normalize = zscore }",
        "numeric flipper_length_mm { normalize = zscore }",
        "categorical island { vocabulary = [\"Biscoe\", \"Dream\", \"Torgersen\"] }",
        "indicator island_indicator = island",
        "embedding island_embedding = island { dimension = 2 }",
        "numeric body_mass_g { normalize = zscore }",
    ]
    .iter()
    .filter(|f| !f.starts_with(&format!("numeric {column} ")))
    .map(|f| format!("    {f}\n"))
    .collect();
    format!(
        "pipeline p {{
  data {{ train = \"{}\", label = {label}, missing = \"NA\", bad_rows = skip }}
  features {{
{features}  }}
  {model}
  optimizer adagrad {{ learning_rate = 0.05 }}
  train {{ batch_size = 64, steps = 10 }}
}}
",
        data("penguins_train.csv")
    )
}

struct Case {
    model: Model,
    inputs: Inputs,
    batch: i64,
}

fn case(text: &str) -> Case {
    let plan = compile_text("p.est", text).unwrap_or_else(|d| panic!("{d:?}")).plan;
    let table = data::load(&plan, &plan.data.train, Purpose::Labelled).unwrap();
    let model = Model::build(&plan, Device::Cpu, Some(&table)).unwrap();
    // Random weights: the linear part starts at zero, which would hide what flows through it.
    let mut rng = est::rng::Rng::new(11);
    for group in &model.groups {
        let values: Vec<f32> = (0..group.flat.numel()).map(|_| (rng.normal() * 0.5) as f32).collect();
        tch::no_grad(|| group.flat.shallow_clone().copy_(&Tensor::from_slice(&values)));
    }
    let inputs = Inputs::from_table(table, Device::Cpu, &model).unwrap();
    Case { model, inputs, batch: plan.train.batch_size as i64 }
}

/// A batch of `n` rows picked across the table.
fn batch(case: &Case, n: i64) -> Inputs {
    let rows: Vec<i64> = (0..n).map(|i| (i * 7 + 3) % case.inputs.rows).collect();
    case.inputs.gather(&Tensor::from_slice(&rows)).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.contiguous().view([-1])).unwrap()
}

/// The step and seed both sides draw dropout masks for.
const STEP: u64 = 41;
const SEED: u64 = 7;

/// Loss and gradients (per optimizer group, end to end) from autograd.
fn autograd(case: &Case, x: &Inputs) -> (f64, Vec<Vec<f32>>) {
    let logits = case.model.forward(x, true, STEP, SEED).unwrap();
    let loss = est_torch::train::batch_loss(&case.model.head, &logits, x).unwrap();
    let leaves: Vec<&Tensor> = case
        .model
        .groups
        .iter()
        .flat_map(|g| g.members.iter().map(|&(i, _, _)| &case.model.params[i].tensor))
        .collect();
    let mut grads = Tensor::run_backward(&[&loss], &leaves, false, false).into_iter();
    let per_group = case
        .model
        .groups
        .iter()
        .map(|g| grads.by_ref().take(g.members.len()).flat_map(|t| values(&t)).collect())
        .collect();
    (loss.double_value(&[]), per_group)
}

/// Example weights for `n` rows: some 0, the rest spread around 1.
fn weights(n: i64) -> Tensor {
    let mut rng = est::rng::Rng::new(n as u64);
    let w: Vec<f32> = (0..n).map(|_| if rng.below(4) == 0 { 0.0 } else { (rng.normal().abs() * 1.5) as f32 }).collect();
    Tensor::from_slice(&w)
}

fn assert_same_step(text: &str) {
    same_step(text, false);
}

/// As `assert_same_step`, each batch's examples weighted.
fn assert_same_weighted_step(text: &str) {
    same_step(text, true);
}

fn same_step(text: &str, weighted: bool) {
    // Both sides seed libtorch's one generator and draw dropout masks from it.
    let _rng = crate::common::torch_rng();
    let case = case(text);
    let mut direct = Direct::new(&case.model, case.batch).unwrap().expect("the written-out step takes this model");
    // A full batch, a short last one, and a full one again into the same buffers.
    let fixed: Vec<&Tensor> = case.model.params.iter().filter(|p| !p.trainable).map(|p| &p.tensor).collect();
    for n in [case.batch, 13, case.batch] {
        let mut x = batch(&case, n);
        if weighted {
            x.weights = Some(weights(n));
        }
        // Batch normalisation's moving statistics move in both forward passes: from the same start.
        let before: Vec<Tensor> = fixed.iter().map(|t| t.copy()).collect();
        let (want_loss, want) = autograd(&case, &x);
        let moved: Vec<Vec<f32>> = fixed.iter().map(|t| values(t)).collect();
        for (t, b) in fixed.iter().zip(&before) {
            tch::no_grad(|| t.shallow_clone().copy_(b));
        }
        let mut taps = Vec::new();
        let got_loss = direct.step(&case.model, &x, STEP, SEED, Some(&mut taps)).unwrap();
        for (t, want) in fixed.iter().zip(&moved) {
            assert_eq!(&values(t), want, "a moving statistic moved elsewhere, batch of {n}");
        }
        assert!(
            (got_loss - want_loss).abs() <= 1e-6 * want_loss.abs().max(1.0),
            "loss {got_loss} against autograd's {want_loss}, batch of {n}"
        );
        let hidden = case.model.dnn().map_or(0, |d| d.spec.hidden_units.len());
        assert_eq!(taps.len(), hidden);
        assert!(taps.iter().all(|t| t.size()[0] == n));
        assert_eq!(direct.grads().len(), want.len());
        for (g, (got, want)) in direct.grads().iter().map(values).zip(&want).enumerate() {
            assert_eq!(got.len(), want.len());
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "all gradients are zero");
            for (i, (a, b)) in got.iter().zip(want).enumerate() {
                assert!(
                    (a - b).abs() <= 2e-6 * scale.max(1.0) + 1e-5 * b.abs(),
                    "group {g}, element {i}: {a} against autograd's {b} (largest {scale}), batch of {n}"
                );
            }
        }
    }
}

#[test]
fn multi_class_gradients_match_autograd_for_every_activation() {
    for activation in ["relu", "relu6", "elu", "selu", "gelu", "tanh", "sigmoid", "swish", "leaky_relu", "linear"] {
        let model = format!(
            "model dnn_classifier {{ hidden_units = [16, 8], n_classes = 3, activation = {activation}, \
             inputs = [bill_length_mm, bill_depth_mm, island_indicator, flipper_length_mm] }}"
        );
        assert_same_step(&penguins("species, label_vocabulary = [\"Adelie\", \"Chinstrap\", \"Gentoo\"]", &model));
    }
}

#[test]
fn weighted_losses_and_gradients_match_autograd_for_every_head() {
    let species = "species, label_vocabulary = [\"Adelie\", \"Chinstrap\", \"Gentoo\"]";
    assert_same_weighted_step(&penguins(
        species,
        "model dnn_classifier { hidden_units = [16, 8], n_classes = 3, dropout = 0.2, \
         inputs = [bill_length_mm, island_embedding, island_indicator, flipper_length_mm] }",
    ));
    assert_same_weighted_step(&penguins(
        "sex, label_vocabulary = [\"female\", \"male\"]",
        "model dnn_classifier { hidden_units = [12], inputs = [bill_depth_mm, body_mass_g, island_indicator] }",
    ));
    assert_same_weighted_step(&penguins(
        "body_mass_g",
        "model dnn_regressor { hidden_units = [12, 6], inputs = [flipper_length_mm, bill_depth_mm] }",
    ));
    // The linear part's gradients, and a wide and deep model's both biases.
    let inputs = "inputs = [bill_depth_mm, island, island_x_sex, flipper_buckets, sex_indicator, island_embedding]";
    assert_same_weighted_step(&linear(species, &format!("model linear_classifier {{ n_classes = 3, {inputs} }}")));
    assert_same_weighted_step(&linear("body_mass_g", &format!("model linear_regressor {{ {inputs} }}")));
    assert_same_weighted_step(&wide_and_deep());
}

#[test]
fn dropout_draws_autograds_masks() {
    for activation in ["relu", "tanh", "gelu"] {
        let model = format!(
            "model dnn_classifier {{ hidden_units = [32, 16, 8], n_classes = 3, activation = {activation}, \
             dropout = 0.3, inputs = [bill_length_mm, bill_depth_mm, flipper_length_mm] }}"
        );
        assert_same_step(&penguins("species, label_vocabulary = [\"Adelie\", \"Chinstrap\", \"Gentoo\"]", &model));
    }
}

#[test]
fn batch_normalisation_gradients_and_statistics_match_autograd() {
    for extra in ["", ", dropout = 0.2", ", activation = swish"] {
        let model = format!(
            "model dnn_classifier {{ hidden_units = [16, 8], n_classes = 3, batch_norm = true {extra}, \
             inputs = [bill_length_mm, island_embedding, flipper_length_mm] }}"
        );
        assert_same_step(&penguins("species, label_vocabulary = [\"Adelie\", \"Chinstrap\", \"Gentoo\"]", &model));
    }
}

#[test]
fn binary_and_regression_gradients_match_autograd() {
    assert_same_step(&penguins(
        "sex, label_vocabulary = [\"female\", \"male\"]",
        "model dnn_classifier { hidden_units = [12], inputs = [bill_depth_mm, body_mass_g, island_indicator] }",
    ));
    assert_same_step(&penguins(
        "body_mass_g",
        "model dnn_regressor { hidden_units = [12, 6], inputs = [flipper_length_mm, bill_depth_mm] }",
    ));
}

/// A table with a numeric column, a multivalent tag column (some rows without tags) and a
/// two-valued one, in a temporary folder, and a DNN over their embeddings combined by `combiner`.
fn tagged(dir: &std::path::Path, combiner: &str) -> String {
    let tags = ["a", "b|c", "NA", "d|a|a", "c", "b|d|c|a"];
    let mut csv = String::from("x,tags,kind,label\n");
    for i in 0..200 {
        let kind = if i % 3 == 0 { "p" } else { "q" };
        csv += &format!("{},{},{kind},{}\n", (i as f32 * 0.37).sin(), tags[i % tags.len()], (i * 7) % 3);
    }
    let path = dir.join("t.csv");
    std::fs::write(&path, csv).unwrap();
    format!(
        "pipeline t {{
  data {{ train = \"{}\", label = label, missing = \"NA\" }}
  features {{
    numeric x
    categorical tags {{ vocabulary = [\"a\", \"b\", \"c\", \"d\"], separator = \"|\" }}
    categorical kind {{ vocabulary = [\"p\", \"q\"] }}
    embedding tags_embedding = tags {{ dimension = 3, combiner = {combiner} }}
    embedding kind_embedding = kind {{ dimension = 2, combiner = {combiner} }}
  }}
  model dnn_classifier {{ hidden_units = [8, 4], n_classes = 3, inputs = [tags_embedding, x, kind_embedding] }}
  optimizer adagrad {{ learning_rate = 0.05 }}
  train {{ batch_size = 64, steps = 10 }}
}}
",
        path.display()
    )
}

#[test]
fn embedding_gradients_match_autograd_for_every_combiner() {
    let tmp = tempfile::tempdir().unwrap();
    for combiner in ["sum", "mean", "sqrtn"] {
        assert_same_step(&tagged(tmp.path(), combiner));
    }
    // And beside numeric columns and an indicator, as the penguins pipeline has them.
    assert_same_step(&penguins(
        "species, label_vocabulary = [\"Adelie\", \"Chinstrap\", \"Gentoo\"]",
        "model dnn_classifier { hidden_units = [8], n_classes = 3, \
         inputs = [bill_length_mm, island_embedding, island_indicator, body_mass_g] }",
    ));
}

/// The shipped wide & deep pipeline, every kind of column in it, with an embedding and more
/// columns in the linear part.
fn wide_and_deep() -> String {
    std::fs::read_to_string(root().join("pipelines/penguins.est"))
        .unwrap()
        .replace("\"data/", &format!("\"{}/", root().join("pipelines/data")))
        .replace("batch_size = 32", "batch_size = 48")
        .replace("linear_inputs = [island,", "linear_inputs = [island_embedding, island,")
        .replace("flipper_buckets, island_x_sex]", "flipper_buckets, island_x_sex, bill_depth_mm, sex_indicator]")
}

/// A linear model over every kind of column, predicting `label` with `model`.
fn linear(label: &str, model: &str) -> String {
    format!(
        "pipeline lin {{
  data {{ train = \"{}\", label = {label}, missing = \"NA\", bad_rows = skip }}
  features {{
    numeric bill_depth_mm {{ normalize = zscore }}
    numeric flipper_length_mm {{ normalize = zscore }}
    categorical island {{ vocabulary = [\"Biscoe\", \"Dream\", \"Torgersen\"] }}
    categorical sex {{ vocabulary = [\"female\", \"male\"], oov_buckets = 1 }}
    bucketized flipper_buckets = flipper_length_mm {{ boundaries = [190, 200, 210, 220] }}
    crossed island_x_sex = [island, sex] {{ hash_buckets = 16 }}
    indicator sex_indicator = sex
    embedding island_embedding = island {{ dimension = 2, combiner = sqrtn }}
  }}
  {model}
  optimizer ftrl {{ learning_rate = 0.1 }}
  train {{ batch_size = 48, steps = 10 }}
}}
",
        data("penguins_train.csv")
    )
}

#[test]
fn wide_and_deep_and_linear_gradients_match_autograd() {
    assert_same_step(&wide_and_deep());
    let inputs = "inputs = [bill_depth_mm, island, island_x_sex, flipper_buckets, sex_indicator, island_embedding]";
    assert_same_step(&linear(
        "species, label_vocabulary = [\"Adelie\", \"Chinstrap\", \"Gentoo\"]",
        &format!("model linear_classifier {{ n_classes = 3, {inputs} }}"),
    ));
    assert_same_step(&linear("body_mass_g", &format!("model linear_regressor {{ {inputs} }}")));
}
