//! The real `est` binary, run as a user would, with its whole output and exit code checked.

use std::process::{Command, Output};

use crate::common::{compile_text, read, root};

fn est(args: &[&str]) -> Output {
    est_in(root().as_std_path(), args)
}

/// `est ARGS` run in `dir`.
pub fn est_in(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_est"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the est binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn check_prints_one_line_for_a_good_pipeline() {
    let out = est(&["check", "pipelines/iris.est"]);
    let plan = compile_text("pipelines/iris.est", &read("pipelines/iris.est")).unwrap().plan;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!(
            "ok: `pipelines/iris.est` (pipeline `iris`, model {}, optimizer {})\n",
            plan.fingerprint.model, plan.fingerprint.optimizer
        )
    );
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn check_prints_the_rendered_errors_and_fails() {
    let path = "tests/spec/err_unknown_key.est";
    let out = est(&["check", path]);
    let diagnostics = compile_text(path, &read(path)).unwrap_err();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(text(&out.stderr), est::render::render(&diagnostics, path, &read(path), false));
}

#[test]
fn compile_prints_the_plan_as_yaml_and_json() {
    let plan = compile_text("pipelines/penguins.est", &read("pipelines/penguins.est")).unwrap().plan;
    let yaml = est(&["compile", "pipelines/penguins.est"]);
    assert_eq!(yaml.status.code(), Some(0));
    assert_eq!(text(&yaml.stdout), plan.to_yaml());
    let json = est(&["compile", "--json", "pipelines/penguins.est"]);
    assert_eq!(json.status.code(), Some(0));
    let parsed: est::plan::Plan = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed, plan);
}

#[test]
fn plans_read_back_from_their_yaml() {
    for path in [
        "pipelines/iris.est",
        "pipelines/penguins.est",
        "tests/spec/ok_dnn_regressor.est",
        "tests/spec/ok_linear_regressor.est",
    ] {
        let plan = compile_text(path, &read(path)).unwrap().plan;
        let back: est::plan::Plan = serde_yaml::from_str(&plan.to_yaml()).unwrap();
        assert_eq!(back, plan, "{path}");
    }
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = est(&["check", "no/such.est"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "error: cannot read `no/such.est`: No such file or directory (os error 2)\n");
}

#[test]
fn a_file_that_is_not_text_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("binary.est");
    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x01]).unwrap();
    let out = est(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), format!("error: `{}` is not UTF-8 text\n", path.display()));
}

#[test]
fn a_wrong_command_line_exits_with_2() {
    let out = est(&["chekc", "pipelines/iris.est"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unrecognized subcommand 'chekc'"), "{}", text(&out.stderr));
}

#[test]
fn help_lists_the_commands_and_exit_codes() {
    let out = est(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for needle in ["check", "compile", "Exit codes:", "1  the pipeline has errors"] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn colour_is_used_only_when_asked() {
    let path = "tests/spec/err_unknown_key.est";
    let plain = est(&["check", path]);
    assert!(!text(&plain.stderr).contains('\x1b'));
    let coloured = est(&["--color", "always", "check", path]);
    assert!(text(&coloured.stderr).contains('\x1b'));
}

/// `est check` must not load libtorch: that start-up cost belongs to training only.
#[cfg(target_os = "linux")]
#[test]
fn the_est_binary_does_not_link_libtorch() {
    let out = Command::new("ldd").arg(env!("CARGO_BIN_EXE_est")).output().expect("ldd runs");
    let libraries = text(&out.stdout);
    assert!(out.status.success(), "{libraries}");
    assert!(!libraries.contains("torch"), "est links libtorch:\n{libraries}");
}

#[test]
fn diff_compares_two_pipelines_as_the_guard_would() {
    let out = est(&["diff", "pipelines/iris.est", "tests/spec/diff/iris_edited.est"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let mut settings = crate::common::settings();
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!("diff_two_pipelines", report));

    let same = est(&["diff", "pipelines/iris.est", "pipelines/iris.est"]);
    assert_eq!(same.status.code(), Some(0));
    assert_eq!(text(&same.stdout), "`pipelines/iris.est` → `pipelines/iris.est`: no changes\n");
}

/// Checkpoints carry their plan; a plan written before a training setting existed still reads,
/// with that setting's default.
#[test]
fn plans_from_before_a_new_setting_still_read() {
    let plan = compile_text("pipelines/iris.est", &read("pipelines/iris.est")).unwrap().plan;
    let mut json = serde_json::to_value(&plan).unwrap();
    json["train"].as_object_mut().unwrap().remove("threads");
    let back: est::plan::Plan = serde_json::from_value(json).unwrap();
    assert_eq!(back, plan);
}

/// The `est` crate alone is a working `est`: a training command says what to build.
#[test]
fn training_without_est_torch_says_what_to_build() {
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join("est");
    std::fs::copy(env!("CARGO_BIN_EXE_est"), &alone).unwrap();
    let models = dir.path().join("models");
    let out = Command::new(&alone)
        .args(["train", "pipelines/iris.est", "--model-dir", models.to_str().unwrap()])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: training needs `{}`, which is not there: only the `est` crate was built (`cargo build -p est`); \
             build both with `scripts/demo` or `cargo build --release`\n",
            dir.path().join("est-torch").display()
        )
    );
}
