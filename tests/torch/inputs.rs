//! Training from data as people have it: Parquet written by pyarrow, gzip parts through a glob,
//! and a corrupt part, through the real binaries.

use std::process::Command;

use crate::common::project;
use crate::training::{est, ok, text};

/// `step = N, loss = X` lines of a run that succeeded, without the rate.
fn losses(out: &std::process::Output) -> Vec<String> {
    ok(out);
    crate::training::losses(&text(&out.stderr))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

const EDITS: [(&str, &str); 3] = [
    ("steps      = 1000", "steps      = 60"),
    ("log_every = 100", "log_every = 10"),
    ("every = 500 steps", "every = 30 steps"),
];

/// Penguins trained from pyarrow's Parquet file and from gzip parts of the CSV take the steps,
/// and reach the metrics, that the plain CSV does: the same rows, statistics and ids.
#[test]
fn penguins_train_the_same_from_parquet_and_from_gzip_parts() {
    let Ok(python) = std::env::var("EST_PYTHON") else {
        eprintln!("EST_PYTHON is not set: no pyarrow to write Parquet with");
        return;
    };
    let plain = project("penguins.est", &EDITS);
    let reference = losses(&est(plain.path(), &["train", "penguins.est"]));

    // pandas reads "NA" as a missing value, which pyarrow writes as a null.
    let parquet = project("penguins.est", &EDITS);
    let script = "import sys, pandas, pyarrow, pyarrow.parquet as pq\n\
        df = pandas.read_csv(sys.argv[1], na_values=['NA'], keep_default_na=False)\n\
        pq.write_table(pyarrow.Table.from_pandas(df, preserve_index=False), sys.argv[2], row_group_size=100)\n";
    let data = parquet.path().join("data");
    for split in ["train", "test"] {
        let out = Command::new(&python)
            .args(["-c", script])
            .arg(data.join(format!("penguins_{split}.csv")))
            .arg(data.join(format!("penguins_{split}.parquet")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::remove_file(data.join(format!("penguins_{split}.csv"))).unwrap();
    }
    let text_of = |dir: &std::path::Path| std::fs::read_to_string(dir.join("penguins.est")).unwrap();
    let est_file = text_of(parquet.path()).replace(".csv\"", ".parquet\"");
    std::fs::write(parquet.path().join("penguins.est"), est_file).unwrap();
    let from_parquet = losses(&est(parquet.path(), &["train", "penguins.est"]));
    assert_eq!(from_parquet, reference);
    assert!(reference.len() >= 6, "{reference:?}");

    // The training file as three gzip parts, each with the header.
    let parts = project("penguins.est", &EDITS);
    let data = parts.path().join("data");
    let csv = std::fs::read_to_string(data.join("penguins_train.csv")).unwrap();
    let (header, rows) = csv.split_once('\n').unwrap();
    let rows: Vec<&str> = rows.lines().collect();
    std::fs::create_dir(data.join("train")).unwrap();
    for (k, chunk) in rows.chunks(rows.len().div_ceil(3)).enumerate() {
        let part = format!("{header}\n{}\n", chunk.join("\n"));
        std::fs::write(data.join(format!("train/part-{k}.csv.gz")), gzip(part.as_bytes())).unwrap();
    }
    std::fs::remove_file(data.join("penguins_train.csv")).unwrap();
    let est_file = text_of(parts.path()).replace("\"data/penguins_train.csv\"", "\"data/train/part-*.csv.gz\"");
    std::fs::write(parts.path().join("penguins.est"), est_file).unwrap();
    let (a, b) = (losses(&est(parts.path(), &["train", "penguins.est"])), &reference);
    // Statistics summed part by part may differ in the last bit; the steps agree to rounding.
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        let value = |l: &str| l.rsplit("loss = ").next().unwrap().parse::<f64>().unwrap();
        assert!((value(x) - value(y)).abs() < 1e-4, "{x} against {y}");
    }

    // A part gone bad after the first run: named, exit 1, the model folder as it was.
    let models = parts.path().join("models/penguins");
    let before: Vec<_> = std::fs::read_dir(&models).unwrap().flatten().map(|e| e.file_name()).collect();
    let bad = data.join("train/part-1.csv.gz");
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&bad, bytes).unwrap();
    let out = est(parts.path(), &["train", "penguins.est", "--steps", "10"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("part-1.csv.gz` is not a valid gzip file: it ends before its compressed stream does"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let after: Vec<_> = std::fs::read_dir(&models).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(before, after);
}

/// `est train` caches the parsed training file in `$EST_CACHE/tables`, trains the same from
/// the entry, and `--no-cache` neither reads nor writes it.
#[test]
fn the_parsed_data_cache_trains_the_same_and_no_cache_leaves_it_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut rng = est::rng::Rng::new(4);
    let mut csv = String::from("a,b,c,y\n");
    for _ in 0..50_000 {
        let (a, b, c) = (rng.below(10_000) as f64 / 997.0, rng.below(10_000) as f64 / 991.0, rng.below(50));
        csv += &format!("{a},{b},k{c},{}\n", u64::from(a + b > 10.0));
    }
    assert!(csv.len() > 1 << 20);
    std::fs::write(dir.join("d.csv"), csv).unwrap();
    let pipeline = "pipeline c {
  data { train = \"d.csv\", label = y }
  features { numeric a, numeric b { normalize = zscore }, categorical c { hash_buckets = 64 }, embedding e = c { dimension = 2 } }
  model dnn_classifier { hidden_units = [4], n_classes = 2 }
  train { batch_size = 64, steps = 20, seed = 1 }
  summaries { log_every = 5 }
}
";
    std::fs::write(dir.join("c.est"), pipeline).unwrap();
    let cache = dir.join("cache");
    let run = |model_dir: &str, extra: &[&str]| {
        let out = Command::new(crate::common::est_bin())
            .args(["train", "c.est", "--model-dir", model_dir])
            .args(extra)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env("EST_CACHE", &cache)
            .output()
            .unwrap();
        losses(&out)
    };
    let entries = || std::fs::read_dir(cache.join("tables")).map_or(0, |d| d.count());
    let parsed = run("m1", &["--no-cache"]);
    assert_eq!(entries(), 0);
    assert_eq!(run("m2", &[]), parsed);
    assert_eq!(entries(), 1);
    // The second run reads the entry.
    assert_eq!(run("m3", &[]), parsed);
    assert_eq!(entries(), 1);
    assert!(parsed.len() >= 4, "{parsed:?}");
}
