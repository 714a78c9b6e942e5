//! The HTTP client: configuration, the endpoints and request building.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use url::Url;

use crate::types::{
    WireAudience, WireBatch, WireMergeFields, WireNewAudience, WirePing, WireStatus, WireTagChange,
    WireTagChanges, WireTags, WireWebhooks,
};
use crate::wire::{check, decode, json_body, transport};
use crate::{
    subscriber_hash, ApiKey, Audience, BatchMember, BatchResult, Error, ListMembers, Member,
    MemberUpsert, MembersPage, MergeField, NewAudience, NewMergeField, NewWebhook, Result, Status,
    TagChange, Webhook,
};

/// The most members one batch subscribe may carry (Mailchimp's documented cap).
pub const MAX_BATCH_MEMBERS: usize = 500;

/// The largest `count` Mailchimp accepts on a list endpoint.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Basic-auth user name; Mailchimp ignores it, the key is the password.
const BASIC_USER: &str = "chimpsync";
const USER_AGENT: &str = concat!("chimpsync/", env!("CARGO_PKG_VERSION"));

/// How to reach Mailchimp.
///
/// `Debug` is safe to log: the key prints as `ApiKey(<redacted>)`.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The API key; its data centre picks the default host.
    pub api_key: ApiKey,
    /// Overrides `https://<dc>.api.mailchimp.com/3.0` (`MAILCHIMP_BASE_URL`), e.g.
    /// `http://127.0.0.1:4100/3.0` for the emulator.
    pub base_url: Option<String>,
    /// Limit on establishing a connection (default 10 s).
    pub connect_timeout: Duration,
    /// Limit on a whole request, body included (default 60 s; Mailchimp itself gives up
    /// at 120 s, so a larger value only waits longer for a dead connection).
    pub request_timeout: Duration,
    /// Idle connections kept per host (default 10, Mailchimp's limit of simultaneous
    /// connections per key).
    pub max_idle_per_host: usize,
}

impl ClientConfig {
    /// The defaults above for `api_key`.
    pub fn new(api_key: ApiKey) -> Self {
        ClientConfig {
            api_key,
            base_url: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_idle_per_host: 10,
        }
    }
}

/// A Mailchimp Marketing API client. Cheap to clone (the connection pool is shared).
///
/// Every call is one HTTP request (except [`Client::member_tags`], which pages); none
/// retries: the caller decides with [`Error::is_retryable`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    base_str: String,
    key: ApiKey,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_str)
            .field("api_key", &self.inner.key)
            .finish_non_exhaustive()
    }
}

/// The API root of `config`: its base URL, or the key's data centre. Refuses a base URL that
/// is not `http(s)://…`.
fn base_of(config: &ClientConfig) -> Result<(Url, String)> {
    let base_str = match &config.base_url {
        Some(url) => url.trim().trim_end_matches('/').to_owned(),
        None => format!(
            "https://{}.api.mailchimp.com/3.0",
            config.api_key.data_center()
        ),
    };
    let base = Url::parse(&base_str)
        .map_err(|e| Error::InvalidInput(format!("the Mailchimp base URL is invalid: {e}")))?;
    if !matches!(base.scheme(), "http" | "https")
        || base.cannot_be_a_base()
        || base.query().is_some()
        || base.fragment().is_some()
    {
        return Err(Error::InvalidInput(
            "the Mailchimp base URL must be an http(s) URL without query, e.g. \
             https://us6.api.mailchimp.com/3.0"
                .to_owned(),
        ));
    }
    Ok((base, base_str))
}

impl Client {
    /// Builds the client (no request is made; use [`Client::ping`] to check the key).
    ///
    /// Refuses a base URL that is not `http(s)://…` and zero timeouts.
    pub fn new(config: ClientConfig) -> Result<Client> {
        let (base, base_str) = base_of(&config)?;
        if config.connect_timeout.is_zero() || config.request_timeout.is_zero() {
            return Err(Error::InvalidInput(
                "Mailchimp timeouts must be greater than zero".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(config.max_idle_per_host)
            // Never carry the credentials anywhere Mailchimp did not document.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(transport)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                base_str,
                key: config.api_key,
            }),
        })
    }

    /// A client for another key (and base URL) that shares this client's connections and
    /// settings (timeouts, pool): many accounts on one data centre then cost one connection
    /// pool and one TLS setup, not one each. The key is sent per request, so sharing
    /// connections shares no credentials.
    pub fn for_key(&self, api_key: ApiKey, base_url: Option<String>) -> Result<Client> {
        let mut config = ClientConfig::new(api_key);
        config.base_url = base_url;
        let (base, base_str) = base_of(&config)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                base,
                base_str,
                key: config.api_key,
            }),
        })
    }

    /// The API root every path is appended to, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.inner.base_str
    }

    /// `GET /ping`: checks that Mailchimp is reachable and the key is accepted.
    #[tracing::instrument(skip_all, fields(endpoint = "GET /ping"))]
    pub async fn ping(&self) -> Result<()> {
        let url = self.url(&["ping"]);
        let (status, body) = self.call(Method::GET, url, None).await?;
        decode::<WirePing>(status, &body).map(|_| ())
    }

    /// `GET /lists/{list_id}`.
    #[tracing::instrument(skip_all, fields(endpoint = "GET /lists/{list_id}", list.id = %list_id))]
    pub async fn get_audience(&self, list_id: &str) -> Result<Audience> {
        let url = self.url(&["lists", list_segment(list_id)?]);
        let (status, body) = self.call(Method::GET, url, None).await?;
        decode::<WireAudience>(status, &body).map(Audience::from)
    }

    /// `POST /lists`: creates an audience (no default campaign subject, plain HTML mails).
    #[tracing::instrument(skip_all, fields(endpoint = "POST /lists"))]
    pub async fn create_audience(&self, req: &NewAudience) -> Result<Audience> {
        let url = self.url(&["lists"]);
        let body = json_body(&WireNewAudience::from(req))?;
        let (status, body) = self.call(Method::POST, url, Some(body)).await?;
        decode::<WireAudience>(status, &body).map(Audience::from)
    }

    /// `POST /lists/{list_id}` with `update_existing: true, sync_tags: false`: creates or
    /// updates up to [`MAX_BATCH_MEMBERS`] members at once. The call succeeds even when
    /// members are refused; see [`BatchResult::errors`].
    ///
    /// More than 500 members is refused locally with [`Error::InvalidInput`]; an empty
    /// slice returns an empty result without a request.
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "POST /lists/{list_id}", list.id = %list_id, batch.size = members.len())
    )]
    pub async fn batch_upsert(
        &self,
        list_id: &str,
        members: &[BatchMember],
    ) -> Result<BatchResult> {
        let prepared = self.prepare_batch_upsert(list_id, members)?;
        if prepared.is_empty() {
            return Ok(BatchResult::default());
        }
        self.send_batch(prepared).await?.decode()
    }

    /// The first half of [`Client::batch_upsert`]: validates the members and writes the request
    /// body, without sending anything. A caller that holds one of the few connection slots
    /// Mailchimp allows prepares first, holds the slot for [`Client::send_batch`] alone and
    /// decodes the answer ([`BatchAnswer::decode`]) after giving the slot back, so the slot is
    /// busy only while the request is on the wire.
    pub fn prepare_batch_upsert(
        &self,
        list_id: &str,
        members: &[BatchMember],
    ) -> Result<PreparedBatch> {
        if members.len() > MAX_BATCH_MEMBERS {
            return Err(Error::InvalidInput(format!(
                "a batch subscribe takes at most {MAX_BATCH_MEMBERS} members, got {}",
                members.len()
            )));
        }
        for m in members {
            writable(m.status_if_new, "status_if_new")?;
            writable(m.status, "status")?;
        }
        let url = self.url(&["lists", list_segment(list_id)?]);
        let body = json_body(&WireBatch {
            members,
            update_existing: true,
            sync_tags: false,
        })?;
        Ok(PreparedBatch {
            url,
            body,
            members: members.len(),
        })
    }

    /// Sends a prepared batch subscribe (`POST /lists/{list_id}`). The answer's bytes are read
    /// here; decoding them is [`BatchAnswer::decode`].
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "POST /lists/{list_id}", batch.size = prepared.members)
    )]
    pub async fn send_batch(&self, prepared: PreparedBatch) -> Result<BatchAnswer> {
        let (status, body) = self
            .call(Method::POST, prepared.url, Some(prepared.body))
            .await?;
        Ok(BatchAnswer { status, body })
    }

    /// `PUT /lists/{list_id}/members/{hash(email)}`: creates the member (with
    /// `status_if_new`, or `status`) or updates it. `body.email_address` defaults to `email`.
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "PUT /lists/{list_id}/members/{subscriber_hash}", list.id = %list_id)
    )]
    pub async fn upsert_member(
        &self,
        list_id: &str,
        email: &str,
        body: &MemberUpsert,
    ) -> Result<Member> {
        let address = body.email_address.as_deref().unwrap_or(email);
        self.put_member(list_id, email, address, body).await
    }

    /// Changes a member's address: `PUT` to the *old* hash with `email_address = new_email`
    /// (Mailchimp keeps the history; the member's id becomes the new hash and the old hash
    /// then answers 404). The other fields come from `body`; `status_if_new` is sent only if
    /// set. Mailchimp refuses a rename onto an address already in the list, or of a member
    /// that is not subscribed, with `Invalid Resource` ([`crate::ProblemKind::InvalidResource`]).
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "PUT /lists/{list_id}/members/{subscriber_hash}", list.id = %list_id)
    )]
    pub async fn rename_member(
        &self,
        list_id: &str,
        old_email: &str,
        new_email: &str,
        body: &MemberUpsert,
    ) -> Result<Member> {
        self.put_member(list_id, old_email, new_email, body).await
    }

    /// Renames an *existing* member: `PATCH` to the old hash with `email_address = new_email`
    /// (plus `merge_fields` and `status` from `body`; `status_if_new` does not exist for PATCH).
    /// Unlike [`Client::rename_member`], a missing old member answers 404 `Resource Not Found`
    /// instead of creating the new address, so a caller that is unsure where the member lives
    /// (an earlier rename whose answer was lost) can try each candidate address in turn.
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "PATCH /lists/{list_id}/members/{subscriber_hash}", list.id = %list_id)
    )]
    pub async fn rename_existing_member(
        &self,
        list_id: &str,
        old_email: &str,
        new_email: &str,
        body: &MemberUpsert,
    ) -> Result<Member> {
        writable(body.status, "status")?;
        let patch = MemberUpsert {
            email_address: Some(new_email.to_owned()),
            status_if_new: None,
            ..body.clone()
        };
        let url = self.member_url(list_id, old_email, &[])?;
        let body = json_body(&patch)?;
        let (code, body) = self.call(Method::PATCH, url, Some(body)).await?;
        decode(code, &body)
    }

    /// `PUT` to the hash of `email`, with `address` as the body's `email_address`.
    async fn put_member(
        &self,
        list_id: &str,
        email: &str,
        address: &str,
        body: &MemberUpsert,
    ) -> Result<Member> {
        writable(body.status_if_new, "status_if_new")?;
        writable(body.status, "status")?;
        let url = self.member_url(list_id, email, &[])?;
        let body = json_body(&MemberUpsert {
            email_address: Some(address.to_owned()),
            ..body.clone()
        })?;
        let (status, body) = self.call(Method::PUT, url, Some(body)).await?;
        decode(status, &body)
    }

    /// `PATCH /lists/{list_id}/members/{hash(email)}` with `{"status": …}`.
    ///
    /// `Archived` is refused locally: archive with [`Client::archive_member`].
    #[tracing::instrument(
        skip_all,
        fields(
            endpoint = "PATCH /lists/{list_id}/members/{subscriber_hash}",
            list.id = %list_id,
            member.status = status.as_str()
        )
    )]
    pub async fn set_status(&self, list_id: &str, email: &str, status: Status) -> Result<Member> {
        writable(Some(status), "status")?;
        let url = self.member_url(list_id, email, &[])?;
        let body = json_body(&WireStatus { status })?;
        let (code, body) = self.call(Method::PATCH, url, Some(body)).await?;
        decode(code, &body)
    }

    /// `DELETE /lists/{list_id}/members/{hash(email)}`: archives the member (204).
    /// Mailchimp answers 405 `Method Not Allowed` for a pending, cleaned or archived contact.
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "DELETE /lists/{list_id}/members/{subscriber_hash}", list.id = %list_id)
    )]
    pub async fn archive_member(&self, list_id: &str, email: &str) -> Result<()> {
        let url = self.member_url(list_id, email, &[])?;
        self.call(Method::DELETE, url, None).await.map(|_| ())
    }

    /// `POST /lists/{list_id}/members/{hash(email)}/actions/delete-permanent` (204).
    ///
    /// Irreversible: the address can never be added again through the API
    /// (`Forgotten Email Not Subscribed`).
    #[tracing::instrument(
        skip_all,
        fields(
            endpoint = "POST /lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent",
            list.id = %list_id
        )
    )]
    pub async fn delete_member_permanently(&self, list_id: &str, email: &str) -> Result<()> {
        let url = self.member_url(list_id, email, &["actions", "delete-permanent"])?;
        self.call(Method::POST, url, None).await.map(|_| ())
    }

    /// `POST /lists/{list_id}/members/{hash(email)}/tags` with `is_syncing: true` (so
    /// tag-based automations do not fire on a sync). An empty `tags` makes no request.
    #[tracing::instrument(
        skip_all,
        fields(
            endpoint = "POST /lists/{list_id}/members/{subscriber_hash}/tags",
            list.id = %list_id,
            tags.count = tags.len()
        )
    )]
    pub async fn update_tags(&self, list_id: &str, email: &str, tags: &[TagChange]) -> Result<()> {
        let url = self.member_url(list_id, email, &["tags"])?;
        if tags.is_empty() {
            return Ok(());
        }
        let body = json_body(&WireTagChanges {
            tags: tags
                .iter()
                .map(|t| WireTagChange {
                    name: &t.name,
                    status: if t.active { "active" } else { "inactive" },
                })
                .collect(),
            is_syncing: true,
        })?;
        self.call(Method::POST, url, Some(body)).await.map(|_| ())
    }

    /// `GET /lists/{list_id}/members/{hash(email)}`; a member not in the list is
    /// [`crate::ProblemKind::NotFound`].
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "GET /lists/{list_id}/members/{subscriber_hash}", list.id = %list_id)
    )]
    pub async fn get_member(&self, list_id: &str, email: &str) -> Result<Member> {
        let url = self.member_url(list_id, email, &[])?;
        let (status, body) = self.call(Method::GET, url, None).await?;
        decode(status, &body)
    }

    /// `GET /lists/{list_id}/members/{hash(email)}/tags?count=1000`: every tag name of the
    /// member (pages with `offset` if Mailchimp reports more than one page).
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "GET /lists/{list_id}/members/{subscriber_hash}/tags", list.id = %list_id)
    )]
    pub async fn member_tags(&self, list_id: &str, email: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        loop {
            let mut url = self.member_url(list_id, email, &["tags"])?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("count", &MAX_PAGE_SIZE.to_string());
                if !names.is_empty() {
                    q.append_pair("offset", &names.len().to_string());
                }
            }
            let (status, body) = self.call(Method::GET, url, None).await?;
            let page: WireTags = decode(status, &body)?;
            let got = page.tags.len();
            names.extend(page.tags);
            match page.total_items {
                Some(total) if got > 0 && (names.len() as u64) < total => continue,
                _ => return Ok(names),
            }
        }
    }

    /// `GET /lists/{list_id}/members?count&offset[&status][&since_last_changed]`.
    ///
    /// A `count` above [`MAX_PAGE_SIZE`] is refused locally.
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "GET /lists/{list_id}/members", list.id = %list_id, page.offset = query.offset)
    )]
    pub async fn list_members(&self, list_id: &str, query: &ListMembers) -> Result<MembersPage> {
        if query.count > MAX_PAGE_SIZE {
            return Err(Error::InvalidInput(format!(
                "a page holds at most {MAX_PAGE_SIZE} members, asked for {}",
                query.count
            )));
        }
        let mut url = self.url(&["lists", list_segment(list_id)?, "members"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("count", &query.count.to_string());
            q.append_pair("offset", &query.offset.to_string());
            if let Some(status) = query.status {
                q.append_pair("status", status.as_str());
            }
            if let Some(since) = &query.since_last_changed {
                q.append_pair("since_last_changed", since);
            }
        }
        let (status, body) = self.call(Method::GET, url, None).await?;
        decode(status, &body)
    }

    /// `GET /lists/{list_id}/merge-fields?count=1000`.
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "GET /lists/{list_id}/merge-fields", list.id = %list_id)
    )]
    pub async fn merge_fields(&self, list_id: &str) -> Result<Vec<MergeField>> {
        let mut url = self.url(&["lists", list_segment(list_id)?, "merge-fields"]);
        url.query_pairs_mut()
            .append_pair("count", &MAX_PAGE_SIZE.to_string());
        let (status, body) = self.call(Method::GET, url, None).await?;
        decode::<WireMergeFields>(status, &body).map(|w| w.merge_fields)
    }

    /// `POST /lists/{list_id}/merge-fields`.
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "POST /lists/{list_id}/merge-fields", list.id = %list_id)
    )]
    pub async fn create_merge_field(
        &self,
        list_id: &str,
        field: &NewMergeField,
    ) -> Result<MergeField> {
        let url = self.url(&["lists", list_segment(list_id)?, "merge-fields"]);
        let body = json_body(field)?;
        let (status, body) = self.call(Method::POST, url, Some(body)).await?;
        decode(status, &body)
    }

    /// `GET /lists/{list_id}/webhooks`: every webhook of the audience.
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "GET /lists/{list_id}/webhooks", list.id = %list_id)
    )]
    pub async fn webhooks(&self, list_id: &str) -> Result<Vec<Webhook>> {
        let url = self.url(&["lists", list_segment(list_id)?, "webhooks"]);
        let (status, body) = self.call(Method::GET, url, None).await?;
        decode::<WireWebhooks>(status, &body).map(|w| w.webhooks)
    }

    /// `POST /lists/{list_id}/webhooks`. Mailchimp first sends a GET to the URL and refuses the
    /// webhook (`Invalid Resource`) unless it answers 200; a URL already registered on the
    /// audience is refused too.
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "POST /lists/{list_id}/webhooks", list.id = %list_id)
    )]
    pub async fn create_webhook(&self, list_id: &str, webhook: &NewWebhook) -> Result<Webhook> {
        let url = self.url(&["lists", list_segment(list_id)?, "webhooks"]);
        let body = json_body(webhook)?;
        let (status, body) = self.call(Method::POST, url, Some(body)).await?;
        decode(status, &body)
    }

    /// Every item of a paged list at `segments`, asking for pages of [`MAX_PAGE_SIZE`] and
    /// following `offset` while Mailchimp reports more (`split` gives a page's items and its
    /// `total_items`).
    pub(crate) async fn all_pages<W, T>(
        &self,
        segments: &[&str],
        split: impl Fn(W) -> (Vec<T>, Option<u64>),
    ) -> Result<Vec<T>>
    where
        W: serde::de::DeserializeOwned,
    {
        let mut items = Vec::new();
        loop {
            let mut url = self.url(segments);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("count", &MAX_PAGE_SIZE.to_string());
                if !items.is_empty() {
                    q.append_pair("offset", &items.len().to_string());
                }
            }
            let (status, body) = self.call(Method::GET, url, None).await?;
            let (page, total) = split(decode::<W>(status, &body)?);
            let got = page.len();
            items.extend(page);
            match total {
                Some(total) if got > 0 && (items.len() as u64) < total => continue,
                _ => return Ok(items),
            }
        }
    }

    /// The base URL with `segments` appended, each percent-encoded as one path segment.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            // `Client::new` refuses cannot-be-a-base URLs, so this branch is always taken.
            path.pop_if_empty().extend(segments);
        }
        url
    }

    pub(crate) fn member_url(&self, list_id: &str, email: &str, rest: &[&str]) -> Result<Url> {
        let hash = subscriber_hash(email);
        let mut segments = vec!["lists", list_segment(list_id)?, "members", &hash];
        segments.extend_from_slice(rest);
        Ok(self.url(&segments))
    }

    /// Sends one request and sorts the answer: `Ok` for 2xx (status and body), else the
    /// classified [`Error`].
    pub(crate) async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes)> {
        let started = Instant::now();
        tracing::debug!(http.method = %method, url.path = url.path(), "mailchimp request");
        let mut req = self
            .inner
            .http
            .request(method, url)
            .basic_auth(BASIC_USER, Some(self.inner.key.expose()))
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(body) = body {
            req = req
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        let response = req.send().await.map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        tracing::debug!(
            http.status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "mailchimp response"
        );
        check(status, &body)?;
        Ok((status.as_u16(), body))
    }
}

/// A batch subscribe validated and serialised by [`Client::prepare_batch_upsert`], ready for
/// [`Client::send_batch`]. It holds the members' addresses, so it has no `Debug`.
pub struct PreparedBatch {
    url: Url,
    body: Vec<u8>,
    members: usize,
}

impl PreparedBatch {
    /// Whether it carries no member (nothing to send).
    pub fn is_empty(&self) -> bool {
        self.members == 0
    }
}

/// The undecoded 2xx answer to a batch subscribe ([`Client::send_batch`]).
pub struct BatchAnswer {
    status: u16,
    body: Bytes,
}

impl BatchAnswer {
    /// Decodes the answer: which members were created, updated or refused.
    pub fn decode(self) -> Result<BatchResult> {
        let result: BatchResult = decode(self.status, &self.body)?;
        tracing::info!(
            batch.created = result.created.len(),
            batch.updated = result.updated.len(),
            batch.errors = result.errors.len(),
            "batch subscribe done"
        );
        Ok(result)
    }
}

/// An empty list id would turn `POST /lists/{id}` (batch subscribe) into `POST /lists`
/// (create an audience), so it is refused before anything is sent.
pub(crate) fn list_segment(list_id: &str) -> Result<&str> {
    if list_id.trim().is_empty() {
        return Err(Error::InvalidInput("the audience id is empty".to_owned()));
    }
    Ok(list_id)
}

/// An empty id segment would name another resource (the collection), so it is refused before
/// anything is sent.
pub(crate) fn id_segment<'a>(id: &'a str, what: &str) -> Result<&'a str> {
    if id.trim().is_empty() {
        return Err(Error::InvalidInput(format!("the {what} id is empty")));
    }
    Ok(id)
}

/// `archived` appears in responses only; Mailchimp refuses it as a written status.
fn writable(status: Option<Status>, field: &str) -> Result<()> {
    if status == Some(Status::Archived) {
        return Err(Error::InvalidInput(format!(
            "{field} cannot be \"archived\"; archive a member with archive_member"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_base_url_uses_the_keys_data_center() {
        let key = ApiKey::parse("0123456789abcdef0123456789abcdef-us21").unwrap();
        let client = Client::new(ClientConfig::new(key)).unwrap();
        assert_eq!(client.base_url(), "https://us21.api.mailchimp.com/3.0");
    }

    #[test]
    fn base_url_override_drops_a_trailing_slash_and_keeps_the_prefix() {
        let key = ApiKey::parse("k-us6").unwrap();
        let mut config = ClientConfig::new(key);
        config.base_url = Some("http://127.0.0.1:4100/3.0/".into());
        let client = Client::new(config).unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:4100/3.0");
        assert_eq!(
            client.url(&["lists", "a b"]).as_str(),
            "http://127.0.0.1:4100/3.0/lists/a%20b"
        );
    }

    #[test]
    fn bad_base_urls_and_zero_timeouts_are_refused() {
        for bad in ["not a url", "ftp://example.com/3.0", "http://x/3.0?q=1"] {
            let mut config = ClientConfig::new(ApiKey::parse("k-us6").unwrap());
            config.base_url = Some(bad.into());
            assert!(
                matches!(Client::new(config), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
        let mut config = ClientConfig::new(ApiKey::parse("k-us6").unwrap());
        config.request_timeout = Duration::ZERO;
        assert!(matches!(Client::new(config), Err(Error::InvalidInput(_))));
    }
}
