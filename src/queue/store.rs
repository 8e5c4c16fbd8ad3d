//! The durable store of async jobs: one redb file that outlives the server process.
//!
//! Layout: table `jobs` maps a job's id (the uuid's 16 bytes) to its [`JobRecord`] as JSON;
//! table `jobs_by_status` is an index of `(status, ms, id)` keys, where `ms` is the job's
//! `created_ms` while it is queued or running and its `finished_ms` once it is done or
//! cancelled. Both tables change in the same write transaction, so the index always names
//! exactly the records there are, under the status they were last written with. The index
//! makes [`Store::unfinished`] read only the unfinished jobs, [`Store::remove_finished_before`]
//! read only the expired ones, and [`Store::counts`] decode no JSON.
//!
//! Every write commits with redb's default `Durability::Immediate` (an fsync), so a job that
//! [`Store::insert`] has returned for survives a crash of the server or the host. Calls block
//! on disk I/O: async code calls them through `tokio::task::spawn_blocking`.
//!
//! A record whose JSON no longer decodes (a damaged file, a record written by a newer
//! version) is skipped with a warning by [`Store::unfinished`]; [`Store::get`] and
//! [`Store::update`] answer [`StoreError::Corrupt`] naming its id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Job id (the uuid's bytes) to the job's record as JSON.
const JOBS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("jobs");

/// Index `(status code, ms, id)`: see the module doc for which time `ms` is.
const BY_STATUS: TableDefinition<IndexKey, ()> = TableDefinition::new("jobs_by_status");

/// [`JOBS`] and [`BY_STATUS`] opened in a write transaction.
type JobsTable<'t> = redb::Table<'t, [u8; 16], &'static [u8]>;
type IndexTable<'t> = redb::Table<'t, IndexKey, ()>;

/// Key of [`BY_STATUS`]: `(status code, ms, id bytes)`.
type IndexKey = (u8, u64, [u8; 16]);

/// Errors of the job store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store file could not be opened or created.
    #[error("open job store {path}: {source}")]
    Open {
        path: PathBuf,
        // Boxed: redb's error is over 150 bytes, and it would make every Result this large.
        #[source]
        source: Box<redb::Error>,
    },
    /// A transaction, a table or a read or write in it failed.
    #[error("{action} in job store {path}: {source}")]
    Storage {
        action: String,
        path: PathBuf,
        // Boxed: redb's error is over 150 bytes, and it would make every Result this large.
        #[source]
        source: Box<redb::Error>,
    },
    /// [`Store::insert`] was given an id that is already stored, or twice in one batch.
    #[error("insert job {id} into job store {path}: a job with this id already exists")]
    Duplicate { id: Uuid, path: PathBuf },
    /// A record could not be encoded as JSON.
    #[error("encode job {id} for job store {path}: {source}")]
    Encode {
        id: Uuid,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A stored record does not decode.
    #[error("job {id} in job store {path} is corrupt: {reason}")]
    Corrupt {
        id: Uuid,
        path: PathBuf,
        reason: String,
    },
    /// The closure given to [`Store::update`] refused the change; its message, verbatim.
    #[error("{0}")]
    Refused(String),
    /// The closure given to [`Store::update`] changed the record's id.
    #[error("update job {id} in job store {path}: the update changed the id to {new_id}")]
    IdChanged {
        id: Uuid,
        new_id: Uuid,
        path: PathBuf,
    },
}

/// Why a [`Store::update`] closure refused its change; said to the client verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

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

    /// Code of the status in the on-disk index; fixed, never renumber.
    fn code(self) -> u8 {
        match self {
            JobStatus::Queued => 0,
            JobStatus::Running => 1,
            JobStatus::Done => 2,
            JobStatus::Cancelled => 3,
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

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id, also its key in the store.
    pub id: Uuid,
    /// The job's state.
    pub status: JobStatus,
    /// The request body as submitted (JSON), run when the job's turn comes.
    pub request: serde_json::Value,
    /// When the job was accepted, Unix milliseconds.
    pub created_ms: u64,
    /// When the job started running, Unix milliseconds.
    pub started_ms: Option<u64>,
    /// When the job was done or cancelled, Unix milliseconds; a done or cancelled job
    /// without it counts as finished at `created_ms`.
    pub finished_ms: Option<u64>,
    /// The response (JSON) once done.
    pub result: Option<serde_json::Value>,
    /// The job's callback, if it asked for one.
    pub callback: Option<CallbackState>,
    /// What an API layer keeps beside the request (Judge0's submission fields); its
    /// presence also makes the callback that API's (Judge0: a PUT of the submission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
}

impl JobRecord {
    /// The record's key in [`BY_STATUS`].
    fn index_key(&self) -> IndexKey {
        let ms = if self.status.is_unfinished() {
            self.created_ms
        } else {
            self.finished_ms.unwrap_or(self.created_ms)
        };
        (self.status.code(), ms, *self.id.as_bytes())
    }
}

/// The durable job store; `Send + Sync`, shared in an `Arc`.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if missing) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut db = Database::create(path).map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            source: Box::new(e.into()),
        })?;
        // Results removed after their retention leave free pages that redb reuses but never
        // returns: compacted at each start, the file is as big as what it keeps.
        // A compaction that fails (a full disk: it writes before it frees) costs only space.
        if let Err(error) = db.compact() {
            tracing::warn!(store = %path.display(), %error, "job store not compacted");
        }
        let store = Store {
            db,
            path: path.to_path_buf(),
        };
        // Create both tables now, so that a read transaction never meets a missing table.
        store.write("create tables", |txn| {
            store.tables(txn, &|| "create tables".to_string())?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Inserts new records atomically (all or none, one write transaction); an id that is
    /// already stored, or twice in `records`, is [`StoreError::Duplicate`] and inserts none.
    pub fn insert(&self, records: &[JobRecord]) -> Result<(), StoreError> {
        let action = || format!("insert {} jobs", records.len());
        self.write(&action(), |txn| {
            let (mut jobs, mut index) = self.tables(txn, &action)?;
            for record in records {
                let bytes = self.encode(record)?;
                let previous = jobs
                    .insert(record.id.as_bytes(), bytes.as_slice())
                    .map_err(|e| self.storage(format!("insert job {}", record.id), e))?;
                if previous.is_some() {
                    return Err(StoreError::Duplicate {
                        id: record.id,
                        path: self.path.clone(),
                    });
                }
                index
                    .insert(record.index_key(), ())
                    .map_err(|e| self.storage(format!("index job {}", record.id), e))?;
            }
            Ok(())
        })
    }

    /// The record of job `id`, or None if there is no such job.
    pub fn get(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
        let action = || format!("read job {id}");
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.storage(action(), e))?;
        let jobs = txn
            .open_table(JOBS)
            .map_err(|e| self.storage(action(), e))?;
        let Some(guard) = jobs
            .get(id.as_bytes())
            .map_err(|e| self.storage(action(), e))?
        else {
            return Ok(None);
        };
        self.decode(id, guard.value()).map(Some)
    }

    /// Applies `f` to the record in one write transaction and stores the result; returns the
    /// updated record, or None if no such id. `f` may refuse by returning a [`Refusal`] (then
    /// nothing changes and [`StoreError::Refused`] is returned). `f` runs while the store's
    /// single writer is held: it must be quick and do no I/O.
    pub fn update(
        &self,
        id: Uuid,
        f: impl FnOnce(&mut JobRecord) -> Result<(), Refusal>,
    ) -> Result<Option<JobRecord>, StoreError> {
        let action = || format!("update job {id}");
        self.write(&action(), |txn| {
            let mut jobs = txn
                .open_table(JOBS)
                .map_err(|e| self.storage(action(), e))?;
            let old = {
                let Some(guard) = jobs
                    .get(id.as_bytes())
                    .map_err(|e| self.storage(action(), e))?
                else {
                    return Ok(None);
                };
                self.decode(id, guard.value())?
            };
            let mut new = old.clone();
            f(&mut new).map_err(|Refusal(m)| StoreError::Refused(m))?;
            if new.id != id {
                return Err(StoreError::IdChanged {
                    id,
                    new_id: new.id,
                    path: self.path.clone(),
                });
            }
            if new == old {
                return Ok(Some(new));
            }
            let mut index = txn
                .open_table(BY_STATUS)
                .map_err(|e| self.storage(action(), e))?;
            self.replace(&mut jobs, &mut index, old.index_key(), &new, &action)?;
            Ok(Some(new))
        })
    }

    /// Stores `new` over its record, and its index entry in place of `old_key`, in the
    /// tables of one write transaction.
    fn replace(
        &self,
        jobs: &mut JobsTable<'_>,
        index: &mut IndexTable<'_>,
        old_key: IndexKey,
        new: &JobRecord,
        action: &dyn Fn() -> String,
    ) -> Result<(), StoreError> {
        let bytes = self.encode(new)?;
        jobs.insert(new.id.as_bytes(), bytes.as_slice())
            .map_err(|e| self.storage(action(), e))?;
        index
            .remove(old_key)
            .map_err(|e| self.storage(action(), e))?;
        index
            .insert(new.index_key(), ())
            .map_err(|e| self.storage(action(), e))?;
        Ok(())
    }

    /// Puts every running job back to queued (no start time), in one write transaction:
    /// what a server starting after another must do before it runs them again. Returns how
    /// many there were. A record that does not decode stays as it is, with a warning.
    pub fn requeue_running(&self) -> Result<usize, StoreError> {
        let action = || "queue again the running jobs".to_string();
        self.write(&action(), |txn| {
            let (mut jobs, mut index) = self.tables(txn, &action)?;
            let keys: Vec<IndexKey> = index
                .range(status_range(JobStatus::Running, u64::MAX))
                .map_err(|e| self.storage(action(), e))?
                .map(|entry| entry.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(|e| self.storage(action(), e))?;
            let mut n = 0;
            for key in keys {
                let id = Uuid::from_bytes(key.2);
                let Some(bytes) = jobs
                    .get(id.as_bytes())
                    .map_err(|e| self.storage(action(), e))?
                    .map(|g| g.value().to_vec())
                else {
                    continue;
                };
                let mut record = match self.decode(id, &bytes) {
                    Ok(r) => r,
                    Err(error) => {
                        tracing::warn!(job = %id, store = %self.path.display(), %error, "leaving a job that does not decode");
                        continue;
                    }
                };
                record.status = JobStatus::Queued;
                record.started_ms = None;
                self.replace(&mut jobs, &mut index, key, &record, &action)?;
                n += 1;
            }
            Ok(n)
        })
    }

    /// Ids of jobs queued or running, oldest first (by created_ms then id): what a restarted
    /// server must run. A record that does not decode is skipped with a warning.
    pub fn unfinished(&self) -> Result<Vec<Uuid>, StoreError> {
        let action = "list unfinished jobs";
        let txn = self.db.begin_read().map_err(|e| self.storage(action, e))?;
        let jobs = txn.open_table(JOBS).map_err(|e| self.storage(action, e))?;
        let index = txn
            .open_table(BY_STATUS)
            .map_err(|e| self.storage(action, e))?;
        let mut entries: Vec<(u64, Uuid)> = Vec::new();
        for status in [JobStatus::Queued, JobStatus::Running] {
            let range = index
                .range(status_range(status, u64::MAX))
                .map_err(|e| self.storage(action, e))?;
            for entry in range {
                let (key, _) = entry.map_err(|e| self.storage(action, e))?;
                let (_, created_ms, id) = key.value();
                entries.push((created_ms, Uuid::from_bytes(id)));
            }
        }
        entries.sort_unstable();
        let mut ids = Vec::with_capacity(entries.len());
        for (_, id) in entries {
            let guard = jobs
                .get(id.as_bytes())
                .map_err(|e| self.storage(action, e))?;
            match guard.map(|g| self.decode(id, g.value())) {
                Some(Ok(_)) => ids.push(id),
                Some(Err(error)) => {
                    tracing::warn!(job = %id, store = %self.path.display(), %error, "skipping a job that does not decode");
                }
                // Cannot happen: the index changes only with the record, in one transaction.
                None => {
                    tracing::warn!(job = %id, store = %self.path.display(), "skipping an indexed job that has no record");
                }
            }
        }
        Ok(ids)
    }

    /// Ids of finished jobs whose callback is neither delivered nor out of attempts
    /// (`attempts < max_attempts`): what a restarted server must deliver. Reads every
    /// finished record (once, at start).
    pub fn pending_callbacks(&self, max_attempts: u32) -> Result<Vec<Uuid>, StoreError> {
        let action = "list undelivered callbacks";
        let txn = self.db.begin_read().map_err(|e| self.storage(action, e))?;
        let jobs = txn.open_table(JOBS).map_err(|e| self.storage(action, e))?;
        let mut ids = Vec::new();
        for entry in jobs.iter().map_err(|e| self.storage(action, e))? {
            let (key, value) = entry.map_err(|e| self.storage(action, e))?;
            let id = Uuid::from_bytes(key.value());
            let Ok(record) = self.decode(id, value.value()) else {
                continue;
            };
            let pending = record
                .callback
                .as_ref()
                .is_some_and(|c| !c.delivered && c.attempts < max_attempts);
            if pending && !record.status.is_unfinished() {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Removes job `id` whatever its state; returns the record it had, or `None`.
    pub fn remove(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
        let action = || format!("remove job {id}");
        self.write(&action(), |txn| {
            let (mut jobs, mut index) = self.tables(txn, &action)?;
            let record = match jobs
                .remove(id.as_bytes())
                .map_err(|e| self.storage(action(), e))?
            {
                Some(bytes) => self.decode(id, bytes.value())?,
                None => return Ok(None),
            };
            index
                .remove(record.index_key())
                .map_err(|e| self.storage(action(), e))?;
            Ok(Some(record))
        })
    }

    /// Removes done and cancelled jobs finished before `before_ms`; returns how many.
    pub fn remove_finished_before(
        &self,
        before_ms: u64,
        callback_attempts: u32,
    ) -> Result<usize, StoreError> {
        let action = || format!("remove jobs finished before {before_ms}");
        self.write(&action(), |txn| {
            let (mut jobs, mut index) = self.tables(txn, &action)?;
            let mut expired: Vec<IndexKey> = Vec::new();
            for status in [JobStatus::Done, JobStatus::Cancelled] {
                let range = index
                    .range(status_range(status, before_ms))
                    .map_err(|e| self.storage(action(), e))?;
                for entry in range {
                    let (key, _) = entry.map_err(|e| self.storage(action(), e))?;
                    expired.push(key.value());
                }
            }
            let mut removed = 0;
            for key in expired {
                // A callback still being tried keeps its job until it is delivered or out
                // of attempts: a retention shorter than the retries must not drop it.
                let pending = jobs
                    .get(key.2)
                    .map_err(|e| self.storage(action(), e))?
                    .and_then(|g| self.decode(Uuid::from_bytes(key.2), g.value()).ok())
                    .and_then(|r| r.callback)
                    .is_some_and(|c| !c.delivered && c.attempts < callback_attempts);
                if pending {
                    continue;
                }
                index.remove(key).map_err(|e| self.storage(action(), e))?;
                let record = jobs.remove(key.2).map_err(|e| self.storage(action(), e))?;
                if record.is_some() {
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }

    /// Number of jobs in each status (for metrics), every status present, zeros included;
    /// read from the index, so a record that does not decode counts under its last status.
    pub fn counts(&self) -> Result<BTreeMap<JobStatus, usize>, StoreError> {
        let action = "count jobs";
        let txn = self.db.begin_read().map_err(|e| self.storage(action, e))?;
        let index = txn
            .open_table(BY_STATUS)
            .map_err(|e| self.storage(action, e))?;
        let mut counts = BTreeMap::new();
        for status in JobStatus::ALL {
            let mut count = 0;
            let range = index
                .range(status_range(status, u64::MAX))
                .map_err(|e| self.storage(action, e))?;
            for entry in range {
                entry.map_err(|e| self.storage(action, e))?;
                count += 1;
            }
            counts.insert(status, count);
        }
        Ok(counts)
    }

    /// Runs `body` in a write transaction: commits if it returns Ok, aborts if it returns Err.
    fn write<T>(
        &self,
        action: &str,
        body: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.storage(action, e))?;
        match body(&txn) {
            Ok(value) => {
                txn.commit().map_err(|e| self.storage(action, e))?;
                Ok(value)
            }
            Err(error) => {
                if let Err(abort) = txn.abort() {
                    tracing::warn!(store = %self.path.display(), action, error = %abort, "abort job store transaction");
                }
                Err(error)
            }
        }
    }

    /// Both tables in a write transaction (created when missing); `action` names what
    /// failed.
    fn tables<'t>(
        &self,
        txn: &'t WriteTransaction,
        action: &dyn Fn() -> String,
    ) -> Result<(JobsTable<'t>, IndexTable<'t>), StoreError> {
        let jobs = txn
            .open_table(JOBS)
            .map_err(|e| self.storage(action(), e))?;
        let index = txn
            .open_table(BY_STATUS)
            .map_err(|e| self.storage(action(), e))?;
        Ok((jobs, index))
    }

    /// A [`StoreError::Storage`] for `action` failing with `source`.
    fn storage(&self, action: impl Into<String>, source: impl Into<redb::Error>) -> StoreError {
        StoreError::Storage {
            action: action.into(),
            path: self.path.clone(),
            source: Box::new(source.into()),
        }
    }

    /// `record` as stored.
    fn encode(&self, record: &JobRecord) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(record).map_err(|source| StoreError::Encode {
            id: record.id,
            path: self.path.clone(),
            source,
        })
    }

    /// The record stored under `id`.
    fn decode(&self, id: Uuid, bytes: &[u8]) -> Result<JobRecord, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            id,
            path: self.path.clone(),
            reason,
        };
        let record: JobRecord =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("decode JSON: {e}")))?;
        if record.id != id {
            return Err(corrupt(format!("the record's id is {}", record.id)));
        }
        Ok(record)
    }
}

/// Index keys of `status` with `ms` below `before_ms`.
fn status_range(status: JobStatus, before_ms: u64) -> std::ops::Range<IndexKey> {
    (status.code(), 0, [0; 16])..(status.code(), before_ms, [0; 16])
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn queued(n: u128, created_ms: u64) -> JobRecord {
        JobRecord {
            id: Uuid::from_u128(n),
            status: JobStatus::Queued,
            request: json!({"language": "python", "code": format!("print({n})")}),
            created_ms,
            started_ms: None,
            finished_ms: None,
            result: None,
            callback: None,
            meta: None,
        }
    }

    fn finished(
        n: u128,
        status: JobStatus,
        created_ms: u64,
        finished_ms: Option<u64>,
    ) -> JobRecord {
        JobRecord {
            status,
            started_ms: Some(created_ms),
            finished_ms,
            ..queued(n, created_ms)
        }
    }

    fn store_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("jobs.redb")
    }

    /// An empty store in a directory of its own (kept while the store is used).
    fn fresh_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&store_path(&dir)).unwrap();
        (dir, store)
    }

    fn counts_of(
        queued: usize,
        running: usize,
        done: usize,
        cancelled: usize,
    ) -> BTreeMap<JobStatus, usize> {
        BTreeMap::from([
            (JobStatus::Queued, queued),
            (JobStatus::Running, running),
            (JobStatus::Done, done),
            (JobStatus::Cancelled, cancelled),
        ])
    }

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
        assert_send_sync::<StoreError>();
    }

    #[test]
    fn insert_then_get_round_trips_every_field() {
        let (_dir, store) = fresh_store();
        let record = JobRecord {
            id: Uuid::from_u128(7),
            status: JobStatus::Done,
            request: json!({"language": "rust", "code": "fn main() {}", "stdin": ""}),
            created_ms: 1_000,
            started_ms: Some(1_500),
            finished_ms: Some(2_000),
            result: Some(json!({"exit_code": 0, "stdout": "hi\n"})),
            callback: Some(CallbackState {
                url: "https://example.com/hook".to_string(),
                attempts: 2,
                delivered: false,
                last_error: Some("POST https://example.com/hook: 503".to_string()),
            }),
            meta: Some(json!({"judge0": {"language_id": 71}})),
        };
        store.insert(std::slice::from_ref(&record)).unwrap();
        assert_eq!(store.get(record.id).unwrap(), Some(record));
        assert_eq!(store.get(Uuid::from_u128(8)).unwrap(), None);
    }

    #[test]
    fn insert_refuses_an_existing_id_and_inserts_none_of_the_batch() {
        let (dir, store) = fresh_store();
        let a = queued(1, 10);
        store.insert(std::slice::from_ref(&a)).unwrap();

        let mut a_again = queued(1, 99);
        a_again.request = json!("other");
        let err = store.insert(&[queued(2, 20), a_again]).unwrap_err();
        assert!(
            matches!(err, StoreError::Duplicate { id, .. } if id == a.id),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "insert job {} into job store {}: a job with this id already exists",
                a.id,
                store_path(&dir).display()
            )
        );
        assert_eq!(store.get(Uuid::from_u128(2)).unwrap(), None);
        assert_eq!(store.get(a.id).unwrap(), Some(a.clone()));

        let err = store.insert(&[queued(3, 30), queued(3, 31)]).unwrap_err();
        assert!(
            matches!(err, StoreError::Duplicate { id, .. } if id == Uuid::from_u128(3)),
            "{err:?}"
        );
        assert_eq!(store.get(Uuid::from_u128(3)).unwrap(), None);

        assert_eq!(store.counts().unwrap(), counts_of(1, 0, 0, 0));
        assert_eq!(store.unfinished().unwrap(), vec![a.id]);
    }

    #[test]
    fn update_changes_the_record_and_persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        let id = Uuid::from_u128(1);
        let expected = JobRecord {
            status: JobStatus::Running,
            started_ms: Some(150),
            ..queued(1, 100)
        };
        {
            let store = Store::open(&path).unwrap();
            store.insert(&[queued(1, 100)]).unwrap();
            let updated = store
                .update(id, |r| {
                    r.status = JobStatus::Running;
                    r.started_ms = Some(150);
                    Ok(())
                })
                .unwrap();
            assert_eq!(updated, Some(expected.clone()));
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.get(id).unwrap(), Some(expected.clone()));
        assert_eq!(store.counts().unwrap(), counts_of(0, 1, 0, 0));

        let done = store
            .update(id, |r| {
                r.status = JobStatus::Done;
                r.finished_ms = Some(300);
                r.result = Some(json!({"exit_code": 0}));
                Ok(())
            })
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        let expected_done = JobRecord {
            status: JobStatus::Done,
            finished_ms: Some(300),
            result: Some(json!({"exit_code": 0})),
            ..expected
        };
        assert_eq!(done, Some(expected_done.clone()));
        assert_eq!(store.get(id).unwrap(), Some(expected_done));
        assert_eq!(store.counts().unwrap(), counts_of(0, 0, 1, 0));
        assert_eq!(store.unfinished().unwrap(), Vec::<Uuid>::new());
    }

    #[test]
    fn update_refusal_changes_nothing() {
        let (_dir, store) = fresh_store();
        let record = queued(1, 100);
        store.insert(std::slice::from_ref(&record)).unwrap();

        let err = store
            .update(record.id, |r| {
                r.status = JobStatus::Cancelled;
                r.finished_ms = Some(200);
                Err(Refusal("job 1 is already running".to_string()))
            })
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Refused(m) if m == "job 1 is already running"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "job 1 is already running");
        assert_eq!(store.get(record.id).unwrap(), Some(record.clone()));
        assert_eq!(store.counts().unwrap(), counts_of(1, 0, 0, 0));
        assert_eq!(store.unfinished().unwrap(), vec![record.id]);
    }

    #[test]
    fn update_of_a_missing_id_is_none_and_does_not_call_f() {
        let (_dir, store) = fresh_store();
        let mut called = false;
        let updated = store
            .update(Uuid::from_u128(5), |_| {
                called = true;
                Ok(())
            })
            .unwrap();
        assert_eq!(updated, None);
        assert!(!called);
        assert_eq!(store.counts().unwrap(), counts_of(0, 0, 0, 0));
    }

    #[test]
    fn update_that_changes_the_id_is_refused_and_changes_nothing() {
        let (_dir, store) = fresh_store();
        let record = queued(1, 100);
        store.insert(std::slice::from_ref(&record)).unwrap();
        let err = store
            .update(record.id, |r| {
                r.id = Uuid::from_u128(2);
                Ok(())
            })
            .unwrap_err();
        assert!(
            matches!(err, StoreError::IdChanged { id, new_id, .. } if id == record.id && new_id == Uuid::from_u128(2)),
            "{err:?}"
        );
        assert_eq!(store.get(record.id).unwrap(), Some(record));
        assert_eq!(store.get(Uuid::from_u128(2)).unwrap(), None);
    }

    #[test]
    fn unfinished_lists_queued_and_running_oldest_first_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        {
            let store = Store::open(&path).unwrap();
            store
                .insert(&[
                    queued(5, 300),
                    queued(4, 100),
                    // Same created_ms as job 4: ordered by id.
                    queued(3, 100),
                    finished(6, JobStatus::Done, 50, Some(60)),
                    finished(7, JobStatus::Cancelled, 10, Some(20)),
                    queued(8, 200),
                    queued(9, 1),
                ])
                .unwrap();
            store
                .update(Uuid::from_u128(8), |r| {
                    r.status = JobStatus::Running;
                    r.started_ms = Some(250);
                    Ok(())
                })
                .unwrap();
            store
                .update(Uuid::from_u128(9), |r| {
                    r.status = JobStatus::Cancelled;
                    r.finished_ms = Some(2);
                    Ok(())
                })
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.unfinished().unwrap(),
            [3, 4, 8, 5].map(Uuid::from_u128).to_vec()
        );
        // The running job goes back to queued, without its start; the rest stay.
        assert_eq!(store.requeue_running().unwrap(), 1);
        let eight = store.get(Uuid::from_u128(8)).unwrap().unwrap();
        assert_eq!((eight.status, eight.started_ms), (JobStatus::Queued, None));
        assert_eq!(store.counts().unwrap(), counts_of(4, 0, 1, 2));
        assert_eq!(
            store.unfinished().unwrap(),
            [3, 4, 8, 5].map(Uuid::from_u128).to_vec()
        );
        assert_eq!(store.requeue_running().unwrap(), 0);
    }

    #[test]
    fn remove_finished_before_removes_only_finished_jobs_older_than_the_cutoff() {
        let (_dir, store) = fresh_store();
        store
            .insert(&[
                finished(1, JobStatus::Done, 10, Some(100)),
                finished(2, JobStatus::Cancelled, 10, Some(150)),
                // No finished_ms: counts as finished when created.
                finished(3, JobStatus::Done, 80, None),
                // At the cutoff: kept.
                finished(4, JobStatus::Done, 10, Some(200)),
                finished(5, JobStatus::Cancelled, 10, Some(300)),
                // Past the cutoff, but its callback is still being tried: kept until it
                // is delivered or out of attempts.
                JobRecord {
                    callback: Some(CallbackState {
                        url: "http://example.com/hook".into(),
                        attempts: 2,
                        ..CallbackState::default()
                    }),
                    ..finished(8, JobStatus::Done, 10, Some(100))
                },
                queued(6, 50),
                JobRecord {
                    status: JobStatus::Running,
                    started_ms: Some(60),
                    ..queued(7, 50)
                },
            ])
            .unwrap();

        assert_eq!(store.remove_finished_before(200, 5).unwrap(), 3);
        for gone in [1, 2, 3] {
            assert_eq!(
                store.get(Uuid::from_u128(gone)).unwrap(),
                None,
                "job {gone}"
            );
        }
        for kept in [4, 5, 6, 7] {
            assert_eq!(
                store.get(Uuid::from_u128(kept)).unwrap().map(|r| r.id),
                Some(Uuid::from_u128(kept))
            );
        }
        assert_eq!(store.counts().unwrap(), counts_of(1, 1, 2, 1));
        assert_eq!(store.remove_finished_before(200, 5).unwrap(), 0);
        // Out of attempts (at most 2 here): removed.
        assert_eq!(store.remove_finished_before(200, 2).unwrap(), 1);
        assert_eq!(store.remove_finished_before(u64::MAX, 5).unwrap(), 2);
        assert_eq!(store.counts().unwrap(), counts_of(1, 1, 0, 0));
        assert_eq!(
            store.unfinished().unwrap(),
            [6, 7].map(Uuid::from_u128).to_vec()
        );
    }

    #[test]
    fn reopening_returns_the_space_of_removed_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        let size = || std::fs::metadata(&path).unwrap().len();
        let store = Store::open(&path).unwrap();
        let empty = size();
        let big = |n: u128| JobRecord {
            result: Some(json!({"stdout": "x".repeat(16 << 10)})),
            ..finished(n, JobStatus::Done, 10, Some(100))
        };
        for chunk in (0..1024u128).collect::<Vec<_>>().chunks(64) {
            let records: Vec<JobRecord> = chunk.iter().map(|&n| big(n)).collect();
            store.insert(&records).unwrap();
        }
        store.insert(&[queued(5000, 10)]).unwrap();
        let full = size();
        assert!(full > 16 << 20, "1024 results of 16 KiB in {full} bytes");
        assert_eq!(store.remove_finished_before(u64::MAX, 5).unwrap(), 1024);
        drop(store);
        let store = Store::open(&path).unwrap();
        let after = size();
        assert!(
            after < full / 10,
            "empty {empty}, full {full}, after removal and reopening {after} bytes"
        );
        // What was kept is still there.
        assert_eq!(store.unfinished().unwrap(), vec![Uuid::from_u128(5000)]);
    }

    #[test]
    fn counts_has_every_status() {
        let (_dir, store) = fresh_store();
        assert_eq!(store.counts().unwrap(), counts_of(0, 0, 0, 0));
        store
            .insert(&[
                queued(1, 1),
                queued(2, 2),
                queued(3, 3),
                finished(4, JobStatus::Done, 4, Some(5)),
                finished(5, JobStatus::Done, 5, Some(6)),
                finished(6, JobStatus::Cancelled, 6, Some(7)),
            ])
            .unwrap();
        store
            .update(Uuid::from_u128(1), |r| {
                r.status = JobStatus::Running;
                Ok(())
            })
            .unwrap();
        assert_eq!(store.counts().unwrap(), counts_of(2, 1, 2, 1));
    }

    #[test]
    fn open_in_a_missing_directory_names_the_path_and_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("jobs.redb");
        let err = Store::open(&path).err().unwrap();
        assert!(
            matches!(&err, StoreError::Open { path: p, .. } if *p == path),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "open job store {}: I/O error: No such file or directory (os error 2)",
                path.display()
            )
        );
        assert!(!dir.path().join("missing").exists());
    }

    #[test]
    fn a_record_that_does_not_decode_is_corrupt_in_get_and_skipped_by_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        let bad = Uuid::from_u128(2);
        let moved = Uuid::from_u128(3);
        {
            let store = Store::open(&path).unwrap();
            store
                .insert(&[queued(1, 10), queued(2, 20), queued(3, 30)])
                .unwrap();
        }
        {
            // Damage two records behind the store's back: bytes that are not JSON, and a
            // record stored under another id than its own.
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut jobs = txn.open_table(JOBS).unwrap();
                jobs.insert(bad.as_bytes(), b"{not json".as_slice())
                    .unwrap();
                let other = serde_json::to_vec(&queued(4, 30)).unwrap();
                jobs.insert(moved.as_bytes(), other.as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let err = store.get(bad).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { id, .. } if id == bad),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "job {bad} in job store {} is corrupt: decode JSON: key must be a string at line 1 column 2",
                path.display()
            )
        );
        let err = store.get(moved).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "job {moved} in job store {} is corrupt: the record's id is {}",
                path.display(),
                Uuid::from_u128(4)
            )
        );
        let err = store.update(bad, |_| Ok(())).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { id, .. } if id == bad),
            "{err:?}"
        );
        assert_eq!(store.unfinished().unwrap(), vec![Uuid::from_u128(1)]);
        assert_eq!(store.counts().unwrap(), counts_of(3, 0, 0, 0));
    }

    #[test]
    fn now_ms_is_after_2020() {
        // 2020-01-01T00:00:00Z: a clock reading before it means now_ms is not in ms.
        assert!(now_ms() > 1_577_836_800_000);
    }
}
