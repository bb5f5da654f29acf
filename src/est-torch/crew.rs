//! Helper threads that share a step's passes in Rust (a batch's gather, the embedding lookups
//! and their gradients, the sparse optimizer update) with the training thread. libtorch's own
//! threads only run its kernels: between them the other cores were idle.
//!
//! A pass is `n` independent pieces of work. The calling thread and the helpers claim pieces
//! one at a time from one atomic word, so the caller never waits for a helper that has not
//! started: beside a busy process it does the pieces itself. Which thread runs a piece changes
//! no result.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

/// Spins of an idle helper before it sleeps: a step's next pass is microseconds away, but a
/// spinning helper holds a core another process may need.
const SPINS: u32 = 4_000;
/// The most pieces a pass may have (the word's 16 bits for each count).
const MOST: usize = u16::MAX as usize;

/// A pass's work, on the caller's stack while the pass runs.
type Job<'a> = &'a (dyn Fn(usize) + Sync);

struct Shared {
    /// The pass's number (32 bits), its pieces (16) and the next piece to claim (16).
    word: AtomicU64,
    /// Points at the current pass's `Job` while it runs.
    job: AtomicPtr<Job<'static>>,
    /// Pieces finished in the current pass.
    done: AtomicUsize,
    /// Whether a piece panicked in the current pass.
    panicked: AtomicBool,
    stop: AtomicBool,
    /// The thread running the current pass, to wake when a helper finishes its last piece.
    caller: Mutex<Option<std::thread::Thread>>,
}

/// The helpers, and the way to hand them a pass.
pub struct Crew {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
}

/// A piece of a pass panicked: a bug in est.
#[derive(Debug, thiserror::Error)]
#[error("a helper thread's piece of a step panicked")]
pub struct Panicked;

fn split(word: u64) -> (u64, usize, usize) {
    (word >> 32, (word >> 16) as usize & MOST, word as usize & MOST)
}

impl Shared {
    /// Claims and runs pieces of the current pass until none is left.
    fn work(&self) {
        loop {
            let word = self.word.load(SeqCst);
            let (_, n, next) = split(word);
            if next >= n {
                return;
            }
            if self.word.compare_exchange(word, word + 1, SeqCst, SeqCst).is_err() {
                continue;
            }
            // The claim holds the pass open: `run` does not return, and so does not free or
            // replace the job, before this piece is counted done.
            let job = self.job.load(SeqCst);
            // SAFETY: set before the word that announced this pass, alive while it runs.
            let job = unsafe { &*job };
            if catch_unwind(AssertUnwindSafe(|| job(next))).is_err() {
                self.panicked.store(true, SeqCst);
            }
            if self.done.fetch_add(1, SeqCst) + 1 == n {
                if let Ok(caller) = self.caller.lock() {
                    caller.iter().for_each(std::thread::Thread::unpark);
                }
            }
        }
    }
}

impl Crew {
    /// A crew of `helpers` threads besides the caller's.
    pub fn new(helpers: usize) -> Crew {
        let shared = Arc::new(Shared {
            word: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            caller: Mutex::new(None),
        });
        let helpers = (0..helpers)
            .filter_map(|k| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new().name(format!("est-helper-{k}")).spawn(move || helper(&shared)).ok()
            })
            .collect();
        Crew { shared, helpers }
    }

    /// The process's crew: one helper fewer than libtorch's threads when first asked.
    pub fn shared() -> &'static Crew {
        static CREW: OnceLock<Crew> = OnceLock::new();
        CREW.get_or_init(|| Crew::new((tch::get_num_threads().max(1) - 1) as usize))
    }

    /// Runs `f(i)` for each `i` in `0..n`, on this thread and the helpers, and returns when
    /// every piece is done. Passes do not overlap: `&mut self` would say so, but the crew is
    /// shared; a pass asked for while another runs (never, in a training thread) runs alone.
    pub fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) -> Result<(), Panicked> {
        static RUNNING: AtomicBool = AtomicBool::new(false);
        if self.helpers.is_empty() || !(2..=MOST).contains(&n) || RUNNING.swap(true, SeqCst) {
            let panicked = catch_unwind(AssertUnwindSafe(|| (0..n).for_each(f))).is_err();
            return if panicked { Err(Panicked) } else { Ok(()) };
        }
        let s = &*self.shared;
        let (pass, _, _) = split(s.word.load(SeqCst));
        s.done.store(0, SeqCst);
        s.panicked.store(false, SeqCst);
        if let Ok(mut caller) = s.caller.lock() {
            *caller = Some(std::thread::current());
        }
        let job: Job = f;
        // SAFETY: only the lifetime is erased; the pointer is cleared before `job` goes.
        s.job.store(unsafe { std::mem::transmute::<*const Job, *mut Job<'static>>(&job) }, SeqCst);
        s.word.store(((pass + 1) & u32::MAX as u64) << 32 | (n as u64) << 16, SeqCst);
        for h in &self.helpers {
            h.thread().unpark();
        }
        s.work();
        // Only pieces a helper claimed are left: wait for those, spinning a little, then
        // asleep, so that a helper a busy process took the core from can take this one.
        let mut spins = 0;
        while s.done.load(SeqCst) < n {
            if spins < SPINS {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::park();
            }
        }
        s.job.store(std::ptr::null_mut(), SeqCst);
        RUNNING.store(false, SeqCst);
        if s.panicked.load(SeqCst) {
            return Err(Panicked);
        }
        Ok(())
    }
}

fn helper(s: &Shared) {
    let mut seen = 0;
    while !s.stop.load(SeqCst) {
        let (pass, n, next) = split(s.word.load(SeqCst));
        if pass != seen || next < n {
            seen = pass;
            s.work();
            continue;
        }
        let mut spins = 0;
        while spins < SPINS && split(s.word.load(SeqCst)).0 == seen && !s.stop.load(SeqCst) {
            std::hint::spin_loop();
            spins += 1;
        }
        if spins == SPINS {
            // Woken by the next pass's unpark, or at once if it came already.
            std::thread::park();
        }
    }
}

impl Drop for Crew {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        for h in self.helpers.drain(..) {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Crew;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_piece_runs_once_whoever_runs_it() {
        let crew = Crew::new(3);
        for n in [0, 1, 2, 7, 100, 1000] {
            let counts: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..50 {
                crew.run(n, &|i| {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
            }
            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 50), "{n} pieces");
        }
        assert!(crew.run(4, &|i| assert!(i != 2)).is_err());
        assert!(crew.run(4, &|_| {}).is_ok(), "a panic ends its pass only");
    }
}
