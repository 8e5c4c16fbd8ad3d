//! The durable store of async jobs, behind one trait ([`JobStore`]) with two backends:
//! an embedded redb file ([`redb::RedbStore`], one node, the default) and PostgreSQL
//! ([`postgres::PgStore`], shared by many nodes).
//!
//! A job moves `queued` → `running` → `done`, or to `cancelled` from either of the first
//! two. A node runs a job only once it has *claimed* it ([`JobStore::claim`]): the claim
//! names the node, counts an attempt and holds a lease until a time the node keeps moving
//! on ([`JobStore::renew`]). The attempt count is the claim's fencing token: a result is
//! stored ([`JobStore::finish`]) only by the node whose claim is still the job's, so a node
//! that lost its lease (paused, cut off) cannot overwrite the result of the node that ran
//! the job again. A lease that runs out puts the job back in the queue
//! ([`JobStore::expire`]), up to a number of attempts; past it the job ends `done` with an
//! `internal_error` result ([`exhausted_result`]), never in a loop.
//!
//! A finished job's callback is delivered by the node that holds its *delivery claim*
//! ([`JobStore::claim_delivery`]), so that nodes racing to deliver it do not both POST;
//! a claim of a node that stopped runs out and another node takes it over.

pub mod postgres;
pub mod redb;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

/// Errors of a job store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached (a database that is down or refuses connections): the
    /// request may be tried again shortly.
    #[error("the job store ({store}) is unreachable: {action}: {message}")]
    Unavailable {
        /// The store, as [`JobStore::describe`] says.
        store: String,
        /// What was being done.
        action: String,
        /// Why it failed.
        message: String,
    },
    /// The store answered, with an error.
    #[error("{action} in the job store ({store}): {message}")]
    Failed {
        /// The store, as [`JobStore::describe`] says.
        store: String,
        /// What was being done.
        action: String,
        /// Why it failed.
        message: String,
    },
    /// [`JobStore::insert`] was given an id that is already stored, or twice in one batch.
    #[error("insert job {id}: a job with this id already exists")]
    Duplicate {
        /// The id.
        id: Uuid,
    },
    /// A stored record does not decode.
    #[error("job {id} in the job store ({store}) is corrupt: {reason}")]
    Corrupt {
        /// The store, as [`JobStore::describe`] says.
        store: String,
        /// The job.
        id: Uuid,
        /// What is wrong with it.
        reason: String,
    },
}

impl StoreError {
    /// Whether the store could not be reached (HTTP 503), rather than failing.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, waiting for its turn.
    Queued,
    /// Being run.
    Running,
    /// Run; its result is stored.
    Done,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobStatus {
    /// Every status, in order.
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Done,
        JobStatus::Cancelled,
    ];

    /// Whether the job still has to be run (queued or running).
    pub fn is_unfinished(self) -> bool {
        matches!(self, JobStatus::Queued | JobStatus::Running)
    }

    /// The status's code in a store; fixed, never renumber.
    pub fn code(self) -> u8 {
        match self {
            JobStatus::Queued => 0,
            JobStatus::Running => 1,
            JobStatus::Done => 2,
            JobStatus::Cancelled => 3,
        }
    }

    /// The status of a store's code.
    pub fn from_code(code: u8) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The status as the API writes it.
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// Delivery state of a job's callback.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallbackState {
    /// Where the result is POSTed.
    pub url: String,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// Whether a delivery succeeded.
    pub delivered: bool,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

impl CallbackState {
    /// Whether a delivery is still to be tried (not delivered, attempts left).
    pub fn pending(&self, max_attempts: u32) -> bool {
        !self.delivered && self.attempts < max_attempts
    }
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id, also its key in the store.
    pub id: Uuid,
    /// The job's state.
    pub status: JobStatus,
    /// The request body as submitted (JSON), run when the job's turn comes.
    pub request: Value,
    /// When the job was accepted, Unix milliseconds.
    pub created_ms: u64,
    /// When the job started running, Unix milliseconds.
    pub started_ms: Option<u64>,
    /// When the job was done or cancelled, Unix milliseconds; a done or cancelled job
    /// without it counts as finished at `created_ms`.
    pub finished_ms: Option<u64>,
    /// The response (JSON) once done.
    pub result: Option<Value>,
    /// The job's callback, if it asked for one.
    pub callback: Option<CallbackState>,
    /// What an API layer keeps beside the request (Judge0's submission fields); its
    /// presence also makes the callback that API's (Judge0: a PUT of the submission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// Runs started (claims made): the fencing token of the latest claim.
    #[serde(default)]
    pub attempts: u32,
    /// The node that holds the claim (running), or that ran the job last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// While running: when the claim's lease runs out, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until_ms: Option<u64>,
    /// The node delivering the callback now, if one claimed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_node: Option<String>,
    /// Until when that delivery claim holds, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_until_ms: Option<u64>,
}

impl JobRecord {
    /// A new queued job.
    pub fn queued(id: Uuid, request: Value, created_ms: u64) -> JobRecord {
        JobRecord {
            id,
            status: JobStatus::Queued,
            request,
            created_ms,
            started_ms: None,
            finished_ms: None,
            result: None,
            callback: None,
            meta: None,
            attempts: 0,
            node: None,
            lease_until_ms: None,
            delivery_node: None,
            delivery_until_ms: None,
        }
    }

    /// Whether its callback still has to be delivered by someone: the job is finished and
    /// its callback neither delivered nor out of attempts.
    pub fn callback_pending(&self, max_attempts: u32) -> bool {
        !self.status.is_unfinished()
            && self
                .callback
                .as_ref()
                .is_some_and(|c| c.pending(max_attempts))
    }

    /// Whether `node` may take the delivery claim at `now_ms`: nobody holds it, its holder's
    /// time ran out, or `node` holds it already.
    pub fn delivery_free_for(&self, node: &str, now_ms: u64) -> bool {
        match (&self.delivery_node, self.delivery_until_ms) {
            (None, _) => true,
            (Some(n), _) if n == node => true,
            (Some(_), until) => until.is_none_or(|u| u <= now_ms),
        }
    }

    /// Whether `node`'s claim of attempt `attempt` is still this running job's.
    pub fn claimed_by(&self, node: &str, attempt: u32) -> bool {
        self.status == JobStatus::Running
            && self.attempts == attempt
            && self.node.as_deref() == Some(node)
    }
}

/// A change another node made, told by a shared store ([`JobStore::notices`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A job was queued (inserted, or queued again): there may be one to claim.
    Queued,
    /// This running job was cancelled: the node running it stops it.
    Cancelled(Uuid),
    /// The notifications were cut off and are flowing again: some may have been missed,
    /// so look at the store afresh.
    Resumed,
}

/// What [`JobStore::renew`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// The claim is still the job's; its lease now runs to the time given.
    Held,
    /// The job was cancelled: stop running it.
    Cancelled,
    /// The claim is no longer the job's (its lease ran out and the job was queued again,
    /// or ended): stop running it, store nothing.
    Lost,
}

/// What [`JobStore::cancel`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancel {
    /// Cancelled; the record as it is now, and the status it had.
    Done {
        /// The record, cancelled.
        record: Box<JobRecord>,
        /// Its status before: queued or running.
        was: JobStatus,
    },
    /// The job had finished already, with this status.
    Finished(JobStatus),
    /// No such job.
    NotFound,
}

/// What [`JobStore::remove_finished`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Remove {
    /// Removed; the record it had.
    Removed(Box<JobRecord>),
    /// Not removed: the job is not finished (this status).
    Unfinished(JobStatus),
    /// No such job.
    NotFound,
}

/// What [`JobStore::expire`] did with the running jobs whose lease ran out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expired {
    /// Queued again, to run once more.
    pub requeued: Vec<Uuid>,
    /// Out of attempts: ended `done` with [`exhausted_result`].
    pub ended: Vec<Uuid>,
}

/// A durable store of async jobs, shared by the nodes that use it. Every method is one
/// atomic change (or read) of the store.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// The store, for messages: its kind and where it is (no password).
    fn describe(&self) -> String;

    /// Whether other nodes may use the store at the same time (PostgreSQL); a redb file
    /// is locked by the one process that opened it.
    fn shared(&self) -> bool;

    /// Succeeds when the store can be reached now.
    async fn ping(&self) -> Result<(), StoreError>;

    /// What other nodes did that this node must act on, as it happens (a shared store's
    /// notifications); None when the store has none (one node: it knows what it did).
    /// Called once, by the node's jobs, at their start.
    fn notices(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Notice>> {
        None
    }

    /// Inserts new records atomically (all or none); an id that is already stored, or
    /// twice in `records`, is [`StoreError::Duplicate`] and inserts none.
    async fn insert(&self, records: Vec<JobRecord>) -> Result<(), StoreError>;

    /// The record of job `id`, or None if there is no such job.
    async fn get(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError>;

    /// Claims the oldest queued job for `node`: running, started now, one more attempt,
    /// its lease until `lease_until_ms`. None when no job is queued. Two nodes never claim
    /// the same job.
    async fn claim(
        &self,
        node: &str,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Option<JobRecord>, StoreError>;

    /// Moves the lease of `node`'s claim (attempt `attempt`) of job `id` to
    /// `lease_until_ms`, if the claim is still the job's.
    async fn renew(
        &self,
        id: Uuid,
        attempt: u32,
        node: &str,
        lease_until_ms: u64,
    ) -> Result<Renewal, StoreError>;

    /// Stores `result`: the job is done at `now_ms`, if `node`'s claim (attempt
    /// `attempt`) is still the job's; the record as stored, or None when the claim is
    /// not the job's any more (cancelled meanwhile, or queued again and claimed by
    /// another node), and then nothing changes.
    async fn finish(
        &self,
        id: Uuid,
        attempt: u32,
        node: &str,
        result: Value,
        now_ms: u64,
    ) -> Result<Option<JobRecord>, StoreError>;

    /// Gives a claim back unrun (the node stops): the job is queued again and its attempt
    /// does not count. False when the claim was not the job's any more.
    async fn release(&self, id: Uuid, attempt: u32, node: &str) -> Result<bool, StoreError>;

    /// Cancels a queued or running job at `now_ms`.
    async fn cancel(&self, id: Uuid, now_ms: u64) -> Result<Cancel, StoreError>;

    /// Running jobs whose lease ran out before `now_ms`: queued again while they have had
    /// fewer than `max_attempts` attempts, else ended (done at `now_ms`) with
    /// [`exhausted_result`].
    async fn expire(&self, now_ms: u64, max_attempts: u32) -> Result<Expired, StoreError>;

    /// What earlier processes of the node named `name` left (see [`is_incarnation_of`]),
    /// taken over by a new one: their running jobs as [`JobStore::expire`] does, whatever
    /// their lease, and their callbacks' delivery claims let go. A node name is one live
    /// process at a time, so these processes are gone.
    async fn take_over(
        &self,
        name: &str,
        now_ms: u64,
        max_attempts: u32,
    ) -> Result<Expired, StoreError>;

    /// Takes the delivery claim of job `id`'s callback for `node` until `until_ms`, if its
    /// callback is pending (see [`JobRecord::callback_pending`]) and the claim free for
    /// `node` at `now_ms`; the record, or None.
    async fn claim_delivery(
        &self,
        id: Uuid,
        node: &str,
        now_ms: u64,
        until_ms: u64,
        max_attempts: u32,
    ) -> Result<Option<JobRecord>, StoreError>;

    /// Records a delivery attempt of `node` (which holds the delivery claim): one more
    /// attempt, `delivered`, `error`; the claim then holds until `until_ms` (the next
    /// attempt's time), or is let go when the delivery is over. False (and nothing
    /// recorded) when `node` does not hold the claim.
    async fn record_delivery(
        &self,
        id: Uuid,
        node: &str,
        delivered: bool,
        error: Option<String>,
        until_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Finished jobs whose callback is pending and whose delivery claim is free at
    /// `now_ms`: what a node takes over when the node delivering them stopped.
    async fn deliverable(&self, now_ms: u64, max_attempts: u32) -> Result<Vec<Uuid>, StoreError>;

    /// Removes job `id` if it is finished.
    async fn remove_finished(&self, id: Uuid) -> Result<Remove, StoreError>;

    /// Removes done and cancelled jobs finished before `before_ms` whose callback is not
    /// pending; returns how many.
    async fn remove_finished_before(
        &self,
        before_ms: u64,
        callback_attempts: u32,
    ) -> Result<usize, StoreError>;

    /// Number of jobs in each status, every status present, zeros included.
    async fn counts(&self) -> Result<BTreeMap<JobStatus, usize>, StoreError>;
}

/// Whether `node` (a node in the store: its name, `-` and 8 characters of its start's
/// own) is a process of the node named `name`.
pub fn is_incarnation_of(node: &str, name: &str) -> bool {
    node.len() == name.len() + 9
        && node.starts_with(name)
        && node.as_bytes().get(name.len()) == Some(&b'-')
}

/// The result of a job whose every attempt ended with its node gone: an error the APIs
/// show (Judge0: status 13, Internal Error).
pub fn exhausted_result(attempts: u32) -> Value {
    json!({"error": {
        "code": "internal_error",
        "message": format!(
            "the job was started {attempts} times and each time its node stopped before it \
             finished; it is not tried again"
        ),
    }})
}

/// Unix time now, ms.
pub fn now_ms() -> u64 {
    // A clock set before 1970 reads as 0 rather than failing: these times only order jobs
    // and age them out.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
