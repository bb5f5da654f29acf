//! Times est's CSV reader alone, without libtorch: `cargo bench -p est --bench ingest -- FILE.est
//! [runs] [portable|sse41|avx512]` prints the median of the runs. With a kernel set named, the
//! fast reader alone runs with no kernel beyond it (and the run fails if it declines the file).
//! bench/bench.py reads est's own timing line instead; this one is for profiling the reader
//! (perf, callgrind) and for comparing ways of reading side by side.

use std::time::Instant;

use est::data::fast::Isa;
use est::data::Purpose;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let Some(file) = args.next() else {
        eprintln!("usage: ingest FILE.est [runs] [portable|sse41|avx512]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let isa = match args.next().as_deref() {
        None => None,
        Some("portable") => Some(Isa::Portable),
        Some("sse41") => Some(Isa::Sse41),
        Some("avx512") => Some(Isa::Avx512),
        Some(other) => {
            eprintln!("unknown kernel set `{other}`: portable, sse41 or avx512");
            std::process::exit(2);
        }
    };
    let source = est::Source::read(camino::Utf8Path::new(&file)).unwrap_or_else(|e| panic!("{e}"));
    let base = source.base_dir().unwrap_or_else(|e| panic!("{e}"));
    let plan = est::compile(&source, &base).unwrap_or_else(|d| panic!("{d:?}")).plan;
    let files = &plan.data.train;
    let path = files.single().unwrap_or_else(|| panic!("the kernel sets read one plain file, not `{files}`"));
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let rows = match isa {
            Some(isa) => est::data::fast::load_with(&plan, path, Purpose::Labelled, isa).map(|t| t.rows),
            None => est::data::load(&plan, files, Purpose::Labelled).map(|t| t.rows).ok(),
        };
        times.push(start.elapsed().as_secs_f64());
        assert!(rows.is_some_and(|r| r > 0), "the reader declined `{path}`");
    }
    times.sort_by(f64::total_cmp);
    println!("median {:.1} ms of {runs} (min {:.1} ms)", times[runs / 2] * 1000.0, times[0] * 1000.0);
}
