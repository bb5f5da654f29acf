//! What `est export` decides without libtorch: the inputs a model takes and how each is fed,
//! `est featurize`'s ids, and what export refuses. tests/torch/export.rs runs the models.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};

use est::data::hash;
use est::export::{self, signature, ExportError};

use crate::cli::{est_in, text};
use crate::common::{compile_text, read, root, settings};

#[test]
fn penguins_takes_numbers_a_looked_up_string_and_hashed_ids() {
    let plan = compile_text("pipelines/penguins.est", &read("pipelines/penguins.est")).unwrap().plan;
    let inputs = signature::inputs(&plan).unwrap();
    let outputs = signature::outputs(&plan);
    settings().bind(|| {
        insta::assert_yaml_snapshot!("export_penguins_signature", (inputs, outputs));
    });
}

#[test]
fn a_baseline_takes_only_the_row_count() {
    let text = read("pipelines/iris.est").replace(
        "model dnn_classifier {\n    hidden_units = [10, 10]\n    n_classes    = 3\n  }",
        "model baseline_classifier { n_classes = 3 }",
    );
    let plan = compile_text("pipelines/iris.est", &text).unwrap().plan;
    let inputs = signature::inputs(&plan).unwrap();
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0].name, "rows");
    assert!(matches!(inputs[0].feed, signature::Feed::Rows));
}

#[test]
fn a_model_past_two_gib_is_refused_before_a_tensor_is_read() {
    let text = read("pipelines/penguins.est").replace(
        "categorical island { vocabulary = [\"Biscoe\", \"Dream\", \"Torgersen\"] }",
        "categorical island { hash_buckets = 300_000_000 }",
    );
    let plan = compile_text("pipelines/penguins.est", &text).unwrap().plan;
    let entry = est::checkpoint::Entry {
        file: "ckpt-1.safetensors".into(),
        step: 1,
        time: String::new(),
        created: 0.0,
        size: 0,
        sha256: String::new(),
        fingerprint: plan.fingerprint.clone(),
        preserved: false,
    };
    let error = export::export(&plan, &entry, &BTreeMap::new(), None).unwrap_err();
    assert!(matches!(error, ExportError::TooLarge { .. }), "{error}");
    assert!(
        error
            .to_string()
            .ends_with("past protobuf's 2 GiB limit on one ONNX file; est does not write ONNX external data yet"),
        "{error}"
    );
}

const PENGUIN_ROWS: &str = "\
species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year
Adelie,Dream,NA,18,200,3150,NA,2007
Gentoo,Biscoe,42.6,13.7,190,4950,unknown,2008
Chinstrap,Torgersen,49.1,NA,220,NA,male,2009
,Biscoe,39.1,18.7,181,3750,female,2007
";

#[test]
fn featurize_prints_each_rows_ids_unpadded() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = tmp.path().join("rows.csv");
    std::fs::write(&rows, PENGUIN_ROWS).unwrap();
    let out = est_in(root().as_std_path(), &["featurize", "pipelines/penguins.est", "--input", rows.to_str().unwrap()]);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    // Islands are 0..3 in vocabulary order; sex is female 0, male 1, else its one extra bucket, 2.
    let cross = |island: i64, sex: i64| hash::cross(&[island, sex], 16);
    let expected = format!(
        "{{\"sex\":[],\"island_x_sex\":[]}}\n\
         {{\"sex\":[2],\"island_x_sex\":[{}]}}\n\
         {{\"sex\":[1],\"island_x_sex\":[{}]}}\n\
         {{\"sex\":[0],\"island_x_sex\":[{}]}}\n",
        cross(0, 2),
        cross(2, 1),
        cross(0, 0)
    );
    assert_eq!(text(&out.stdout), expected);
}

#[test]
fn featurize_names_a_bad_field_by_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = tmp.path().join("rows.csv");
    std::fs::write(&rows, PENGUIN_ROWS.replace("Dream,NA,18", "Dream,NA,eighteen")).unwrap();
    let out = est_in(root().as_std_path(), &["featurize", "pipelines/penguins.est", "--input", rows.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        format!("error: {}:2:17: `bill_depth_mm` must be a number, found `eighteen`\n", rows.display())
    );
}

#[test]
fn featurize_stops_quietly_when_its_reader_does() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = tmp.path().join("rows.csv");
    let body: String = PENGUIN_ROWS.lines().skip(1).cycle().take(200_000).map(|l| format!("{l}\n")).collect();
    std::fs::write(&rows, format!("{}\n{body}", PENGUIN_ROWS.lines().next().unwrap())).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_est"))
        .args(["featurize", "pipelines/penguins.est", "--input", rows.to_str().unwrap()])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn export_without_a_checkpoint_says_to_train_first() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("iris.est"),
        read("pipelines/iris.est").replace("data/", &format!("{}/pipelines/data/", root())),
    )
    .unwrap();
    let out = est_in(tmp.path(), &["export", "iris.est"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "error: `models/iris` holds no checkpoint to export: train first (`est train iris.est`)\n"
    );
}

#[test]
fn readme_gives_the_hash_featurize_uses_and_documents_the_commands() {
    let readme = read("README.md");
    assert!(
        readme.contains(&format!("```python\n{}```", export::HASH_PYTHON)),
        "README's hash differs from the export's"
    );
    assert!(readme.contains("\n## Serving a model\n"));
    for command in [
        "`est export FILE [--model-dir DIR] [--checkpoint latest\\|best\\|STEP] [--out DIR]`",
        "`est featurize FILE [--input CSV]`",
    ] {
        assert!(readme.contains(command), "README's command table lacks {command}");
    }
}
