//! Admission: at most N requests run at once; further ones wait in a bounded queue; beyond
//! it the answer is "overloaded" at once. Dropping a ticket (a finished or cancelled
//! request) frees its place.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue is full ({waiting} waiting for {running} running)")]
pub struct Overloaded {
    /// Requests waiting.
    pub waiting: usize,
    /// Requests running.
    pub running: usize,
}

/// Admission control.
#[derive(Debug)]
pub struct Admission {
    running: Arc<Semaphore>,
    max_running: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// A running request's place; freed on drop.
#[derive(Debug)]
pub struct Ticket {
    _permit: OwnedSemaphorePermit,
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// `max_running` at once, `max_waiting` in the queue.
    pub fn new(max_running: usize, max_waiting: usize) -> Self {
        Admission {
            running: Arc::new(Semaphore::new(max_running.max(1))),
            max_running: max_running.max(1),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// Waits for a place, or refuses at once when the queue is full.
    pub async fn enter(&self) -> Result<Ticket, Overloaded> {
        if let Ok(p) = self.running.clone().try_acquire_owned() {
            return Ok(Ticket { _permit: p });
        }
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        let guard = Waiting(&self.waiting);
        if before >= self.max_waiting {
            drop(guard);
            return Err(Overloaded {
                waiting: before,
                running: self.running(),
            });
        }
        let permit = self.running.clone().acquire_owned().await;
        drop(guard);
        match permit {
            Ok(p) => Ok(Ticket { _permit: p }),
            // The semaphore is never closed; treat it as full if it were.
            Err(_) => Err(Overloaded {
                waiting: self.waiting(),
                running: self.running(),
            }),
        }
    }

    /// Waits for a place for extra work of a request that already holds one (its tests
    /// running in parallel). Not counted in the queue, which bounds requests: a request
    /// always progresses on its own place, so its extra waits hold nothing up.
    pub async fn wait_extra(&self) -> Ticket {
        match self.running.clone().acquire_owned().await {
            Ok(p) => Ticket { _permit: p },
            // The semaphore is never closed.
            Err(_) => std::future::pending().await,
        }
    }

    /// Places in all.
    pub fn capacity(&self) -> usize {
        self.max_running
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Requests running now.
    pub fn running(&self) -> usize {
        self.max_running - self.running.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_queues_and_refuses() {
        let a = Arc::new(Admission::new(1, 1));
        let first = a.enter().await.unwrap();
        assert_eq!(a.running(), 1);
        let a2 = a.clone();
        let queued = tokio::spawn(async move { a2.enter().await.map(|_| ()) });
        while a.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            a.enter().await.unwrap_err(),
            Overloaded {
                waiting: 1,
                running: 1
            }
        );
        drop(first);
        queued.await.unwrap().unwrap();
        assert_eq!((a.running(), a.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn a_cancelled_waiter_frees_its_place() {
        let a = Arc::new(Admission::new(1, 1));
        let _first = a.enter().await.unwrap();
        let a2 = a.clone();
        let queued = tokio::spawn(async move { a2.enter().await.map(|_| ()) });
        while a.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        queued.abort();
        let _ = queued.await;
        assert_eq!(a.waiting(), 0);
    }
}
