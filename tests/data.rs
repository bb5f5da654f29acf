//! CSV reading without libtorch: the formats that must work, and typed columns as the plan asks.

use est::data::{self, Labels, Purpose};

use crate::common::compile_text;

/// Writes `csv` beside a pipeline over it and loads it.
fn load(csv: &[u8], features: &str, extra: &str) -> Result<data::Table, data::DataError> {
    load_with(csv, features, extra, |plan, path| data::load_file(plan, path, Purpose::Labelled))
}

fn classes(table: &data::Table) -> Vec<i64> {
    match &table.labels {
        Some(Labels::Classes(c)) => c.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn quoting_crlf_bom_and_a_missing_final_newline_all_read() {
    let csv = b"\xef\xbb\xbfx,name,y\r\n1.5,\"Smith, J.\",0\r\n2.5,\"two\nlines\",1\r\n-3,\"say \"\"hi\"\"\",2";
    let table = load(csv, "numeric x, categorical name { hash_buckets = 5 }", "").unwrap();
    assert_eq!(table.rows, 3);
    assert_eq!(table.numeric.values_of("x").unwrap(), vec![1.5, 2.5, -3.0]);
    assert_eq!(classes(&table), vec![0, 1, 2]);
    let ids = &table.ids["name"].ids;
    assert_eq!(ids[0], est::data::hash::bucket("Smith, J.", 5));
    assert_eq!(ids[1], est::data::hash::bucket("two\nlines", 5));
    assert_eq!(ids[2], est::data::hash::bucket("say \"hi\"", 5));
}

#[test]
fn missing_values_take_defaults_and_statistics_skip_them() {
    let table = load(
        b"x,c,y\n1,a,0\nNA,NA,1\n3,b,2\n",
        "numeric x { default = 10 }, categorical c { vocabulary = [\"a\", \"b\"] }",
        ", missing = \"NA\"",
    )
    .unwrap();
    assert_eq!(table.numeric.values_of("x").unwrap(), vec![1.0, 10.0, 3.0]);
    let stats = table.numeric.column("x").unwrap().stats;
    assert_eq!((stats.count, stats.mean, stats.min, stats.max), (2, 2.0, 1.0, 3.0));
    assert_eq!(table.ids["c"].ids, vec![0, -1, 1]);
}

#[test]
fn derived_columns_read_their_sources() {
    let table = load(
        b"x,c,y\n0.5,a,0\n1,b,1\n7,a,2\n",
        "numeric x, bucketized xb = x { boundaries = [1, 5] }, categorical c { vocabulary = [\"a\", \"b\"] }, crossed cx = [xb, c] { hash_buckets = 1000 }",
        "",
    )
    .unwrap();
    assert_eq!(table.ids["xb"].ids, vec![0, 1, 2]);
    let h = |a, b| est::data::hash::cross(&[a, b], 1000);
    assert_eq!(table.ids["cx"].ids, vec![h(0, 0), h(1, 1), h(2, 0)]);
}

#[test]
fn multivalent_columns_pad_with_minus_one() {
    let table = load(
        b"tags,y\na|b,0\nb,1\n,2\n",
        "categorical tags { vocabulary = [\"a\", \"b\"], separator = \"|\" }",
        ", missing = \"\"",
    )
    .unwrap();
    assert_eq!(table.ids["tags"].width, 2);
    assert_eq!(table.ids["tags"].ids, vec![0, 1, 1, -1, -1, -1]);
}

#[test]
fn out_of_vocabulary_values_hash_into_the_extra_buckets() {
    let table =
        load(b"c,y\na,0\nzzz,1\n", "categorical c { vocabulary = [\"a\", \"b\"], oov_buckets = 3 }", "").unwrap();
    assert_eq!(table.ids["c"].ids, vec![0, 2 + est::data::hash::bucket("zzz", 3)]);
    let err = load(b"c,y\na,0\nzzz,1\n", "categorical c { vocabulary = [\"a\", \"b\"] }", "").unwrap_err();
    assert!(
        err.to_string().ends_with(":3:1: column `c`: `zzz` is not in the vocabulary and there are no `oov_buckets`"),
        "{err}"
    );
}

#[test]
fn bad_rows_can_be_skipped_and_counted() {
    let table = load(b"x,y\n1,0\noops,1\n3,2,9\n4,1\n", "numeric x", ", bad_rows = skip").unwrap();
    assert_eq!(table.rows, 2);
    assert_eq!(table.numeric.values_of("x").unwrap(), vec![1.0, 4.0]);
    assert_eq!(classes(&table), vec![0, 1]);
    assert_eq!(table.skipped, 2);
    assert!(table.first_skipped.unwrap().ends_with(":3:1: `x` must be a number, found `oops`"));
}

#[test]
fn weights_are_read_for_training_and_ignored_for_prediction() {
    let csv = b"x,w,y\n1,0.5,0\n2,0,1\n3, 2 ,2\n";
    let table = load(csv, "numeric x", ", weight = w").unwrap();
    assert_eq!(table.weights, Some(vec![0.5, 0.0, 2.0]));
    assert_eq!(classes(&table), vec![0, 1, 2]);
    // The fast reader leaves weighted rows to the careful one.
    assert!(load_with(csv, "numeric x", ", weight = w", |plan, path| data::fast::load(plan, path, Purpose::Labelled))
        .is_none());
    let unlabelled = load_with(csv, "numeric x", ", weight = w", |plan, path| {
        data::load_file(plan, path, Purpose::Unlabelled).unwrap()
    });
    assert_eq!((unlabelled.weights, unlabelled.labels.is_none()), (None, true));
    assert_eq!(load(csv, "numeric x", "").unwrap().weights, None);
}

#[test]
fn a_missing_non_numeric_or_negative_weight_is_named() {
    for (csv, extra, message) in [
        ("x,w,y\n1,1,0\n2,,1\n", "", ":3:3: the weight `w` is missing"),
        ("x,w,y\n1,NA,0\n", ", missing = \"NA\"", ":2:3: the weight `w` is missing"),
        ("x,w,y\n1,1,0\n2,heavy,1\n", "", ":3:3: the weight `w` must be a number, found `heavy`"),
        ("x,w,y\n1,inf,0\n", "", ":2:3: the weight `w` must be a number, found `inf`"),
        ("x,y,w\n1,0,1\n2,1,2\n3,2,-0.5\n", "", ":4:5: the weight `w` must not be negative, found `-0.5`"),
    ] {
        let features = "numeric x { default = 0 }";
        let err = load(csv.as_bytes(), features, &format!(", weight = w{extra}")).unwrap_err();
        assert!(err.to_string().ends_with(message), "{err}, expected {message}");
        assert!(matches!(err, data::DataError::Field { .. }), "{err:?}");
    }
}

#[test]
fn bad_rows_skip_drops_a_bad_weights_row_with_its_label() {
    let csv = b"x,w,y\n1,1,0\n2,-1,1\n3,oops,2\n4,,0\n5,2.5,1\n";
    let table = load(csv, "numeric x", ", weight = w, bad_rows = skip").unwrap();
    assert_eq!(table.rows, 2);
    assert_eq!(table.numeric.values_of("x").unwrap(), vec![1.0, 5.0]);
    assert_eq!(classes(&table), vec![0, 1]);
    assert_eq!(table.weights, Some(vec![1.0, 2.5]));
    assert_eq!(table.skipped, 3);
    let first = table.first_skipped.unwrap();
    assert!(first.ends_with(":3:3: the weight `w` must not be negative, found `-1`"), "{first}");
}

#[test]
fn invalid_utf8_is_named() {
    let err = load(b"c,y\n\xff\xfe,0\n", "categorical c { hash_buckets = 4 }", "").unwrap_err();
    assert!(err.to_string().ends_with(":2:1: `c` is not valid UTF-8"), "{err}");
    // In the header of a file the checker did not see (predict's --input, evaluate's --data),
    // rather than as a column that is not there.
    let err = load_with(b"c,y\n1,0\n", "numeric c", "", |plan, path| {
        std::fs::write(path, b"c,\xffy\n1,0\n").unwrap();
        data::load_file(plan, path, Purpose::Labelled).unwrap_err()
    });
    assert!(err.to_string().ends_with(":1:3: the name of column 2 is not valid UTF-8"), "{err}");
}

/// The two readers' tables are the same, bit for bit: values, statistics, ids and labels.
fn assert_same(fast: &data::Table, careful: &data::Table) {
    assert_eq!(fast.rows, careful.rows);
    assert_eq!(
        fast.numeric.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        careful.numeric.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(fast.numeric.columns.len(), careful.numeric.columns.len());
    for (a, b) in fast.numeric.columns.iter().zip(&careful.numeric.columns) {
        assert_eq!((&a.name, a.offset, a.stats), (&b.name, b.offset, b.stats));
    }
    assert_eq!(fast.ids.keys().collect::<Vec<_>>(), careful.ids.keys().collect::<Vec<_>>());
    for (name, column) in &fast.ids {
        assert_eq!(column.ids, careful.ids[name].ids, "{name}");
    }
    assert_eq!(classes(fast), classes(careful));
}

/// The fast reader and the careful one agree on everything, bit for bit, and the fast one
/// declines what it cannot read exactly.
#[test]
fn the_fast_reader_equals_the_careful_one() {
    let cases: [(&[u8], &str, &str); 9] = [
        (b"x,c,y\n1.5,a,0\n-2.25,b,1\n1e3,a,2\n", "numeric x, categorical c { vocabulary = [\"a\", \"b\"] }", ""),
        (b"x,c,y\r\n0.1234567,zz,0\r\nNA,NA,1\r\n7,b,2", "numeric x { default = 3 }, categorical c { vocabulary = [\"a\", \"b\"], oov_buckets = 2 }", ", missing = \"NA\""),
        (b"\xef\xbb\xbfx,c,y\n 1 , a ,0\n2,b,1\n", "numeric x, bucketized xb = x { boundaries = [1.5] }, categorical c { hash_buckets = 7 }, crossed k = [xb, c] { hash_buckets = 5 }", ""),
        (b"x,c,y\n1,3,0\n2,4,1\n", "numeric x, categorical c { identity = 5 }", ""),
        (b"x;c;y\n1,5;a;0\n2;a;1\n", "numeric x, categorical c { hash_buckets = 3 }", ", delimiter = \";\", bad_rows = skip"),
        (b"x,c,y\n1,\"a,b\",0\n2,a,1\n", "numeric x, categorical c { hash_buckets = 3 }", ""),
        (b"x\tc\ty\n-0.25\ta,b\t2\n3\tz\t0\n", "numeric x, categorical c { hash_buckets = 3 }", ", delimiter = \"\\t\""),
        (b"y,c,x\r\n0,a,1.5\r\n1,b,-2e1\r\n2,a, 7 \r\n", "numeric x, categorical c { hash_buckets = 3 }", ""),
        // Values beyond ASCII hash as the same UTF-8 bytes.
        ("x,c,y\n1,Zürich,0\n2,東京,1\n3,a,0\n".as_bytes(), "numeric x, categorical c { hash_buckets = 97 }", ""),
    ];
    for (csv, features, extra) in cases {
        let careful =
            load_with(csv, features, extra, |plan, path| est::data::careful(plan, path, Purpose::Labelled).ok());
        let fast = load_with(csv, features, extra, |plan, path| est::data::fast::load(plan, path, Purpose::Labelled));
        let (Some(careful), Some(fast)) = (careful, fast) else {
            // Quotes and bad rows are the careful reader's alone.
            assert!(csv.contains(&b'"') || extra.contains("skip"), "{}", String::from_utf8_lossy(csv));
            continue;
        };
        assert_same(&fast, &careful);
    }
}

/// A file of several megabytes: lines cut by the reader's 1 MiB blocks and by its per-core
/// pieces, numbers of every shape, missing markers, CRLF and no final newline all read the same
/// both ways.
#[test]
fn the_fast_reader_equals_the_careful_one_on_a_large_file() {
    let mut rng = est::rng::Rng::new(11);
    for (newline, last) in [("\n", "\n"), ("\r\n", "")] {
        let mut csv = format!("a,b,c,y{newline}");
        for row in 0..220_000u64 {
            let x = rng.normal() * 10f64.powi(rng.below(7) as i32 - 3);
            let a = match row % 7 {
                0 => format!("{x:e}"),
                1 => format!("{:.0}", x * 100.0),
                2 => "NA".to_string(),
                3 => format!("{x:.12}"),
                _ => format!("{x:.7}"),
            };
            let c = ["p", "q", "NA"][rng.below(3) as usize];
            csv.push_str(&format!("{a},{:.3},{c},{}", rng.normal(), rng.below(3)));
            csv.push_str(if row == 219_999 { last } else { newline });
        }
        let features =
            "numeric a { default = 0.5 }, numeric b, categorical c { vocabulary = [\"p\", \"q\"], oov_buckets = 1 }";
        let extra = ", missing = \"NA\"";
        let careful = load_with(csv.as_bytes(), features, extra, |plan, path| {
            est::data::careful(plan, path, Purpose::Labelled).unwrap()
        });
        let fast = load_with(csv.as_bytes(), features, extra, |plan, path| {
            est::data::fast::load(plan, path, Purpose::Labelled).expect("a clean file takes the fast way")
        });
        assert!(csv.len() > 4 << 20, "{} bytes", csv.len());
        assert_eq!(fast.rows, 220_000);
        assert_same(&fast, &careful);
    }
}

/// Twelve numeric columns, read eight and four at a time where the processor can: numbers of
/// every shape, missing markers, negative zeros, a CRLF after a number, read the same both ways;
/// a line one field short, or one long, is left to the careful reader.
#[test]
fn the_fast_reader_equals_the_careful_one_on_many_numeric_columns() {
    let mut rng = est::rng::Rng::new(5);
    let names: Vec<String> = (0..12).map(|i| format!("x{i}")).collect();
    let mut csv = format!("{},y\r\n", names.join(","));
    for _ in 0..30_000 {
        for _ in 0..12 {
            let x = rng.normal() * 10f64.powi(rng.below(9) as i32 - 4);
            let field = match rng.below(50) {
                0 => "NA".to_string(),
                1 => format!("{x:e}"),
                2 => "-0.000".to_string(),
                3 => format!("{x:.14}"),
                4 => format!(" {x:.2}"),
                5 => "5.".to_string(),
                _ => format!("{x:.*}", rng.below(9) as usize),
            };
            csv.push_str(&field);
            csv.push(',');
        }
        csv.push_str(&format!("{}\r\n", rng.below(3)));
    }
    // Declared out of the file's order, so the values of a group land apart.
    let features =
        names.iter().rev().map(|n| format!("numeric {n} {{ default = 0.5 }}")).collect::<Vec<_>>().join(", ");
    let extra = ", missing = \"NA\"";
    // With missing values, and without: the reader sums groups of rows as it goes only then.
    for csv in [csv.clone(), csv.replace("NA", "2.5")] {
        let careful = load_with(csv.as_bytes(), &features, extra, |plan, path| {
            est::data::careful(plan, path, Purpose::Labelled).unwrap()
        });
        let fast = load_with(csv.as_bytes(), &features, extra, |plan, path| {
            est::data::fast::load(plan, path, Purpose::Labelled).expect("a clean file takes the fast way")
        });
        assert_eq!(fast.rows, 30_000);
        assert_same(&fast, &careful);
    }

    // One line a field short, then one a field long, in the middle of the file.
    let lines: Vec<&str> = csv.split_inclusive("\r\n").collect();
    for (line, edited) in
        [(20_000, lines[20_000].split_once(',').unwrap().1.to_string()), (20_001, format!("1.25,{}", lines[20_001]))]
    {
        let mut broken = lines.clone();
        broken[line] = &edited;
        let broken = broken.concat();
        assert!(load_with(broken.as_bytes(), &features, extra, |plan, path| {
            est::data::fast::load(plan, path, Purpose::Labelled)
        })
        .is_none());
        let err = load_with(broken.as_bytes(), &features, extra, |plan, path| {
            data::load_file(plan, path, Purpose::Labelled).unwrap_err()
        });
        assert!(err.to_string().contains(&format!(":{}:", line + 1)), "{err}");
    }
}

/// Lines far longer than the reader's tail reads, crossing its 1 MiB blocks, read the same both
/// ways; a file with more lines than whole rows could fill is left to the careful reader, which
/// names the first short line.
#[test]
fn the_fast_reader_follows_long_lines_across_blocks_and_declines_short_ones() {
    let mut csv = String::from("x,c,y\n");
    let mut row = 0;
    while csv.len() < 3 << 20 {
        let c = if row % 3 == 0 { "q".repeat(9_000 + row) } else { "p".to_string() };
        csv.push_str(&format!("{}.5,{c},{}\n", row, row % 3));
        row += 1;
    }
    let features = "numeric x, categorical c { hash_buckets = 11 }";
    let careful = load_with(csv.as_bytes(), features, "", |plan, path| {
        est::data::careful(plan, path, Purpose::Labelled).unwrap()
    });
    let fast = load_with(csv.as_bytes(), features, "", |plan, path| {
        est::data::fast::load(plan, path, Purpose::Labelled).expect("a clean file takes the fast way")
    });
    assert_eq!(fast.rows, row);
    assert_same(&fast, &careful);

    // Ten columns, then a thousand lines of one byte each: more lines than rows could fit.
    let csv = format!("a,b,c,d,e,f,g,h,i,y\n{}", "7\n".repeat(1000));
    let features = "numeric a, numeric b";
    assert!(load_with(csv.as_bytes(), features, "", |plan, path| est::data::fast::load(plan, path, Purpose::Labelled))
        .is_none());
    let err = load_with(csv.as_bytes(), features, "", |plan, path| {
        data::load_file(plan, path, Purpose::Labelled).unwrap_err()
    });
    assert!(err.to_string().contains(":2:"), "{err}");
}

/// Each set of kernels the fast reader may use (none, SSE4.1, AVX-512 where the processor has
/// them) reads the same table as the careful reader, so the paths other machines take are
/// covered on this one.
#[test]
fn every_kernel_set_reads_what_the_careful_reader_reads() {
    use est::data::fast::{load_with as fast_with, Isa};
    let mut rng = est::rng::Rng::new(17);
    let names: Vec<String> = (0..9).map(|i| format!("x{i}")).collect();
    let mut csv = format!("{},c,y\n", names.join(","));
    for _ in 0..40_000 {
        for _ in 0..9 {
            let x = rng.normal() * 10f64.powi(rng.below(9) as i32 - 4);
            let field = match rng.below(40) {
                0 => "NA".to_string(),
                1 => format!("{x:e}"),
                2 => format!("{x:.15}"),
                3 => "-0".to_string(),
                _ => format!("{x:.*}", rng.below(8) as usize),
            };
            csv.push_str(&field);
            csv.push(',');
        }
        csv.push_str(&format!("{},{}\n", ["a", "b", "NA"][rng.below(3) as usize], rng.below(3)));
    }
    let features = names.iter().map(|n| format!("numeric {n} {{ default = 1 }}")).collect::<Vec<_>>().join(", ")
        + ", categorical c { vocabulary = [\"a\", \"b\"], oov_buckets = 1 }";
    for csv in [csv.clone(), csv.replace("NA", "7.5")] {
        let careful = load_with(csv.as_bytes(), &features, ", missing = \"NA\"", |plan, path| {
            est::data::careful(plan, path, Purpose::Labelled).unwrap()
        });
        for isa in [Isa::Portable, Isa::Sse41, Isa::Avx512] {
            let fast = load_with(csv.as_bytes(), &features, ", missing = \"NA\"", |plan, path| {
                fast_with(plan, path, Purpose::Labelled, isa).expect("a clean file takes the fast way")
            });
            assert_same(&fast, &careful);
        }
    }
}

#[test]
fn the_fast_reader_matches_on_the_shipped_data() {
    for (pipeline, data) in [
        ("pipelines/iris.est", "pipelines/data/iris_training.csv"),
        ("pipelines/penguins.est", "pipelines/data/penguins_train.csv"),
    ] {
        let compiled =
            compile_text(pipeline, &std::fs::read_to_string(crate::common::root().join(pipeline)).unwrap()).unwrap();
        let path = crate::common::root().join(data);
        let fast =
            est::data::fast::load(&compiled.plan, &path, Purpose::Labelled).expect("clean files take the fast way");
        let careful = est::data::careful(&compiled.plan, &path, Purpose::Labelled).unwrap();
        assert_eq!(fast.numeric.values, careful.numeric.values);
        for (name, column) in &fast.ids {
            assert_eq!(column.ids, careful.ids[name].ids, "{name}");
        }
        assert_eq!(classes(&fast), classes(&careful));
    }
}

/// Writes `csv` beside a pipeline over it and reads it with `read`.
fn load_with<T>(csv: &[u8], features: &str, extra: &str, read: impl Fn(&est::plan::Plan, &camino::Utf8Path) -> T) -> T {
    let tmp = tempfile::tempdir().unwrap();
    let csv_path = tmp.path().join("d.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let text = format!(
        "pipeline p {{\n  data {{ train = \"{}\", label = y {extra} }}\n  features {{ {features} }}\n  model linear_classifier {{ n_classes = 3 }}\n}}\n",
        csv_path.display()
    );
    let est_path = tmp.path().join("p.est");
    let compiled = compile_text(est_path.to_str().unwrap(), &text).unwrap_or_else(|d| panic!("{d:?}"));
    read(&compiled.plan, camino::Utf8Path::from_path(&csv_path).unwrap())
}
