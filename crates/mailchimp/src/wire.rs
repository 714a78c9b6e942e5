//! Turning HTTP answers into results: the classification of a non-2xx answer, body decoding
//! and encoding, and the description of a transport failure.

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::WireProblem;
use crate::{Error, Result};

/// How much of a non-JSON error body is kept in [`Error::Server`].
const MAX_DETAIL_CHARS: usize = 200;

/// Turns a non-2xx answer into the matching [`Error`].
pub(crate) fn check(status: StatusCode, body: &[u8]) -> Result<()> {
    let code = status.as_u16();
    if status.is_success() {
        return Ok(());
    }
    if code == 429 {
        return Err(Error::Throttled { status: code });
    }
    let problem = serde_json::from_slice::<WireProblem>(body).ok();
    if status.is_server_error() {
        let detail = match problem.as_ref().and_then(WireProblem::detail) {
            Some(detail) => detail.to_owned(),
            None => String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(MAX_DETAIL_CHARS)
                .collect(),
        };
        return Err(Error::Server {
            status: code,
            detail,
        });
    }
    match problem {
        Some(p) if p.is_problem() => Err(Error::Api(p.into_problem(code))),
        // "At exceptionally high volumes, you may receive an HTTP 429 or 403 without a JSON body."
        _ if code == 403 => Err(Error::Throttled { status: code }),
        Some(_) => Err(Error::Decode {
            status: code,
            message: "the error body is JSON but not a problem document".to_owned(),
        }),
        None => Err(Error::Decode {
            status: code,
            message: if body.is_empty() {
                "empty error body, expected a problem document".to_owned()
            } else {
                "the error body is not a JSON problem document".to_owned()
            },
        }),
    }
}

pub(crate) fn decode<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Decode {
        status,
        message: e.to_string(),
    })
}

pub(crate) fn json_body<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| Error::InvalidInput(format!("cannot encode the request body: {e}")))
}

pub(crate) fn transport(e: reqwest::Error) -> Error {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Error::Transport {
        message,
        timeout: e.is_timeout(),
        connect: e.is_connect(),
    }
}
