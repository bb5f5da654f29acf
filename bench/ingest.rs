//! Times est's CSV reader alone, without libtorch: `cargo bench --no-default-features --bench
//! ingest -- FILE.est [runs]` prints the median of the runs. bench/bench.py reads est's own
//! timing line instead; this one is for profiling the reader (perf, callgrind).

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let Some(file) = args.next() else {
        eprintln!("usage: ingest FILE.est [runs]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let source = est::Source::read(camino::Utf8Path::new(&file)).unwrap_or_else(|e| panic!("{e}"));
    let base = source.base_dir().unwrap_or_else(|e| panic!("{e}"));
    let plan = est::compile(&source, &base).unwrap_or_else(|d| panic!("{d:?}")).plan;
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let table =
            est::data::load(&plan, &plan.data.train, est::data::Purpose::Labelled).unwrap_or_else(|e| panic!("{e}"));
        times.push(start.elapsed().as_secs_f64());
        assert!(table.rows > 0);
    }
    times.sort_by(f64::total_cmp);
    println!("median {:.1} ms of {runs} (min {:.1} ms)", times[runs / 2] * 1000.0, times[0] * 1000.0);
}
