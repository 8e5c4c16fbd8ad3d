//! Prometheus metrics of the service.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use warmbox_sandbox::pool::Pool;

/// Every metric, registered in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Runs by profile and top-level status.
    pub runs: IntCounterVec,
    /// Step wall time by profile and step.
    pub step_seconds: HistogramVec,
    /// Whole request time by profile (queue excluded).
    pub request_seconds: HistogramVec,
    /// Warm containers per layout.
    pub warm: IntGaugeVec,
    /// Requests waiting for admission.
    pub queue_depth: IntGauge,
    /// Requests running.
    pub running: IntGauge,
    /// Container creation time.
    pub create_seconds: Histogram,
    /// Containers that could not be created, or died warm.
    pub container_failures: IntCounter,
    pool_failures_seen: IntCounter,
    /// Containers reset after a step and put back among the warm ones.
    pub recycled: IntCounter,
    /// Containers destroyed after serving, by reason (`Pool::destroyed`).
    pub destroyed: IntCounterVec,
    /// HTTP requests by route and status code.
    pub http_requests: IntCounterVec,
    /// Compile cache: entries and bytes held.
    pub compile_cache: IntGaugeVec,
    /// Compile cache lookups by result (`hit`, `miss`).
    pub compile_cache_lookups: IntCounterVec,
    /// Async jobs by status (in the whole store: on a shared one, every node's).
    pub jobs: IntGaugeVec,
    /// Async jobs this node runs now.
    pub node_jobs_running: IntGauge,
    /// Whether the job store answered the last time this node used it (1) or not (0).
    pub job_store_up: IntGauge,
}

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
                labels,
            )
        };
        let m = Metrics {
            runs: IntCounterVec::new(
                Opts::new("warmbox_runs_total", "Runs by profile and status"),
                &["profile", "status"],
            )?,
            step_seconds: histogram(
                "warmbox_step_duration_seconds",
                "Wall time of steps by profile and step",
                &["profile", "step"],
            )?,
            request_seconds: histogram(
                "warmbox_request_duration_seconds",
                "Time to answer a run request, queue excluded",
                &["profile"],
            )?,
            warm: IntGaugeVec::new(
                Opts::new("warmbox_warm_containers", "Warm containers per layout"),
                &["layout"],
            )?,
            queue_depth: IntGauge::new("warmbox_queue_depth", "Requests waiting for admission")?,
            running: IntGauge::new("warmbox_running_requests", "Requests running")?,
            create_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "warmbox_container_create_seconds",
                    "Time to create a ready container",
                )
                .buckets(BUCKETS.to_vec()),
            )?,
            container_failures: IntCounter::new(
                "warmbox_container_failures_total",
                "Containers that could not be created or died before use",
            )?,
            pool_failures_seen: IntCounter::new(
                "warmbox_pool_failures_seen",
                "Pool failures already counted (internal)",
            )?,
            recycled: IntCounter::new(
                "warmbox_containers_recycled_total",
                "Containers reset after a step and put back among the warm ones",
            )?,
            destroyed: IntCounterVec::new(
                Opts::new(
                    "warmbox_containers_destroyed_total",
                    "Containers destroyed after serving, by reason (runs, age, surplus, \
                     shutdown, security_violation, internal_error, fallback_kill, error, \
                     pids_peak, memory_peak, processes, mounts, memory, reset_failed, \
                     check_failed)",
                ),
                &["reason"],
            )?,
            http_requests: IntCounterVec::new(
                Opts::new(
                    "warmbox_http_requests_total",
                    "HTTP requests by route and code",
                ),
                &["route", "code"],
            )?,
            compile_cache: IntGaugeVec::new(
                Opts::new(
                    "warmbox_compile_cache",
                    "Compile cache: entries and bytes held",
                ),
                &["what"],
            )?,
            compile_cache_lookups: IntCounterVec::new(
                Opts::new(
                    "warmbox_compile_cache_lookups_total",
                    "Compile cache lookups by result",
                ),
                &["result"],
            )?,
            jobs: IntGaugeVec::new(
                Opts::new(
                    "warmbox_jobs",
                    "Async jobs by status, in the whole job store (all nodes on a shared one)",
                ),
                &["status"],
            )?,
            node_jobs_running: IntGauge::new(
                "warmbox_node_jobs_running",
                "Async jobs this node runs now",
            )?,
            job_store_up: IntGauge::new(
                "warmbox_job_store_up",
                "1 when the job store answered this node's last use of it, else 0",
            )?,
            registry,
        };
        m.registry.register(Box::new(m.runs.clone()))?;
        m.registry.register(Box::new(m.step_seconds.clone()))?;
        m.registry.register(Box::new(m.request_seconds.clone()))?;
        m.registry.register(Box::new(m.warm.clone()))?;
        m.registry.register(Box::new(m.queue_depth.clone()))?;
        m.registry.register(Box::new(m.running.clone()))?;
        m.registry.register(Box::new(m.create_seconds.clone()))?;
        m.registry
            .register(Box::new(m.container_failures.clone()))?;
        m.registry.register(Box::new(m.recycled.clone()))?;
        m.registry.register(Box::new(m.destroyed.clone()))?;
        m.registry.register(Box::new(m.http_requests.clone()))?;
        m.registry.register(Box::new(m.compile_cache.clone()))?;
        m.registry
            .register(Box::new(m.compile_cache_lookups.clone()))?;
        m.registry.register(Box::new(m.jobs.clone()))?;
        m.registry.register(Box::new(m.node_jobs_running.clone()))?;
        m.registry.register(Box::new(m.job_store_up.clone()))?;
        Ok(m)
    }

    /// Requests waiting for admission now.
    pub fn set_waiting(&self, n: usize) {
        self.queue_depth.set(gauge(n));
    }

    /// Requests running now.
    pub fn set_running(&self, n: usize) {
        self.running.set(gauge(n));
    }

    /// Brings the pool's figures in (called at each scrape).
    pub fn observe_pool(&self, pool: &Pool) {
        for (layout, n) in pool.warm_counts() {
            self.warm.with_label_values(&[&layout]).set(gauge(n));
        }
        for t in pool.take_create_times() {
            self.create_seconds.observe(t);
        }
        let failures = pool.failures();
        let seen = self.pool_failures_seen.get();
        if failures > seen {
            self.container_failures.inc_by(failures - seen);
            self.pool_failures_seen.inc_by(failures - seen);
        }
        // Only this brings the counters up: each one's value is what was counted so far.
        let recycled = pool.recycled();
        if recycled > self.recycled.get() {
            self.recycled.inc_by(recycled - self.recycled.get());
        }
        for (reason, n) in pool.destroyed() {
            let c = self.destroyed.with_label_values(&[reason]);
            if n > c.get() {
                c.inc_by(n - c.get());
            }
        }
    }

    /// Brings the compile cache's figures in (called at each scrape).
    pub fn observe_cache(&self, stats: warmbox_runner::runner::cache::CacheStats) {
        self.compile_cache
            .with_label_values(&["entries"])
            .set(gauge(stats.entries));
        self.compile_cache
            .with_label_values(&["bytes"])
            .set(gauge(stats.bytes));
        for (result, total) in [("hit", stats.hits), ("miss", stats.misses)] {
            let c = self.compile_cache_lookups.with_label_values(&[result]);
            if total > c.get() {
                c.inc_by(total - c.get());
            }
        }
    }

    /// Brings the job store's counts in (called at each scrape).
    pub fn observe_jobs(&self, counts: &std::collections::BTreeMap<String, usize>) {
        for (status, n) in counts {
            self.jobs.with_label_values(&[status]).set(gauge(*n));
        }
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for want of space; a bad metric name would have
        // failed at registration.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A count as a Prometheus gauge's value; past `i64::MAX` (no count here comes near) it
/// stays at the largest.
fn gauge(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}
