//! The HTTP the emulator sends: the validator's GET when a webhook is registered, and the
//! delivery of webhook events.
//!
//! Deliveries go to one background task, which POSTs them in the order the changes happened and
//! retries a failed one a few times. An API answer never waits for a delivery.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::mpsc;

use crate::events::Delivery;
use crate::lock::lock;
use crate::problem::ApiError;

/// `User-Agent` of event deliveries.
const USER_AGENT: &str = "MailChimp.com";
/// `User-Agent` of the GET sent when a webhook is created.
const VALIDATOR_USER_AGENT: &str = "MailChimp.com WebHook Validator";
/// Mailchimp gives an endpoint 10 s to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Retries after a delivery's first attempt (Mailchimp retries over 75 minutes; the emulator a
/// few times quickly).
const RETRIES: usize = 3;
/// Pause before the first retry; doubled for each further one.
const FIRST_RETRY: Duration = Duration::from_millis(100);

fn http_client(user_agent: &str) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The validator's GET to a webhook URL about to be registered: it must answer 200.
pub(crate) async fn validate_url(url: &str) -> Result<(), ApiError> {
    let validator = http_client(VALIDATOR_USER_AGENT)
        .map_err(|e| ApiError::webhook_validation_failed(&format!("could not be sent ({e})")))?;
    match validator.get(url).send().await {
        Ok(resp) if resp.status() == reqwest::StatusCode::OK => Ok(()),
        Ok(resp) => Err(ApiError::webhook_validation_failed(&format!(
            "was answered {}",
            resp.status().as_u16()
        ))),
        Err(_) => Err(ApiError::webhook_validation_failed("got no answer")),
    }
}

/// A finished delivery, for tests (see `Emulator::webhook_deliveries`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The webhook's URL.
    pub url: String,
    /// `subscribe`, `unsubscribe`, `profile`, `cleaned` or `upemail`.
    pub event: String,
    /// The form-encoded body sent.
    pub body: String,
    /// How many POSTs were made.
    pub attempts: u32,
    /// Whether one of them was answered with a 2xx.
    pub delivered: bool,
    /// The status of the last answer (`None`: no answer, e.g. connection refused).
    pub last_status: Option<u16>,
}

/// The delivery queue and its log, shared by the server and the delivery task.
pub(crate) struct Outbound {
    sender: mpsc::UnboundedSender<Delivery>,
    pub log: Arc<DeliveryLog>,
}

/// What the delivery task did.
#[derive(Default)]
pub(crate) struct DeliveryLog {
    pub finished: Mutex<Vec<WebhookDelivery>>,
    pub queued: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

impl Outbound {
    /// Starts the delivery task (it ends when the last sender is dropped).
    pub(crate) fn start() -> Outbound {
        let (sender, receiver) = mpsc::unbounded_channel();
        let log = Arc::new(DeliveryLog::default());
        tokio::spawn(deliver_all(receiver, log.clone()));
        Outbound { sender, log }
    }

    pub(crate) fn send(&self, deliveries: Vec<Delivery>) {
        for d in deliveries {
            self.log.queued.fetch_add(1, Ordering::SeqCst);
            if self.sender.send(d).is_err() {
                self.log.queued.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// One delivery after the other, in the order the changes happened.
async fn deliver_all(mut receiver: mpsc::UnboundedReceiver<Delivery>, log: Arc<DeliveryLog>) {
    let http = match http_client(USER_AGENT) {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(%error, "cannot build the webhook HTTP client; deliveries are dropped");
            return;
        }
    };
    while let Some(d) = receiver.recv().await {
        let finished = deliver(&http, d).await;
        tracing::debug!(
            event = finished.event,
            attempts = finished.attempts,
            delivered = finished.delivered,
            "webhook delivery finished"
        );
        let counter = if finished.delivered {
            &log.delivered
        } else {
            &log.failed
        };
        counter.fetch_add(1, Ordering::SeqCst);
        lock(&log.finished).push(finished);
        log.queued.fetch_sub(1, Ordering::SeqCst);
    }
}

/// POSTs the delivery until it is answered with a 2xx or the retries run out.
async fn deliver(http: &reqwest::Client, d: Delivery) -> WebhookDelivery {
    let mut pauses = ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY)
        .with_factor(2.0)
        .with_max_times(RETRIES)
        .build();
    let mut attempts = 0;
    let (delivered, last_status) = loop {
        attempts += 1;
        let sent = http
            .post(&d.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(d.body.clone())
            .send()
            .await;
        let status = match sent {
            Ok(resp) => Some(resp.status()),
            Err(error) => {
                tracing::debug!(%error, "webhook delivery failed");
                None
            }
        };
        let last_status = status.map(|s| s.as_u16());
        if status.is_some_and(|s| s.is_success()) {
            break (true, last_status);
        }
        match pauses.next() {
            Some(pause) => tokio::time::sleep(pause).await,
            None => break (false, last_status),
        }
    };
    WebhookDelivery {
        url: d.url,
        event: d.kind.as_str().to_owned(),
        body: d.body,
        attempts,
        delivered,
        last_status,
    }
}
