//! A persistent thread pool for the forward pass.
//!
//! A decode step of a small model is a few hundred short parallel regions;
//! handing each one to another pool and sleeping until it is done costs as
//! much as the arithmetic. Here the calling thread works too, the workers
//! spin briefly between regions (then sleep), and tasks are handed out by
//! one atomic counter, so a region costs a few atomic operations.
//!
//! Workers join a region; they are not waited for. On a machine shared with
//! other work a worker may not be scheduled for milliseconds: the caller
//! then does every task itself, closes the region and waits only for the
//! workers that joined (and so may be inside a task).

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_millis(3);

/// The task body of the region in flight, with its lifetime erased.
#[derive(Clone, Copy)]
struct JobPtr(*const (dyn Fn(usize) + Sync));

// SAFETY: the pointee is `Sync`, and `Pool::run` keeps it alive until every
// worker has finished with it (it waits for `active` to reach zero).
unsafe impl Send for JobPtr {}

struct Shared {
    generation: AtomicU64,
    job: Mutex<Option<JobPtr>>,
    next: AtomicUsize,
    n_tasks: AtomicUsize,
    /// Workers inside the region in flight.
    active: AtomicUsize,
    /// No region open: workers must not join (true between regions).
    closed: AtomicBool,
    panicked: AtomicBool,
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
}

pub struct Pool {
    shared: Arc<Shared>,
    workers: usize,
    run_lock: Mutex<()>,
}

thread_local! {
    static IN_POOL: Cell<bool> = const { Cell::new(false) };
}

impl Pool {
    /// A pool of `threads` in all: the caller and `threads - 1` workers.
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            job: Mutex::new(None),
            next: AtomicUsize::new(0),
            n_tasks: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            closed: AtomicBool::new(true),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = threads.max(1) - 1;
        for i in 0..workers {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("lmscope-kernel-{i}"))
                .spawn(move || worker(&shared))
                .expect("spawning a kernel worker thread");
        }
        Self {
            shared,
            workers,
            run_lock: Mutex::new(()),
        }
    }

    pub fn threads(&self) -> usize {
        self.workers + 1
    }

    /// Runs `f(0) .. f(n_tasks - 1)` across the pool and returns when all
    /// are done. A task that panics makes `run` panic. Called from inside a
    /// task, it runs the tasks inline.
    pub fn run(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if n_tasks == 0 {
            return;
        }
        if self.workers == 0 || n_tasks == 1 || IN_POOL.with(Cell::get) {
            (0..n_tasks).for_each(f);
            return;
        }
        let _one_region_at_a_time = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        // SAFETY: erasing the lifetime is sound because this function does
        // not return before `active` is back to zero, i.e. before the last
        // worker has stopped using the pointer (see the wait below).
        let job: JobPtr = JobPtr(unsafe {
            std::mem::transmute::<
                *const (dyn Fn(usize) + Sync + '_),
                *const (dyn Fn(usize) + Sync + 'static),
            >(f)
        });
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
        s.next.store(0, Ordering::Relaxed);
        s.n_tasks.store(n_tasks, Ordering::Relaxed);
        s.closed.store(false, Ordering::SeqCst);
        s.generation.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = s.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        IN_POOL.with(|c| c.set(true));
        let mine = catch_unwind(AssertUnwindSafe(|| work(s, f)));
        IN_POOL.with(|c| c.set(false));
        // Every task has been claimed. Close the region: a worker that has
        // not joined yet will not (it checks `closed` after announcing
        // itself in `active`), and those that joined are waited for.
        s.closed.store(true, Ordering::SeqCst);
        let mut spins = 0u32;
        while s.active.load(Ordering::SeqCst) != 0 {
            spins += 1;
            if spins < 256 {
                std::hint::spin_loop();
            } else {
                // The worker may share our core: let it run.
                std::thread::yield_now();
            }
        }
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let worker_panicked = s.panicked.swap(false, Ordering::Relaxed);
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if worker_panicked {
            panic!("a kernel task panicked on a worker thread");
        }
    }
}

fn work(s: &Shared, f: &(dyn Fn(usize) + Sync)) {
    let n = s.n_tasks.load(Ordering::Relaxed);
    loop {
        let t = s.next.fetch_add(1, Ordering::Relaxed);
        if t >= n {
            break;
        }
        f(t);
    }
}

fn worker(s: &Shared) {
    IN_POOL.with(|c| c.set(true));
    let mut seen = 0u64;
    loop {
        // Wait for the next region: spin for a while, then sleep.
        let started = Instant::now();
        let mut spins = 0u32;
        while s.generation.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) && started.elapsed() > SPIN {
                let mut g = s.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                while s.generation.load(Ordering::SeqCst) == seen {
                    g = s.wake.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
                break;
            }
        }
        seen = s.generation.load(Ordering::Acquire);
        // Join the region unless it has been closed meanwhile (its caller
        // then no longer waits for us, and the job may be gone).
        s.active.fetch_add(1, Ordering::SeqCst);
        if !s.closed.load(Ordering::SeqCst) {
            let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(JobPtr(f)) = job {
                // SAFETY: `run` stores this pointer before opening the
                // region, and closes the region and then waits for `active`
                // to reach zero before it returns (and so before the closure
                // goes away); we are counted in `active` and saw the region
                // open, so the caller is still waiting for us.
                let f = unsafe { &*f };
                if catch_unwind(AssertUnwindSafe(|| work(s, f))).is_err() {
                    s.panicked.store(true, Ordering::Relaxed);
                }
            }
        }
        s.active.fetch_sub(1, Ordering::SeqCst);
    }
}

static THREADS: OnceLock<usize> = OnceLock::new();

/// Sizes the forward pass's pool (`--threads`). Takes effect only before
/// the pool first runs; returns whether it did.
pub fn set_threads(n: usize) -> bool {
    n > 0 && THREADS.set(n).is_ok()
}

/// Threads for the forward pass: `set_threads`, else `RAYON_NUM_THREADS`,
/// else every core.
pub fn default_threads() -> usize {
    if let Some(&n) = THREADS.get() {
        return n;
    }
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// The process-wide pool, started on first use.
pub fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::new(default_threads()))
}
