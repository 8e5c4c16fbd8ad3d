//! The HTTP service (API.md): `POST /v1/run`, `GET /v1/profiles`, `/healthz`, `/readyz`,
//! `/metrics`. Errors are `{"error": {"code", "message"}}` with the fitting status.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use serde_json::Value;

use crate::queue::{self, Jobs, Submission};
use crate::service::{body_bytes, execute, ServiceError};
use warmbox_runner::request::{self, RunRequest};

/// The state [`router`] serves, and what it is made of.
pub use crate::service::{metrics, AppState, ServiceConfig};

/// warmbox's own shape of an error: `{"error": {"code", "message"}}`.
impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code(), "message": self.message()}}));
        let mut resp = (self.status(), body).into_response();
        if let Some(secs) = self.retry_after() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The router of the service.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/v1/run", post(run))
        .route("/v1/profiles", get(profiles))
        .route("/v1/jobs", post(submit_job))
        .route("/v1/jobs/batch", post(submit_batch))
        .route("/v1/jobs/{id}", get(get_job).delete(cancel_job))
        .merge(crate::compat::piston::routes())
        .merge(crate::compat::judge0::routes())
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            ServiceError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route; see /v1/run, /v1/jobs, /v1/profiles",
            )
        })
        .method_not_allowed_fallback(|| async {
            ServiceError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; the Allow header lists those it takes",
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Authentication (where tokens are configured) and HTTP metrics for every request.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |m| m.as_str().to_string());
    let open = matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics");
    let resp = if !open && !authorized(&state.config.tokens, req.headers()) {
        ServiceError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token: send Authorization: Bearer <token>",
        )
        .into_response()
    } else {
        next.run(req).await
    };
    state
        .metrics
        .http_requests
        .with_label_values(&[&route, resp.status().as_str()])
        .inc();
    resp
}

fn authorized(tokens: &[String], headers: &HeaderMap) -> bool {
    if tokens.is_empty() {
        return true;
    }
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is compared in constant
    // time, so that the time of a refusal tells nothing of how much of it matched.
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_start());
    given.is_some_and(|g| {
        tokens
            .iter()
            .any(|t| same_bytes(t.as_bytes(), g.as_bytes()))
    })
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decodes a request body that must be one JSON object: serde's derived decoding would
/// also take an array of the fields in order, which is no form of the API.
fn object_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ServiceError> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ServiceError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "request body: expected a JSON object {…}",
        ));
    }
    serde_json::from_slice(body).map_err(invalid_json)
}

fn invalid_json(e: serde_json::Error) -> ServiceError {
    ServiceError::new(
        StatusCode::BAD_REQUEST,
        "invalid_json",
        format!("request body: {e}"),
    )
}

async fn run(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServiceError> {
    let body = body_bytes(&state, body)?;
    let req: RunRequest = object_body(&body)?;
    let valid = request::validate(&req, &state.profiles)?;
    Ok(Json(execute(&state, &valid).await?).into_response())
}

fn jobs(state: &AppState) -> Result<&Arc<Jobs>, ServiceError> {
    state.jobs.as_ref().ok_or_else(|| {
        ServiceError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "async jobs are not enabled on this server",
        )
    })
}

/// One job body: a run request plus an optional `callback_url`. `at` prefixes field
/// names (`jobs[2].` in a batch).
fn submission(mut body: Value, at: &str) -> Result<Submission, ServiceError> {
    let Some(obj) = body.as_object_mut() else {
        let what = at.strip_suffix('.').unwrap_or("request body");
        return Err(ServiceError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("{what}: must be a JSON object (a run request)"),
        ));
    };
    let callback_url = match obj.remove("callback_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            return Err(ServiceError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("{at}callback_url: must be a string URL, got {other}"),
            ))
        }
    };
    Ok(Submission {
        request: body,
        callback_url,
        meta: None,
    })
}

fn accepted(records: &[queue::store::JobRecord]) -> Vec<Value> {
    records
        .iter()
        .map(|r| json!({"id": r.id, "status": r.status}))
        .collect()
}

async fn submit_job(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServiceError> {
    let jobs = jobs(&state)?;
    let body = body_bytes(&state, body)?;
    let value: Value = serde_json::from_slice(&body).map_err(invalid_json)?;
    let records = jobs.submit(vec![submission(value, "")?], false).await?;
    let mut list = accepted(&records);
    Ok((StatusCode::ACCEPTED, Json(list.remove(0))).into_response())
}

async fn submit_batch(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServiceError> {
    let jobs = jobs(&state)?;
    let body = body_bytes(&state, body)?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        jobs: Vec<Value>,
    }
    let batch: Batch = object_body(&body)?;
    if batch.jobs.is_empty() {
        return Err(ServiceError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "jobs: empty; give {\"jobs\": [<run request>, …]}",
        ));
    }
    let subs = batch
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, v)| submission(v, &format!("jobs[{i}].")))
        .collect::<Result<Vec<_>, _>>()?;
    let records = jobs.submit(subs, true).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"jobs": accepted(&records)})),
    )
        .into_response())
}

fn job_id(id: &str) -> Result<uuid::Uuid, ServiceError> {
    uuid::Uuid::parse_str(id).map_err(|_| {
        ServiceError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("job id {id:?} is not a job id (a UUID, as POST /v1/jobs returned it)"),
        )
    })
}

async fn get_job(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ServiceError> {
    let record = jobs(&state)?.get(job_id(&id)?).await?;
    Ok(Json(queue::view(&record)))
}

async fn cancel_job(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ServiceError> {
    let record = jobs(&state)?.cancel(job_id(&id)?).await?;
    Ok(Json(queue::view(&record)))
}

async fn profiles(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let list: Vec<_> = state
        .profiles
        .all()
        .iter()
        .map(|p| {
            json!({
                "name": p.profile.name,
                "aliases": p.profile.aliases,
                "version": p.availability.version,
                "available": p.availability.available,
                "reason": p.availability.reason,
                "compiled": p.profile.compile.is_some(),
                "limits": {"defaults": p.profile.limits.defaults, "maximums": p.profile.limits.maximums},
            })
        })
        .collect();
    Json(json!(list))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let not_ready = |message: &str| {
        ServiceError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message).into_response()
    };
    if !state.ready.load(Ordering::Acquire) {
        return not_ready("the container pool is still warming up");
    }
    if let Some(jobs) = &state.jobs {
        if !jobs.store_reachable() {
            return not_ready("the job store cannot be reached");
        }
    }
    Json(json!({"status": "ready"})).into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    state.metrics.observe_pool(&state.pool);
    state
        .metrics
        .observe_cache(state.runner.compile_cache().stats());
    if let Some(jobs) = &state.jobs {
        match jobs.counts().await {
            Ok(c) => state.metrics.observe_jobs(&c),
            Err(e) => tracing::warn!(error = %e, "counting jobs for /metrics"),
        }
        state
            .metrics
            .node_jobs_running
            .set(i64::try_from(jobs.running_here()).unwrap_or(i64::MAX));
        state
            .metrics
            .job_store_up
            .set(i64::from(jobs.store_reachable()));
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_matched_whole_with_any_scheme_case() {
        let tokens = vec!["s3cret".to_string()];
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            authorized(&tokens, &h)
        };
        assert!(with("Bearer s3cret"));
        assert!(with("bearer s3cret"));
        assert!(!with("Bearer s3cre"));
        assert!(!with("Bearer s3cret "));
        assert!(!with("Token s3cret"));
        assert!(!with("s3cret"));
        assert!(!authorized(&tokens, &HeaderMap::new()));
        assert!(authorized(&[], &HeaderMap::new()));
    }
}
