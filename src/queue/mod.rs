//! Async jobs: a request accepted now (`POST /v1/jobs`), run when a place is free, its
//! result kept for a while and POSTed to a callback URL. Jobs live in a durable store
//! ([`store::JobStore`]: a redb file of one node, or PostgreSQL shared by many), so a job
//! accepted before a crash or a restart runs after it, and on a shared store any node
//! answers for any job.
//!
//! A node runs a job once it has claimed it in the store, renews the claim's lease while it
//! runs, and stores the result only while the claim is still the job's (see [`store`]).
//! Jobs whose node stopped are queued again by any node once their lease runs out.

pub mod callback;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use store::{
    now_ms, CallbackState, Cancel, JobRecord, JobStatus, JobStore, Notice, Remove, Renewal,
    StoreError,
};
use warmbox_runner::admission::{Admission, Ticket};
use warmbox_runner::profile::ProfileSet;
use warmbox_runner::request::{self, RequestError, RunRequest};
use warmbox_runner::Runner;

/// Settings of the async jobs.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// How long a finished job and its result are kept.
    pub retention: Duration,
    /// Jobs queued at most.
    pub max_queued: usize,
    /// Deliveries of a callback tried at most.
    pub callback_attempts: u32,
    /// Wait before the second delivery; doubled before each further one.
    pub callback_backoff: Duration,
    /// Time one delivery may take.
    pub callback_timeout: Duration,
    /// Callbacks may go to loopback, private and link-local addresses.
    pub allow_private_callbacks: bool,
    /// This node's name in the store (a suffix of its own is added at each start).
    pub node_name: String,
    /// How long a claim of a running job holds without renewal.
    pub lease: Duration,
    /// Runs of a job started at most, before it ends as an internal error.
    pub attempts: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            retention: Duration::from_secs(24 * 3600),
            max_queued: 10_000,
            callback_attempts: 5,
            callback_backoff: Duration::from_secs(1),
            callback_timeout: Duration::from_secs(10),
            allow_private_callbacks: false,
            node_name: default_node_name(),
            lease: Duration::from_secs(30),
            attempts: 3,
        }
    }
}

/// The host's name, or `warmbox` when it has none.
fn default_node_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "warmbox".to_string())
}

/// Why a job could not be accepted or changed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The request is invalid (a 4xx with the request's own code).
    #[error("{0}")]
    Request(RequestError),
    /// No job has this id.
    #[error("no job {0}")]
    NotFound(Uuid),
    /// The job is finished (it cannot be cancelled), or not yet (it cannot be deleted).
    #[error("{0}")]
    Finished(String),
    /// The queue is full.
    #[error("the job queue is full ({queued} queued, at most {max}); retry shortly")]
    Full {
        /// Jobs queued now.
        queued: usize,
        /// The bound.
        max: usize,
    },
    /// The store failed, or cannot be reached ([`StoreError::is_unavailable`]).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Renders the callback of a finished job that an API layer submitted (see
/// [`JobRecord::meta`]): its method and body, or `None` for warmbox's own, a POST of the
/// job's [`view`]. Given at start, so that the queue knows no API layer.
pub type RenderCallback = fn(&JobRecord, &ProfileSet) -> Option<(reqwest::Method, Value)>;

/// One job as submitted: its request body (JSON, without `callback_url`) and callback.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The run request as JSON.
    pub request: Value,
    /// Where the result is POSTed.
    pub callback_url: Option<String>,
    /// Kept beside the request for an API layer (see [`JobRecord::meta`]).
    pub meta: Option<Value>,
}

/// The async jobs of one node.
#[derive(Debug)]
pub struct Jobs {
    store: Arc<dyn JobStore>,
    /// This node in the store: its name and a suffix of this start's own, so that a node
    /// started again under the same name never takes the claims of the one before.
    node: String,
    runner: Runner,
    profiles: Arc<ProfileSet>,
    admission: Arc<Admission>,
    config: JobsConfig,
    /// Told when there may be a job to claim (a submission here, a notice of the store).
    wake: Notify,
    /// Jobs queued in the store, as this node last knew: its own submissions and claims
    /// move it at once; on a shared store it is read afresh every [`maintenance_every`].
    queued: AtomicUsize,
    /// Jobs this node runs now: their cancellation, by id.
    running: Mutex<HashMap<Uuid, CancellationToken>>,
    /// Callbacks this node is delivering now.
    delivering: Mutex<HashSet<Uuid>>,
    /// Whether the store answered the last time it was used.
    reachable: AtomicBool,
    tasks: TaskTracker,
    /// Set at shutdown: no new job starts, no callback is retried.
    closing: CancellationToken,
    /// Set when the grace period is over: running jobs are dropped.
    stopping: CancellationToken,
    /// The callbacks' HTTP client, made at the first delivery (its TLS roots cost memory
    /// that a server without callbacks need not hold).
    client: std::sync::OnceLock<reqwest::Client>,
    /// Callback deliveries in flight, at most [`DELIVERIES`].
    deliveries: Semaphore,
    /// The callbacks of the API layers' jobs.
    render_callback: RenderCallback,
}

/// Callbacks delivered at once, at most.
const DELIVERIES: usize = 32;
/// The pause before a store operation that failed is tried again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// How often a node on a shared store looks for queued jobs when no notice came.
const POLL: Duration = Duration::from_secs(1);
/// Time a callback's delivery claim holds beyond the delivery's own timeout and wait.
const DELIVERY_MARGIN: Duration = Duration::from_secs(5);

/// How often a node on a shared store expires leases, takes over orphaned callbacks and
/// reads the queue's depth: a few times a lease, at least every 5 s.
fn maintenance_every(lease: Duration) -> Duration {
    (lease / 4).clamp(Duration::from_millis(250), Duration::from_secs(5))
}

/// A job's cancellation token in [`Jobs::running`] while its task runs: removed when the
/// task ends, whichever way.
struct Registered<'a> {
    jobs: &'a Jobs,
    id: Uuid,
}

impl<'a> Registered<'a> {
    fn new(jobs: &'a Jobs, id: Uuid, token: CancellationToken) -> Self {
        jobs.lock_running().insert(id, token);
        Registered { jobs, id }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.jobs.lock_running().remove(&self.id);
    }
}

/// A callback in [`Jobs::delivering`] while its delivery runs.
struct Delivering<'a> {
    jobs: &'a Jobs,
    id: Uuid,
}

impl Drop for Delivering<'_> {
    fn drop(&mut self) {
        lock(&self.jobs.delivering).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Awaits `fut` in a task of its own, so that it runs to its end even when the caller is
/// dropped (an HTTP client that hangs up drops its handler): a change to the store and
/// what goes with it (the queue, the counts, a cancel's signal, a callback) happen
/// together.
async fn to_the_end<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    match tokio::spawn(fut).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled only when the runtime shuts down, and then no one waits for this.
        Err(_) => std::future::pending().await,
    }
}

/// How a claimed job's run ended.
enum Outcome {
    /// It ran: its response.
    Ran(Value),
    /// It was cancelled (the store says so).
    Cancelled,
    /// The claim was lost (the lease ran out, or could not be renewed in time).
    Lost,
    /// The node stops: the claim is given back.
    Stopping,
}

impl Jobs {
    /// Opens the jobs of `store` and starts claiming queued jobs to run on `runner`.
    /// On a store of one node (redb), the jobs an earlier instance left running are queued
    /// again first (or ended, past their attempts). Callbacks are rendered by
    /// `render_callback`.
    pub async fn start(
        store: Arc<dyn JobStore>,
        runner: Runner,
        profiles: Arc<ProfileSet>,
        admission: Arc<Admission>,
        config: JobsConfig,
        render_callback: RenderCallback,
    ) -> Result<Arc<Jobs>, JobError> {
        let node = format!(
            "{}-{}",
            config.node_name,
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let jobs = Arc::new(Jobs {
            store,
            node,
            runner,
            profiles,
            admission,
            config,
            wake: Notify::new(),
            queued: AtomicUsize::new(0),
            running: Mutex::new(HashMap::new()),
            delivering: Mutex::new(HashSet::new()),
            reachable: AtomicBool::new(true),
            tasks: TaskTracker::new(),
            closing: CancellationToken::new(),
            stopping: CancellationToken::new(),
            client: std::sync::OnceLock::new(),
            deliveries: Semaphore::new(DELIVERIES),
            render_callback,
        });
        // On a store of one's own, every claim in it is of a process that is gone. On a
        // shared one, those of earlier processes of this node's name are (a name is one
        // live node at a time); other nodes' claims are taken only when their lease runs
        // out (the maintenance).
        let shared = jobs.store.shared();
        let now = now_ms();
        let expired = if shared {
            let name = &jobs.config.node_name;
            jobs.store
                .take_over(name, now, jobs.config.attempts)
                .await?
        } else {
            jobs.store.expire(u64::MAX, jobs.config.attempts).await?
        };
        if !expired.requeued.is_empty() || !expired.ended.is_empty() {
            tracing::info!(
                requeued = expired.requeued.len(),
                ended = expired.ended.len(),
                "the jobs an earlier process left running: queued again, or ended past their attempts"
            );
        }
        for id in expired.ended {
            jobs.deliver_later(id);
        }
        let counts = jobs.store.counts().await?;
        jobs.queued.store(
            counts.get(&JobStatus::Queued).copied().unwrap_or(0),
            Ordering::Release,
        );
        let undelivered = jobs
            .store
            .deliverable(
                if shared { now } else { u64::MAX },
                jobs.config.callback_attempts,
            )
            .await?;
        if !undelivered.is_empty() {
            tracing::info!(
                jobs = undelivered.len(),
                "delivering the callbacks an earlier instance left"
            );
        }
        for id in undelivered {
            jobs.deliver_later(id);
        }
        if let Some(notices) = jobs.store.notices() {
            jobs.tasks.spawn(jobs.clone().follow(notices));
        }
        if shared {
            jobs.tasks.spawn(jobs.clone().maintain());
        }
        jobs.tasks.spawn(jobs.clone().dispatch());
        jobs.tasks.spawn(jobs.clone().sweep());
        tracing::info!(node = %jobs.node, store = %jobs.store.describe(), "jobs started");
        Ok(jobs)
    }

    /// Whether the store answered the last time this node used it.
    pub fn store_reachable(&self) -> bool {
        self.reachable.load(Ordering::Acquire)
    }

    /// Checks a callback URL against this server's rule (see [`callback`]).
    pub fn check_callback_url(&self, url: &str) -> Result<(), RequestError> {
        callback::check_url(url, self.config.allow_private_callbacks)
    }

    /// Jobs in the store by status (`queued`, `running`, `done`, `cancelled`): on a shared
    /// store, all nodes' jobs.
    pub async fn counts(&self) -> Result<std::collections::BTreeMap<String, usize>, JobError> {
        let counts = self.seen(self.store.counts().await)?;
        Ok(counts
            .into_iter()
            .map(|(s, n)| (s.name().to_string(), n))
            .collect())
    }

    /// Jobs queued now, as this node knows.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Jobs this node runs now.
    pub fn running_here(&self) -> usize {
        self.lock_running().len()
    }

    /// What [`Jobs::submit`] checks of each submission: its request, its callback URL.
    pub fn check(&self, s: &Submission) -> Result<(), RequestError> {
        parse(&s.request, &self.profiles)?;
        if let Some(url) = &s.callback_url {
            self.check_callback_url(url)?;
        }
        Ok(())
    }

    /// Checks every submission, then stores them all at once and queues them: either all
    /// are accepted or none. In a `batch` the error names the first bad one as `jobs[i]`.
    pub async fn submit(
        self: &Arc<Self>,
        subs: Vec<Submission>,
        batch: bool,
    ) -> Result<Vec<JobRecord>, JobError> {
        let at = |i: usize, e: RequestError| {
            JobError::Request(if batch {
                RequestError {
                    code: e.code,
                    message: format!("jobs[{i}].{}", e.message),
                }
            } else {
                e
            })
        };
        for (i, s) in subs.iter().enumerate() {
            self.check(s).map_err(|e| at(i, e))?;
        }
        self.submit_checked(subs).await
    }

    /// Stores submissions that passed [`Jobs::check`] all at once and queues them: all
    /// or none, even if the caller is dropped meanwhile.
    pub async fn submit_checked(
        self: &Arc<Self>,
        subs: Vec<Submission>,
    ) -> Result<Vec<JobRecord>, JobError> {
        let me = self.clone();
        to_the_end(async move { me.store_and_queue(subs).await }).await
    }

    async fn store_and_queue(&self, subs: Vec<Submission>) -> Result<Vec<JobRecord>, JobError> {
        // The places are taken first, so that submissions at the same time cannot pass
        // the bound together; they are given back when the jobs are not stored.
        let n = subs.len();
        if n > self.config.max_queued {
            // No wait would let these in: a 503 that asks to retry would be a lie.
            return Err(JobError::Request(RequestError::invalid(format!(
                "{n} jobs at once, but the job queue holds at most {}; send them in smaller batches",
                self.config.max_queued
            ))));
        }
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before + n > self.config.max_queued {
            self.uncount_queued(n);
            return Err(JobError::Full {
                queued: before,
                max: self.config.max_queued,
            });
        }
        let now = now_ms();
        let records: Vec<JobRecord> = subs.into_iter().map(|s| record(s, now)).collect();
        if let Err(e) = self.seen(self.store.insert(records.clone()).await) {
            self.uncount_queued(n);
            return Err(e.into());
        }
        self.wake.notify_one();
        Ok(records)
    }

    /// Takes `n` off the queued count (never below 0: on a shared store other nodes'
    /// claims are counted only when it is read afresh).
    fn uncount_queued(&self, n: usize) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(n))
            });
    }

    /// Stores a job that already ran, from `started_ms` to now, with its `result` (a
    /// synchronous submission of a compat API that is kept for later reads), delivers its
    /// callback, and returns its record.
    pub async fn insert_finished(
        self: &Arc<Self>,
        sub: Submission,
        started_ms: u64,
        result: Option<Value>,
    ) -> Result<JobRecord, JobError> {
        let record = JobRecord {
            status: JobStatus::Done,
            started_ms: Some(started_ms),
            finished_ms: Some(now_ms()),
            result,
            attempts: 1,
            node: Some(self.node.clone()),
            ..record(sub, started_ms)
        };
        let me = self.clone();
        to_the_end(async move {
            me.seen(me.store.insert(vec![record.clone()]).await)?;
            if record.callback.is_some() {
                me.deliver_later(record.id);
            }
            Ok(record)
        })
        .await
    }

    /// Removes a finished job; a queued or running one is refused with its status.
    pub async fn remove_finished(&self, id: Uuid) -> Result<JobRecord, JobError> {
        match self.seen(self.store.remove_finished(id).await)? {
            Remove::Removed(r) => Ok(*r),
            Remove::NotFound => Err(JobError::NotFound(id)),
            Remove::Unfinished(status) => Err(JobError::Finished(format!(
                "job {id} is {}: only a finished job can be deleted",
                status.name()
            ))),
        }
    }

    /// The job `id`.
    pub async fn get(&self, id: Uuid) -> Result<JobRecord, JobError> {
        self.seen(self.store.get(id).await)?
            .ok_or(JobError::NotFound(id))
    }

    /// `r`, noting whether the store was reachable.
    fn seen<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match &r {
            Ok(_) => self.reachable.store(true, Ordering::Release),
            Err(e) if e.is_unavailable() => {
                if self.reachable.swap(false, Ordering::AcqRel) {
                    tracing::error!(error = %e, "the job store is unreachable");
                }
            }
            Err(_) => {}
        }
        r
    }

    /// Cancels a queued or running job (a running one is killed, on whichever node runs
    /// it, its containers removed) and delivers its callback.
    pub async fn cancel(self: &Arc<Self>, id: Uuid) -> Result<JobRecord, JobError> {
        let me = self.clone();
        to_the_end(async move { me.cancel_now(id).await }).await
    }

    async fn cancel_now(self: Arc<Self>, id: Uuid) -> Result<JobRecord, JobError> {
        match self.seen(self.store.cancel(id, now_ms()).await)? {
            Cancel::NotFound => Err(JobError::NotFound(id)),
            Cancel::Finished(status) => Err(JobError::Finished(format!(
                "job {id} is already {}; only a queued or running job can be cancelled",
                status.name()
            ))),
            Cancel::Done { record, was } => {
                if was == JobStatus::Queued {
                    self.uncount_queued(1);
                }
                // Running here: stopped now. Running on another node: that node hears of
                // it from the store (a notice, or its next renewal).
                if let Some(t) = self.lock_running().get(&id) {
                    t.cancel();
                }
                self.deliver_later(id);
                Ok(*record)
            }
        }
    }

    /// Stops taking jobs and waits up to `grace` for the running ones; those still running
    /// then are dropped (their containers removed) and given back to the queue.
    pub async fn shutdown(&self, grace: Duration) {
        self.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("jobs still running after the grace period: given back to the queue");
            self.stopping.cancel();
            self.tasks.wait().await;
        }
    }

    /// Starts no further job (the first step of [`Jobs::shutdown`]).
    pub fn close(&self) {
        self.tasks.close();
        self.closing.cancel();
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, CancellationToken>> {
        lock(&self.running)
    }

    /// Claims queued jobs as places free up, at most as many at once as the admission
    /// has places, and runs each in a task of its own.
    async fn dispatch(self: Arc<Self>) {
        let slots = Arc::new(Semaphore::new(self.admission.capacity()));
        let shared = self.store.shared();
        loop {
            let slot = tokio::select! {
                s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => return },
                _ = self.closing.cancelled() => return,
            };
            // A job shares the service's places with `/v1/run`: it is claimed ("running",
            // with a start time) only once it has one.
            let ticket = tokio::select! {
                t = self.admission.wait_extra() => t,
                _ = self.closing.cancelled() => return,
            };
            let now = now_ms();
            let claimed = self
                .store
                .claim(
                    &self.node,
                    now,
                    now.saturating_add(millis(self.config.lease)),
                )
                .await;
            match self.seen(claimed) {
                Ok(Some(record)) => {
                    self.uncount_queued(1);
                    let me = self.clone();
                    self.tasks.spawn(async move {
                        let _slot = slot;
                        me.run_claimed(record, ticket).await;
                    });
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    drop((slot, ticket));
                    tracing::warn!(error = %e, "claiming a job: trying again shortly");
                    tokio::select! {
                        _ = tokio::time::sleep(STORE_RETRY) => {}
                        _ = self.closing.cancelled() => return,
                    }
                    continue;
                }
            }
            drop((slot, ticket));
            // Nothing queued: wait for news (a submission here, a notice of the store), or
            // on a shared store look again after a while (a notice may be lost).
            let poll = async {
                if shared {
                    tokio::time::sleep(POLL).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = poll => {}
                _ = self.closing.cancelled() => return,
            }
        }
    }

    /// Runs a job this node claimed, renewing the claim meanwhile; stores its result while
    /// the claim is still the job's and delivers its callback.
    async fn run_claimed(self: Arc<Self>, record: JobRecord, ticket: Ticket) {
        let id = record.id;
        let attempt = record.attempts;
        let cancel = CancellationToken::new();
        let _registered = Registered::new(&self, id, cancel.clone());
        let lost = CancellationToken::new();
        let done = CancellationToken::new();
        let renewing = self.tasks.spawn(self.clone().renew(
            id,
            attempt,
            cancel.clone(),
            lost.clone(),
            done.clone(),
        ));
        let outcome = tokio::select! {
            r = self.execute(&record.request, ticket) => Outcome::Ran(r),
            _ = cancel.cancelled() => Outcome::Cancelled,
            _ = lost.cancelled() => Outcome::Lost,
            _ = self.stopping.cancelled() => Outcome::Stopping,
        };
        match outcome {
            Outcome::Ran(result) => self.store_result(id, attempt, result, &lost).await,
            // The store says so already; the cancel delivers the callback.
            Outcome::Cancelled => {}
            Outcome::Lost => {
                tracing::warn!(job = %id, attempt, "lost the claim of a running job: stopped it, storing nothing");
            }
            Outcome::Stopping => match self.store.release(id, attempt, &self.node).await {
                Ok(true) => tracing::info!(job = %id, "gave a running job back to the queue"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "giving a job back: left to its lease");
                }
            },
        }
        done.cancel();
        let _ = renewing.await;
    }

    /// Stores job `id`'s result, trying again while the store fails and the claim holds.
    async fn store_result(
        self: &Arc<Self>,
        id: Uuid,
        attempt: u32,
        result: Value,
        lost: &CancellationToken,
    ) {
        loop {
            let stored = self
                .store
                .finish(id, attempt, &self.node, result.clone(), now_ms())
                .await;
            match self.seen(stored) {
                Ok(Some(_)) => {
                    self.deliver_later(id);
                    return;
                }
                Ok(None) => {
                    tracing::info!(job = %id, attempt, "the job's claim was no longer this node's: its result is not stored");
                    return;
                }
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "storing a job's result: trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(STORE_RETRY) => {}
                        // Queued again by the store, or about to be: another node runs it.
                        _ = lost.cancelled() => {
                            tracing::error!(job = %id, "storing a job's result: gave up, the claim ran out");
                            return;
                        }
                        _ = self.stopping.cancelled() => return,
                    }
                }
            }
        }
    }

    /// Renews the claim of a running job every third of the lease until `done`; cancels
    /// `cancel` when the job was cancelled, and `lost` when the claim is not the job's any
    /// more or could not be renewed before its lease ran out.
    async fn renew(
        self: Arc<Self>,
        id: Uuid,
        attempt: u32,
        cancel: CancellationToken,
        lost: CancellationToken,
        done: CancellationToken,
    ) {
        let lease = self.config.lease;
        // The lease as this node knows it; given up a little before, as clocks differ.
        let mut held_until = Instant::now() + lease;
        let margin = lease / 6;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(lease / 3) => {}
                _ = done.cancelled() => return,
            }
            let asked = Instant::now();
            let renewed = self
                .store
                .renew(
                    id,
                    attempt,
                    &self.node,
                    now_ms().saturating_add(millis(lease)),
                )
                .await;
            match self.seen(renewed) {
                Ok(Renewal::Held) => held_until = asked + lease,
                Ok(Renewal::Cancelled) => {
                    cancel.cancel();
                    return;
                }
                Ok(Renewal::Lost) => {
                    lost.cancel();
                    return;
                }
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "renewing a job's claim");
                    if Instant::now() + margin >= held_until {
                        tracing::error!(job = %id, "the claim could not be renewed in time: the run is stopped");
                        lost.cancel();
                        return;
                    }
                }
            }
        }
    }

    /// Acts on what other nodes did, as a shared store tells.
    async fn follow(self: Arc<Self>, mut notices: tokio::sync::mpsc::UnboundedReceiver<Notice>) {
        loop {
            let notice = tokio::select! {
                n = notices.recv() => match n { Some(n) => n, None => return },
                _ = self.closing.cancelled() => return,
            };
            match notice {
                Notice::Queued | Notice::Resumed => self.wake.notify_one(),
                Notice::Cancelled(id) => {
                    if let Some(t) = self.lock_running().get(&id) {
                        t.cancel();
                    }
                }
            }
        }
    }

    /// On a shared store, now and then: queues again the jobs whose node stopped (or ends
    /// them past their attempts), takes over the callbacks no live node delivers, and
    /// reads the queue's depth afresh.
    async fn maintain(self: Arc<Self>) {
        let every = maintenance_every(self.config.lease);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.closing.cancelled() => return,
            }
            let now = now_ms();
            match self.seen(self.store.expire(now, self.config.attempts).await) {
                Ok(expired) => {
                    if !expired.requeued.is_empty() || !expired.ended.is_empty() {
                        tracing::warn!(
                            requeued = expired.requeued.len(),
                            ended = expired.ended.len(),
                            "jobs whose node stopped: queued again, or ended past their attempts"
                        );
                    }
                    if !expired.requeued.is_empty() {
                        self.wake.notify_one();
                    }
                    for id in expired.ended {
                        self.deliver_later(id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "expiring the leases of running jobs"),
            }
            match self.seen(
                self.store
                    .deliverable(now, self.config.callback_attempts)
                    .await,
            ) {
                Ok(ids) => {
                    for id in ids {
                        self.deliver_later(id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing callbacks to deliver"),
            }
            if let Ok(counts) = self.seen(self.store.counts().await) {
                self.queued.store(
                    counts.get(&JobStatus::Queued).copied().unwrap_or(0),
                    Ordering::Release,
                );
            }
        }
    }

    /// Delivers job `id`'s callback in a task of its own: a slow callback host holds up
    /// no job.
    fn deliver_later(self: &Arc<Self>, id: Uuid) {
        if !lock(&self.delivering).insert(id) {
            return;
        }
        let me = self.clone();
        self.tasks.spawn(async move {
            let _delivering = Delivering { jobs: &me, id };
            me.deliver(id).await;
        });
    }

    /// The response of one job's request, or its error as the API would have answered it.
    async fn execute(&self, request: &Value, _ticket: Ticket) -> Value {
        let valid = match parse(request, &self.profiles) {
            Ok(v) => v,
            Err(e) => return json!({"error": {"code": e.code, "message": e.message}}),
        };
        match self.runner.run(&valid).await {
            Ok(resp) => serde_json::to_value(resp).unwrap_or_else(
                |e| json!({"error": {"code": "internal", "message": format!("encode: {e}")}}),
            ),
            Err(e) => json!({"error": {"code": "sandbox_failure",
                "message": format!("could not create a container: {e}")}}),
        }
    }

    /// Delivers job `id`'s callback while this node holds its delivery claim, retrying
    /// with backoff; every attempt is recorded in the store. The request carries an
    /// `Idempotency-Key` naming the job and the run that made the result, the same in
    /// every retry, so that a receiver can tell a repeat.
    async fn deliver(&self, id: Uuid) {
        let mut wait = self.config.callback_backoff;
        let attempts = self.config.callback_attempts;
        let timeout = self.config.callback_timeout;
        loop {
            let now = now_ms();
            let hold = millis(timeout + DELIVERY_MARGIN);
            // On a store of one's own, a claim of another node's is of a process that is
            // gone: free whatever its time.
            let free_at = if self.store.shared() { now } else { u64::MAX };
            let claimed = self
                .store
                .claim_delivery(id, &self.node, free_at, now.saturating_add(hold), attempts)
                .await;
            let record = match self.seen(claimed) {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "claiming a callback's delivery");
                    return;
                }
            };
            let Some(cb) = &record.callback else { return };
            let (method, body) = (self.render_callback)(&record, &self.profiles)
                .unwrap_or_else(|| (reqwest::Method::POST, view(&record)));
            // A bounded number of deliveries at once: a backlog (after a restart, or for a
            // slow host) must not open a connection for each.
            let Ok(_sending) = self.deliveries.acquire().await else {
                return;
            };
            let key = format!("{id}:{}", record.attempts);
            let error = match self.callback_client() {
                Err(e) => Some(format!("could not make the callback client: {e}")),
                Ok(client) => match client
                    .request(method, &cb.url)
                    .header("Idempotency-Key", key)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => None,
                    Ok(r) => Some(format!("the callback answered {}", r.status())),
                    Err(e) => Some(format!("could not deliver: {}", error_chain(&e))),
                },
            };
            let delivered = error.is_none();
            let next = now_ms().saturating_add(millis(wait + timeout + DELIVERY_MARGIN));
            let recorded = self
                .store
                .record_delivery(id, &self.node, delivered, error.clone(), next)
                .await;
            match self.seen(recorded) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "recording a callback attempt");
                    return;
                }
            }
            if delivered || cb.attempts + 1 >= attempts {
                return;
            }
            tracing::info!(job = %id, error = ?error, "callback failed; will retry");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.closing.cancelled() => return,
            }
            wait *= 2;
        }
    }

    /// The callbacks' client, made once.
    fn callback_client(&self) -> reqwest::Result<&reqwest::Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let made = callback::client(
            self.config.callback_timeout,
            self.config.allow_private_callbacks,
        )?;
        // Two first deliveries at once may both make one; either will do.
        Ok(self.client.get_or_init(|| made))
    }

    /// Removes finished jobs past their retention, now and then.
    async fn sweep(self: Arc<Self>) {
        let every =
            (self.config.retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            let cutoff = now_ms().saturating_sub(millis(self.config.retention));
            let attempts = self.config.callback_attempts;
            match self.seen(self.store.remove_finished_before(cutoff, attempts).await) {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "removed finished jobs past their retention"),
                Err(e) => tracing::warn!(error = %e, "removing old jobs"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.closing.cancelled() => return,
            }
        }
    }
}

/// `d` in whole ms (a duration past u64::MAX ms, 585 million years, is u64::MAX).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A job as the API shows it.
pub fn view(r: &JobRecord) -> Value {
    json!({
        "id": r.id,
        "status": r.status,
        "created_ms": r.created_ms,
        "started_ms": r.started_ms,
        "finished_ms": r.finished_ms,
        "attempts": r.attempts,
        "node": r.node,
        "result": r.result,
        "callback": r.callback,
    })
}

/// The queued record of a new job, made at `created_ms`.
fn record(sub: Submission, created_ms: u64) -> JobRecord {
    JobRecord {
        callback: sub.callback_url.map(|url| CallbackState {
            url,
            ..CallbackState::default()
        }),
        meta: sub.meta,
        ..JobRecord::queued(Uuid::new_v4(), sub.request, created_ms)
    }
}

/// The request of a job body, checked.
fn parse(
    request: &Value,
    profiles: &ProfileSet,
) -> Result<request::ValidatedRequest, RequestError> {
    let req: RunRequest = serde_json::from_value(request.clone()).map_err(|e| RequestError {
        code: "invalid_json",
        message: format!("request body: {e}"),
    })?;
    request::validate(&req, profiles)
}

/// An error and its causes, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
