//! A few long-lived helper threads for splitting one small product across cores.
//!
//! At batch 1 every dense layer is split by output columns; spawning a thread per
//! product (24 per text) cost about a tenth of the time in scheduler work in a
//! profile. Helpers wait on a channel instead; the caller runs part 0 itself and waits
//! for the rest before returning, so the borrowed work outlives every job.

use std::sync::mpsc;

type Work = dyn Fn(usize) + Sync;

struct Job {
    work: *const Work,
    part: usize,
}

// SAFETY: the pointee is Sync, and `Helpers::run` keeps it alive until the job is done.
unsafe impl Send for Job {}

struct Helper {
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<bool>,
}

pub struct Helpers {
    helpers: Vec<Helper>,
}

impl Helpers {
    /// `n` helper threads (they end when the `Helpers` is dropped).
    pub fn new(n: usize) -> Helpers {
        let helpers = (0..n)
            .map(|i| {
                let (jobs, rx) = mpsc::channel::<Job>();
                let (tx, done) = mpsc::channel::<bool>();
                std::thread::Builder::new()
                    .name(format!("embed-helper-{i}"))
                    .spawn(move || {
                        while let Ok(job) = rx.recv() {
                            // SAFETY: `run` waits for this answer before the work goes away.
                            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (*job.work)(job.part) })).is_ok();
                            if tx.send(ok).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("spawn an embedding helper thread");
                Helper { jobs, done }
            })
            .collect();
        Helpers { helpers }
    }

    /// How many parts `run` can run at once (the caller's thread included).
    pub fn width(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Run `work(0..parts)`: part 0 here, the others on helpers; returns when all are done.
    pub fn run<'a>(&self, parts: usize, work: &'a (dyn Fn(usize) + Sync + 'a)) {
        let parts = parts.min(self.width());
        // SAFETY (lifetime erased): every job is waited for below, before `work` ends.
        let ptr: *const Work = unsafe { std::mem::transmute::<&'a (dyn Fn(usize) + Sync + 'a), &'static Work>(work) };
        let mut sent = 0;
        for (i, h) in self.helpers.iter().enumerate().take(parts.saturating_sub(1)) {
            if h.jobs.send(Job { work: ptr, part: i + 1 }).is_ok() {
                sent += 1;
            } else {
                work(i + 1); // a helper that died: do its part here
            }
        }
        work(0);
        let mut ok = true;
        for h in self.helpers.iter().take(sent) {
            ok &= h.done.recv().unwrap_or(false);
        }
        assert!(ok, "an embedding helper thread panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_every_part_once_and_waits() {
        let h = Helpers::new(3);
        let hits: Vec<AtomicUsize> = (0..4).map(|_| AtomicUsize::new(0)).collect();
        for _ in 0..100 {
            h.run(4, &|i| {
                hits[i].fetch_add(1, Ordering::SeqCst);
            });
        }
        assert!(hits.iter().all(|x| x.load(Ordering::SeqCst) == 100));
        h.run(2, &|i| assert!(i < 2));
    }
}
