//! The job store in PostgreSQL, shared by every node that names the same database.
//!
//! Layout: one table, `warmbox_jobs`, a row a job and a column a field of [`JobRecord`]
//! (JSON as text); partial indexes give the claims the queued jobs in order, the expiry
//! the running ones by lease, the retention the finished ones by age and the takeover the
//! pending callbacks. Every method is one SQL statement, so one atomic change, prepared
//! once a connection. Two nodes never take the same row: a claim or an expiry locks the
//! rows it takes with `FOR UPDATE SKIP LOCKED`, and the changes of one claim are fenced by
//! its node and attempt in their `WHERE`.
//!
//! Triggers tell the other nodes what they must act on: a job queued (inserted or queued
//! again) notifies channel `warmbox_jobs`, a running job cancelled notifies
//! `warmbox_cancel` with its id; [`PgStore::notices`] listens to both.
//!
//! The schema is versioned (`warmbox_schema`): a node migrates it at connect, under an
//! advisory lock so that nodes starting together do not race, and refuses a database that
//! a newer warmbox has migrated further.
//!
//! Connections are plain TCP (or a Unix socket): TLS is not supported yet, and a URL that
//! asks for it (`sslmode=require`) is refused.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use serde_json::Value;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Config, NoTls, Row};
use uuid::Uuid;

use super::{
    exhausted_result, CallbackState, Cancel, Expired, JobRecord, JobStatus, JobStore, Notice,
    Remove, Renewal, StoreError,
};

/// Connections in the pool of one node.
const POOL_SIZE: usize = 16;

/// How long a new connection may take (unless the URL says `connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for a free connection of the pool, and for one being made
/// (a little longer than [`CONNECT_TIMEOUT`], so that the driver's error, which says
/// more, comes first).
const WAIT_TIMEOUT: Duration = Duration::from_secs(5);
const CREATE_TIMEOUT: Duration = Duration::from_secs(6);

/// A connection whose sent data goes unacknowledged this long is dead (the server's host
/// gone, a partition): its requests fail instead of hanging until the kernel gives up
/// (~15 min).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);

/// An idle connection is probed after this long, so that the listening connection,
/// which only ever reads, notices a server that went away (the default is 2 h).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// How long the listener waits before connecting again.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Key of the advisory lock that serializes migrations ("warmbox" in ASCII).
const MIGRATION_LOCK: i64 = 0x0077_6172_6d62_6f78;

/// Channel notified when a job is queued.
const QUEUED_CHANNEL: &str = "warmbox_jobs";

/// Channel notified with a job's id when a running job is cancelled.
const CANCEL_CHANNEL: &str = "warmbox_cancel";

/// The schema's migrations: `MIGRATIONS[n]` takes it from version n to n + 1. Append only;
/// never change one that has shipped.
const MIGRATIONS: &[&str] = &[
    // v1: the jobs, their indexes and the triggers of the notifications.
    r"
CREATE TABLE warmbox_jobs (
    id uuid PRIMARY KEY,
    status smallint NOT NULL,
    created_ms bigint NOT NULL,
    started_ms bigint,
    finished_ms bigint,
    request text NOT NULL,
    result text,
    meta text,
    callback_url text,
    callback_attempts int NOT NULL DEFAULT 0,
    callback_delivered bool NOT NULL DEFAULT false,
    callback_error text,
    attempts int NOT NULL DEFAULT 0,
    node text,
    lease_until_ms bigint,
    delivery_node text,
    delivery_until_ms bigint
);
CREATE INDEX warmbox_jobs_queued ON warmbox_jobs (created_ms, id) WHERE status = 0;
CREATE INDEX warmbox_jobs_running ON warmbox_jobs (lease_until_ms) WHERE status = 1;
-- A finished job without finished_ms counts as finished when it was created.
CREATE INDEX warmbox_jobs_finished ON warmbox_jobs ((COALESCE(finished_ms, created_ms)))
    WHERE status >= 2;
CREATE INDEX warmbox_jobs_callbacks ON warmbox_jobs (id)
    WHERE status >= 2 AND callback_url IS NOT NULL AND NOT callback_delivered;
-- For a node that takes over from its earlier process: the delivery claims it held.
CREATE INDEX warmbox_jobs_delivery_nodes ON warmbox_jobs (delivery_node)
    WHERE delivery_node IS NOT NULL;

CREATE FUNCTION warmbox_jobs_notify_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('warmbox_jobs', '');
    RETURN NULL;
END $$;
CREATE TRIGGER warmbox_jobs_queued AFTER INSERT OR UPDATE OF status ON warmbox_jobs
    FOR EACH ROW WHEN (NEW.status = 0) EXECUTE FUNCTION warmbox_jobs_notify_queued();

CREATE FUNCTION warmbox_jobs_notify_cancelled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('warmbox_cancel', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER warmbox_jobs_cancelled AFTER UPDATE OF status ON warmbox_jobs
    FOR EACH ROW WHEN (OLD.status = 1 AND NEW.status = 3)
    EXECUTE FUNCTION warmbox_jobs_notify_cancelled();
",
];

/// The schema version this warmbox knows and migrates to.
fn schema_version() -> i32 {
    i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX)
}

/// A record's columns, in the order [`PgStore::record`] reads them.
macro_rules! columns {
    () => {
        "id, status, created_ms, started_ms, finished_ms, request, result, meta, \
         callback_url, callback_attempts, callback_delivered, callback_error, attempts, node, \
         lease_until_ms, delivery_node, delivery_until_ms"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO warmbox_jobs (",
    columns!(),
    ") SELECT * FROM UNNEST($1::uuid[], $2::int2[], $3::int8[], $4::int8[], $5::int8[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::int4[], $11::bool[], $12::text[], \
     $13::int4[], $14::text[], $15::int8[], $16::text[], $17::int8[])"
);

const EXISTING: &str = "SELECT id FROM warmbox_jobs WHERE id = ANY($1::uuid[]) LIMIT 1";

const GET: &str = concat!("SELECT ", columns!(), " FROM warmbox_jobs WHERE id = $1");

const CLAIM: &str = concat!(
    "UPDATE warmbox_jobs SET status = 1, started_ms = $2::int8, attempts = attempts + 1, \
     node = $1::text, lease_until_ms = $3::int8 \
     WHERE id = (SELECT id FROM warmbox_jobs WHERE status = 0 ORDER BY created_ms, id \
     FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING ",
    columns!()
);

/// One row: whether the claim was the job's (and its lease moved), and the job's status
/// before (NULL: no such job).
const RENEW: &str = "WITH renewed AS (UPDATE warmbox_jobs SET lease_until_ms = $4::int8 \
     WHERE id = $1 AND status = 1 AND attempts = $2::int4 AND node = $3::text RETURNING 1) \
     SELECT EXISTS (SELECT 1 FROM renewed), \
     (SELECT status FROM warmbox_jobs WHERE id = $1)";

/// The job done by this claim, or as it was done by it before (a finish tried again
/// after its answer was lost stores nothing more, and gets the record).
const FINISH: &str = concat!(
    "WITH finished AS (UPDATE warmbox_jobs SET status = 2, finished_ms = $5::int8, \
     result = $4::text, lease_until_ms = NULL \
     WHERE id = $1 AND status = 1 AND attempts = $2::int4 AND node = $3::text RETURNING ",
    columns!(),
    ") SELECT * FROM finished UNION ALL SELECT ",
    columns!(),
    " FROM warmbox_jobs WHERE id = $1 AND status = 2 AND attempts = $2::int4 \
     AND node = $3::text AND NOT EXISTS (SELECT 1 FROM finished)"
);

const RELEASE: &str = "UPDATE warmbox_jobs SET status = 0, started_ms = NULL, \
     lease_until_ms = NULL, attempts = GREATEST(attempts - 1, 0) \
     WHERE id = $1 AND status = 1 AND attempts = $2::int4 AND node = $3::text";

/// The cancelled record (all NULL when it was not cancelled) and, last, the status it had
/// (no row: no such job).
const CANCEL: &str = concat!(
    "WITH old AS (SELECT id AS old_id, status AS old_status FROM warmbox_jobs \
     WHERE id = $1 FOR UPDATE), \
     cancelled AS (UPDATE warmbox_jobs SET status = 3, finished_ms = $2::int8, \
     lease_until_ms = NULL FROM old WHERE id = old_id AND old_status IN (0, 1) RETURNING ",
    columns!(),
    ") SELECT cancelled.*, old_status FROM old LEFT JOIN cancelled ON true"
);

/// The `UPDATE` of [`EXPIRE`] and [`TAKE_OVER`]: running jobs queued again, or ended
/// when out of attempts (`$2`) at `$3`. `$4`, `$5`: [`exhausted_result`]'s text before and
/// after its attempt count (`$5` NULL: the text has no count). The jobs are locked with
/// `SKIP LOCKED`: of two nodes expiring at once, each takes the jobs the other did not.
macro_rules! expire_jobs {
    ($which:expr) => {
        concat!(
            "UPDATE warmbox_jobs AS j SET \
             status = CASE WHEN j.attempts >= $2::int4 THEN 2 ELSE 0 END, \
             started_ms = CASE WHEN j.attempts >= $2::int4 THEN j.started_ms END, \
             finished_ms = CASE WHEN j.attempts >= $2::int4 THEN $3::int8 \
                 ELSE j.finished_ms END, \
             result = CASE WHEN j.attempts >= $2::int4 THEN \
                 CASE WHEN $5::text IS NULL THEN $4::text \
                 ELSE $4::text || j.attempts::text || $5::text END \
                 ELSE j.result END, \
             lease_until_ms = NULL \
             WHERE j.id IN (SELECT id FROM warmbox_jobs WHERE status = 1 AND ",
            $which,
            " FOR UPDATE SKIP LOCKED) RETURNING j.id, j.status"
        )
    };
}

/// Whether the node in column `$col` is a process of the node named `$1` (see
/// [`super::is_incarnation_of`]: the name, `-` and 8 bytes).
macro_rules! incarnation {
    ($col:literal) => {
        concat!(
            "(octet_length(",
            $col,
            ") = octet_length($1::text) + 9 AND starts_with(",
            $col,
            ", $1::text || '-'))"
        )
    };
}

/// `$1`: now. The other parameters as in [`expire_jobs!`].
const EXPIRE: &str = expire_jobs!("(lease_until_ms IS NULL OR lease_until_ms < $1::int8)");

/// `$1`: the node's name. The other parameters as in [`expire_jobs!`]. Its delivery claims
/// are let go in the same statement (on other rows: finished jobs).
const TAKE_OVER: &str = concat!(
    "WITH delivery AS (UPDATE warmbox_jobs SET delivery_node = NULL, \
     delivery_until_ms = NULL WHERE status >= 2 AND delivery_node IS NOT NULL AND ",
    incarnation!("delivery_node"),
    " RETURNING 1) ",
    expire_jobs!(incarnation!("node"))
);

const CLAIM_DELIVERY: &str = concat!(
    "UPDATE warmbox_jobs SET delivery_node = $2::text, delivery_until_ms = $4::int8 \
     WHERE id = $1 AND status >= 2 AND callback_url IS NOT NULL AND NOT callback_delivered \
     AND callback_attempts < $5::int4 \
     AND (delivery_node IS NULL OR delivery_node = $2::text \
     OR delivery_until_ms IS NULL OR delivery_until_ms <= $3::int8) RETURNING ",
    columns!()
);

const RECORD_DELIVERY: &str = "UPDATE warmbox_jobs SET \
     callback_attempts = callback_attempts + 1, callback_delivered = $3::bool, \
     callback_error = $4::text, \
     delivery_node = CASE WHEN $3::bool THEN NULL ELSE delivery_node END, \
     delivery_until_ms = CASE WHEN $3::bool THEN NULL ELSE $5::int8 END \
     WHERE id = $1 AND delivery_node = $2::text AND callback_url IS NOT NULL";

const DELIVERABLE: &str = "SELECT id FROM warmbox_jobs WHERE status >= 2 \
     AND callback_url IS NOT NULL AND NOT callback_delivered AND callback_attempts < $2::int4 \
     AND (delivery_until_ms IS NULL OR delivery_until_ms <= $1::int8) ORDER BY id";

/// The removed record (all NULL when it was not removed) and, last, the job's status (no
/// row: no such job).
const REMOVE: &str = concat!(
    "WITH old AS (SELECT id AS old_id, status AS old_status FROM warmbox_jobs \
     WHERE id = $1 FOR UPDATE), \
     removed AS (DELETE FROM warmbox_jobs USING old WHERE id = old_id AND old_status >= 2 \
     RETURNING ",
    columns!(),
    ") SELECT removed.*, old_status FROM old LEFT JOIN removed ON true"
);

const REMOVE_BEFORE: &str = "DELETE FROM warmbox_jobs WHERE status >= 2 \
     AND COALESCE(finished_ms, created_ms) < $1::int8 \
     AND NOT (callback_url IS NOT NULL AND NOT callback_delivered \
     AND callback_attempts < $2::int4)";

const COUNTS: &str = "SELECT status, count(*) FROM warmbox_jobs GROUP BY status";

/// What a request to the store was doing, for its error: a description and the job.
#[derive(Clone, Copy)]
struct Act(&'static str, Option<Uuid>);

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(id) => write!(f, "{} {id}", self.0),
            None => f.write_str(self.0),
        }
    }
}

/// The job store in a PostgreSQL database; a pool of connections.
pub struct PgStore {
    pool: Pool,
    /// The connection settings, for the listener's own connection.
    config: Config,
    describe: String,
    /// Whether [`JobStore::notices`] was called.
    listening: AtomicBool,
    /// [`exhausted_result`]'s text around its attempt count (see [`exhausted_template`]).
    exhausted: (String, Option<String>),
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("store", &self.describe)
            .finish()
    }
}

impl PgStore {
    /// Connects to the database of `url` (`postgres://` or `postgresql://`, or libpq's
    /// `key=value` form) and migrates its schema to this warmbox's. TLS is not supported
    /// yet: the connections are plain.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
            // Not the URL itself in the message: it may hold a password.
            StoreError::Failed {
                store: "PostgreSQL".to_string(),
                action: "read the database URL".to_string(),
                message: chain(&e),
            }
        })?;
        let describe = describe(&config);
        let failed = |message: &str| StoreError::Failed {
            store: describe.clone(),
            action: "read the database URL".to_string(),
            message: message.to_string(),
        };
        if config.get_hosts().is_empty() {
            return Err(failed("it names no host"));
        }
        if config.get_ssl_mode() == SslMode::Require {
            return Err(failed(
                "it requires TLS (sslmode=require), which warmbox does not support yet",
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        if config.get_keepalives_idle() > KEEPALIVE_IDLE {
            config.keepalives_idle(KEEPALIVE_IDLE);
        }
        if config.get_application_name().is_none() {
            config.application_name("warmbox");
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .create_timeout(Some(CREATE_TIMEOUT))
            .recycle_timeout(Some(WAIT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Failed {
                store: describe.clone(),
                action: "make the connection pool".to_string(),
                message: e.to_string(),
            })?;
        let store = PgStore {
            pool,
            config,
            describe,
            listening: AtomicBool::new(false),
            exhausted: exhausted_template(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Brings the schema to [`schema_version`], in one transaction under the migration
    /// lock; fails on a schema newer than this warmbox knows.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client(Act("connect", None)).await?;
        let act = Act("migrate the schema", None);
        let txn = client
            .transaction()
            .await
            .map_err(|e| self.error(act, &e))?;
        let known = schema_version();
        // Held until the transaction ends: the nodes starting together migrate in turn,
        // and the ones after the first find the schema current.
        txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| self.error(act, &e))?;
        txn.batch_execute("CREATE TABLE IF NOT EXISTS warmbox_schema (version int NOT NULL)")
            .await
            .map_err(|e| self.error(act, &e))?;
        let version: i32 = txn
            .query_one("SELECT COALESCE(max(version), 0) FROM warmbox_schema", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| self.error(act, &e))?;
        if version > known {
            return Err(StoreError::Failed {
                store: self.describe.clone(),
                action: act.to_string(),
                message: format!(
                    "the job store's schema is version {version}; this warmbox knows up to \
                     {known}: upgrade warmbox"
                ),
            });
        }
        if version == known {
            return Ok(());
        }
        tracing::info!(store = %self.describe, from = version, to = known, "migrating the job store's schema");
        let first = usize::try_from(version).unwrap_or(0);
        for migration in &MIGRATIONS[first..] {
            txn.batch_execute(migration)
                .await
                .map_err(|e| self.error(act, &e))?;
        }
        txn.execute("DELETE FROM warmbox_schema", &[])
            .await
            .map_err(|e| self.error(act, &e))?;
        txn.execute(
            "INSERT INTO warmbox_schema (version) VALUES ($1)",
            &[&known],
        )
        .await
        .map_err(|e| self.error(act, &e))?;
        txn.commit().await.map_err(|e| self.error(act, &e))?;
        Ok(())
    }

    /// A connection of the pool.
    async fn client(&self, act: Act) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| self.pool_error(act, e))
    }

    /// A connection of the pool and `sql` prepared on it (once per connection).
    async fn prepared(
        &self,
        act: Act,
        sql: &str,
    ) -> Result<(deadpool_postgres::Object, tokio_postgres::Statement), StoreError> {
        let client = self.client(act).await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.error(act, &e))?;
        Ok((client, statement))
    }

    /// Runs the prepared statement `sql` with `params`: its rows.
    async fn query(
        &self,
        act: Act,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let (client, statement) = self.prepared(act, sql).await?;
        client
            .query(&statement, params)
            .await
            .map_err(|e| self.error(act, &e))
    }

    /// Runs the prepared statement `sql` with `params`: its one row or none.
    async fn query_opt(
        &self,
        act: Act,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let (client, statement) = self.prepared(act, sql).await?;
        client
            .query_opt(&statement, params)
            .await
            .map_err(|e| self.error(act, &e))
    }

    /// Runs the prepared statement `sql` with `params`: the number of rows it changed.
    async fn execute(
        &self,
        act: Act,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let (client, statement) = self.prepared(act, sql).await?;
        client
            .execute(&statement, params)
            .await
            .map_err(|e| self.error(act, &e))
    }

    /// The store's error for `act` failing with `e`: [`StoreError::Unavailable`] when the
    /// database could not be reached or went away, else [`StoreError::Failed`].
    fn error(&self, act: Act, e: &tokio_postgres::Error) -> StoreError {
        let (store, action) = (self.describe.clone(), act.to_string());
        if unreachable(e) {
            StoreError::Unavailable {
                store,
                action,
                message: message(e),
            }
        } else {
            StoreError::Failed {
                store,
                action,
                message: message(e),
            }
        }
    }

    /// The store's error for `act` not getting a connection.
    fn pool_error(&self, act: Act, e: PoolError) -> StoreError {
        let (store, action) = (self.describe.clone(), act.to_string());
        match e {
            PoolError::Backend(e) => self.error(act, &e),
            PoolError::Timeout(kind) => StoreError::Unavailable {
                store,
                action,
                message: format!("no connection within the time allowed ({kind:?})"),
            },
            PoolError::Closed => StoreError::Unavailable {
                store,
                action,
                message: "the connection pool is closed".to_string(),
            },
            e => StoreError::Failed {
                store,
                action,
                message: e.to_string(),
            },
        }
    }

    /// A [`StoreError::Corrupt`] of job `id`.
    fn corrupt(&self, id: Uuid, reason: String) -> StoreError {
        StoreError::Corrupt {
            store: self.describe.clone(),
            id,
            reason,
        }
    }

    /// The record of a row whose first columns are [`columns!`]. A column of the wrong
    /// type is [`StoreError::Failed`] (a schema this warmbox does not expect); a value
    /// that does not decode, [`StoreError::Corrupt`].
    fn record(&self, act: Act, row: &Row) -> Result<JobRecord, StoreError> {
        let failed = |e: tokio_postgres::Error| StoreError::Failed {
            store: self.describe.clone(),
            action: act.to_string(),
            message: format!("read a job's row: {}", chain(&e)),
        };
        let id: Uuid = row.try_get(0).map_err(failed)?;
        let code: i16 = row.try_get(1).map_err(failed)?;
        let status = u8::try_from(code)
            .ok()
            .and_then(JobStatus::from_code)
            .ok_or_else(|| self.corrupt(id, format!("unknown status code {code}")))?;
        let json = |column: &str, text: Option<String>| -> Result<Option<Value>, StoreError> {
            text.map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| self.corrupt(id, format!("decode the JSON of {column}: {e}")))
        };
        let request: String = row.try_get(5).map_err(failed)?;
        let callback_url: Option<String> = row.try_get(8).map_err(failed)?;
        let callback = match callback_url {
            Some(url) => Some(CallbackState {
                url,
                attempts: to_u32(row.try_get(9).map_err(failed)?),
                delivered: row.try_get(10).map_err(failed)?,
                last_error: row.try_get(11).map_err(failed)?,
            }),
            None => None,
        };
        Ok(JobRecord {
            id,
            status,
            request: json("request", Some(request))?.unwrap_or(Value::Null),
            created_ms: to_u64(row.try_get(2).map_err(failed)?),
            started_ms: row
                .try_get::<_, Option<i64>>(3)
                .map_err(failed)?
                .map(to_u64),
            finished_ms: row
                .try_get::<_, Option<i64>>(4)
                .map_err(failed)?
                .map(to_u64),
            result: json("result", row.try_get(6).map_err(failed)?)?,
            meta: json("meta", row.try_get(7).map_err(failed)?)?,
            callback,
            attempts: to_u32(row.try_get(12).map_err(failed)?),
            node: row.try_get(13).map_err(failed)?,
            lease_until_ms: row
                .try_get::<_, Option<i64>>(14)
                .map_err(failed)?
                .map(to_u64),
            delivery_node: row.try_get(15).map_err(failed)?,
            delivery_until_ms: row
                .try_get::<_, Option<i64>>(16)
                .map_err(failed)?
                .map(to_u64),
        })
    }

    /// The record of a row whose first columns are [`columns!`] or all NULL (the outer
    /// join of [`CANCEL`] and [`REMOVE`]): None when NULL.
    fn record_or_null(&self, act: Act, row: &Row) -> Result<Option<JobRecord>, StoreError> {
        match row.try_get::<_, Option<Uuid>>(0) {
            Ok(Some(_)) => self.record(act, row).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(StoreError::Failed {
                store: self.describe.clone(),
                action: act.to_string(),
                message: format!("read a job's row: {}", chain(&e)),
            }),
        }
    }

    /// The status in column `index` of `row` (the last of [`CANCEL`] and [`REMOVE`]).
    fn status_at(
        &self,
        act: Act,
        id: Uuid,
        row: &Row,
        index: usize,
    ) -> Result<JobStatus, StoreError> {
        let code: i16 = row.try_get(index).map_err(|e| StoreError::Failed {
            store: self.describe.clone(),
            action: act.to_string(),
            message: format!("read a job's status: {}", chain(&e)),
        })?;
        u8::try_from(code)
            .ok()
            .and_then(JobStatus::from_code)
            .ok_or_else(|| self.corrupt(id, format!("unknown status code {code}")))
    }

    /// Runs [`EXPIRE`] or [`TAKE_OVER`] (`sql`), whose `$1` is `which`: the jobs queued
    /// again and ended.
    async fn expire_jobs(
        &self,
        act: Act,
        sql: &str,
        which: &(dyn ToSql + Sync),
        now_ms: u64,
        max_attempts: u32,
    ) -> Result<Expired, StoreError> {
        let (before, after) = &self.exhausted;
        let finished_ms = to_i64(now_ms.min(super::now_ms()));
        let rows = self
            .query(
                act,
                sql,
                &[which, &to_i32(max_attempts), &finished_ms, before, after],
            )
            .await?;
        let mut expired = Expired::default();
        for row in rows {
            let id: Uuid = row.try_get(0).map_err(|e| StoreError::Failed {
                store: self.describe.clone(),
                action: act.to_string(),
                message: chain(&e),
            })?;
            match self.status_at(act, id, &row, 1)? {
                JobStatus::Queued => expired.requeued.push(id),
                _ => expired.ended.push(id),
            }
        }
        Ok(expired)
    }

    /// Finds the id of `records` that is stored already (after a unique violation).
    async fn duplicate(&self, records: &[JobRecord]) -> StoreError {
        let ids: Vec<Uuid> = records.iter().map(|r| r.id).collect();
        let act = Act("look for the job that is stored already", None);
        match self.query_opt(act, EXISTING, &[&ids]).await {
            Ok(Some(row)) => match row.try_get(0) {
                Ok(id) => StoreError::Duplicate { id },
                Err(_) => StoreError::Duplicate { id: ids[0] },
            },
            // Removed meanwhile: still, the insert did not happen.
            Ok(None) => StoreError::Duplicate { id: ids[0] },
            Err(e) => e,
        }
    }
}

#[async_trait::async_trait]
impl JobStore for PgStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn shared(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.query(Act("ping", None), "SELECT 1", &[]).await?;
        Ok(())
    }

    /// Listens on its own connection (not one of the pool's); sends
    /// [`Notice::Resumed`] each time it starts listening, the first time too (what
    /// happened before it listened it could not tell).
    fn notices(&self) -> Option<UnboundedReceiver<Notice>> {
        if self.listening.swap(true, Ordering::SeqCst) {
            return None;
        }
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::warn!(store = %self.describe, %error, "no runtime to listen for notifications on");
                return None;
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        runtime.spawn(listen(self.config.clone(), self.describe.clone(), tx));
        Some(rx)
    }

    async fn insert(&self, records: Vec<JobRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut seen = HashSet::with_capacity(records.len());
        if let Some(r) = records.iter().find(|r| !seen.insert(r.id)) {
            return Err(StoreError::Duplicate { id: r.id });
        }
        let n = records.len();
        let mut id = Vec::with_capacity(n);
        let mut status = Vec::with_capacity(n);
        let mut created_ms = Vec::with_capacity(n);
        let mut started_ms = Vec::with_capacity(n);
        let mut finished_ms = Vec::with_capacity(n);
        let mut request = Vec::with_capacity(n);
        let mut result = Vec::with_capacity(n);
        let mut meta = Vec::with_capacity(n);
        let mut callback_url = Vec::with_capacity(n);
        let mut callback_attempts = Vec::with_capacity(n);
        let mut callback_delivered = Vec::with_capacity(n);
        let mut callback_error = Vec::with_capacity(n);
        let mut attempts = Vec::with_capacity(n);
        let mut node = Vec::with_capacity(n);
        let mut lease_until_ms = Vec::with_capacity(n);
        let mut delivery_node = Vec::with_capacity(n);
        let mut delivery_until_ms = Vec::with_capacity(n);
        for r in &records {
            id.push(r.id);
            status.push(i16::from(r.status.code()));
            created_ms.push(to_i64(r.created_ms));
            started_ms.push(r.started_ms.map(to_i64));
            finished_ms.push(r.finished_ms.map(to_i64));
            request.push(r.request.to_string());
            result.push(r.result.as_ref().map(Value::to_string));
            meta.push(r.meta.as_ref().map(Value::to_string));
            callback_url.push(r.callback.as_ref().map(|c| c.url.clone()));
            callback_attempts.push(r.callback.as_ref().map_or(0, |c| to_i32(c.attempts)));
            callback_delivered.push(r.callback.as_ref().is_some_and(|c| c.delivered));
            callback_error.push(r.callback.as_ref().and_then(|c| c.last_error.clone()));
            attempts.push(to_i32(r.attempts));
            node.push(r.node.clone());
            lease_until_ms.push(r.lease_until_ms.map(to_i64));
            delivery_node.push(r.delivery_node.clone());
            delivery_until_ms.push(r.delivery_until_ms.map(to_i64));
        }
        let act = Act("insert jobs", None);
        let params: [&(dyn ToSql + Sync); 17] = [
            &id,
            &status,
            &created_ms,
            &started_ms,
            &finished_ms,
            &request,
            &result,
            &meta,
            &callback_url,
            &callback_attempts,
            &callback_delivered,
            &callback_error,
            &attempts,
            &node,
            &lease_until_ms,
            &delivery_node,
            &delivery_until_ms,
        ];
        let client = self.client(act).await?;
        let statement = client
            .prepare_cached(INSERT)
            .await
            .map_err(|e| self.error(act, &e))?;
        match client.execute(&statement, &params).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                drop(client);
                Err(self.duplicate(&records).await)
            }
            Err(e) => Err(self.error(act, &e)),
        }
    }

    async fn get(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
        let act = Act("read job", Some(id));
        self.query_opt(act, GET, &[&id])
            .await?
            .map(|row| self.record(act, &row))
            .transpose()
    }

    async fn claim(
        &self,
        node: &str,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Option<JobRecord>, StoreError> {
        let act = Act("claim a queued job", None);
        self.query_opt(
            act,
            CLAIM,
            &[&node, &to_i64(now_ms), &to_i64(lease_until_ms)],
        )
        .await?
        .map(|row| self.record(act, &row))
        .transpose()
    }

    async fn renew(
        &self,
        id: Uuid,
        attempt: u32,
        node: &str,
        lease_until_ms: u64,
    ) -> Result<Renewal, StoreError> {
        let act = Act("renew the lease of job", Some(id));
        let rows = self
            .query(
                act,
                RENEW,
                &[&id, &to_i32(attempt), &node, &to_i64(lease_until_ms)],
            )
            .await?;
        let read = |e: tokio_postgres::Error| StoreError::Failed {
            store: self.describe.clone(),
            action: act.to_string(),
            message: chain(&e),
        };
        let Some(row) = rows.first() else {
            return Ok(Renewal::Lost);
        };
        let held: bool = row.try_get(0).map_err(read)?;
        let status: Option<i16> = row.try_get(1).map_err(read)?;
        Ok(if held {
            Renewal::Held
        } else if status == Some(i16::from(JobStatus::Cancelled.code())) {
            Renewal::Cancelled
        } else {
            Renewal::Lost
        })
    }

    async fn finish(
        &self,
        id: Uuid,
        attempt: u32,
        node: &str,
        result: Value,
        now_ms: u64,
    ) -> Result<Option<JobRecord>, StoreError> {
        let act = Act("store the result of job", Some(id));
        self.query_opt(
            act,
            FINISH,
            &[
                &id,
                &to_i32(attempt),
                &node,
                &result.to_string(),
                &to_i64(now_ms),
            ],
        )
        .await?
        .map(|row| self.record(act, &row))
        .transpose()
    }

    async fn release(&self, id: Uuid, attempt: u32, node: &str) -> Result<bool, StoreError> {
        let act = Act("give back job", Some(id));
        let released = self
            .execute(act, RELEASE, &[&id, &to_i32(attempt), &node])
            .await?;
        Ok(released > 0)
    }

    async fn cancel(&self, id: Uuid, now_ms: u64) -> Result<Cancel, StoreError> {
        let act = Act("cancel job", Some(id));
        let Some(row) = self.query_opt(act, CANCEL, &[&id, &to_i64(now_ms)]).await? else {
            return Ok(Cancel::NotFound);
        };
        let was = self.status_at(act, id, &row, 17)?;
        Ok(match self.record_or_null(act, &row)? {
            Some(record) => Cancel::Done {
                record: Box::new(record),
                was,
            },
            None => Cancel::Finished(was),
        })
    }

    async fn expire(&self, now_ms: u64, max_attempts: u32) -> Result<Expired, StoreError> {
        let act = Act("queue again the jobs whose lease ran out", None);
        self.expire_jobs(act, EXPIRE, &to_i64(now_ms), now_ms, max_attempts)
            .await
    }

    async fn take_over(
        &self,
        name: &str,
        now_ms: u64,
        max_attempts: u32,
    ) -> Result<Expired, StoreError> {
        let act = Act("take over the jobs of the node's earlier processes", None);
        self.expire_jobs(act, TAKE_OVER, &name, now_ms, max_attempts)
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
        let act = Act("claim the callback of job", Some(id));
        self.query_opt(
            act,
            CLAIM_DELIVERY,
            &[
                &id,
                &node,
                &to_i64(now_ms),
                &to_i64(until_ms),
                &to_i32(max_attempts),
            ],
        )
        .await?
        .map(|row| self.record(act, &row))
        .transpose()
    }

    async fn record_delivery(
        &self,
        id: Uuid,
        node: &str,
        delivered: bool,
        error: Option<String>,
        until_ms: u64,
    ) -> Result<bool, StoreError> {
        let act = Act("record a callback attempt of job", Some(id));
        let recorded = self
            .execute(
                act,
                RECORD_DELIVERY,
                &[&id, &node, &delivered, &error, &to_i64(until_ms)],
            )
            .await?;
        Ok(recorded > 0)
    }

    async fn deliverable(&self, now_ms: u64, max_attempts: u32) -> Result<Vec<Uuid>, StoreError> {
        let act = Act("list undelivered callbacks", None);
        let rows = self
            .query(act, DELIVERABLE, &[&to_i64(now_ms), &to_i32(max_attempts)])
            .await?;
        rows.iter()
            .map(|row| {
                row.try_get(0).map_err(|e| StoreError::Failed {
                    store: self.describe.clone(),
                    action: act.to_string(),
                    message: chain(&e),
                })
            })
            .collect()
    }

    async fn remove_finished(&self, id: Uuid) -> Result<Remove, StoreError> {
        let act = Act("remove job", Some(id));
        let Some(row) = self.query_opt(act, REMOVE, &[&id]).await? else {
            return Ok(Remove::NotFound);
        };
        let status = self.status_at(act, id, &row, 17)?;
        Ok(match self.record_or_null(act, &row)? {
            Some(record) => Remove::Removed(Box::new(record)),
            None => Remove::Unfinished(status),
        })
    }

    async fn remove_finished_before(
        &self,
        before_ms: u64,
        callback_attempts: u32,
    ) -> Result<usize, StoreError> {
        let act = Act("remove the jobs finished before their retention", None);
        let removed = self
            .execute(
                act,
                REMOVE_BEFORE,
                &[&to_i64(before_ms), &to_i32(callback_attempts)],
            )
            .await?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    async fn counts(&self) -> Result<BTreeMap<JobStatus, usize>, StoreError> {
        let act = Act("count jobs", None);
        let rows = self.query(act, COUNTS, &[]).await?;
        let mut counts: BTreeMap<JobStatus, usize> =
            JobStatus::ALL.into_iter().map(|s| (s, 0)).collect();
        for row in rows {
            let read = |e: tokio_postgres::Error| StoreError::Failed {
                store: self.describe.clone(),
                action: act.to_string(),
                message: chain(&e),
            };
            let code: i16 = row.try_get(0).map_err(read)?;
            let count: i64 = row.try_get(1).map_err(read)?;
            match u8::try_from(code).ok().and_then(JobStatus::from_code) {
                Some(status) => {
                    counts.insert(status, usize::try_from(count).unwrap_or(usize::MAX));
                }
                None => {
                    tracing::warn!(store = %self.describe, code, count, "jobs with an unknown status code");
                }
            }
        }
        Ok(counts)
    }
}

/// Listens to the store's channels on a connection of its own and sends what they tell
/// to `tx`, connecting again after a second when the connection fails; ends when the
/// receiver is gone. The first failure of an outage is a warning, the retries are debug
/// lines.
async fn listen(config: Config, store: String, tx: UnboundedSender<Notice>) {
    let mut failing = false;
    loop {
        let mut listened = false;
        let outcome = tokio::select! {
            outcome = listen_once(&config, &tx, &mut listened) => outcome,
            () = tx.closed() => return,
        };
        if tx.is_closed() {
            return;
        }
        if listened {
            failing = false;
        }
        let error = match outcome {
            Ok(()) => "the server closed the connection".to_string(),
            Err(e) => message(&e),
        };
        if failing {
            tracing::debug!(store = %store, %error, "listening for the job store's notifications failed again; retrying");
        } else {
            tracing::warn!(store = %store, %error, "listening for the job store's notifications failed; connecting again every second");
        }
        failing = true;
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_DELAY) => {}
            () = tx.closed() => return,
        }
    }
}

/// One connection of [`listen`]: connects, listens (then sets `listened`), sends
/// [`Notice::Resumed`], then each notification, until the connection ends (Ok) or fails.
async fn listen_once(
    config: &Config,
    tx: &UnboundedSender<Notice>,
    listened: &mut bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    // The connection delivers notifications only while it is polled, and the LISTEN
    // below needs it polled too: it runs on its own task.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if notes_tx.send(n).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    // Dropped with this future: the driver must not outlive it.
    let _abort = AbortOnDrop(driver.abort_handle());
    client
        .batch_execute(&format!("LISTEN {QUEUED_CHANNEL}; LISTEN {CANCEL_CHANNEL}"))
        .await?;
    *listened = true;
    if tx.send(Notice::Resumed).is_err() {
        return Ok(());
    }
    while let Some(n) = notes.recv().await {
        let notice = match n.channel() {
            QUEUED_CHANNEL => Notice::Queued,
            CANCEL_CHANNEL => match n.payload().parse() {
                Ok(id) => Notice::Cancelled(id),
                Err(_) => {
                    tracing::warn!(
                        payload = n.payload(),
                        "a cancel notification without a job id"
                    );
                    continue;
                }
            },
            _ => continue,
        };
        if tx.send(notice).is_err() {
            return Ok(());
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        // Aborted (not here) or panicked: the connection is gone either way.
        Err(_) => Ok(()),
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether `e` means that the database could not be reached or went away: no connection,
/// a connection lost, or the server shutting down or refusing connections for now.
fn unreachable(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        return unavailable_code(db.code().code());
    }
    if e.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Whether a SQLSTATE means that the server cannot serve now: class 08 (connection
/// exception), 57P0x (shutting down, starting up), 53300 (too many connections).
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P0") || code == "53300"
}

/// What `e` says: the server's message (and its detail), or the driver's error with its
/// causes.
fn message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {detail}", db.message()),
            None => db.message().to_string(),
        },
        None => chain(e),
    }
}

/// An error and its causes, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// The store as [`JobStore::describe`] says: `PostgreSQL host:port/database`, without the
/// user or password.
fn describe(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    // The database defaults to the user's name.
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or_default();
    format!("PostgreSQL {}/{db}", hosts.join(","))
}

/// [`exhausted_result`]'s JSON text, split around its attempt count (found by rendering
/// it with a count that appears nowhere else): the text before and after, or the whole
/// text and None when it shows no count. [`EXPIRE`] puts each job's count in between.
fn exhausted_template() -> (String, Option<String>) {
    let mark = u32::MAX;
    let text = exhausted_result(mark).to_string();
    match text.split_once(&mark.to_string()) {
        Some((before, after)) => (before.to_string(), Some(after.to_string())),
        None => (text, None),
    }
}

/// A time in ms as a `bigint` (saturating: past 2^63 ms is out of reach).
fn to_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A `bigint` time as ms (a negative one, which warmbox never writes, as 0).
fn to_u64(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

/// A count as an `int` (saturating).
fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// An `int` count as a count (a negative one as 0).
fn to_u32(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(url: &str) -> String {
        describe(&url.parse::<Config>().unwrap())
    }

    #[test]
    fn the_description_names_host_port_and_database_but_no_credentials() {
        assert_eq!(
            described("postgres://warm:s3cret@db.example:6543/jobs"),
            "PostgreSQL db.example:6543/jobs"
        );
        assert_eq!(
            described("postgresql://warm:s3cret@db.example/jobs?sslmode=disable"),
            "PostgreSQL db.example:5432/jobs"
        );
        // The database defaults to the user's name.
        assert_eq!(
            described("postgres://warm:s3cret@10.0.0.7"),
            "PostgreSQL 10.0.0.7:5432/warm"
        );
        assert_eq!(
            described("postgres://u:p@a:1,b:2,[::1]:3/jobs"),
            "PostgreSQL a:1,b:2,[::1]:3/jobs"
        );
        assert_eq!(
            described("host=/run/postgresql user=warm password=s3cret dbname=jobs"),
            "PostgreSQL /run/postgresql:5432/jobs"
        );
        for url in [
            "postgres://warm:s3cret@db.example:6543/jobs",
            "host=db user=warm password=s3cret dbname=jobs",
        ] {
            let text = described(url);
            assert!(!text.contains("s3cret") && !text.contains("warm"), "{text}");
        }
    }

    #[tokio::test]
    async fn a_bad_url_fails_without_showing_it() {
        let err = PgStore::connect("postgres://warm:s3cret@db:notaport/jobs")
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Failed { .. }), "{err:?}");
        assert!(
            text.starts_with(
                "read the database URL in the job store (PostgreSQL): invalid connection string"
            ),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[tokio::test]
    async fn tls_is_refused_until_it_is_supported() {
        let err = PgStore::connect("postgres://warm@db.example/jobs?sslmode=require")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "read the database URL in the job store (PostgreSQL db.example:5432/jobs): it \
             requires TLS (sslmode=require), which warmbox does not support yet"
        );
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_unavailable_within_seconds() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = std::time::Instant::now();
        let err = PgStore::connect(&format!("postgres://warm:s3cret@127.0.0.1:{port}/jobs"))
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "the job store (PostgreSQL 127.0.0.1:{port}/jobs) is unreachable: connect: \
                 error connecting to server: Connection refused"
            )),
            "{text}"
        );
    }

    #[test]
    fn the_exhausted_template_renders_exhausted_result() {
        let (before, after) = exhausted_template();
        let after = after.expect("exhausted_result shows its count");
        for n in [0, 1, 3, 42, u32::MAX] {
            let text = format!("{before}{n}{after}");
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value, exhausted_result(n), "{text}");
        }
    }

    #[test]
    fn sqlstates_of_an_unreachable_server() {
        for code in [
            "08000", "08006", "08001", "57P01", "57P02", "57P03", "53300",
        ] {
            assert!(unavailable_code(code), "{code}");
        }
        for code in ["23505", "42P01", "28P01", "3D000", "40001"] {
            assert!(!unavailable_code(code), "{code}");
        }
    }

    #[test]
    fn conversions_saturate() {
        assert_eq!(to_i64(u64::MAX), i64::MAX);
        assert_eq!(to_i64(5), 5);
        assert_eq!(to_u64(-1), 0);
        assert_eq!(to_u64(i64::MAX), u64::try_from(i64::MAX).unwrap());
        assert_eq!(to_i32(u32::MAX), i32::MAX);
        assert_eq!(to_u32(-3), 0);
        assert_eq!(to_u32(7), 7);
    }

    #[test]
    fn the_schema_version_is_the_number_of_migrations() {
        assert_eq!(schema_version(), 1);
    }
}
