//! Starts an emulator on 127.0.0.1:0 and talks to it over real HTTP with reqwest.

use std::net::SocketAddr;

use mailchimp_emulator::{Config, Emulator};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const LIST: &str = "a1b2c3d4e5";
pub const KEY: &str = "0123456789abcdef0123456789abcdef-us6";

/// An answer: status, headers and the body as JSON (`Null` when empty, a string when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub raw: String,
    pub json: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a Mailchimp problem document with this status and title; returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16, title: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.raw);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json; charset=utf-8")
        );
        assert_eq!(self.json["title"], title, "{}", self.raw);
        assert_eq!(self.json["status"], status);
        assert_eq!(
            self.json["instance"].as_str(),
            self.header("x-request-id"),
            "instance must be the X-Request-Id"
        );
        &self.json
    }

    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.raw);
        &self.json
    }
}

pub struct Harness {
    pub emu: Emulator,
    pub client: reqwest::Client,
    pub key: String,
}

impl Harness {
    pub async fn start() -> Self {
        Self::with(Config {
            audiences: vec![LIST.into()],
            ..Config::default()
        })
        .await
    }

    pub async fn with(config: Config) -> Self {
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let emu = Emulator::start(listen, config)
            .await
            .expect("emulator starts");
        Self {
            emu,
            client: reqwest::Client::new(),
            key: KEY.into(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.emu.base_url(), path)
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        self.try_send(method, path, body).await.expect("an answer")
    }

    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Result<Answer> {
        self.try_send_as(&self.key, method, path, body).await
    }

    /// Like `send`, with another API key than `self.key`.
    pub async fn send_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        self.try_send_as(key, method, path, body)
            .await
            .expect("an answer")
    }

    pub async fn try_send_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Result<Answer> {
        let mut req = self
            .client
            .request(method, self.url(path))
            .basic_auth("anystring", Some(key));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let raw = resp.text().await?;
        let json = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&raw).unwrap_or_else(|_| Value::String(raw.clone()))
        };
        Ok(Answer {
            status,
            headers,
            raw,
            json,
        })
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    /// `/lists/{LIST}/members/{md5(email)}`
    pub fn member_path(email: &str) -> String {
        format!(
            "/lists/{LIST}/members/{}",
            mailchimp_emulator::subscriber_hash(email)
        )
    }

    /// Subscribes a member of `list` with `self.key` (upsert) and asserts 200.
    pub async fn upsert_in(&self, list: &str, email: &str) -> Value {
        let body = serde_json::json!({"email_address": email, "status_if_new": "subscribed"});
        let path = format!(
            "/lists/{list}/members/{}",
            mailchimp_emulator::subscriber_hash(email)
        );
        self.put(&path, &body).await.ok().clone()
    }

    /// Upserts a member with `status_if_new` and asserts 200.
    pub async fn upsert(&self, email: &str, status: &str) -> Value {
        let body = serde_json::json!({"email_address": email, "status_if_new": status});
        self.put(&Self::member_path(email), &body)
            .await
            .ok()
            .clone()
    }
}
