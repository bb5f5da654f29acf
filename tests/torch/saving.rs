//! Saves of big tables copied a chunk between steps (`EST_SAVE_CHUNK` makes these small
//! models' tables big enough): each checkpoint holds exactly the state of the step it was
//! begun at, as a save that copies everything at once does.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use est::checkpoint::format::decode;
use est::checkpoint::HostTensor;

use crate::sparse::{data, pipeline, WIDE_DEEP};
use crate::training::{ok, text};

/// Every checkpoint of a 200-step run that saves every 50 steps, by step, and the run's stderr.
fn checkpoints(dir: &Path, optimizer: &str, chunk: usize) -> (BTreeMap<u64, BTreeMap<String, HostTensor>>, String) {
    let spec =
        pipeline(WIDE_DEEP, optimizer).replace("save_every = 1000 steps", "save_every = 50 steps, keep_max = 10");
    std::fs::write(dir.join("p.est"), spec).unwrap();
    let out = Command::new(crate::common::est_bin())
        .args(["train", "p.est"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("EST_SAVE_CHUNK", chunk.to_string())
        .output()
        .unwrap();
    ok(&out);
    let mut saved = BTreeMap::new();
    for step in [0, 50, 100, 150, 200] {
        let file = dir.join(format!("models/sparse/ckpt-{step}.safetensors"));
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), text(&out.stderr)));
        saved.insert(step, decode(&bytes).unwrap().1);
    }
    std::fs::remove_dir_all(dir.join("models")).unwrap();
    (saved, text(&out.stderr))
}

fn assert_same_state(optimizer: &str) {
    let tmp = tempfile::tempdir().unwrap();
    data(tmp.path());
    let (whole, stderr) = checkpoints(tmp.path(), optimizer, 1 << 30);
    assert!(!stderr.contains("between steps"), "{stderr}");
    // 4 KiB a step finishes a save's copy before the next save; 256 bytes does not, and the
    // next save finishes it.
    for chunk in [4096, 256] {
        let (streamed, stderr) = checkpoints(tmp.path(), optimizer, chunk);
        assert!(stderr.contains("copying tables between steps"), "{stderr}");
        for (step, tensors) in &whole {
            let copied = &streamed[step];
            assert_eq!(copied.keys().collect::<Vec<_>>(), tensors.keys().collect::<Vec<_>>());
            for (name, t) in tensors {
                assert!(copied[name] == *t, "{optimizer}, {chunk}-byte chunks: `{name}` at step {step} differs");
            }
        }
    }
}

#[test]
fn a_save_copied_between_steps_holds_its_steps_state_with_row_updates() {
    assert_same_state("optimizer adagrad { learning_rate = 0.1 }");
}

#[test]
fn a_save_copied_between_steps_holds_its_steps_state_with_dense_updates() {
    assert_same_state("optimizer adam { learning_rate = 0.01 }");
}
