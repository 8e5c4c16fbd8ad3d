//! The job store of one node: one redb file that outlives the server process.
//!
//! Layout: table `jobs` maps a job's id (the uuid's 16 bytes) to its [`JobRecord`] as JSON;
//! table `jobs_by_status` is an index of `(status, ms, id)` keys, where `ms` is the job's
//! `created_ms` while it is queued or running and its `finished_ms` once it is done or
//! cancelled. Both tables change in the same write transaction, so the index always names
//! exactly the records there are, under the status they were last written with. The index
//! makes claims and [`JobStore::expire`] read only the unfinished jobs,
//! [`JobStore::remove_finished_before`] only the expired ones, and [`JobStore::counts`]
//! decode no JSON.
//!
//! Every write commits with redb's default `Durability::Immediate` (an fsync), so a job that
//! [`JobStore::insert`] has returned for survives a crash of the server or the host. redb
//! calls block on disk I/O: each runs on tokio's blocking pool.
//!
//! redb locks its file: one process uses it at a time, so a node that opens it knows that
//! whatever is "running" in it was left by a process that is gone.
//!
//! A record whose JSON no longer decodes (a damaged file, a record written by a newer
//! version) is skipped with a warning by the scans; [`JobStore::get`] and the changes of
//! one job answer [`StoreError::Corrupt`] naming its id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde_json::Value;
use uuid::Uuid;

use super::{
    exhausted_result, is_incarnation_of, Cancel, Expired, JobRecord, JobStatus, JobStore, Remove,
    Renewal, StoreError,
};

/// Job id (the uuid's bytes) to the job's record as JSON.
const JOBS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("jobs");

/// Index `(status code, ms, id)`: see the module doc for which time `ms` is.
const BY_STATUS: TableDefinition<IndexKey, ()> = TableDefinition::new("jobs_by_status");

/// [`JOBS`] and [`BY_STATUS`] opened in a write transaction.
type JobsTable<'t> = redb::Table<'t, [u8; 16], &'static [u8]>;
type IndexTable<'t> = redb::Table<'t, IndexKey, ()>;

/// Key of [`BY_STATUS`]: `(status code, ms, id bytes)`.
type IndexKey = (u8, u64, [u8; 16]);

/// The record's key in [`BY_STATUS`].
fn index_key(record: &JobRecord) -> IndexKey {
    let ms = if record.status.is_unfinished() {
        record.created_ms
    } else {
        record.finished_ms.unwrap_or(record.created_ms)
    };
    (record.status.code(), ms, *record.id.as_bytes())
}

/// The job store in a redb file; cheap to clone.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl RedbStore {
    /// Opens (creating if missing) the store at `path`.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let describe = format!("redb {}", path.display());
        let mut db = Database::create(path).map_err(|e| StoreError::Failed {
            store: describe.clone(),
            action: "open".to_string(),
            message: redb::Error::from(e).to_string(),
        })?;
        // Results removed after their retention leave free pages that redb reuses but never
        // returns: compacted at each start, the file is as big as what it keeps.
        // A compaction that fails (a full disk: it writes before it frees) costs only space.
        if let Err(error) = db.compact() {
            tracing::warn!(store = %path.display(), %error, "job store not compacted");
        }
        let inner = Inner {
            db,
            path: path.to_path_buf(),
        };
        // Create both tables now, so that a read transaction never meets a missing table.
        inner.write("create tables", |txn| {
            inner.tables(txn, "create tables")?;
            Ok(())
        })?;
        Ok(RedbStore {
            inner: Arc::new(inner),
        })
    }

    /// Runs `f` on the store on the blocking pool: every commit waits for the disk.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        match tokio::task::spawn_blocking(move || f(&inner)).await {
            Ok(v) => v,
            // A panic in the store is a bug: let it go on unwinding here.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

#[async_trait::async_trait]
impl JobStore for RedbStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn shared(&self) -> bool {
        false
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn insert(&self, records: Vec<JobRecord>) -> Result<(), StoreError> {
        self.blocking(move |s| s.insert(&records)).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
        self.blocking(move |s| s.get(id)).await
    }

    async fn claim(
        &self,
        node: &str,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Option<JobRecord>, StoreError> {
        let node = node.to_string();
        self.blocking(move |s| s.claim(&node, now_ms, lease_until_ms))
            .await
    }

    async fn renew(
        &self,
        id: Uuid,
        attempt: u32,
        node: &str,
        lease_until_ms: u64,
    ) -> Result<Renewal, StoreError> {
        let node = node.to_string();
        self.blocking(move |s| {
            let mut renewal = Renewal::Lost;
            s.change(id, "renew the lease of job", |r| {
                if r.claimed_by(&node, attempt) {
                    r.lease_until_ms = Some(lease_until_ms);
                    renewal = Renewal::Held;
                } else if r.status == JobStatus::Cancelled {
                    renewal = Renewal::Cancelled;
                }
                true
            })?;
            Ok(renewal)
        })
        .await
    }

    async fn finish(
        &self,
        id: Uuid,
        attempt: u32,
        node: &str,
        result: Value,
        now_ms: u64,
    ) -> Result<Option<JobRecord>, StoreError> {
        let node = node.to_string();
        self.blocking(move |s| {
            let changed = s.change(id, "store the result of job", |r| {
                if !r.claimed_by(&node, attempt) {
                    return false;
                }
                r.status = JobStatus::Done;
                r.finished_ms = Some(now_ms);
                r.result = Some(result);
                r.lease_until_ms = None;
                true
            })?;
            Ok(changed.filter(|r| r.status == JobStatus::Done && r.attempts == attempt))
        })
        .await
    }

    async fn release(&self, id: Uuid, attempt: u32, node: &str) -> Result<bool, StoreError> {
        let node = node.to_string();
        self.blocking(move |s| {
            let mut released = false;
            s.change(id, "give back job", |r| {
                if !r.claimed_by(&node, attempt) {
                    return false;
                }
                requeue(r);
                r.attempts = r.attempts.saturating_sub(1);
                released = true;
                true
            })?;
            Ok(released)
        })
        .await
    }

    async fn cancel(&self, id: Uuid, now_ms: u64) -> Result<Cancel, StoreError> {
        self.blocking(move |s| {
            let mut was = None;
            let record = s.change(id, "cancel job", |r| {
                was = Some(r.status);
                if !r.status.is_unfinished() {
                    return false;
                }
                r.status = JobStatus::Cancelled;
                r.finished_ms = Some(now_ms);
                r.lease_until_ms = None;
                true
            })?;
            Ok(match (record, was) {
                (None, _) | (_, None) => Cancel::NotFound,
                (Some(record), Some(was)) if was.is_unfinished() => Cancel::Done {
                    record: Box::new(record),
                    was,
                },
                (Some(_), Some(was)) => Cancel::Finished(was),
            })
        })
        .await
    }

    async fn expire(&self, now_ms: u64, max_attempts: u32) -> Result<Expired, StoreError> {
        self.blocking(move |s| s.expire(now_ms, max_attempts, None))
            .await
    }

    async fn take_over(
        &self,
        name: &str,
        now_ms: u64,
        max_attempts: u32,
    ) -> Result<Expired, StoreError> {
        let name = name.to_string();
        self.blocking(move |s| s.take_over(&name, now_ms, max_attempts))
            .await
    }

    async fn claim_delivery(
        &self,
        id: Uuid,
        node: &str,
        now_ms: u64,
        until_ms: u64,
        max_attempts: u32,
    ) -> Result<Option<JobRecord>, StoreError> {
        let node = node.to_string();
        self.blocking(move |s| {
            let mut claimed = false;
            let record = s.change(id, "claim the callback of job", |r| {
                if !r.callback_pending(max_attempts) || !r.delivery_free_for(&node, now_ms) {
                    return false;
                }
                r.delivery_node = Some(node.clone());
                r.delivery_until_ms = Some(until_ms);
                claimed = true;
                true
            })?;
            Ok(record.filter(|_| claimed))
        })
        .await
    }

    async fn record_delivery(
        &self,
        id: Uuid,
        node: &str,
        delivered: bool,
        error: Option<String>,
        until_ms: u64,
    ) -> Result<bool, StoreError> {
        let node = node.to_string();
        self.blocking(move |s| {
            let mut recorded = false;
            s.change(id, "record a callback attempt of job", |r| {
                if r.delivery_node.as_deref() != Some(node.as_str()) {
                    return false;
                }
                let Some(c) = &mut r.callback else {
                    return false;
                };
                c.attempts += 1;
                c.delivered = delivered;
                c.last_error = error;
                if delivered {
                    r.delivery_node = None;
                    r.delivery_until_ms = None;
                } else {
                    r.delivery_until_ms = Some(until_ms);
                }
                recorded = true;
                true
            })?;
            Ok(recorded)
        })
        .await
    }

    async fn deliverable(&self, now_ms: u64, max_attempts: u32) -> Result<Vec<Uuid>, StoreError> {
        self.blocking(move |s| s.deliverable(now_ms, max_attempts))
            .await
    }

    async fn remove_finished(&self, id: Uuid) -> Result<Remove, StoreError> {
        self.blocking(move |s| s.remove_finished(id)).await
    }

    async fn remove_finished_before(
        &self,
        before_ms: u64,
        callback_attempts: u32,
    ) -> Result<usize, StoreError> {
        self.blocking(move |s| s.remove_finished_before(before_ms, callback_attempts))
            .await
    }

    async fn counts(&self) -> Result<BTreeMap<JobStatus, usize>, StoreError> {
        self.blocking(Inner::counts).await
    }
}

/// `r` (running) queued again, its claim let go.
fn requeue(r: &mut JobRecord) {
    r.status = JobStatus::Queued;
    r.started_ms = None;
    r.lease_until_ms = None;
}

impl Inner {
    fn describe(&self) -> String {
        format!("redb {}", self.path.display())
    }

    fn insert(&self, records: &[JobRecord]) -> Result<(), StoreError> {
        let action = format!("insert {} jobs", records.len());
        self.write(&action, |txn| {
            let (mut jobs, mut index) = self.tables(txn, &action)?;
            for record in records {
                let bytes = self.encode(record)?;
                let previous = jobs
                    .insert(record.id.as_bytes(), bytes.as_slice())
                    .map_err(|e| self.failed(&action, e))?;
                if previous.is_some() {
                    return Err(StoreError::Duplicate { id: record.id });
                }
                index
                    .insert(index_key(record), ())
                    .map_err(|e| self.failed(&action, e))?;
            }
            Ok(())
        })
    }

    fn get(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
        let action = format!("read job {id}");
        let txn = self.db.begin_read().map_err(|e| self.failed(&action, e))?;
        let jobs = txn.open_table(JOBS).map_err(|e| self.failed(&action, e))?;
        let Some(guard) = jobs
            .get(id.as_bytes())
            .map_err(|e| self.failed(&action, e))?
        else {
            return Ok(None);
        };
        self.decode(id, guard.value()).map(Some)
    }

    /// Applies `f` to job `id`'s record in one write transaction; stores the record when
    /// `f` returns true. The record as it is after (changed or not), or None if no such id.
    fn change(
        &self,
        id: Uuid,
        what: &str,
        f: impl FnOnce(&mut JobRecord) -> bool,
    ) -> Result<Option<JobRecord>, StoreError> {
        let action = format!("{what} {id}");
        self.write(&action, |txn| {
            let (mut jobs, mut index) = self.tables(txn, &action)?;
            let old = {
                let Some(guard) = jobs
                    .get(id.as_bytes())
                    .map_err(|e| self.failed(&action, e))?
                else {
                    return Ok(None);
                };
                self.decode(id, guard.value())?
            };
            let mut new = old.clone();
            if f(&mut new) && new != old {
                self.replace(&mut jobs, &mut index, index_key(&old), &new, &action)?;
                return Ok(Some(new));
            }
            Ok(Some(old))
        })
    }

    fn claim(
        &self,
        node: &str,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Option<JobRecord>, StoreError> {
        let action = "claim a queued job";
        // Most claims that find nothing come when the queue has just run dry: a read
        // transaction tells, without a commit (an fsync).
        {
            let txn = self.db.begin_read().map_err(|e| self.failed(action, e))?;
            let index = txn
                .open_table(BY_STATUS)
                .map_err(|e| self.failed(action, e))?;
            let mut queued = index
                .range(status_range(JobStatus::Queued, u64::MAX))
                .map_err(|e| self.failed(action, e))?;
            if queued.next().is_none() {
                return Ok(None);
            }
        }
        self.write(action, |txn| {
            let (mut jobs, mut index) = self.tables(txn, action)?;
            let keys = self.keys(&index, JobStatus::Queued, u64::MAX, action)?;
            for key in keys {
                let id = Uuid::from_bytes(key.2);
                let Some(mut record) = self.record_or_warn(&jobs, id, action)? else {
                    continue;
                };
                record.status = JobStatus::Running;
                record.started_ms = Some(now_ms);
                record.attempts += 1;
                record.node = Some(node.to_string());
                record.lease_until_ms = Some(lease_until_ms);
                self.replace(&mut jobs, &mut index, key, &record, action)?;
                return Ok(Some(record));
            }
            Ok(None)
        })
    }

    /// Running jobs whose lease ran out before `now_ms`, or (`of` given) that a process of
    /// node `of` holds, queued again or ended.
    fn expire(
        &self,
        now_ms: u64,
        max_attempts: u32,
        of: Option<&str>,
    ) -> Result<Expired, StoreError> {
        let action = "queue again the jobs whose lease ran out";
        self.write(action, |txn| {
            let (mut jobs, mut index) = self.tables(txn, action)?;
            let keys = self.keys(&index, JobStatus::Running, u64::MAX, action)?;
            let mut expired = Expired::default();
            for key in keys {
                let id = Uuid::from_bytes(key.2);
                let Some(mut record) = self.record_or_warn(&jobs, id, action)? else {
                    continue;
                };
                let held = match of {
                    Some(name) => !record
                        .node
                        .as_deref()
                        .is_some_and(|n| is_incarnation_of(n, name)),
                    None => record.lease_until_ms.is_some_and(|until| until >= now_ms),
                };
                if held {
                    continue;
                }
                if record.attempts >= max_attempts {
                    record.status = JobStatus::Done;
                    record.finished_ms = Some(now_ms.min(super::now_ms()));
                    record.result = Some(exhausted_result(record.attempts));
                    record.lease_until_ms = None;
                    expired.ended.push(id);
                } else {
                    requeue(&mut record);
                    expired.requeued.push(id);
                }
                self.replace(&mut jobs, &mut index, key, &record, action)?;
            }
            Ok(expired)
        })
    }

    fn take_over(&self, name: &str, now_ms: u64, max_attempts: u32) -> Result<Expired, StoreError> {
        let expired = self.expire(now_ms, max_attempts, Some(name))?;
        let action = "let go of the delivery claims of an earlier process";
        self.write(action, |txn| {
            let (mut jobs, mut index) = self.tables(txn, action)?;
            let mut keys = self.keys(&index, JobStatus::Done, u64::MAX, action)?;
            keys.extend(self.keys(&index, JobStatus::Cancelled, u64::MAX, action)?);
            for key in keys {
                let id = Uuid::from_bytes(key.2);
                let Some(mut record) = self.record_or_warn(&jobs, id, action)? else {
                    continue;
                };
                if record
                    .delivery_node
                    .as_deref()
                    .is_some_and(|n| is_incarnation_of(n, name))
                {
                    record.delivery_node = None;
                    record.delivery_until_ms = None;
                    self.replace(&mut jobs, &mut index, key, &record, action)?;
                }
            }
            Ok(())
        })?;
        Ok(expired)
    }

    /// Every record is read: with the index by status alone, the pending callbacks are not
    /// indexed. Called once at start (redb is one node's: nobody else delivers meanwhile).
    fn deliverable(&self, now_ms: u64, max_attempts: u32) -> Result<Vec<Uuid>, StoreError> {
        let action = "list undelivered callbacks";
        let txn = self.db.begin_read().map_err(|e| self.failed(action, e))?;
        let jobs = txn.open_table(JOBS).map_err(|e| self.failed(action, e))?;
        let mut ids = Vec::new();
        for entry in jobs.iter().map_err(|e| self.failed(action, e))? {
            let (key, value) = entry.map_err(|e| self.failed(action, e))?;
            let id = Uuid::from_bytes(key.value());
            let Ok(record) = self.decode(id, value.value()) else {
                continue;
            };
            if record.callback_pending(max_attempts)
                && record.delivery_until_ms.is_none_or(|u| u <= now_ms)
            {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    fn remove_finished(&self, id: Uuid) -> Result<Remove, StoreError> {
        let action = format!("remove job {id}");
        self.write(&action, |txn| {
            let (mut jobs, mut index) = self.tables(txn, &action)?;
            let record = {
                let Some(guard) = jobs
                    .get(id.as_bytes())
                    .map_err(|e| self.failed(&action, e))?
                else {
                    return Ok(Remove::NotFound);
                };
                self.decode(id, guard.value())?
            };
            if record.status.is_unfinished() {
                return Ok(Remove::Unfinished(record.status));
            }
            jobs.remove(id.as_bytes())
                .map_err(|e| self.failed(&action, e))?;
            index
                .remove(index_key(&record))
                .map_err(|e| self.failed(&action, e))?;
            Ok(Remove::Removed(Box::new(record)))
        })
    }

    fn remove_finished_before(
        &self,
        before_ms: u64,
        callback_attempts: u32,
    ) -> Result<usize, StoreError> {
        let action = format!("remove jobs finished before {before_ms}");
        self.write(&action, |txn| {
            let (mut jobs, mut index) = self.tables(txn, &action)?;
            let mut expired = self.keys(&index, JobStatus::Done, before_ms, &action)?;
            expired.extend(self.keys(&index, JobStatus::Cancelled, before_ms, &action)?);
            let mut removed = 0;
            for key in expired {
                // A callback still being tried keeps its job until it is delivered or out
                // of attempts: a retention shorter than the retries must not drop it.
                let pending = jobs
                    .get(key.2)
                    .map_err(|e| self.failed(&action, e))?
                    .and_then(|g| self.decode(Uuid::from_bytes(key.2), g.value()).ok())
                    .is_some_and(|r| r.callback_pending(callback_attempts));
                if pending {
                    continue;
                }
                index.remove(key).map_err(|e| self.failed(&action, e))?;
                let record = jobs.remove(key.2).map_err(|e| self.failed(&action, e))?;
                if record.is_some() {
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }

    /// Read from the index, so a record that does not decode counts under its last status.
    fn counts(&self) -> Result<BTreeMap<JobStatus, usize>, StoreError> {
        let action = "count jobs";
        let txn = self.db.begin_read().map_err(|e| self.failed(action, e))?;
        let index = txn
            .open_table(BY_STATUS)
            .map_err(|e| self.failed(action, e))?;
        let mut counts = BTreeMap::new();
        for status in JobStatus::ALL {
            let mut count = 0;
            let range = index
                .range(status_range(status, u64::MAX))
                .map_err(|e| self.failed(action, e))?;
            for entry in range {
                entry.map_err(|e| self.failed(action, e))?;
                count += 1;
            }
            counts.insert(status, count);
        }
        Ok(counts)
    }

    /// The index keys of `status` with `ms` below `before_ms`, in order.
    fn keys(
        &self,
        index: &IndexTable<'_>,
        status: JobStatus,
        before_ms: u64,
        action: &str,
    ) -> Result<Vec<IndexKey>, StoreError> {
        index
            .range(status_range(status, before_ms))
            .map_err(|e| self.failed(action, e))?
            .map(|entry| entry.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()
            .map_err(|e| self.failed(action, e))
    }

    /// The record of an indexed job; one that does not decode (or is missing, which the
    /// index rules out) is left as it is, with a warning, and is None.
    fn record_or_warn(
        &self,
        jobs: &JobsTable<'_>,
        id: Uuid,
        action: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        let Some(bytes) = jobs
            .get(id.as_bytes())
            .map_err(|e| self.failed(action, e))?
            .map(|g| g.value().to_vec())
        else {
            tracing::warn!(job = %id, store = %self.path.display(), "skipping an indexed job that has no record");
            return Ok(None);
        };
        match self.decode(id, &bytes) {
            Ok(r) => Ok(Some(r)),
            Err(error) => {
                tracing::warn!(job = %id, store = %self.path.display(), %error, "leaving a job that does not decode");
                Ok(None)
            }
        }
    }

    /// Stores `new` over its record, and its index entry in place of `old_key`, in the
    /// tables of one write transaction.
    fn replace(
        &self,
        jobs: &mut JobsTable<'_>,
        index: &mut IndexTable<'_>,
        old_key: IndexKey,
        new: &JobRecord,
        action: &str,
    ) -> Result<(), StoreError> {
        let bytes = self.encode(new)?;
        jobs.insert(new.id.as_bytes(), bytes.as_slice())
            .map_err(|e| self.failed(action, e))?;
        index.remove(old_key).map_err(|e| self.failed(action, e))?;
        index
            .insert(index_key(new), ())
            .map_err(|e| self.failed(action, e))?;
        Ok(())
    }

    /// Runs `body` in a write transaction: commits if it returns Ok, aborts if it returns Err.
    fn write<T>(
        &self,
        action: &str,
        body: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.failed(action, e))?;
        match body(&txn) {
            Ok(value) => {
                txn.commit().map_err(|e| self.failed(action, e))?;
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

    /// Both tables in a write transaction (created when missing).
    fn tables<'t>(
        &self,
        txn: &'t WriteTransaction,
        action: &str,
    ) -> Result<(JobsTable<'t>, IndexTable<'t>), StoreError> {
        let jobs = txn.open_table(JOBS).map_err(|e| self.failed(action, e))?;
        let index = txn
            .open_table(BY_STATUS)
            .map_err(|e| self.failed(action, e))?;
        Ok((jobs, index))
    }

    /// A [`StoreError::Failed`] for `action` failing with `source`.
    fn failed(&self, action: &str, source: impl Into<redb::Error>) -> StoreError {
        StoreError::Failed {
            store: self.describe(),
            action: action.to_string(),
            message: source.into().to_string(),
        }
    }

    /// `record` as stored.
    fn encode(&self, record: &JobRecord) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(record).map_err(|e| StoreError::Failed {
            store: self.describe(),
            action: format!("encode job {}", record.id),
            message: e.to_string(),
        })
    }

    /// The record stored under `id`.
    fn decode(&self, id: Uuid, bytes: &[u8]) -> Result<JobRecord, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            store: self.describe(),
            id,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn queued(n: u128, created_ms: u64) -> JobRecord {
        JobRecord::queued(
            Uuid::from_u128(n),
            json!({"language": "python", "code": format!("print({n})")}),
            created_ms,
        )
    }

    fn store_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("jobs.redb")
    }

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RedbStore>();
        assert_send_sync::<StoreError>();
    }

    #[tokio::test]
    async fn records_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        let claimed = {
            let store = RedbStore::open(&path).unwrap();
            store
                .insert(vec![queued(1, 100), queued(2, 50)])
                .await
                .unwrap();
            store.claim("a", 1_000, 2_000).await.unwrap().unwrap()
        };
        assert_eq!(claimed.id, Uuid::from_u128(2));
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.get(claimed.id).await.unwrap(), Some(claimed));
        assert_eq!(
            store.get(Uuid::from_u128(1)).await.unwrap(),
            Some(queued(1, 100))
        );
    }

    #[tokio::test]
    async fn reopening_returns_the_space_of_removed_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        let big = "x".repeat(64 * 1024);
        {
            let store = RedbStore::open(&path).unwrap();
            let records: Vec<JobRecord> = (0..1024)
                .map(|n| JobRecord {
                    status: JobStatus::Done,
                    finished_ms: Some(10),
                    result: Some(json!({"stdout": big})),
                    ..queued(n, 1)
                })
                .collect();
            store.insert(records).await.unwrap();
        }
        let full = std::fs::metadata(&path).unwrap().len();
        assert!(full > 64 << 20, "{full}");
        {
            let store = RedbStore::open(&path).unwrap();
            store.insert(vec![queued(5000, 10)]).await.unwrap();
            assert_eq!(
                store.remove_finished_before(u64::MAX, 5).await.unwrap(),
                1024
            );
        }
        let store = RedbStore::open(&path).unwrap();
        let small = std::fs::metadata(&path).unwrap().len();
        assert!(small < 4 << 20, "{full} -> {small}");
        assert_eq!(
            store.claim("a", 1, 2).await.unwrap().map(|r| r.id),
            Some(Uuid::from_u128(5000))
        );
    }

    #[test]
    fn open_in_a_missing_directory_names_the_path_and_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("jobs.redb");
        let err = RedbStore::open(&path).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "open in the job store (redb {}): I/O error: No such file or directory (os error 2)",
                path.display()
            )
        );
        assert!(!dir.path().join("missing").exists());
    }

    #[tokio::test]
    async fn a_record_that_does_not_decode_is_corrupt_in_get_and_skipped_by_claims() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        let bad = Uuid::from_u128(2);
        let moved = Uuid::from_u128(3);
        {
            let store = RedbStore::open(&path).unwrap();
            store
                .insert(vec![queued(1, 30), queued(2, 10), queued(3, 20)])
                .await
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
        let store = RedbStore::open(&path).unwrap();
        let err = store.get(bad).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "job {bad} in the job store (redb {}) is corrupt: decode JSON: key must be a string at line 1 column 2",
                path.display()
            )
        );
        let err = store.get(moved).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "job {moved} in the job store (redb {}) is corrupt: the record's id is {}",
                path.display(),
                Uuid::from_u128(4)
            )
        );
        let err = store.cancel(bad, 5).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { id, .. } if id == bad),
            "{err:?}"
        );
        // The claim passes over both (oldest first) to the one that decodes.
        let claimed = store.claim("a", 40, 50).await.unwrap().unwrap();
        assert_eq!(claimed.id, Uuid::from_u128(1));
        assert_eq!(store.claim("a", 40, 50).await.unwrap(), None);
        let counts = store.counts().await.unwrap();
        assert_eq!(counts[&JobStatus::Queued], 2);
        assert_eq!(counts[&JobStatus::Running], 1);
    }
}
