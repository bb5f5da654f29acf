//! Data as people have it: gzip and zstd CSV, many parts through a glob or a list, Parquet
//! files (written here by the parquet crate's Arrow writer), and what each does wrong.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, Float32Array, Int64Array, RecordBatch, StringArray};
use est::data::{self, DataError, Labels, Purpose, Table};
use est::pipeline::Files;

use crate::cli::{est_in, text};
use crate::common::compile_text;

const FEATURES: &str = "numeric x { default = -1 }, numeric z, categorical c { hash_buckets = 97 }, categorical v { vocabulary = [\"red\", \"green\", \"blue\"] }, crossed cv = [c, v] { hash_buckets = 50 }";

/// Rows of a seeded file: `x` with missing values, `z`, a hashed `c`, a vocabulary `v` with
/// missing values, and a class label.
struct Rows {
    x: Vec<Option<f32>>,
    z: Vec<f32>,
    c: Vec<String>,
    v: Vec<Option<&'static str>>,
    y: Vec<i64>,
}

fn rows(n: usize, seed: u64) -> Rows {
    let mut rng = est::rng::Rng::new(seed);
    let colours = ["red", "green", "blue"];
    let mut r = Rows { x: vec![], z: vec![], c: vec![], v: vec![], y: vec![] };
    for _ in 0..n {
        let x = (rng.below(20000) as f32 - 10000.0) / 64.0;
        r.x.push((rng.below(10) != 0).then_some(x));
        r.z.push(rng.below(1000) as f32 / 8.0);
        r.c.push(format!("{:x}", rng.below(5000) * 7919));
        r.v.push((rng.below(7) != 0).then(|| colours[rng.below(3) as usize]));
        r.y.push(rng.below(3) as i64);
    }
    r
}

impl Rows {
    fn csv(&self, range: std::ops::Range<usize>) -> String {
        let mut out = String::from("x,z,c,v,y\n");
        for i in range {
            let x = self.x[i].map_or("NA".to_string(), |x| x.to_string());
            out += &format!("{x},{},{},{},{}\n", self.z[i], self.c[i], self.v[i].unwrap_or("NA"), self.y[i]);
        }
        out
    }

    /// The rows as a Parquet file with row groups of `group` rows; `v` dictionary-encoded.
    fn parquet(&self, path: &Path, group: usize) {
        let x: ArrayRef = Arc::new(Float32Array::from(self.x.clone()));
        let z: ArrayRef = Arc::new(Float32Array::from(self.z.clone()));
        let c: ArrayRef = Arc::new(StringArray::from(self.c.clone()));
        let v: ArrayRef = Arc::new(self.v.iter().copied().collect::<DictionaryArray<Int32Type>>());
        let y: ArrayRef = Arc::new(Int64Array::from(self.y.clone()));
        let batch = RecordBatch::try_from_iter([("x", x), ("z", z), ("c", c), ("v", v), ("y", y)]).unwrap();
        write_parquet(path, &batch, group);
    }
}

fn write_parquet(path: &Path, batch: &RecordBatch, group: usize) {
    let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(group)).build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

fn gzip(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

fn zstd(text: &str) -> Vec<u8> {
    zstd::encode_all(text.as_bytes(), 3).unwrap()
}

/// Writes `p.est` in `dir`, whose training input is `train` (a string or a list, as written).
fn write_pipeline(dir: &Path, train: &str, features: &str) -> String {
    let text = format!(
        "pipeline p {{\n  data {{\n    train = {train}\n    label = y\n    missing = \"NA\"\n  }}\n  features {{ {features} }}\n  model linear_classifier {{ n_classes = 3 }}\n}}\n"
    );
    std::fs::write(dir.join("p.est"), &text).unwrap();
    text
}

/// The pipeline `write_pipeline` writes, checked.
fn pipeline(dir: &Path, train: &str, features: &str) -> est::Compiled {
    let text = write_pipeline(dir, train, features);
    compile_text(dir.join("p.est").to_str().unwrap(), &text).unwrap_or_else(|d| panic!("{d:?}"))
}

fn load(dir: &Path, train: &str) -> Result<Table, DataError> {
    let plan = pipeline(dir, train, FEATURES).plan;
    data::load(&plan, &plan.data.train, Purpose::Labelled)
}

/// Reads `train` with a plan checked against a good file: what the reader says of a file that
/// went bad after `est check` passed.
fn load_unchecked(dir: &Path, train: &str) -> Result<Table, DataError> {
    std::fs::write(dir.join("good.csv"), rows(10, 0).csv(0..10)).unwrap();
    let plan = pipeline(dir, "\"good.csv\"", FEATURES).plan;
    let entries =
        if train.starts_with('[') { train.trim_matches(['[', ']']).split(", ").collect() } else { vec![train] };
    let files = Files(
        entries
            .into_iter()
            .map(|e| camino::Utf8PathBuf::from_path_buf(dir.join(e.trim_matches('"'))).unwrap())
            .collect(),
    );
    data::load(&plan, &files, Purpose::Labelled)
}

/// Two tables hold the same rows, bit for bit; their statistics agree to rounding when they
/// were summed in other groupings (`exact` otherwise).
fn assert_same(a: &Table, b: &Table, exact: bool) {
    assert_eq!(a.rows, b.rows);
    let bits = |t: &Table| t.numeric.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(a), bits(b));
    for (p, q) in a.numeric.columns.iter().zip(&b.numeric.columns) {
        let (s, t) = (p.stats, q.stats);
        assert_eq!((&p.name, s.count, s.min, s.max), (&q.name, t.count, t.min, t.max));
        if exact {
            assert_eq!(s, t, "{}", p.name);
        } else {
            assert!((s.mean - t.mean).abs() <= 1e-12 * s.mean.abs().max(1.0), "{}: {s:?} {t:?}", p.name);
            assert!((s.std - t.std).abs() <= 1e-9 * s.std.max(1.0), "{}: {s:?} {t:?}", p.name);
        }
    }
    assert_eq!(a.ids.keys().collect::<Vec<_>>(), b.ids.keys().collect::<Vec<_>>());
    for (name, column) in &a.ids {
        assert_eq!((column.width, &column.ids), (b.ids[name].width, &b.ids[name].ids), "{name}");
    }
    let classes = |t: &Table| match &t.labels {
        Some(Labels::Classes(c)) => c.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(classes(a), classes(b));
}

#[test]
fn gzip_and_zstd_files_read_as_the_plain_file_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let r = rows(20_000, 1);
    let csv = r.csv(0..20_000);
    std::fs::write(tmp.path().join("d.csv"), &csv).unwrap();
    std::fs::write(tmp.path().join("d.csv.gz"), gzip(&csv)).unwrap();
    std::fs::write(tmp.path().join("d.csv.zst"), zstd(&csv)).unwrap();
    let plain = load(tmp.path(), "\"d.csv\"").unwrap();
    assert_eq!(plain.rows, 20_000);
    assert_same(&plain, &load(tmp.path(), "\"d.csv.gz\"").unwrap(), true);
    assert_same(&plain, &load(tmp.path(), "\"d.csv.zst\"").unwrap(), true);
    // A file with quotes goes the careful way, compressed or not.
    let quoted = csv.replacen("\nNA,", "\n\"NA\",", 1);
    std::fs::write(tmp.path().join("q.csv"), &quoted).unwrap();
    std::fs::write(tmp.path().join("q.csv.gz"), gzip(&quoted)).unwrap();
    assert_same(&load(tmp.path(), "\"q.csv\"").unwrap(), &load(tmp.path(), "\"q.csv.gz\"").unwrap(), true);
}

#[test]
fn parts_through_a_glob_or_a_list_read_as_one_file() {
    let tmp = tempfile::tempdir().unwrap();
    let r = rows(30_000, 2);
    std::fs::write(tmp.path().join("all.csv"), r.csv(0..30_000)).unwrap();
    std::fs::create_dir(tmp.path().join("parts")).unwrap();
    let cuts = [0, 7_000, 19_000, 30_000];
    for (k, w) in cuts.windows(2).enumerate() {
        let part = r.csv(w[0]..w[1]);
        // Name order, not creation order, is read order.
        let name = format!("parts/part-{k:03}.csv.gz");
        std::fs::write(tmp.path().join(name), gzip(&part)).unwrap();
    }
    let whole = load(tmp.path(), "\"all.csv\"").unwrap();
    assert_same(&whole, &load(tmp.path(), "\"parts/part-*.csv.gz\"").unwrap(), false);
    // A list mixes plain paths, globs and formats.
    std::fs::write(tmp.path().join("first.csv.zst"), zstd(&r.csv(0..7_000))).unwrap();
    let list = "[\"first.csv.zst\", \"parts/part-00[12].csv.gz\"]";
    assert_same(&whole, &load(tmp.path(), list).unwrap(), false);
}

#[test]
fn parquet_reads_as_the_csv_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let r = rows(25_000, 3);
    std::fs::write(tmp.path().join("d.csv"), r.csv(0..25_000)).unwrap();
    // Several row groups, read by several threads.
    r.parquet(&tmp.path().join("d.parquet"), 4_096);
    let csv = load(tmp.path(), "\"d.csv\"").unwrap();
    assert_same(&csv, &load(tmp.path(), "\"d.parquet\"").unwrap(), true);
    // Parquet parts and CSV parts of one input.
    let (a, b) = (
        Rows {
            x: r.x[..9_000].to_vec(),
            z: r.z[..9_000].to_vec(),
            c: r.c[..9_000].to_vec(),
            v: r.v[..9_000].to_vec(),
            y: r.y[..9_000].to_vec(),
        },
        r.csv(9_000..25_000),
    );
    a.parquet(&tmp.path().join("a.parquet"), 100_000);
    std::fs::write(tmp.path().join("b.csv"), b).unwrap();
    assert_same(&csv, &load(tmp.path(), "[\"a.parquet\", \"b.csv\"]").unwrap(), false);
}

#[test]
fn parquet_nulls_without_a_default_and_bad_values_name_the_row_group_and_row() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = rows(1_000, 4);
    r.x = (0..1_000).map(|i| Some(i as f32)).collect();
    r.z[0] = 1.0;
    r.parquet(&tmp.path().join("d.parquet"), 300);
    // `z` has no default: a null in it is named, in row group 2 (rows 601..900).
    let z: Vec<Option<f32>> = (0..1_000).map(|i| (i != 700).then_some(1.0)).collect();
    let batch = RecordBatch::try_from_iter([
        ("x", Arc::new(Float32Array::from(r.x.clone())) as ArrayRef),
        ("z", Arc::new(Float32Array::from(z)) as ArrayRef),
        ("c", Arc::new(StringArray::from(r.c.clone())) as ArrayRef),
        ("v", Arc::new(StringArray::from(r.v.clone())) as ArrayRef),
        ("y", Arc::new(Int64Array::from(r.y.clone())) as ArrayRef),
    ])
    .unwrap();
    write_parquet(&tmp.path().join("null.parquet"), &batch, 300);
    let e = load_unchecked(tmp.path(), "\"null.parquet\"").unwrap_err().to_string();
    assert!(e.ends_with("null.parquet`, row group 2, row 701: `z` is missing and column `z` has no `default`"), "{e}");
    // A class id out of range, and a value not in the vocabulary.
    let mut y = r.y.clone();
    y[5] = 3;
    let bad = RecordBatch::try_from_iter([
        ("x", Arc::new(Float32Array::from(r.x.clone())) as ArrayRef),
        ("z", Arc::new(Float32Array::from(r.z.clone())) as ArrayRef),
        ("c", Arc::new(StringArray::from(r.c.clone())) as ArrayRef),
        (
            "v",
            Arc::new(StringArray::from(
                vec!["red"; 1_000]
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| if i == 2 { "bleu" } else { s })
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        ("y", Arc::new(Int64Array::from(y)) as ArrayRef),
    ])
    .unwrap();
    write_parquet(&tmp.path().join("bad.parquet"), &bad, 300);
    let e = load_unchecked(tmp.path(), "\"bad.parquet\"").unwrap_err().to_string();
    assert!(e.ends_with("bad.parquet`, row group 0, row 3: column `v`: `bleu` is not in the vocabulary and there are no `oov_buckets`; did you mean `blue`?"), "{e}");
}

#[test]
fn bad_files_are_named_with_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let r = rows(5_000, 5);
    let csv = r.csv(0..5_000);
    let message = |train: &str| load_unchecked(dir, train).unwrap_err().to_string();

    // A corrupt gzip stream, and a cut one.
    let mut gz = gzip(&csv);
    let middle = gz.len() / 2;
    for b in &mut gz[middle..middle + 64] {
        *b = !*b;
    }
    std::fs::write(dir.join("corrupt.csv.gz"), &gz).unwrap();
    let e = message("\"corrupt.csv.gz\"");
    assert!(e.contains("corrupt.csv.gz` is not a valid gzip file: ") && e.contains("(after line "), "{e}");
    let cut = gzip(&csv);
    std::fs::write(dir.join("cut.csv.zst"), &zstd(&csv)[..zstd(&csv).len() / 2]).unwrap();
    std::fs::write(dir.join("cut.csv.gz"), &cut[..cut.len() / 2]).unwrap();
    let e = message("\"cut.csv.gz\"");
    assert!(e.contains("cut.csv.gz` is not a valid gzip file: it ends before its compressed stream does"), "{e}");
    let e = message("\"cut.csv.zst\"");
    assert!(e.contains("cut.csv.zst` is not a valid zstd file: "), "{e}");

    // A truncated Parquet file, and a text file named like one.
    r.parquet(&dir.join("whole.parquet"), 1_000);
    let bytes = std::fs::read(dir.join("whole.parquet")).unwrap();
    std::fs::write(dir.join("truncated.parquet"), &bytes[..bytes.len() - 100]).unwrap();
    std::fs::write(dir.join("text.parquet"), &csv).unwrap();
    for name in ["truncated.parquet", "text.parquet"] {
        let e = message(&format!("\"{name}\""));
        assert!(e.contains(&format!("{name}`: ")), "{e}");
    }
    // Pages cut inside row group 0: the footer is fine, the data is not.
    let mut damaged = bytes.clone();
    for b in &mut damaged[8..400] {
        *b = 0xff;
    }
    std::fs::write(dir.join("damaged.parquet"), &damaged).unwrap();
    let e = message("\"damaged.parquet\"");
    assert!(e.contains("damaged.parquet`, row group 0: "), "{e}");

    // A glob that matches nothing; parts whose headers disagree.
    assert!(message("\"none-*.csv\"").ends_with("none-*.csv`"), "{}", message("\"none-*.csv\""));
    std::fs::write(dir.join("p1.csv"), &csv).unwrap();
    std::fs::write(dir.join("p2.csv"), csv.replacen("x,z,c,v,y", "x,z,c,colour,y", 1)).unwrap();
    let e = message("\"p*.csv\"");
    assert!(
        e.contains("p2.csv` has other columns than `")
            && e.ends_with("p1.csv`, the first file of the same input: it lacks `v` and has `colour`"),
        "{e}"
    );
}

#[test]
fn a_parquet_column_of_the_wrong_type_is_named_with_both_types() {
    let tmp = tempfile::tempdir().unwrap();
    let r = rows(100, 6);
    let z: Vec<String> = r.z.iter().map(|z| z.to_string()).collect();
    let batch = RecordBatch::try_from_iter([
        ("x", Arc::new(Float32Array::from(r.x.clone())) as ArrayRef),
        ("z", Arc::new(StringArray::from(z)) as ArrayRef),
        ("c", Arc::new(StringArray::from(r.c.clone())) as ArrayRef),
        ("v", Arc::new(StringArray::from(r.v.clone())) as ArrayRef),
        ("y", Arc::new(Int64Array::from(r.y.clone())) as ArrayRef),
    ])
    .unwrap();
    write_parquet(&tmp.path().join("d.parquet"), &batch, 1_000);
    let err = load_unchecked(tmp.path(), "\"d.parquet\"").unwrap_err().to_string();
    assert!(err.ends_with("d.parquet`: column `z` is Utf8, which numeric column `z` cannot read; it needs a floating-point or integer column"), "{err}");
}

/// `est check` reads Parquet schemas as it reads CSV headers.
#[test]
fn check_reads_parquet_schemas_and_globs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    rows(100, 7).parquet(&dir.join("d.parquet"), 1_000);
    pipeline(dir, "\"d.parquet\"", FEATURES);
    let out = est_in(dir, &["check", "p.est"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let typo = FEATURES.replace("numeric z", "numeric zz = \"zed\"");
    write_pipeline(dir, "\"d.parquet\"", &typo);
    let out = est_in(dir, &["check", "p.est"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("column `zed` is not in the header of `") && err.contains("d.parquet`"), "{err}");

    let wrong = FEATURES.replace("categorical v {", "categorical v = \"z\" { identity = 4 }, categorical w = \"v\" {");
    write_pipeline(dir, "\"d.parquet\"", &wrong.replace(", crossed cv = [c, v]", ", crossed cv = [c, w]"));
    let out = est_in(dir, &["check", "p.est"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("error: column `z` of `") && err.contains("d.parquet` is Float32, which categorical column `v` cannot read; it needs an integer column (or strings of integers)"),
        "{err}"
    );
    assert!(err.contains("p.est:7:106"), "{err}");

    write_pipeline(dir, "[\"d.parquet\", \"more/*.parquet\"]", FEATURES);
    let out = est_in(dir, &["check", "p.est"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("error: no data file matches `") && err.contains("more/*.parquet`"), "{err}");
}

/// The parsed-data cache gives back the parsed table, bit for bit; a damaged entry, a changed
/// file or other reading settings mean parsing again; the size limit holds.
#[test]
fn the_cache_returns_the_parsed_table_and_parses_again_when_in_doubt() {
    use est::data::cache::Cache;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let csv = rows(60_000, 8).csv(0..60_000);
    assert!(csv.len() > 1 << 20);
    std::fs::write(dir.join("d.csv"), &csv).unwrap();
    let plan = pipeline(dir, "\"d.csv\"", FEATURES).plan;
    let path = camino::Utf8PathBuf::from_path_buf(dir.join("d.csv")).unwrap();
    let cache = Cache { dir: camino::Utf8PathBuf::from_path_buf(dir.join("cache")).unwrap(), limit: 1 << 30 };
    let load =
        |plan: &est::plan::Plan, cache: &Cache| data::load_cached(plan, &path, Purpose::Labelled, Some(cache)).unwrap();
    let entries = |cache: &Cache| std::fs::read_dir(&cache.dir).map_or(0, |d| d.count());

    let parsed = load(&plan, &cache);
    let entry = cache.entry(&plan, &path, Purpose::Labelled).unwrap();
    let cached = entry.read().expect("the first load wrote an entry");
    assert_same(&parsed, &cached, true);
    // The ids are mapped from the entry, not copied.
    assert!(!cached.ids.is_empty() && cached.ids.values().all(|c| c.ids.is_mapped()));
    drop(cached);
    assert_same(&parsed, &load(&plan, &cache), true);
    assert_eq!(entries(&cache), 1);

    // A damaged entry is parsed again, and rewritten.
    let mut bytes = std::fs::read(&entry.path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&entry.path, &bytes).unwrap();
    assert!(entry.read().is_err());
    assert_same(&parsed, &load(&plan, &cache), true);
    assert!(entry.read().is_ok());
    std::fs::write(&entry.path, &bytes[..middle]).unwrap();
    assert!(entry.read().is_err());
    assert_same(&parsed, &load(&plan, &cache), true);

    // The same size and modification time with other bytes: the file's checksum tells, and the
    // entry is replaced.
    let data = dir.join("d.csv");
    let when = std::fs::metadata(&data).unwrap().modified().unwrap();
    let changed = csv.replacen(",1.5,", ",2.5,", 1);
    assert_eq!(changed.len(), csv.len());
    assert_ne!(changed, csv);
    std::fs::write(&data, &changed).unwrap();
    std::fs::File::options().write(true).open(&data).unwrap().set_modified(when).unwrap();
    assert_eq!(cache.entry(&plan, &path, Purpose::Labelled).unwrap().path, entry.path);
    assert!(entry.read().is_err());
    let reparsed = load(&plan, &cache);
    assert_ne!(reparsed.numeric.values, parsed.numeric.values);
    assert_same(&reparsed, &entry.read().expect("rewritten for the new bytes"), true);
    std::fs::write(&data, &csv).unwrap();
    std::fs::File::options().write(true).open(&data).unwrap().set_modified(when).unwrap();
    assert_same(&parsed, &load(&plan, &cache), true);
    assert_eq!(entries(&cache), 1);

    // Another default reads other values: another entry. So does the same file edited.
    let other = pipeline(dir, "\"d.csv\"", &FEATURES.replace("default = -1", "default = -2")).plan;
    let table = load(&other, &cache);
    assert!(table.numeric.values_of("x").unwrap().contains(&-2.0));
    assert_eq!(entries(&cache), 2);
    std::fs::write(dir.join("d.csv"), csv.clone() + &rows(1, 9).csv(0..1)[10..]).unwrap();
    let edited = load(&plan, &cache);
    assert_eq!(edited.rows, parsed.rows + 1);
    assert_eq!(entries(&cache), 3);

    // A limit below one entry caches nothing; room for one keeps the newest.
    let small = Cache { dir: camino::Utf8PathBuf::from_path_buf(dir.join("small")).unwrap(), limit: 1 << 20 };
    load(&plan, &small);
    assert_eq!(entries(&small), 0);
    let one = Cache { dir: camino::Utf8PathBuf::from_path_buf(dir.join("one")).unwrap(), limit: 4 << 20 };
    load(&plan, &one);
    std::thread::sleep(std::time::Duration::from_millis(20));
    load(&other, &one);
    assert_eq!(entries(&one), 1);
    assert!(one.entry(&other, &path, Purpose::Labelled).unwrap().read().is_ok());
}
