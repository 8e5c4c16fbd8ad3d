//! Async jobs: a request accepted now (`POST /v1/jobs`), run when a place is free, its
//! result kept for a while and POSTed to a callback URL. Jobs live in a durable store, so a
//! job accepted before a crash or a restart runs after it.

pub mod callback;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use store::{now_ms, CallbackState, JobRecord, JobStatus, Refusal, Store, StoreError};
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
        }
    }
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
    /// The job is finished; it cannot be cancelled.
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
    /// The store failed.
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

/// The async jobs of one server.
#[derive(Debug)]
pub struct Jobs {
    store: Arc<Store>,
    runner: Runner,
    profiles: Arc<ProfileSet>,
    admission: Arc<Admission>,
    config: JobsConfig,
    queue: mpsc::UnboundedSender<Uuid>,
    queued: AtomicUsize,
    /// Running jobs' cancellation, by id.
    running: Mutex<HashMap<Uuid, CancellationToken>>,
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
/// The pause before a store write that failed is tried again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// Attempts at storing a job's result before it is left for the next start.
const STORE_ATTEMPTS: u32 = 5;

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

impl Jobs {
    /// Opens the jobs of `store`: jobs that were queued or running when the last server
    /// stopped are queued again, oldest first, and start running on `runner`. Callbacks
    /// are rendered by `render_callback`.
    pub fn start(
        store: Arc<Store>,
        runner: Runner,
        profiles: Arc<ProfileSet>,
        admission: Arc<Admission>,
        config: JobsConfig,
        render_callback: RenderCallback,
    ) -> Result<Arc<Jobs>, JobError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let jobs = Arc::new(Jobs {
            store,
            runner,
            profiles,
            admission,
            config,
            queue: tx,
            queued: AtomicUsize::new(0),
            running: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            closing: CancellationToken::new(),
            stopping: CancellationToken::new(),
            client: std::sync::OnceLock::new(),
            deliveries: Semaphore::new(DELIVERIES),
            render_callback,
        });
        // A job that was running when the server stopped starts over.
        jobs.store.requeue_running()?;
        let again = jobs.store.unfinished()?;
        for id in &again {
            jobs.queued.fetch_add(1, Ordering::AcqRel);
            let _ = jobs.queue.send(*id);
        }
        if !again.is_empty() {
            tracing::info!(
                jobs = again.len(),
                "queued again the jobs an earlier instance left"
            );
        }
        let undelivered = jobs
            .store
            .pending_callbacks(jobs.config.callback_attempts)?;
        if !undelivered.is_empty() {
            tracing::info!(
                jobs = undelivered.len(),
                "delivering the callbacks an earlier instance left"
            );
        }
        for id in undelivered {
            jobs.deliver_later(id);
        }
        jobs.tasks.spawn(jobs.clone().dispatch(rx));
        jobs.tasks.spawn(jobs.clone().sweep());
        Ok(jobs)
    }

    /// Checks a callback URL against this server's rule (see [`callback`]).
    pub fn check_callback_url(&self, url: &str) -> Result<(), RequestError> {
        callback::check_url(url, self.config.allow_private_callbacks)
    }

    /// Jobs in the store by status (`queued`, `running`, `done`, `cancelled`).
    pub async fn counts(&self) -> Result<std::collections::BTreeMap<String, usize>, JobError> {
        let counts = self.blocking(|s| s.counts()).await?;
        Ok(counts
            .into_iter()
            .map(|(s, n)| (warmbox_runner::request::wire_name(&s), n))
            .collect())
    }

    /// Jobs queued now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
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
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(JobError::Full {
                queued: before,
                max: self.config.max_queued,
            });
        }
        let now = now_ms();
        let records: Vec<JobRecord> = subs.into_iter().map(|s| record(s, now)).collect();
        let stored = self
            .blocking(move |s| s.insert(&records).map(|()| records))
            .await;
        let records = match stored {
            Ok(r) => r,
            Err(e) => {
                self.queued.fetch_sub(n, Ordering::AcqRel);
                return Err(e.into());
            }
        };
        for r in &records {
            let _ = self.queue.send(r.id);
        }
        Ok(records)
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
            ..record(sub, started_ms)
        };
        let me = self.clone();
        to_the_end(async move {
            let stored = record.clone();
            me.blocking(move |s| s.insert(&[stored])).await?;
            if record.callback.is_some() {
                me.deliver_later(record.id);
            }
            Ok(record)
        })
        .await
    }

    /// Removes a finished job; a queued or running one is refused with its status.
    pub async fn remove_finished(&self, id: Uuid) -> Result<JobRecord, JobError> {
        let record = self.get(id).await?;
        if record.status.is_unfinished() {
            return Err(JobError::Finished(format!(
                "job {id} is {}: only a finished job can be deleted",
                warmbox_runner::request::wire_name(&record.status)
            )));
        }
        self.blocking(move |s| s.remove(id))
            .await?
            .ok_or(JobError::NotFound(id))
    }

    /// The job `id`.
    pub async fn get(&self, id: Uuid) -> Result<JobRecord, JobError> {
        self.blocking(move |s| s.get(id))
            .await?
            .ok_or(JobError::NotFound(id))
    }

    /// Runs `f` on the store on the blocking pool: every commit waits for the disk.
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Store) -> T + Send + 'static) -> T {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(v) => v,
            // A panic in the store is a bug: let it go on unwinding here.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Cancels a queued or running job (a running one is killed, its containers removed)
    /// and delivers its callback.
    pub async fn cancel(self: &Arc<Self>, id: Uuid) -> Result<JobRecord, JobError> {
        let me = self.clone();
        to_the_end(async move { me.cancel_now(id).await }).await
    }

    async fn cancel_now(self: Arc<Self>, id: Uuid) -> Result<JobRecord, JobError> {
        let (r, was) = self
            .blocking(move |s| {
                let mut was = None;
                let r = s.update(id, |r| match r.status {
                    JobStatus::Queued | JobStatus::Running => {
                        was = Some(r.status);
                        r.status = JobStatus::Cancelled;
                        r.finished_ms = Some(now_ms());
                        Ok(())
                    }
                    st => Err(Refusal(format!(
                        "job {id} is already {}; only a queued or running job can be cancelled",
                        warmbox_runner::request::wire_name(&st)
                    ))),
                });
                (r, was)
            })
            .await;
        let record = match r {
            Ok(Some(r)) => r,
            Ok(None) => return Err(JobError::NotFound(id)),
            Err(StoreError::Refused(m)) => return Err(JobError::Finished(m)),
            Err(e) => return Err(e.into()),
        };
        if was == Some(JobStatus::Queued) {
            // Counted out here; its task (if one waits for a place for it) sees the token
            // or the store and leaves the callback to this call.
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.deliver_later(id);
        }
        if let Some(t) = self.lock_running().get(&id) {
            t.cancel();
        }
        Ok(record)
    }

    /// Stops taking jobs and waits up to `grace` for the running ones; those still running
    /// then are dropped (their containers removed) and stay "running" in the store, to be
    /// run again by the next server.
    pub async fn shutdown(&self, grace: Duration) {
        self.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("jobs still running after the grace period: left for the next start");
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
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts queued jobs as places free up, at most as many at once as the admission
    /// has places.
    async fn dispatch(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Uuid>) {
        let slots = Arc::new(Semaphore::new(self.admission.capacity()));
        loop {
            let id = tokio::select! {
                id = rx.recv() => match id { Some(id) => id, None => return },
                _ = self.closing.cancelled() => return,
            };
            let slot = tokio::select! {
                s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => return },
                _ = self.closing.cancelled() => return,
            };
            let me = self.clone();
            self.tasks.spawn(async move {
                let _slot = slot;
                me.run_one(id).await;
            });
        }
    }

    /// Runs job `id` if it is still queued, stores its result and delivers its callback.
    async fn run_one(self: Arc<Self>, id: Uuid) {
        // The token is in place before the job is marked running, so that a cancel that
        // sees "running" always finds it.
        let cancel = CancellationToken::new();
        let _registered = Registered::new(&self, id, cancel.clone());
        // Cancelled while it was in the channel: nothing to wait for. (A cancel from now on
        // finds the token.)
        let gone = match self.blocking(move |s| s.get(id)).await {
            Ok(Some(r)) => r.status != JobStatus::Queued,
            Ok(None) => true,
            // Decided below, where a failing store puts the job back in the queue.
            Err(_) => false,
        };
        if gone {
            return;
        }
        // A job shares the service's places with `/v1/run`: it is "running" (and has a
        // start time) only once it has one. Until then it is queued, and a cancel, the
        // shutdown or a stop leave it as the store says.
        let ticket = tokio::select! {
            t = self.admission.wait_extra() => t,
            _ = cancel.cancelled() => return,
            _ = self.closing.cancelled() => return,
        };
        let started = self
            .advance(id, JobStatus::Queued, |r| {
                r.status = JobStatus::Running;
                r.started_ms = Some(now_ms());
            })
            .await;
        let record = match started {
            Ok(Some(r)) => r,
            // Cancelled while it waited (the cancel counted it out), or gone.
            Ok(None) | Err(StoreError::Refused(_)) => return,
            Err(e) => {
                // Still queued in the store: tried again after a pause (still counted).
                tracing::error!(job = %id, error = %e, "job store: the job waits and is tried again");
                drop(ticket);
                let me = self.clone();
                self.tasks.spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep(STORE_RETRY) => { let _ = me.queue.send(id); }
                        _ = me.closing.cancelled() => {}
                    }
                });
                return;
            }
        };
        self.queued.fetch_sub(1, Ordering::AcqRel);
        let outcome = tokio::select! {
            r = self.execute(&record.request, ticket) => Some(r),
            _ = cancel.cancelled() => None,
            // Left "running": the next start runs it again.
            _ = self.stopping.cancelled() => return,
        };
        let Some(result) = outcome else {
            // Cancelled: the store already says so.
            self.deliver_later(id);
            return;
        };
        let result = Arc::new(result);
        for attempt in 1.. {
            let result = result.clone();
            let done = self
                .advance(id, JobStatus::Running, move |r| {
                    r.status = JobStatus::Done;
                    r.finished_ms = Some(now_ms());
                    r.result = Some(Value::clone(&result));
                })
                .await;
            match done {
                Ok(_) => break,
                // Cancelled after it ran (a cancel of a running job leaves the callback to
                // this task): the record says so.
                Err(StoreError::Refused(_)) => break,
                Err(e) if attempt < STORE_ATTEMPTS && !self.closing.is_cancelled() => {
                    tracing::warn!(job = %id, error = %e, "storing a job's result: trying again");
                    tokio::time::sleep(STORE_RETRY).await;
                }
                Err(e) => {
                    // Left "running" in the store: the next start runs it again.
                    tracing::error!(job = %id, error = %e, "storing a job's result: giving up");
                    return;
                }
            }
        }
        self.deliver_later(id);
    }

    /// Changes job `id` with `f` if it is still `from` (a cancel may have come first: then
    /// `StoreError::Refused`), in one store transaction on the blocking pool.
    async fn advance(
        &self,
        id: Uuid,
        from: JobStatus,
        f: impl FnOnce(&mut JobRecord) + Send + 'static,
    ) -> Result<Option<JobRecord>, StoreError> {
        self.blocking(move |s| {
            s.update(id, |r| {
                if r.status != from {
                    return Err(Refusal(format!(
                        "job {id} is no longer {}",
                        warmbox_runner::request::wire_name(&from)
                    )));
                }
                f(r);
                Ok(())
            })
        })
        .await
    }

    /// Delivers job `id`'s callback in a task of its own: a slow callback host holds up
    /// no job.
    fn deliver_later(self: &Arc<Self>, id: Uuid) {
        let me = self.clone();
        self.tasks.spawn(async move { me.deliver(id).await });
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

    /// POSTs job `id`'s record to its callback URL, retrying with backoff; every attempt
    /// is recorded in the store.
    async fn deliver(&self, id: Uuid) {
        let mut wait = self.config.callback_backoff;
        loop {
            let record = match self.blocking(move |s| s.get(id)).await {
                Ok(Some(r)) => r,
                _ => return,
            };
            let Some(cb) = &record.callback else { return };
            // Only a finished job's record is ever sent (its end is what a callback tells).
            if cb.delivered
                || cb.attempts >= self.config.callback_attempts
                || record.status.is_unfinished()
            {
                return;
            }
            let (method, body) = (self.render_callback)(&record, &self.profiles)
                .unwrap_or_else(|| (reqwest::Method::POST, view(&record)));
            // A bounded number of deliveries at once: a backlog (after a restart, or for a
            // slow host) must not open a connection for each.
            let Ok(_sending) = self.deliveries.acquire().await else {
                return;
            };
            let error = match self.callback_client() {
                Err(e) => Some(format!("could not make the callback client: {e}")),
                Ok(client) => match client.request(method, &cb.url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => None,
                    Ok(r) => Some(format!("the callback answered {}", r.status())),
                    Err(e) => Some(format!("could not deliver: {}", error_chain(&e))),
                },
            };
            let delivered = error.is_none();
            let last_error = error.clone();
            let stored = self
                .blocking(move |s| {
                    s.update(id, |r| {
                        if let Some(c) = &mut r.callback {
                            c.attempts += 1;
                            c.delivered = delivered;
                            c.last_error = last_error;
                        }
                        Ok(())
                    })
                })
                .await;
            if let Err(e) = stored {
                tracing::warn!(job = %id, error = %e, "recording a callback attempt");
                return;
            }
            if delivered {
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
            // A retention past u64::MAX ms (585 million years) keeps everything.
            let retention = u64::try_from(self.config.retention.as_millis()).unwrap_or(u64::MAX);
            let cutoff = now_ms().saturating_sub(retention);
            let attempts = self.config.callback_attempts;
            match self
                .blocking(move |s| s.remove_finished_before(cutoff, attempts))
                .await
            {
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

/// A job as the API shows it.
pub fn view(r: &JobRecord) -> Value {
    json!({
        "id": r.id,
        "status": r.status,
        "created_ms": r.created_ms,
        "started_ms": r.started_ms,
        "finished_ms": r.finished_ms,
        "result": r.result,
        "callback": r.callback,
    })
}

/// The queued record of a new job, made at `created_ms`.
fn record(sub: Submission, created_ms: u64) -> JobRecord {
    JobRecord {
        id: Uuid::new_v4(),
        status: JobStatus::Queued,
        request: sub.request,
        created_ms,
        started_ms: None,
        finished_ms: None,
        result: None,
        callback: sub.callback_url.map(|url| CallbackState {
            url,
            ..CallbackState::default()
        }),
        meta: sub.meta,
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
