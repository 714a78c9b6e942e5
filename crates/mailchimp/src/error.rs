//! The crate's one error type and the classification of Mailchimp's problem documents.

use std::fmt;

use serde::Deserialize;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to Mailchimp.
///
/// `Display` never contains the API key, and it replaces email addresses found in
/// Mailchimp's texts by `<email>`, so `%err` is safe in a log line. `Debug` keeps
/// Mailchimp's texts as they came (they may name an address; the key is never there).
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// The request never got an HTTP answer: DNS, connect, TLS, timeout, or the connection
    /// was closed before the response (the write may or may not have been applied).
    #[error("transport error talking to Mailchimp{}: {message}", transport_note(*.timeout, *.connect))]
    Transport {
        /// What failed, with its cause chain (may contain the request URL, never the key).
        message: String,
        /// The request or connect timeout fired.
        timeout: bool,
        /// The connection could not be established (nothing was sent).
        connect: bool,
    },

    /// Mailchimp refused because of load: any 429, or a 403 without a JSON body
    /// ("at exceptionally high volumes, you may receive an HTTP 429 or 403 without a JSON body").
    #[error("throttled by Mailchimp (HTTP {status})")]
    Throttled {
        /// The HTTP status (429 or 403).
        status: u16,
    },

    /// A 5xx answer.
    #[error("Mailchimp server error (HTTP {status}): {}", redact_emails(detail))]
    Server {
        /// The HTTP status.
        status: u16,
        /// The problem document's `detail`, or the start of the body.
        detail: String,
    },

    /// A 4xx answer with a problem document: Mailchimp refused this request.
    #[error("{0}")]
    Api(Problem),

    /// A body that is not the JSON the endpoint documents (for example an HTML error page
    /// from a proxy, or a truncated 200).
    #[error("unexpected response body from Mailchimp (HTTP {status}): {message}")]
    Decode {
        /// The HTTP status of the response.
        status: u16,
        /// Why the body could not be read.
        message: String,
    },

    /// The caller asked for something this client refuses before sending (a batch over 500
    /// members, a page over 1000, a malformed key or base URL, …).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

fn transport_note(timeout: bool, connect: bool) -> &'static str {
    match (timeout, connect) {
        (true, true) => " (connect timeout)",
        (true, false) => " (timeout)",
        (false, true) => " (connect)",
        (false, false) => "",
    }
}

impl Error {
    /// Whether the same request may succeed later: transport failures, throttling,
    /// server errors and an unreadable 2xx body. A problem document (4xx) is an answer
    /// about the data and will not change by retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::Throttled { .. } | Error::Server { .. } => true,
            Error::Decode { status, .. } => (200..300).contains(status),
            Error::Api(_) | Error::InvalidInput(_) => false,
        }
    }

    /// Whether Mailchimp asked us to slow down (429, or a bare 403).
    pub fn is_throttled(&self) -> bool {
        matches!(self, Error::Throttled { .. })
    }

    /// The problem document of a 4xx refusal.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Api(problem) => Some(problem),
            _ => None,
        }
    }

    /// The classified kind of a 4xx refusal, if this is one.
    pub fn problem_kind(&self) -> Option<ProblemKind> {
        self.problem().map(|p| p.kind)
    }
}

/// What a refusal means, decided from the problem `title` (and, for `Invalid Resource`,
/// from `detail` and `errors[]`), or for a batch item from its `error_code` and text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// `Member Exists`: the address is already in the list (POST, or PUT to a hash that is
    /// not the address's own), or batch `ERROR_CONTACT_EXISTS`.
    MemberExists,
    /// `Member In Compliance State`: the contact unsubscribed, bounced or is under review and
    /// cannot be set to `subscribed` by the API (setting `pending` is the documented way back).
    ComplianceState,
    /// `Forgotten Email Not Subscribed`: the address was permanently deleted and can never be
    /// re-added through the API.
    ForgottenEmail,
    /// `Invalid Resource` about the address itself: "Please provide a valid email address."
    /// or "… looks fake or invalid, please enter a real email address."
    InvalidEmail,
    /// `Invalid Resource` about merge fields: "Your merge fields were invalid." or a field
    /// error naming a merge tag.
    MergeFieldsInvalid,
    /// Any other `Invalid Resource`, e.g. a rename onto a taken address or of a member
    /// that is not subscribed (`errors[].field == "email address"`).
    InvalidResource,
    /// `Resource Not Found` (unknown list or member).
    NotFound,
    /// `API Key Invalid` (wrong, disabled, or wrong data centre).
    ApiKeyInvalid,
    /// `API Key Missing`.
    ApiKeyMissing,
    /// `Method Not Allowed`, e.g. archiving a pending, cleaned or archived contact.
    MethodNotAllowed,
    /// Anything else.
    Other,
}

impl ProblemKind {
    /// Whether the refusal is about the data itself, so sending the same request again cannot
    /// succeed until the data changes or a human decides: the address is invalid, fake,
    /// forgotten or in a compliance state, a merge value is refused, or the address is taken.
    /// Key, audience and method trouble is not permanent: it is not any one member's fault.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            ProblemKind::MemberExists
                | ProblemKind::ComplianceState
                | ProblemKind::ForgottenEmail
                | ProblemKind::InvalidEmail
                | ProblemKind::MergeFieldsInvalid
                | ProblemKind::InvalidResource
        )
    }
}

/// One entry of a problem document's `errors[]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FieldError {
    /// The field, e.g. `email address` or a merge tag like `LTV`.
    #[serde(default)]
    pub field: String,
    /// What is wrong with it.
    #[serde(default)]
    pub message: String,
}

/// A Mailchimp problem document (`application/problem+json`), classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The HTTP status of the response.
    pub status: u16,
    /// What the refusal means.
    pub kind: ProblemKind,
    /// `title`, e.g. `Member Exists`.
    pub title: String,
    /// `detail`, Mailchimp's human-readable explanation (may contain the address).
    pub detail: String,
    /// `instance`, the request id to quote to Mailchimp support.
    pub instance: Option<String>,
    /// `errors[]`, field-level details of an `Invalid Resource`.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailchimp refused the request (HTTP {}", self.status)?;
        if !self.title.is_empty() {
            write!(f, " {}", self.title)?;
        }
        f.write_str(")")?;
        if !self.detail.is_empty() {
            write!(f, ": {}", redact_emails(&self.detail))?;
        }
        for e in &self.errors {
            write!(f, " [{}: {}]", e.field, redact_emails(&e.message))?;
        }
        Ok(())
    }
}

/// The problem document as sent; every field optional (`type` is sometimes absent).
#[derive(Deserialize)]
pub(crate) struct WireProblem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    instance: Option<String>,
    #[serde(default)]
    errors: Option<Vec<FieldError>>,
}

impl WireProblem {
    /// Whether this JSON object looks like a problem document at all.
    pub(crate) fn is_problem(&self) -> bool {
        self.title.is_some() || self.detail.is_some()
    }

    pub(crate) fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    pub(crate) fn into_problem(self, status: u16) -> Problem {
        let title = self.title.unwrap_or_default();
        let detail = self.detail.unwrap_or_default();
        let errors = self.errors.unwrap_or_default();
        let kind = classify(status, &title, &detail, &errors);
        Problem {
            status,
            kind,
            title,
            detail,
            instance: self.instance.filter(|s| !s.is_empty()),
            errors,
        }
    }
}

fn classify(status: u16, title: &str, detail: &str, errors: &[FieldError]) -> ProblemKind {
    let title = title.trim().to_ascii_lowercase();
    match title.as_str() {
        "member exists" => ProblemKind::MemberExists,
        "member in compliance state" => ProblemKind::ComplianceState,
        "forgotten email not subscribed" => ProblemKind::ForgottenEmail,
        "invalid resource" => classify_invalid_resource(detail, errors),
        "resource not found" => ProblemKind::NotFound,
        "api key invalid" => ProblemKind::ApiKeyInvalid,
        "api key missing" => ProblemKind::ApiKeyMissing,
        "method not allowed" => ProblemKind::MethodNotAllowed,
        _ => match status {
            404 => ProblemKind::NotFound,
            405 => ProblemKind::MethodNotAllowed,
            _ => ProblemKind::Other,
        },
    }
}

fn classify_invalid_resource(detail: &str, errors: &[FieldError]) -> ProblemKind {
    let texts = || std::iter::once(detail).chain(errors.iter().map(|e| e.message.as_str()));
    if texts().any(is_invalid_email_text) {
        return ProblemKind::InvalidEmail;
    }
    if contains_ci(detail, "merge fields were invalid")
        || errors.iter().any(|e| is_merge_tag(&e.field))
    {
        return ProblemKind::MergeFieldsInvalid;
    }
    ProblemKind::InvalidResource
}

/// Mailchimp's two texts for an address it will not take.
pub(crate) fn is_invalid_email_text(text: &str) -> bool {
    contains_ci(text, "looks fake or invalid") || contains_ci(text, "valid email address")
}

/// Merge tags are upper-case `A-Z0-9_` (at most 10 characters); other field names Mailchimp
/// reports (`email address`, `status`, …) are lower-case.
fn is_merge_tag(field: &str) -> bool {
    !field.is_empty()
        && field.len() <= 10
        && field
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

pub(crate) fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(needle)
}

/// Replaces every whitespace-separated word containing `@` by `<email>` (keeping quotes
/// and punctuation around it), so Mailchimp's texts can be logged without addresses.
pub(crate) fn redact_emails(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if word.contains('@') {
            const PUNCT: &[char] = &['"', '\'', '(', ')', '<', '>', '[', ']', ',', '.', ';', ':'];
            let core = word.trim_matches(PUNCT);
            let start = word.len() - word.trim_start_matches(PUNCT).len();
            out.push_str(&word[..start]);
            out.push_str("<email>");
            out.push_str(&word[start + core.len()..]);
        } else {
            out.push_str(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(status: u16, json: &str) -> Problem {
        serde_json::from_str::<WireProblem>(json)
            .unwrap()
            .into_problem(status)
    }

    #[test]
    fn every_known_title_gets_its_kind() {
        let cases = [
            ("Member Exists", ProblemKind::MemberExists),
            ("Member In Compliance State", ProblemKind::ComplianceState),
            (
                "Forgotten Email Not Subscribed",
                ProblemKind::ForgottenEmail,
            ),
            ("Resource Not Found", ProblemKind::NotFound),
            ("API Key Invalid", ProblemKind::ApiKeyInvalid),
            ("API Key Missing", ProblemKind::ApiKeyMissing),
            ("Method Not Allowed", ProblemKind::MethodNotAllowed),
            ("Invalid Resource", ProblemKind::InvalidResource),
            ("Something New", ProblemKind::Other),
        ];
        for (title, kind) in cases {
            let p = problem(400, &format!(r#"{{"title":"{title}","detail":"x"}}"#));
            assert_eq!(p.kind, kind, "{title}");
        }
    }

    #[test]
    fn invalid_resource_is_split_by_detail_and_errors() {
        let fake = problem(
            400,
            r#"{"title":"Invalid Resource","detail":"foo@example.com looks fake or invalid, please enter a real email address."}"#,
        );
        assert_eq!(fake.kind, ProblemKind::InvalidEmail);
        let invalid = problem(
            400,
            r#"{"title":"Invalid Resource","detail":"Please provide a valid email address."}"#,
        );
        assert_eq!(invalid.kind, ProblemKind::InvalidEmail);
        let merge = problem(
            400,
            r#"{"title":"Invalid Resource","detail":"Your merge fields were invalid.","errors":[{"field":"LTV","message":"Please enter a number"}]}"#,
        );
        assert_eq!(merge.kind, ProblemKind::MergeFieldsInvalid);
        let merge_by_field = problem(
            400,
            r#"{"title":"Invalid Resource","detail":"The resource submitted could not be validated.","errors":[{"field":"MMERGE6","message":"Please enter a value"}]}"#,
        );
        assert_eq!(merge_by_field.kind, ProblemKind::MergeFieldsInvalid);
        let rename = problem(
            400,
            r#"{"title":"Invalid Resource","detail":"The resource submitted could not be validated. For field-specific details, see the 'errors' array.","errors":[{"field":"email address","message":"\"new@example.com\" is already in this list with a status of \"Non-Subscribed\"."}]}"#,
        );
        assert_eq!(rename.kind, ProblemKind::InvalidResource);
        assert_eq!(rename.errors[0].field, "email address");
    }

    #[test]
    fn refusals_about_the_data_are_permanent_and_the_rest_not() {
        let permanent = [
            ProblemKind::MemberExists,
            ProblemKind::ComplianceState,
            ProblemKind::ForgottenEmail,
            ProblemKind::InvalidEmail,
            ProblemKind::MergeFieldsInvalid,
            ProblemKind::InvalidResource,
        ];
        for kind in permanent {
            assert!(kind.is_permanent(), "{kind:?}");
        }
        for kind in [
            ProblemKind::NotFound,
            ProblemKind::ApiKeyInvalid,
            ProblemKind::ApiKeyMissing,
            ProblemKind::MethodNotAllowed,
            ProblemKind::Other,
        ] {
            assert!(!kind.is_permanent(), "{kind:?}");
        }
    }

    #[test]
    fn unknown_titles_fall_back_to_the_status() {
        assert_eq!(
            problem(404, r#"{"detail":"gone"}"#).kind,
            ProblemKind::NotFound
        );
        assert_eq!(
            problem(405, r#"{"title":"Nope"}"#).kind,
            ProblemKind::MethodNotAllowed
        );
    }

    #[test]
    fn redaction_removes_addresses_and_keeps_the_rest() {
        assert_eq!(
            redact_emails("a.b+c@example.com is already a list member."),
            "<email> is already a list member."
        );
        assert_eq!(
            redact_emails("\"new@example.com\" is already in this list"),
            "\"<email>\" is already in this list"
        );
        assert_eq!(redact_emails("no address here"), "no address here");
        assert_eq!(redact_emails("@"), "<email>");
    }

    #[test]
    fn display_of_a_problem_names_title_and_fields_but_no_address() {
        let p = problem(
            400,
            r#"{"title":"Member Exists","detail":"ada@example.com is already a list member. Use PUT to insert or update list members.","errors":[{"field":"email address","message":"ada@example.com taken"}]}"#,
        );
        let text = Error::Api(p).to_string();
        assert!(text.contains("Member Exists"), "{text}");
        assert!(text.contains("email address"), "{text}");
        assert!(!text.contains("ada@example.com"), "{text}");
    }

    #[test]
    fn retryability_follows_the_error_class() {
        let transport = Error::Transport {
            message: "x".into(),
            timeout: true,
            connect: false,
        };
        assert!(transport.is_retryable());
        assert!(Error::Throttled { status: 429 }.is_retryable());
        assert!(Error::Throttled { status: 403 }.is_throttled());
        assert!(Error::Server {
            status: 503,
            detail: String::new()
        }
        .is_retryable());
        assert!(Error::Decode {
            status: 200,
            message: String::new()
        }
        .is_retryable());
        assert!(!Error::Decode {
            status: 400,
            message: String::new()
        }
        .is_retryable());
        assert!(!Error::Api(problem(400, r#"{"title":"Member Exists"}"#)).is_retryable());
        assert!(!Error::InvalidInput(String::new()).is_retryable());
    }
}
