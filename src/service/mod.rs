//! What the HTTP front-ends (warmbox's own API, and the Judge0 and Piston ones in
//! `compat`) share: the service's state, the synchronous run under admission
//! ([`execute`]), and its errors ([`ServiceError`]), which each front-end answers in its own
//! shape.

pub mod metrics;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;

use crate::queue::{JobError, Jobs};
use warmbox_runner::admission::Admission;
use warmbox_runner::profile::ProfileSet;
use warmbox_runner::request::{self, RequestError, RunResponse, ValidatedRequest};
use warmbox_runner::Runner;
use warmbox_sandbox::pool::Pool;

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Accepted bearer tokens; empty: no authentication.
    pub tokens: Vec<String>,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
}

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The runner (on the pool).
    pub runner: Runner,
    /// The pool.
    pub pool: Arc<Pool>,
    /// The profiles.
    pub profiles: Arc<ProfileSet>,
    /// Admission control (shared with the runner, whose tests take free places).
    pub admission: Arc<Admission>,
    /// Async jobs; `None`: the `/v1/jobs` routes answer 404.
    pub jobs: Option<Arc<Jobs>>,
    /// Metrics.
    pub metrics: metrics::Metrics,
    /// Settings.
    pub config: ServiceConfig,
    /// Set once the pool is warm and the host checks passed.
    pub ready: AtomicBool,
}

/// Why a request was not served: its HTTP status, warmbox's error code, the message, and
/// for an overload the seconds to wait. Each front-end answers it in its own shape.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u32>,
}

impl ServiceError {
    /// An error answered with `status`, warmbox's `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ServiceError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 503 `overloaded`, to retry after a second.
    fn overloaded(message: String) -> Self {
        ServiceError {
            retry_after: Some(1),
            ..ServiceError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// warmbox's error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Seconds for `Retry-After`, when overloaded.
    pub fn retry_after(&self) -> Option<u32> {
        self.retry_after
    }
}

impl From<RequestError> for ServiceError {
    fn from(e: RequestError) -> Self {
        let status = match e.code {
            RequestError::UNKNOWN_PROFILE => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        ServiceError::new(status, e.code, e.message)
    }
}

impl From<JobError> for ServiceError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Request(r) => r.into(),
            JobError::NotFound(id) => ServiceError::new(
                StatusCode::NOT_FOUND,
                "unknown_job",
                format!("no job {id}: it never existed, or its result expired"),
            ),
            JobError::Finished(m) => ServiceError::new(StatusCode::CONFLICT, "job_finished", m),
            e @ JobError::Full { .. } => ServiceError::overloaded(e.to_string()),
            JobError::Store(e) if e.is_unavailable() => ServiceError {
                retry_after: Some(1),
                ..ServiceError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "job_store_unavailable",
                    format!("{e}; nothing was changed, retry shortly"),
                )
            },
            JobError::Store(e) => ServiceError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "job_store",
                e.to_string(),
            ),
        }
    }
}

/// The body, or the error when it could not be read (too large: 413).
pub fn body_bytes(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ServiceError> {
    body.map_err(|e| {
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "invalid_request"
        };
        ServiceError::new(
            status,
            code,
            format!("{e} (the limit is {} bytes)", state.config.max_body_bytes),
        )
    })
}

/// Runs a checked request under admission (503 when the queue is full) and records its
/// metrics: `/v1/run` and the compat APIs' synchronous runs.
pub async fn execute(
    state: &AppState,
    valid: &ValidatedRequest,
) -> Result<RunResponse, ServiceError> {
    let profile = valid.profile.profile.name.clone();
    let metrics = &state.metrics;
    metrics.set_waiting(state.admission.waiting() + 1);
    let ticket = state
        .admission
        .enter()
        .await
        .map_err(|o| ServiceError::overloaded(format!("{o}; retry shortly")))?;
    metrics.set_waiting(state.admission.waiting());
    metrics.set_running(state.admission.running());
    let started = Instant::now();
    let result = state.runner.run(valid).await;
    drop(ticket);
    metrics.set_running(state.admission.running());
    let resp = result.map_err(|e| {
        metrics.container_failures.inc();
        ServiceError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sandbox_failure",
            format!("could not create a container: {e}"),
        )
    })?;
    let status = request::wire_name(&resp.status);
    metrics.runs.with_label_values(&[&profile, &status]).inc();
    metrics
        .request_seconds
        .with_label_values(&[&profile])
        .observe(started.elapsed().as_secs_f64());
    for (step, r) in [("compile", &resp.compile), ("run", &resp.run)] {
        if let Some(r) = r {
            metrics
                .step_seconds
                .with_label_values(&[&profile, step])
                .observe(r.usage.wall_ms / 1e3);
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_errors_are_4xx_by_code() {
        let status = |code| {
            ServiceError::from(RequestError {
                code,
                message: "m".into(),
            })
            .status
        };
        assert_eq!(status(RequestError::UNKNOWN_PROFILE), StatusCode::NOT_FOUND);
        // A profile this host cannot run is the client's to change (GET /v1/profiles says
        // which are available): not a 503, which clients retry.
        assert_eq!(
            status(RequestError::PROFILE_UNAVAILABLE),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(RequestError::INVALID_REQUEST),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn job_errors_have_their_status_code_and_retry() {
        let full = ServiceError::from(JobError::Full { queued: 3, max: 3 });
        assert_eq!(
            (full.status(), full.code(), full.retry_after()),
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded", Some(1))
        );
        assert_eq!(
            full.message(),
            "the job queue is full (3 queued, at most 3); retry shortly"
        );
        let gone = ServiceError::from(JobError::NotFound(uuid::Uuid::nil()));
        assert_eq!(
            (gone.status(), gone.code(), gone.message()),
            (
                StatusCode::NOT_FOUND,
                "unknown_job",
                "no job 00000000-0000-0000-0000-000000000000: it never existed, or its result \
                 expired"
            )
        );
        let done = ServiceError::from(JobError::Finished("job x is done".into()));
        assert_eq!(
            (done.status(), done.code(), done.retry_after()),
            (StatusCode::CONFLICT, "job_finished", None)
        );
    }
}
