//! The job store's contract ([`JobStore`]), run against both backends: each behaviour is
//! one function of a `&dyn JobStore`, run on a redb file in a temporary directory and on a
//! fresh database of the test process's PostgreSQL server
//! ([`warmbox_testkit::postgres::shared`]; skipped without PostgreSQL, a failure under
//! `WARMBOX_REQUIRE_SANDBOX=1`). Then what only PostgreSQL does: notifications, the
//! migration lock, and an outage.

use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;
use warmbox::queue::store::postgres::PgStore;
use warmbox::queue::store::redb::RedbStore;
use warmbox::queue::store::{
    exhausted_result, CallbackState, Cancel, Expired, JobRecord, JobStatus, JobStore, Notice,
    Remove, Renewal, StoreError,
};

/// Runs each contract function on both backends.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod redb_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (store, _dir) = super::redb_store();
                    super::$name(&store).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(store) = super::pg_store(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&store).await;
                }
            )*
        }
    };
}

contract!(
    insert_and_get_round_trip_every_field,
    a_duplicate_id_inserts_nothing,
    claims_take_the_oldest_queued_job,
    concurrent_claims_take_each_job_once,
    renew_tells_held_cancelled_and_lost,
    finish_is_fenced_by_the_claim,
    release_queues_again_and_gives_the_attempt_back,
    cancel_queued_running_finished_and_missing,
    expire_queues_again_under_the_limit_and_ends_at_it,
    take_over_ends_the_claims_of_earlier_processes_of_the_node,
    delivery_claims_are_exclusive_until_they_run_out,
    remove_finished_refuses_unfinished_jobs,
    remove_finished_before_keeps_unfinished_jobs_and_pending_callbacks,
    counts_have_every_status,
);

/// A redb store in a new temporary directory (kept while the directory lives).
fn redb_store() -> (RedbStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("jobs.redb")).expect("open redb");
    (store, dir)
}

/// A fresh database of the shared server, named after `test`; None after a skip.
async fn pg_url(test: &str) -> Option<String> {
    let instance = warmbox_testkit::postgres::shared()?;
    let db = warmbox_testkit::postgres::db_name(&format!("store_{test}"));
    instance.create_db(&db);
    Some(instance.url(&db))
}

/// A store on a fresh database of the shared server; None after a skip.
async fn pg_store(test: &str) -> Option<PgStore> {
    let url = pg_url(test).await?;
    Some(PgStore::connect(&url).await.expect("connect to PostgreSQL"))
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn queued(n: u128, created_ms: u64) -> JobRecord {
    JobRecord::queued(
        id(n),
        json!({"language": "python", "code": format!("print({n})")}),
        created_ms,
    )
}

/// A job running on `node` (attempt `attempts`), its lease until `lease`.
fn running(n: u128, node: &str, attempts: u32, lease: Option<u64>) -> JobRecord {
    JobRecord {
        status: JobStatus::Running,
        started_ms: Some(20),
        attempts,
        node: Some(node.to_string()),
        lease_until_ms: lease,
        ..queued(n, 10)
    }
}

/// A job done at `finished_ms`.
fn done(n: u128, finished_ms: Option<u64>) -> JobRecord {
    JobRecord {
        status: JobStatus::Done,
        started_ms: Some(20),
        finished_ms,
        result: Some(json!({"stdout": format!("{n}\n")})),
        attempts: 1,
        node: Some("a".to_string()),
        ..queued(n, 10)
    }
}

fn callback(attempts: u32, delivered: bool) -> Option<CallbackState> {
    Some(CallbackState {
        url: "http://127.0.0.1:9/hook".to_string(),
        attempts,
        delivered,
        last_error: None,
    })
}

async fn get(store: &dyn JobStore, n: u128) -> Option<JobRecord> {
    store.get(id(n)).await.expect("get")
}

async fn insert_and_get_round_trip_every_field(store: &dyn JobStore) {
    let full = JobRecord {
        id: id(1),
        status: JobStatus::Done,
        request: json!({"language": "c", "files": [{"name": "main.c", "content": "int main(){}"}],
            "stdin": "ünïcødé \"quoted\"\n\u{0}", "n": 1.5}),
        created_ms: 1_700_000_000_000,
        started_ms: Some(1_700_000_000_100),
        finished_ms: Some(1_700_000_000_200),
        result: Some(json!({"exit_code": 0, "stdout": "ok\n", "time_ms": 3})),
        callback: Some(CallbackState {
            url: "https://example.com/hook?x=1".to_string(),
            attempts: 2,
            delivered: false,
            last_error: Some("HTTP 503".to_string()),
        }),
        meta: Some(json!({"language_id": 71, "base64_encoded": false})),
        attempts: 3,
        node: Some("node-a".to_string()),
        lease_until_ms: Some(1_700_000_060_000),
        delivery_node: Some("node-b".to_string()),
        delivery_until_ms: Some(1_700_000_090_000),
    };
    let bare = queued(2, 5);
    store
        .insert(vec![full.clone(), bare.clone()])
        .await
        .expect("insert");
    assert_eq!(get(store, 1).await, Some(full));
    assert_eq!(get(store, 2).await, Some(bare));
    assert_eq!(get(store, 3).await, None);
    store.insert(Vec::new()).await.expect("insert nothing");
    assert_eq!(store.counts().await.unwrap()[&JobStatus::Queued], 1);
}

async fn a_duplicate_id_inserts_nothing(store: &dyn JobStore) {
    store.insert(vec![queued(1, 10)]).await.expect("insert");
    // An id that is stored already, with a new one in the same batch.
    let err = store
        .insert(vec![queued(2, 20), JobRecord::queued(id(1), json!({}), 30)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Duplicate { id } if id == self::id(1)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("insert job {}: a job with this id already exists", id(1))
    );
    assert_eq!(get(store, 2).await, None);
    assert_eq!(get(store, 1).await, Some(queued(1, 10)));
    // An id twice in one batch.
    let err = store
        .insert(vec![queued(3, 10), queued(4, 10), queued(3, 11)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Duplicate { id } if id == self::id(3)),
        "{err:?}"
    );
    assert_eq!(get(store, 3).await, None);
    assert_eq!(get(store, 4).await, None);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts[&JobStatus::Queued], 1);
}

async fn claims_take_the_oldest_queued_job(store: &dyn JobStore) {
    assert_eq!(store.claim("a", 100, 200).await.unwrap(), None);
    store
        .insert(vec![
            queued(30, 30),
            queued(10, 10),
            queued(20, 20),
            // Created at the same time: by id.
            queued(9, 5),
            queued(8, 5),
            // Not queued: never claimed.
            running(1, "b", 1, Some(1_000)),
            done(2, Some(3)),
        ])
        .await
        .unwrap();
    let first = store.claim("a", 100, 200).await.unwrap();
    assert_eq!(
        first,
        Some(JobRecord {
            status: JobStatus::Running,
            started_ms: Some(100),
            attempts: 1,
            node: Some("a".to_string()),
            lease_until_ms: Some(200),
            ..queued(8, 5)
        })
    );
    assert_eq!(get(store, 8).await, first);
    let mut order = Vec::new();
    while let Some(r) = store.claim("b", 110, 210).await.unwrap() {
        assert_eq!(
            (
                r.status,
                r.started_ms,
                r.attempts,
                r.node.as_deref(),
                r.lease_until_ms
            ),
            (JobStatus::Running, Some(110), 1, Some("b"), Some(210))
        );
        order.push(r.id);
    }
    assert_eq!(order, vec![id(9), id(10), id(20), id(30)]);
    assert_eq!(get(store, 1).await, Some(running(1, "b", 1, Some(1_000))));
    assert_eq!(get(store, 2).await, Some(done(2, Some(3))));
}

async fn concurrent_claims_take_each_job_once(store: &dyn JobStore) {
    store
        .insert(
            (1..=50)
                .map(|n| queued(n, 1_000 + u64::try_from(n).unwrap()))
                .collect(),
        )
        .await
        .unwrap();
    let workers = (0..8).map(|w| async move {
        let node = format!("node-{w}");
        let mut claimed = Vec::new();
        while let Some(r) = store.claim(&node, 2_000, 3_000).await.expect("claim") {
            assert_eq!(r.node.as_deref(), Some(node.as_str()));
            assert_eq!(r.attempts, 1, "claimed twice: {r:?}");
            claimed.push(r.id);
        }
        claimed
    });
    let claimed: Vec<Vec<Uuid>> = futures_util::future::join_all(workers).await;
    let mut all: Vec<Uuid> = claimed.concat();
    all.sort();
    assert_eq!(all, (1..=50).map(id).collect::<Vec<_>>());
    let counts = store.counts().await.unwrap();
    assert_eq!(counts[&JobStatus::Running], 50);
    assert_eq!(counts[&JobStatus::Queued], 0);
}

async fn renew_tells_held_cancelled_and_lost(store: &dyn JobStore) {
    store.insert(vec![queued(1, 10)]).await.unwrap();
    let claimed = store.claim("a", 100, 200).await.unwrap().unwrap();
    assert_eq!(
        store.renew(id(1), 1, "a", 500).await.unwrap(),
        Renewal::Held
    );
    assert_eq!(
        get(store, 1).await,
        Some(JobRecord {
            lease_until_ms: Some(500),
            ..claimed.clone()
        })
    );
    // Another attempt's or another node's claim: lost, and the lease stays.
    assert_eq!(
        store.renew(id(1), 2, "a", 900).await.unwrap(),
        Renewal::Lost
    );
    assert_eq!(
        store.renew(id(1), 1, "b", 900).await.unwrap(),
        Renewal::Lost
    );
    assert_eq!(
        store.renew(id(2), 1, "a", 900).await.unwrap(),
        Renewal::Lost
    );
    assert_eq!(get(store, 1).await.unwrap().lease_until_ms, Some(500));
    // Cancelled: the node stops running it, whoever asks.
    assert!(matches!(
        store.cancel(id(1), 600).await.unwrap(),
        Cancel::Done { .. }
    ));
    assert_eq!(
        store.renew(id(1), 1, "a", 900).await.unwrap(),
        Renewal::Cancelled
    );
    assert_eq!(
        store.renew(id(1), 2, "b", 900).await.unwrap(),
        Renewal::Cancelled
    );
    // Done: lost.
    store.insert(vec![queued(3, 10)]).await.unwrap();
    store.claim("a", 100, 200).await.unwrap().unwrap();
    store
        .finish(id(3), 1, "a", json!({}), 300)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.renew(id(3), 1, "a", 900).await.unwrap(),
        Renewal::Lost
    );
    assert_eq!(get(store, 3).await.unwrap().lease_until_ms, None);
}

async fn finish_is_fenced_by_the_claim(store: &dyn JobStore) {
    store.insert(vec![queued(1, 10)]).await.unwrap();
    store.claim("a", 100, 150).await.unwrap().unwrap();
    // a's lease runs out; the job is queued again and b claims it.
    assert_eq!(
        store.expire(200, 3).await.unwrap(),
        Expired {
            requeued: vec![id(1)],
            ended: vec![]
        }
    );
    let b = store.claim("b", 210, 400).await.unwrap().unwrap();
    assert_eq!(
        (b.attempts, b.node.as_deref(), b.started_ms),
        (2, Some("b"), Some(210))
    );
    // a comes back with its stale claim: nothing is stored.
    assert_eq!(
        store
            .finish(id(1), 1, "a", json!({"stdout": "stale"}), 300)
            .await
            .unwrap(),
        None
    );
    assert_eq!(get(store, 1).await, Some(b.clone()));
    // Nor with b's attempt under a's name.
    assert_eq!(
        store
            .finish(id(1), 2, "a", json!({"stdout": "stale"}), 300)
            .await
            .unwrap(),
        None
    );
    let result = json!({"stdout": "fresh", "exit_code": 0});
    let finished = JobRecord {
        status: JobStatus::Done,
        finished_ms: Some(320),
        result: Some(result.clone()),
        lease_until_ms: None,
        ..b
    };
    assert_eq!(
        store
            .finish(id(1), 2, "b", result.clone(), 320)
            .await
            .unwrap(),
        Some(finished.clone())
    );
    assert_eq!(get(store, 1).await, Some(finished.clone()));
    // Once done, finishing again (an answer lost) stores nothing more: the record.
    assert_eq!(
        store.finish(id(1), 2, "b", json!({}), 330).await.unwrap(),
        Some(finished.clone())
    );
    assert_eq!(get(store, 1).await, Some(finished));
    assert_eq!(
        store.finish(id(1), 1, "a", json!({}), 330).await.unwrap(),
        None
    );
    // Cancelled meanwhile: nothing stored.
    store.insert(vec![queued(2, 10)]).await.unwrap();
    store.claim("a", 100, 500).await.unwrap().unwrap();
    store.cancel(id(2), 150).await.unwrap();
    assert_eq!(
        store.finish(id(2), 1, "a", json!({}), 200).await.unwrap(),
        None
    );
    let cancelled = get(store, 2).await.unwrap();
    assert_eq!(
        (cancelled.status, cancelled.result, cancelled.finished_ms),
        (JobStatus::Cancelled, None, Some(150))
    );
    // No such job.
    assert_eq!(
        store.finish(id(3), 1, "a", json!({}), 200).await.unwrap(),
        None
    );
}

async fn release_queues_again_and_gives_the_attempt_back(store: &dyn JobStore) {
    store.insert(vec![queued(1, 10)]).await.unwrap();
    let claimed = store.claim("a", 100, 200).await.unwrap().unwrap();
    assert!(!store.release(id(1), 1, "b").await.unwrap());
    assert!(!store.release(id(1), 2, "a").await.unwrap());
    assert!(!store.release(id(2), 1, "a").await.unwrap());
    assert_eq!(get(store, 1).await, Some(claimed));
    assert!(store.release(id(1), 1, "a").await.unwrap());
    assert_eq!(
        get(store, 1).await,
        Some(JobRecord {
            node: Some("a".to_string()),
            ..queued(1, 10)
        })
    );
    // Given back: not again, and the next claim is attempt 1 again.
    assert!(!store.release(id(1), 1, "a").await.unwrap());
    let again = store.claim("b", 300, 400).await.unwrap().unwrap();
    assert_eq!(
        (again.id, again.attempts, again.node.as_deref()),
        (id(1), 1, Some("b"))
    );
    store.cancel(id(1), 350).await.unwrap();
    assert!(!store.release(id(1), 1, "b").await.unwrap());
    assert_eq!(get(store, 1).await.unwrap().status, JobStatus::Cancelled);
}

async fn cancel_queued_running_finished_and_missing(store: &dyn JobStore) {
    store
        .insert(vec![queued(1, 10), queued(2, 20), done(3, Some(30))])
        .await
        .unwrap();
    let running = store.claim("a", 100, 200).await.unwrap().unwrap();
    assert_eq!(running.id, id(1));
    assert_eq!(
        store.cancel(id(2), 150).await.unwrap(),
        Cancel::Done {
            record: Box::new(JobRecord {
                status: JobStatus::Cancelled,
                finished_ms: Some(150),
                ..queued(2, 20)
            }),
            was: JobStatus::Queued,
        }
    );
    assert_eq!(
        store.cancel(id(1), 160).await.unwrap(),
        Cancel::Done {
            record: Box::new(JobRecord {
                status: JobStatus::Cancelled,
                finished_ms: Some(160),
                lease_until_ms: None,
                ..running
            }),
            was: JobStatus::Running,
        }
    );
    assert_eq!(
        store.cancel(id(3), 170).await.unwrap(),
        Cancel::Finished(JobStatus::Done)
    );
    assert_eq!(get(store, 3).await, Some(done(3, Some(30))));
    assert_eq!(
        store.cancel(id(2), 180).await.unwrap(),
        Cancel::Finished(JobStatus::Cancelled)
    );
    assert_eq!(get(store, 2).await.unwrap().finished_ms, Some(150));
    assert_eq!(store.cancel(id(4), 190).await.unwrap(), Cancel::NotFound);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts[&JobStatus::Cancelled], 2);
    assert_eq!(counts[&JobStatus::Done], 1);
}

async fn expire_queues_again_under_the_limit_and_ends_at_it(store: &dyn JobStore) {
    store
        .insert(vec![
            running(1, "a", 1, Some(100)),
            running(2, "a", 3, Some(100)),
            running(3, "b", 1, Some(500)),
            // A lease that runs out exactly now holds.
            running(4, "b", 1, Some(200)),
            // No lease at all: expired.
            running(5, "b", 2, None),
            running(6, "b", 4, Some(199)),
            queued(7, 10),
            done(8, Some(50)),
        ])
        .await
        .unwrap();
    let mut expired = store.expire(200, 3).await.unwrap();
    expired.requeued.sort();
    expired.ended.sort();
    assert_eq!(
        expired,
        Expired {
            requeued: vec![id(1), id(5)],
            ended: vec![id(2), id(6)],
        }
    );
    for (n, node, attempts) in [(1, "a", 1), (5, "b", 2)] {
        assert_eq!(
            get(store, n).await,
            Some(JobRecord {
                status: JobStatus::Queued,
                started_ms: None,
                lease_until_ms: None,
                ..running(n, node, attempts, None)
            })
        );
    }
    for (n, attempts) in [(2, 3), (6, 4)] {
        let node = if n == 2 { "a" } else { "b" };
        assert_eq!(
            get(store, n).await,
            Some(JobRecord {
                status: JobStatus::Done,
                finished_ms: Some(200),
                result: Some(exhausted_result(attempts)),
                lease_until_ms: None,
                ..running(n, node, attempts, None)
            })
        );
    }
    assert_eq!(get(store, 3).await, Some(running(3, "b", 1, Some(500))));
    assert_eq!(get(store, 4).await, Some(running(4, "b", 1, Some(200))));
    assert_eq!(get(store, 7).await, Some(queued(7, 10)));
    assert_eq!(get(store, 8).await, Some(done(8, Some(50))));
    // Nothing more to do at the same time.
    assert_eq!(store.expire(200, 3).await.unwrap(), Expired::default());
    let counts = store.counts().await.unwrap();
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        vec![3, 2, 3, 0]
    );
}

async fn take_over_ends_the_claims_of_earlier_processes_of_the_node(store: &dyn JobStore) {
    let max = 3;
    let claimed_by = |n: u128, node: &str| JobRecord {
        callback: callback(1, false),
        delivery_node: Some(node.to_string()),
        delivery_until_ms: Some(10_000),
        ..done(n, Some(50))
    };
    store
        .insert(vec![
            // Processes of node n1, whatever their lease.
            running(1, "n1-aaaaaaaa", 1, Some(10_000)),
            running(2, "n1-bbbbbbbb", 3, Some(10_000)),
            // Not n1's: other nodes, or names that only look alike.
            running(3, "n2-aaaaaaaa", 1, Some(10_000)),
            running(4, "n10-aaaaaaa", 1, Some(10_000)),
            running(5, "n1-aaaaaaaaa", 1, Some(10_000)),
            running(6, "n1", 1, Some(10_000)),
            // Not running: left as it is.
            JobRecord {
                node: Some("n1-aaaaaaaa".to_string()),
                ..queued(7, 10)
            },
            // Delivery claims: n1's are let go.
            claimed_by(8, "n1-cccccccc"),
            claimed_by(9, "n2-cccccccc"),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.take_over("n1", 200, max).await.unwrap(),
        Expired {
            requeued: vec![id(1)],
            ended: vec![id(2)],
        }
    );
    assert_eq!(
        get(store, 1).await,
        Some(JobRecord {
            status: JobStatus::Queued,
            started_ms: None,
            ..running(1, "n1-aaaaaaaa", 1, None)
        })
    );
    assert_eq!(
        get(store, 2).await,
        Some(JobRecord {
            status: JobStatus::Done,
            finished_ms: Some(200),
            result: Some(exhausted_result(3)),
            ..running(2, "n1-bbbbbbbb", 3, None)
        })
    );
    for (n, node) in [
        (3, "n2-aaaaaaaa"),
        (4, "n10-aaaaaaa"),
        (5, "n1-aaaaaaaaa"),
        (6, "n1"),
    ] {
        assert_eq!(get(store, n).await, Some(running(n, node, 1, Some(10_000))));
    }
    assert_eq!(get(store, 7).await.unwrap().status, JobStatus::Queued);
    assert_eq!(
        get(store, 8).await,
        Some(JobRecord {
            delivery_node: None,
            delivery_until_ms: None,
            ..claimed_by(8, "n1-cccccccc")
        })
    );
    assert_eq!(get(store, 9).await, Some(claimed_by(9, "n2-cccccccc")));
    assert_eq!(store.deliverable(100, max).await.unwrap(), vec![id(8)]);
    assert_eq!(
        store.take_over("n1", 300, max).await.unwrap(),
        Expired::default()
    );
}

async fn delivery_claims_are_exclusive_until_they_run_out(store: &dyn JobStore) {
    let max = 3;
    store
        .insert(vec![
            JobRecord {
                callback: callback(0, false),
                ..done(1, Some(50))
            },
            // Pending too, but nobody claims it.
            JobRecord {
                callback: callback(1, false),
                ..done(2, Some(50))
            },
            // Not finished, delivered, out of attempts, without callback: never deliverable.
            JobRecord {
                callback: callback(0, false),
                ..queued(3, 10)
            },
            JobRecord {
                callback: callback(1, true),
                ..done(4, Some(50))
            },
            JobRecord {
                callback: callback(3, false),
                ..done(5, Some(50))
            },
            done(6, Some(50)),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.deliverable(100, max).await.unwrap(),
        vec![id(1), id(2)]
    );
    for n in 3..=6 {
        assert_eq!(
            store
                .claim_delivery(id(n), "a", 100, 200, max)
                .await
                .unwrap(),
            None,
            "job {n}"
        );
    }
    assert_eq!(
        store
            .claim_delivery(id(7), "a", 100, 200, max)
            .await
            .unwrap(),
        None
    );
    let claimed = store
        .claim_delivery(id(1), "a", 100, 200, max)
        .await
        .unwrap();
    let expected = JobRecord {
        callback: callback(0, false),
        delivery_node: Some("a".to_string()),
        delivery_until_ms: Some(200),
        ..done(1, Some(50))
    };
    assert_eq!(claimed, Some(expected.clone()));
    // b may not take it while a's claim holds; a may take it again.
    assert_eq!(
        store
            .claim_delivery(id(1), "b", 150, 250, max)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.deliverable(150, max).await.unwrap(), vec![id(2)]);
    let again = store
        .claim_delivery(id(1), "a", 150, 260, max)
        .await
        .unwrap();
    assert_eq!(
        again,
        Some(JobRecord {
            delivery_until_ms: Some(260),
            ..expected.clone()
        })
    );
    // Only the holder records an attempt.
    assert!(!store
        .record_delivery(id(1), "b", true, None, 0)
        .await
        .unwrap());
    assert_eq!(get(store, 1).await, again);
    assert!(store
        .record_delivery(id(1), "a", false, Some("HTTP 500".to_string()), 400)
        .await
        .unwrap());
    let failed_once = JobRecord {
        callback: Some(CallbackState {
            attempts: 1,
            last_error: Some("HTTP 500".to_string()),
            ..callback(0, false).unwrap()
        }),
        delivery_node: Some("a".to_string()),
        delivery_until_ms: Some(400),
        ..done(1, Some(50))
    };
    assert_eq!(get(store, 1).await, Some(failed_once.clone()));
    assert_eq!(store.deliverable(399, max).await.unwrap(), vec![id(2)]);
    // a stopped: once its claim runs out, b takes the delivery over.
    assert_eq!(
        store.deliverable(400, max).await.unwrap(),
        vec![id(1), id(2)]
    );
    let taken = store
        .claim_delivery(id(1), "b", 400, 500, max)
        .await
        .unwrap();
    assert_eq!(
        taken,
        Some(JobRecord {
            delivery_node: Some("b".to_string()),
            delivery_until_ms: Some(500),
            ..failed_once
        })
    );
    assert!(!store
        .record_delivery(id(1), "a", true, None, 0)
        .await
        .unwrap());
    assert!(store
        .record_delivery(id(1), "b", true, None, 600)
        .await
        .unwrap());
    // Delivered: the claim is let go, and nobody delivers it again.
    assert_eq!(
        get(store, 1).await,
        Some(JobRecord {
            callback: Some(CallbackState {
                attempts: 2,
                delivered: true,
                last_error: None,
                ..callback(0, false).unwrap()
            }),
            ..done(1, Some(50))
        })
    );
    assert_eq!(
        store
            .claim_delivery(id(1), "b", 700, 800, max)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.deliverable(700, max).await.unwrap(), vec![id(2)]);
}

async fn remove_finished_refuses_unfinished_jobs(store: &dyn JobStore) {
    let cancelled = JobRecord {
        status: JobStatus::Cancelled,
        finished_ms: Some(40),
        ..queued(4, 10)
    };
    store
        .insert(vec![
            queued(1, 10),
            running(2, "a", 1, Some(100)),
            done(3, Some(30)),
            cancelled.clone(),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.remove_finished(id(1)).await.unwrap(),
        Remove::Unfinished(JobStatus::Queued)
    );
    assert_eq!(
        store.remove_finished(id(2)).await.unwrap(),
        Remove::Unfinished(JobStatus::Running)
    );
    assert_eq!(
        store.remove_finished(id(3)).await.unwrap(),
        Remove::Removed(Box::new(done(3, Some(30))))
    );
    assert_eq!(
        store.remove_finished(id(4)).await.unwrap(),
        Remove::Removed(Box::new(cancelled))
    );
    assert_eq!(
        store.remove_finished(id(3)).await.unwrap(),
        Remove::NotFound
    );
    assert_eq!(
        store.remove_finished(id(5)).await.unwrap(),
        Remove::NotFound
    );
    assert_eq!(get(store, 3).await, None);
    assert_eq!(get(store, 1).await, Some(queued(1, 10)));
    assert_eq!(get(store, 2).await, Some(running(2, "a", 1, Some(100))));
}

async fn remove_finished_before_keeps_unfinished_jobs_and_pending_callbacks(store: &dyn JobStore) {
    store
        .insert(vec![
            done(1, Some(50)),
            // Not before 100.
            done(2, Some(100)),
            done(3, Some(150)),
            JobRecord {
                status: JobStatus::Cancelled,
                finished_ms: Some(50),
                ..queued(4, 10)
            },
            // Finished without a time: counts as finished when created.
            done(5, None),
            JobRecord {
                created_ms: 120,
                ..done(6, None)
            },
            queued(7, 10),
            running(8, "a", 1, Some(20)),
            // A callback still being tried keeps its job.
            JobRecord {
                callback: callback(1, false),
                ..done(9, Some(50))
            },
            // Delivered, or out of attempts: removed.
            JobRecord {
                callback: callback(1, true),
                ..done(10, Some(50))
            },
            JobRecord {
                callback: callback(3, false),
                ..done(11, Some(50))
            },
        ])
        .await
        .unwrap();
    assert_eq!(store.remove_finished_before(100, 3).await.unwrap(), 5);
    let mut left = Vec::new();
    for n in 1..=11 {
        if get(store, n).await.is_some() {
            left.push(n);
        }
    }
    assert_eq!(left, vec![2, 3, 6, 7, 8, 9]);
    assert_eq!(store.remove_finished_before(100, 3).await.unwrap(), 0);
    assert_eq!(store.remove_finished_before(u64::MAX, 3).await.unwrap(), 3);
    assert_eq!(store.remove_finished_before(u64::MAX, 5).await.unwrap(), 0);
    // With more attempts allowed, job 9's callback is still pending; with fewer, not.
    assert_eq!(store.remove_finished_before(u64::MAX, 1).await.unwrap(), 1);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.values().sum::<usize>(), 2);
}

async fn counts_have_every_status(store: &dyn JobStore) {
    let counts = store.counts().await.unwrap();
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        JobStatus::ALL.iter().map(|s| (*s, 0)).collect::<Vec<_>>()
    );
    store
        .insert(vec![
            queued(1, 10),
            queued(2, 10),
            running(3, "a", 1, Some(100)),
            done(4, Some(10)),
            done(5, Some(10)),
            done(6, Some(10)),
        ])
        .await
        .unwrap();
    let counts = store.counts().await.unwrap();
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        vec![
            (JobStatus::Queued, 2),
            (JobStatus::Running, 1),
            (JobStatus::Done, 3),
            (JobStatus::Cancelled, 0),
        ]
    );
}

/// The next notice within 10 s.
async fn next_notice(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Notice>) -> Notice {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notice within 10 s")
        .expect("the notices go on")
}

/// A plain connection to `url`, for looking behind the store's back.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// The connections of database `db` that listen for notifications.
async fn listeners(client: &tokio_postgres::Client, db: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
            &[&db],
        )
        .await
        .expect("pg_stat_activity")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_notices_tell_queued_and_cancelled_jobs_of_other_nodes() {
    let Some(url) = pg_url("notices").await else {
        return;
    };
    let db = warmbox_testkit::postgres::db_name("store_notices");
    let this = PgStore::connect(&url).await.unwrap();
    let other = PgStore::connect(&url).await.unwrap();
    let mut rx = this.notices().expect("notices");
    assert!(this.notices().is_none(), "notices are given once");
    // Listening: said once it listens.
    assert_eq!(next_notice(&mut rx).await, Notice::Resumed);

    other
        .insert(vec![queued(1, 10), queued(2, 20)])
        .await
        .unwrap();
    assert_eq!(next_notice(&mut rx).await, Notice::Queued);
    let running = other.claim("b", 100, 200).await.unwrap().unwrap();
    // A queued job cancelled tells nothing; a running one, its id.
    other.cancel(id(2), 150).await.unwrap();
    other.cancel(running.id, 160).await.unwrap();
    // The two inserts of one statement may be told as one (PostgreSQL folds equal
    // notifications of a transaction) or two.
    let mut notice = next_notice(&mut rx).await;
    while notice == Notice::Queued {
        notice = next_notice(&mut rx).await;
    }
    assert_eq!(notice, Notice::Cancelled(id(1)));
    // Queued again (given back): told.
    other.insert(vec![queued(3, 30)]).await.unwrap();
    assert_eq!(next_notice(&mut rx).await, Notice::Queued);
    other.claim("b", 300, 400).await.unwrap().unwrap();
    assert!(other.release(id(3), 1, "b").await.unwrap());
    assert_eq!(next_notice(&mut rx).await, Notice::Queued);
    assert_eq!(
        rx.try_recv(),
        Err(tokio::sync::mpsc::error::TryRecvError::Empty)
    );

    // The listener's connection ends with its receiver.
    let client = sql(&url).await;
    assert_eq!(listeners(&client, &db).await, 1);
    drop(rx);
    let deadline = Instant::now() + Duration::from_secs(10);
    while listeners(&client, &db).await != 0 {
        assert!(Instant::now() < deadline, "the listener still connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nodes_starting_together_migrate_once() {
    let Some(url) = pg_url("migrate").await else {
        return;
    };
    let (a, b) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url));
    let (a, b) = (a.expect("first node"), b.expect("second node"));
    a.insert(vec![queued(1, 10)]).await.unwrap();
    assert_eq!(b.get(id(1)).await.unwrap(), Some(queued(1, 10)));
    let third = PgStore::connect(&url).await.expect("third node");
    assert_eq!(third.get(id(1)).await.unwrap(), Some(queued(1, 10)));
    let client = sql(&url).await;
    let versions: Vec<i32> = client
        .query("SELECT version FROM warmbox_schema", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1]);
    // A schema of a newer warmbox is refused, and left as it is.
    client
        .execute("UPDATE warmbox_schema SET version = 99", &[])
        .await
        .unwrap();
    let err = PgStore::connect(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::Failed { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "migrate the schema in the job store ({}): the job store's schema is version 99; \
             this warmbox knows up to 1: upgrade warmbox",
            a.describe()
        )
    );
    assert_eq!(a.get(id(1)).await.unwrap(), Some(queued(1, 10)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_is_unavailable_and_the_notices_resume() {
    // A server of its own: stopping the shared one would break the other tests.
    let Some(instance) = warmbox_testkit::postgres::Instance::start() else {
        return;
    };
    instance.create_db("jobs");
    let url = instance.url("jobs");
    let store = PgStore::connect(&url).await.unwrap();
    assert_eq!(
        store.describe(),
        format!("PostgreSQL 127.0.0.1:{}/jobs", instance.port())
    );
    assert!(store.shared());
    store.ping().await.unwrap();
    let mut rx = store.notices().unwrap();
    assert_eq!(next_notice(&mut rx).await, Notice::Resumed);
    store.insert(vec![queued(1, 10)]).await.unwrap();
    assert_eq!(next_notice(&mut rx).await, Notice::Queued);

    let stopping = tokio::task::spawn_blocking(move || {
        instance.stop();
        instance
    });
    let instance = stopping.await.unwrap();
    let started = Instant::now();
    let err = store.get(id(1)).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = store.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = store.claim("a", 1, 2).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "the job store ({}) is unreachable: claim a queued job: ",
            store.describe()
        )),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let instance = tokio::task::spawn_blocking(move || {
        instance.start_again();
        instance
    })
    .await
    .unwrap();
    // The listener connects again and says so; the store answers again.
    assert_eq!(next_notice(&mut rx).await, Notice::Resumed);
    assert_eq!(store.get(id(1)).await.unwrap(), Some(queued(1, 10)));
    store.insert(vec![queued(2, 20)]).await.unwrap();
    assert_eq!(next_notice(&mut rx).await, Notice::Queued);
    drop(store);
    drop(rx);
    tokio::task::spawn_blocking(move || drop(instance))
        .await
        .unwrap();
}
