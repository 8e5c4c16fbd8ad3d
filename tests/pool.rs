//! The warm pool keeps each layout at its target: refills racing each other (every take
//! from an empty pool starts one) do not overshoot it.

mod common;

use std::time::{Duration, Instant};

use warmbox_sandbox::pool::{Pool, Recycle};

#[tokio::test(flavor = "multi_thread")]
async fn refills_under_a_run_on_an_empty_pool_stop_at_the_target() {
    let Some(h) = common::private_harness("warmbox-test-pool") else {
        return;
    };
    let specs = vec![h.warm_spec("bash/run", 2)];
    let (layout, limits) = (specs[0].layout.clone(), specs[0].limits.clone());
    // Up to 4 creations at once: four refills can all be under way together.
    let pool = Pool::new(h.sandbox.clone(), specs, 4, Recycle::DEFAULT);
    pool.warm_up().await.expect("warm up");
    assert_eq!(pool.warm_counts(), [("bash/run".to_string(), 2)]);

    for round in 0..3 {
        // Six takes at once: two warm ones, four made for the taker; each starts a refill.
        let takes: Vec<_> = (0..6)
            .map(|_| {
                let (pool, layout, limits) = (pool.clone(), layout.clone(), limits.clone());
                tokio::spawn(async move { pool.take(&layout, &limits).await })
            })
            .collect();
        for t in takes {
            let c = t.await.expect("task").expect("container");
            pool.destroy_later(c);
        }
        // Settled: the count is the target and stays there.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut stable = 0;
        while stable < 20 {
            assert!(Instant::now() < deadline, "round {round}: never settled");
            tokio::time::sleep(Duration::from_millis(50)).await;
            let n = pool.warm_counts()[0].1;
            assert!(n <= 2, "round {round}: {n} warm containers, target 2");
            stable = if n == 2 { stable + 1 } else { 0 };
        }
    }
    pool.shutdown().await;
    let left = h.sandbox.cgroups().list().expect("list cgroups");
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_init_fails_its_file_exchange_in_bounded_time_and_is_removed() {
    let Some(h) = common::private_harness("warmbox-test-pool-stopped") else {
        return;
    };
    let spec = h.warm_spec("bash/run", 1);
    let mut c = h
        .sandbox
        .create(&spec.layout, &spec.limits)
        .await
        .expect("container");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.pid()),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .expect("stop the init");
    let file = warmbox_sandbox::BoxFile {
        path: "main.sh".into(),
        content: b"echo hi\n".to_vec(),
        executable: false,
    };
    let t = Instant::now();
    let err = c
        .write_files(&[&file], 64 << 20)
        .await
        .expect_err("a stopped init");
    assert!(
        (Duration::from_secs(4)..Duration::from_secs(15)).contains(&t.elapsed()),
        "{:?}",
        t.elapsed()
    );
    assert!(
        err.to_string()
            .contains("writing the files: no answer within 5.0005s"),
        "{err}"
    );
    assert!(!c.job_sent());
    // (5 s, and 0.5 ms for each of the path components made.)
    // SIGKILL ends a stopped process too: the removal is complete.
    c.destroy().await;
    let left = h.sandbox.cgroups().list().expect("list cgroups");
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layout_that_cannot_be_warmed_does_not_keep_the_others_cold() {
    let Some(h) = common::private_harness("warmbox-test-pool-broken") else {
        return;
    };
    let good = h.warm_spec("bash/run", 2);
    let mut broken = good.clone();
    broken.name = "broken/run".into();
    broken.layout.seccomp = "no-such-policy".into();
    // The broken layout first: before, the warm-up stopped at it.
    let pool = Pool::new(h.sandbox.clone(), vec![broken, good], 2, Recycle::DEFAULT);
    let err = pool
        .warm_up()
        .await
        .expect_err("a policy that does not exist");
    assert!(err.to_string().contains("no-such-policy"), "{err}");
    assert_eq!(
        pool.warm_counts(),
        [("broken/run".to_string(), 0), ("bash/run".to_string(), 2)]
    );
    assert!(!pool.is_warm());
    pool.shutdown().await;
    let left = h.sandbox.cgroups().list().expect("list cgroups");
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}
