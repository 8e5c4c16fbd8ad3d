//! Pre-warmed containers, per layout, recycled between runs. A container serves up to
//! `recycle.runs` steps and lives at most `recycle.max_age`: after each step it comes back
//! (`give_back`), is checked and reset in the background (`Container::recycle`), and
//! rejoins the warm ones; one that cast doubt on itself, failed a check or is old enough
//! is destroyed instead, and the reason counted. The pool refills in the background with
//! bounded creation concurrency, counting the containers out on a run as coming back.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::cgroup::CgroupLimits;
use crate::{Container, Layout, Sandbox, SandboxError};

/// How long a take waits for a container being reset before it makes a new one.
const RETURN_WAIT: Duration = Duration::from_millis(50);

/// A layout the pool keeps warm, with the limits its containers start with.
#[derive(Debug, Clone)]
pub struct WarmSpec {
    /// Short name for metrics, e.g. `python3/run`.
    pub name: String,
    /// The container layout.
    pub layout: Layout,
    /// Initial cgroup limits (the profile's defaults for that step).
    pub limits: CgroupLimits,
    /// How many to keep warm.
    pub target: usize,
}

/// How long a container serves before it is destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recycle {
    /// Steps one container serves (1: a fresh container for every step).
    pub runs: u32,
    /// Its longest life.
    pub max_age: Duration,
}

impl Recycle {
    /// The default: 100 steps or 10 minutes, whichever comes first.
    pub const DEFAULT: Recycle = Recycle {
        runs: 100,
        max_age: Duration::from_secs(600),
    };
}

/// A count per layout (containers out, or coming back).
#[derive(Debug, Default)]
struct Counts(Mutex<HashMap<Layout, usize>>);

impl Counts {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Layout, usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, layout: &Layout) -> usize {
        self.map().get(layout).copied().unwrap_or(0)
    }

    fn add(&self, layout: &Layout, delta: isize) {
        let mut map = self.map();
        let n = map.entry(layout.clone()).or_default();
        *n = n.saturating_add_signed(delta);
    }

    fn total(&self) -> usize {
        self.map().values().sum()
    }
}

/// Warm containers of every layout.
#[derive(Debug)]
pub struct Pool {
    sandbox: Arc<Sandbox>,
    specs: Vec<WarmSpec>,
    recycle: Recycle,
    warm: Mutex<HashMap<Layout, Vec<Container>>>,
    /// Containers out on a step or being reset, per layout: expected back.
    out: Counts,
    /// Containers given back and being checked and reset (or destroyed), per layout.
    returning: Counts,
    /// Woken when a given-back container is done: back among the warm ones or destroyed.
    back: tokio::sync::Notify,
    /// Containers recycled (reset and back among the warm ones).
    recycled: AtomicU64,
    /// Containers destroyed after serving, per reason.
    destroyed: Mutex<BTreeMap<&'static str, u64>>,
    /// Background creations started and not yet ended, per layout: a refill counts them
    /// with the warm ones, so that refills racing each other cannot overshoot the target.
    pending: Mutex<HashMap<Layout, usize>>,
    /// Bounds how many containers are created at once in the background.
    creating: Semaphore,
    create_seconds: Mutex<Vec<f64>>,
    failures: AtomicU64,
    closed: std::sync::atomic::AtomicBool,
    /// Background refills and removals: shutdown waits for them, so that the server
    /// never exits with a container half made or half removed.
    tasks: tokio_util::task::TaskTracker,
}

impl Pool {
    /// A pool keeping each of `specs` at its target, creating at most `concurrency`
    /// containers at once, recycling them by `recycle`.
    pub fn new(
        sandbox: Arc<Sandbox>,
        specs: Vec<WarmSpec>,
        concurrency: usize,
        recycle: Recycle,
    ) -> Arc<Self> {
        Arc::new(Pool {
            sandbox,
            specs,
            recycle,
            warm: Mutex::new(HashMap::new()),
            out: Counts::default(),
            returning: Counts::default(),
            back: tokio::sync::Notify::new(),
            recycled: AtomicU64::new(0),
            destroyed: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(HashMap::new()),
            creating: Semaphore::new(concurrency.max(1)),
            create_seconds: Mutex::new(Vec::new()),
            failures: AtomicU64::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
            tasks: tokio_util::task::TaskTracker::new(),
        })
    }

    /// The engine.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Fills every layout up to the target. A layout whose creation fails is left for a
    /// later call (the others are still filled); the first failure is returned.
    pub async fn warm_up(self: &Arc<Self>) -> Result<(), SandboxError> {
        let mut first = None;
        for spec in &self.specs {
            while self.count(&spec.layout) < spec.target && !self.closed.load(Ordering::Acquire) {
                match self.create(&spec.layout, &spec.limits).await {
                    Ok(c) => self.put(&spec.layout, c),
                    Err(e) => {
                        tracing::warn!(layout = %spec.name, error = %e, "warming a layout failed");
                        first.get_or_insert(e);
                        break;
                    }
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// True when every layout has its target of warm containers.
    pub fn is_warm(&self) -> bool {
        self.specs.iter().all(|s| self.count(&s.layout) >= s.target)
    }

    /// Warm containers per layout name.
    pub fn warm_counts(&self) -> Vec<(String, usize)> {
        self.specs
            .iter()
            .map(|s| (s.name.clone(), self.count(&s.layout)))
            .collect()
    }

    /// Creation times since the last call, seconds (for the metrics).
    pub fn take_create_times(&self) -> Vec<f64> {
        std::mem::take(
            &mut *self
                .create_seconds
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Containers that failed to be created or were found dead in the pool.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Containers reset after a step and put back among the warm ones.
    pub fn recycled(&self) -> u64 {
        self.recycled.load(Ordering::Relaxed)
    }

    /// Containers destroyed after serving, per reason: `runs` and `age` (served their
    /// time), `surplus` (the layout had its warm target), `shutdown`, what a step did
    /// (`security_violation`, `internal_error`, `fallback_kill`, `error`), a figure the
    /// kernel cannot reset (`pids_peak`, `memory_peak`), and a failed check
    /// (`processes`, `mounts`, `memory`, `reset_failed`, `check_failed`).
    pub fn destroyed(&self) -> Vec<(&'static str, u64)> {
        let d = self.destroyed.lock().unwrap_or_else(|p| p.into_inner());
        d.iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// Containers taken and not yet back (on a step, being checked and reset, or being
    /// destroyed after their step).
    pub fn out_total(&self) -> usize {
        self.out.total()
    }

    /// Containers being created in the background.
    pub fn pending_total(&self) -> usize {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.values().sum()
    }

    /// Host pids of the warm containers' inits.
    pub fn warm_pids(&self) -> Vec<libc::pid_t> {
        let warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        warm.values().flatten().map(Container::pid).collect()
    }

    fn count(&self, layout: &Layout) -> usize {
        let warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        warm.get(layout).map_or(0, Vec::len)
    }

    fn put(&self, layout: &Layout, c: Container) {
        if self.closed.load(Ordering::Acquire) {
            // Shutting down: the container is dropped (killed and removed) here.
            return;
        }
        let mut warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        warm.entry(layout.clone()).or_default().push(c);
    }

    async fn create(
        &self,
        layout: &Layout,
        limits: &CgroupLimits,
    ) -> Result<Container, SandboxError> {
        let t = Instant::now();
        match self.sandbox.create(layout, limits).await {
            Ok(c) => {
                let mut times = self
                    .create_seconds
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if times.len() < 100_000 {
                    times.push(t.elapsed().as_secs_f64());
                }
                Ok(c)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// A container of `layout` that has run nothing: a warm one if there is one (and a
    /// replacement is started in the background), else a new one.
    pub async fn take(
        self: &Arc<Self>,
        layout: &Layout,
        limits: &CgroupLimits,
    ) -> Result<Container, SandboxError> {
        loop {
            // Registered before the look, so that a container put back after it wakes us.
            let back = self.back.notified();
            let popped = {
                let mut warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
                warm.get_mut(layout).and_then(Vec::pop)
            };
            let Some(c) = popped else {
                // None warm, but one being reset after its step is back in a millisecond
                // or two: a new one would take several (and be surplus when it returns).
                if self.returning.get(layout) > 0 {
                    let _ = tokio::time::timeout(RETURN_WAIT, back).await;
                    if self.count(layout) > 0 {
                        continue;
                    }
                }
                break;
            };
            if c.is_alive() {
                tracing::debug!(container = c.id(), runs = c.runs(), "warm container taken");
                self.out.add(layout, 1);
                self.refill(layout);
                return Ok(c);
            }
            self.refill(layout);
            // Its init died while waiting: count it and heal.
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(container = c.id(), "warm container found dead; discarded");
            c.destroy().await;
        }
        tracing::debug!(?layout, "no warm container: creating one");
        self.refill(layout);
        let c = self.create(layout, limits).await?;
        self.out.add(layout, 1);
        Ok(c)
    }

    /// Starts creating one container of `layout` in the background if it is below target,
    /// counting the creations already under way.
    fn refill(self: &Arc<Self>, layout: &Layout) {
        let Some(spec) = self.specs.iter().find(|s| &s.layout == layout).cloned() else {
            return;
        };
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let under_way = pending.entry(layout.clone()).or_default();
            // Containers out on a step come back when recycled: counted as warm.
            let back = if self.recycle.runs > 1 {
                self.out.get(layout)
            } else {
                0
            };
            if self.count(layout) + *under_way + back >= spec.target {
                return;
            }
            *under_way += 1;
        }
        let pool = self.clone();
        self.tasks.spawn(async move {
            let created = match pool.creating.acquire().await {
                Ok(_permit) if !pool.closed.load(Ordering::Acquire) => {
                    Some(pool.create(&spec.layout, &spec.limits).await)
                }
                _ => None,
            };
            if let Some(Err(e)) = &created {
                tracing::error!(layout = %spec.name, error = %e, "warm container creation failed");
                // Back off a little so that a broken host does not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // The container joins the warm ones and leaves the pending count at once (under
            // the lock refills check), so that no refill sees it twice or not at all.
            let mut pending = pool.pending.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(Ok(c)) = created {
                pool.put(&spec.layout, c);
            }
            if let Some(n) = pending.get_mut(&spec.layout) {
                *n = n.saturating_sub(1);
            }
        });
    }

    /// Destroys `c`, taken from this pool, in the background instead of giving it back
    /// (a layout's replacement is then made); shutdown waits for it.
    pub fn destroy_later(self: &Arc<Self>, c: Container) {
        let pool = self.clone();
        self.tasks.spawn(async move {
            let layout = c.layout.clone();
            c.destroy().await;
            pool.out.add(&layout, -1);
            pool.refill(&layout);
        });
    }

    /// Takes back `c`, taken from this pool for a step that is over: it is checked and
    /// reset in the background and rejoins the warm ones, or is destroyed (and the reason
    /// counted). Shutdown waits for either.
    pub fn give_back(self: &Arc<Self>, mut c: Container) {
        let pool = self.clone();
        let layout = c.layout.clone();
        self.returning.add(&layout, 1);
        self.tasks.spawn(async move {
            let disk_bytes = layout.disk_bytes;
            let why = match pool.keep_reason(&c, &layout) {
                Some(why) => Err(why),
                None => c.recycle(disk_bytes).await,
            };
            // Back among the warm ones and no longer out at once (under the lock refills
            // check), so that no refill sees it twice or not at all.
            let kept = match why {
                Ok(()) if !pool.closed.load(Ordering::Acquire) => {
                    let mut warm = pool.warm.lock().unwrap_or_else(|p| p.into_inner());
                    warm.entry(layout.clone()).or_default().push(c);
                    pool.out.add(&layout, -1);
                    pool.returning.add(&layout, -1);
                    pool.recycled.fetch_add(1, Ordering::Relaxed);
                    drop(warm);
                    pool.back.notify_waiters();
                    None
                }
                Ok(()) => Some((c, "shutdown")),
                Err(why) => Some((c, why)),
            };
            if let Some((c, why)) = kept {
                // Not coming back: a taker waiting for it makes a new one.
                pool.returning.add(&layout, -1);
                pool.back.notify_waiters();
                tracing::debug!(
                    container = c.id(),
                    runs = c.runs(),
                    reason = why,
                    "container destroyed after its step"
                );
                *pool
                    .destroyed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(why)
                    .or_default() += 1;
                c.destroy().await;
                // Out until it is gone: a count of zero means every container taken is
                // back or removed.
                pool.out.add(&layout, -1);
                pool.refill(&layout);
            }
        });
    }

    /// Why `c` must not serve another step of `layout`, before any check of its own.
    fn keep_reason(&self, c: &Container, layout: &Layout) -> Option<&'static str> {
        if let Some(why) = c.doubt() {
            return Some(why);
        }
        if self.closed.load(Ordering::Acquire) {
            return Some("shutdown");
        }
        if c.runs() >= self.recycle.runs {
            return Some("runs");
        }
        if c.age() >= self.recycle.max_age {
            return Some("age");
        }
        let target = self
            .specs
            .iter()
            .find(|s| &s.layout == layout)
            .map_or(0, |s| s.target);
        if self.count(layout) >= target.max(1) {
            return Some("surplus");
        }
        None
    }

    /// Stops refilling, destroys every warm container, and waits for the background
    /// refills and removals still under way (a refill that ends now drops its container,
    /// which kills and reaps it).
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        let all: Vec<Container> = {
            let mut warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
            warm.drain().flat_map(|(_, v)| v).collect()
        };
        for c in all {
            c.destroy().await;
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}
