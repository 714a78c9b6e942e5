//! The HTTP answers: Mailchimp's headers on every one, JSON bodies and problem documents.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use crate::problem::ApiError;
use crate::wire::Reply;

pub(crate) const JSON: &str = "application/json; charset=utf-8";
const PROBLEM_JSON: &str = "application/problem+json; charset=utf-8";

pub(crate) type Resp = Response<Full<Bytes>>;

/// An answer with the headers Mailchimp always sends (`x-request-id`, `server`).
pub(crate) fn response(
    status: StatusCode,
    content_type: Option<&str>,
    request_id: &str,
    body: Bytes,
) -> Resp {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    if let Some(ct) = content_type {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static(JSON)),
        );
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    headers.insert("server", HeaderValue::from_static("openresty"));
    resp
}

/// The answer of an operation that succeeded.
pub(crate) fn success(reply: Reply, request_id: &str) -> Resp {
    match reply {
        Reply::Json(body) => response(StatusCode::OK, Some(JSON), request_id, Bytes::from(body)),
        // Mailchimp sends a JSON content type even on its empty 204s.
        Reply::NoContent => response(StatusCode::NO_CONTENT, Some(JSON), request_id, Bytes::new()),
    }
}

/// The problem document of a refusal, with `Allow` on a 405.
pub(crate) fn problem(e: &ApiError, request_id: &str) -> Resp {
    let mut resp = response(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        Some(PROBLEM_JSON),
        request_id,
        Bytes::from(e.to_json(request_id)),
    );
    if let Some(allow) = e.allow {
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    resp
}

/// A status with no body and no content type (what some proxies in front of Mailchimp send).
pub(crate) fn bare(status: StatusCode, request_id: &str) -> Resp {
    response(status, None, request_id, Bytes::new())
}
