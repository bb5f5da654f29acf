//! Updates of the touched rows of embedding tables and of linear weights looked up by id: bit
//! for bit the dense update for Adagrad, FTRL and plain SGD over 200 steps; `lazy = true`
//! leaves the rows a batch did not touch alone, for any optimizer.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use est::checkpoint::format::decode;
use est::checkpoint::HostTensor;

use crate::training::{ok, text};

/// A CSV of 3,000 rows: a number, a category of 2,000 values hashed into 5,000 buckets, and a
/// label that depends on both; a batch of 32 touches a few dozen rows of each table.
pub fn data(dir: &Path) {
    let mut rng = est::rng::Rng::new(9);
    let mut csv = String::from("x,c,y\n");
    for _ in 0..3_000 {
        let x = rng.below(1000) as f64 / 100.0 - 5.0;
        let c = rng.below(2_000);
        let y = u64::from(x + (c % 7) as f64 > 1.0);
        csv += &format!("{x},v{c},{y}\n");
    }
    std::fs::write(dir.join("d.csv"), csv).unwrap();
}

pub fn pipeline(model: &str, optimizer: &str) -> String {
    format!(
        "pipeline sparse {{
  data {{ train = \"d.csv\", label = y }}
  features {{
    numeric x
    categorical c {{ hash_buckets = 5000 }}
    embedding ce = c {{ dimension = 4 }}
  }}
  {model}
  {optimizer}
  train {{ batch_size = 32, steps = 200, seed = 3 }}
  checkpoint {{ save_every = 1000 steps }}
}}
"
    )
}

/// Trains `pipeline` in a folder of its own; `dense` updates every row of every table.
fn train(pipeline: &str, dense: bool) -> BTreeMap<String, HostTensor> {
    let tmp = tempfile::tempdir().unwrap();
    data(tmp.path());
    std::fs::write(tmp.path().join("p.est"), pipeline).unwrap();
    let out = Command::new(crate::common::est_bin())
        .args(["train", "p.est"])
        .current_dir(tmp.path())
        .env("NO_COLOR", "1")
        .env("EST_DENSE_UPDATES", if dense { "1" } else { "0" })
        .output()
        .unwrap();
    ok(&out);
    let file = tmp.path().join("models/sparse/ckpt-200.safetensors");
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), text(&out.stderr)));
    decode(&bytes).unwrap().1
}

const DNN: &str = "model dnn_classifier { hidden_units = [8], n_classes = 2 }";
const LINEAR: &str = "model linear_classifier { n_classes = 2 }";
pub const WIDE_DEEP: &str = "model dnn_linear_combined_classifier {
    linear_inputs = [c]
    dnn_inputs = [x, ce]
    hidden_units = [8]
    n_classes = 2
  }";

fn assert_bit_for_bit(model: &str, optimizer: &str) {
    let text = pipeline(model, optimizer);
    let (rows, dense) = (train(&text, false), train(&text, true));
    assert_eq!(rows.keys().collect::<Vec<_>>(), dense.keys().collect::<Vec<_>>());
    for (name, t) in &rows {
        assert!(t.bytes == dense[name].bytes, "{optimizer}: `{name}` differs from the dense update");
    }
}

#[test]
fn adagrad_updates_of_touched_rows_are_the_dense_update_bit_for_bit() {
    assert_bit_for_bit(DNN, "optimizer adagrad { learning_rate = 0.1 }");
    assert_bit_for_bit(
        WIDE_DEEP,
        "dnn_optimizer adagrad { learning_rate = 0.1 }\n  linear_optimizer adagrad { learning_rate = 0.1 }",
    );
}

#[test]
fn ftrl_and_plain_sgd_updates_of_touched_rows_are_the_dense_update_bit_for_bit() {
    assert_bit_for_bit(LINEAR, "optimizer ftrl { learning_rate = 0.1, l1 = 0.001, l2 = 0.01 }");
    assert_bit_for_bit(DNN, "optimizer ftrl { learning_rate = 0.1 }");
    assert_bit_for_bit(DNN, "optimizer sgd { learning_rate = 0.1 }");
    assert_bit_for_bit(
        WIDE_DEEP,
        "dnn_optimizer sgd { learning_rate = 0.05 }\n  linear_optimizer ftrl { learning_rate = 0.1 }",
    );
}

/// The rows of `name` that differ between two checkpoints' tensors.
fn rows_differing(a: &HostTensor, b: &HostTensor) -> usize {
    let width = a.shape[1] * 4;
    a.bytes.chunks(width).zip(b.bytes.chunks(width)).filter(|(x, y)| x != y).count()
}

#[test]
fn lazy_adam_leaves_untouched_rows_alone_where_dense_adam_moves_them() {
    let table = "dnn/input_from_feature_columns/input_layer/ce/embedding_weights";
    let dense = train(&pipeline(DNN, "optimizer adam { learning_rate = 0.01 }"), false);
    let lazy = train(&pipeline(DNN, "optimizer adam { learning_rate = 0.01, lazy = true }"), false);
    // Without `lazy`, Adam's update is dense with or without the row updates.
    let forced = train(&pipeline(DNN, "optimizer adam { learning_rate = 0.01 }"), true);
    assert!(dense[table].bytes == forced[table].bytes);
    // Lazy and dense Adam part: a row touched early keeps moving under dense Adam's momentum.
    assert!(rows_differing(&dense[table], &lazy[table]) > 100, "{}", rows_differing(&dense[table], &lazy[table]));
    // The step count, the slots and every tensor are still there to resume from.
    assert_eq!(dense.keys().collect::<Vec<_>>(), lazy.keys().collect::<Vec<_>>());
}
