//! Pre-warmed containers, per layout. A container serves one step and is destroyed; the
//! pool only ever hands out containers that ran nothing, and refills in the background
//! with bounded creation concurrency.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::cgroup::CgroupLimits;
use crate::{Container, Layout, Sandbox, SandboxError};

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

/// Warm containers of every layout.
#[derive(Debug)]
pub struct Pool {
    sandbox: Arc<Sandbox>,
    specs: Vec<WarmSpec>,
    warm: Mutex<HashMap<Layout, Vec<Container>>>,
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
    /// containers at once.
    pub fn new(sandbox: Arc<Sandbox>, specs: Vec<WarmSpec>, concurrency: usize) -> Arc<Self> {
        Arc::new(Pool {
            sandbox,
            specs,
            warm: Mutex::new(HashMap::new()),
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
            let popped = {
                let mut warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
                warm.get_mut(layout).and_then(Vec::pop)
            };
            let Some(c) = popped else { break };
            self.refill(layout);
            if c.is_alive() {
                tracing::debug!(container = c.id(), "warm container taken");
                return Ok(c);
            }
            // Its init died while waiting: count it and heal.
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(container = c.id(), "warm container found dead; discarded");
            c.destroy().await;
        }
        tracing::debug!(?layout, "no warm container: creating one");
        self.refill(layout);
        self.create(layout, limits).await
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
            if self.count(layout) + *under_way >= spec.target {
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

    /// Destroys `c` in the background (its step is over); shutdown waits for it.
    pub fn destroy_later(&self, c: Container) {
        self.tasks.spawn(c.destroy());
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
