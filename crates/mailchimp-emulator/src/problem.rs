//! Mailchimp's error document (`application/problem+json`) and the exact texts the emulator sends.
//!
//! Every refusal the emulator can produce is built here, so the wording lives in one place and
//! matches docs/mailchimp.md.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// The `type` Mailchimp puts in its problem documents today.
pub(crate) const ERROR_TYPE: &str = "https://mailchimp.com/developer/marketing/docs/errors/";

/// The detail of a schema or field validation failure; the specifics are in `errors[]`.
pub(crate) const VALIDATION_DETAIL: &str =
    "The resource submitted could not be validated. For field-specific details, see the 'errors' array.";

/// One entry of a problem document's `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A refusal: the status, title and detail of a Mailchimp problem document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Mailchimp leaves `type` out of a few documents (observed for `Member Exists`).
    pub with_type: bool,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: u16, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            with_type: true,
            allow: None,
        }
    }

    pub(crate) fn not_found() -> Self {
        Self::new(
            404,
            "Resource Not Found",
            "The requested resource could not be found.",
        )
    }

    /// `400 Invalid Resource` with field errors and the generic validation detail.
    pub(crate) fn invalid(errors: Vec<FieldError>) -> Self {
        let mut e = Self::new(400, "Invalid Resource", VALIDATION_DETAIL);
        e.errors = errors;
        e
    }

    /// `400 Invalid Resource` with one field error.
    pub(crate) fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, message)])
    }

    /// `400 Invalid Resource` whose detail says what is wrong (no `errors[]`).
    pub(crate) fn invalid_detail(detail: impl Into<String>) -> Self {
        Self::new(400, "Invalid Resource", detail)
    }

    pub(crate) fn required(field: &str) -> Self {
        Self::invalid_field("", format!("Required fields were not provided: {field}"))
    }

    pub(crate) fn invalid_email() -> Self {
        Self::invalid_detail("Please provide a valid email address.")
    }

    pub(crate) fn fake_email(email: &str) -> Self {
        Self::invalid_detail(format!(
            "{email} looks fake or invalid, please enter a real email address."
        ))
    }

    pub(crate) fn member_exists(email: &str) -> Self {
        let mut e = Self::new(
            400,
            "Member Exists",
            format!("{email} is already a list member. Use PUT to insert or update list members."),
        );
        e.with_type = false;
        e
    }

    pub(crate) fn compliance_state(email: &str) -> Self {
        Self::new(
            400,
            "Member In Compliance State",
            format!(
                "{email} is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed."
            ),
        )
    }

    pub(crate) fn forgotten(email: &str) -> Self {
        Self::new(
            400,
            "Forgotten Email Not Subscribed",
            format!(
                "{email} was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list."
            ),
        )
    }

    /// A rename of a member that is not `subscribed`.
    pub(crate) fn rename_not_subscribed(status: &str) -> Self {
        Self::invalid_field(
            "email address",
            format!(
                "This member's status is \"{status}.\" You can only update email addresses for members with a status of \"subscribed.\""
            ),
        )
    }

    /// A rename onto an address the list holds (`label`: the status as the web app shows it).
    pub(crate) fn address_taken(email: &str, label: &str) -> Self {
        Self::invalid_field(
            "email address",
            format!("\"{email}\" is already in this list with a status of \"{label}\"."),
        )
    }

    pub(crate) fn merge_fields_invalid(errors: Vec<FieldError>) -> Self {
        let mut e = Self::invalid_detail("Your merge fields were invalid.");
        e.errors = errors;
        e
    }

    pub(crate) fn cannot_archive() -> Self {
        let mut e = Self::new(
            405,
            "Method Not Allowed",
            "This list member cannot be removed. Can not archive a contact that is bounced, pending or archived",
        );
        e.allow = Some("GET, PUT");
        e
    }

    pub(crate) fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::new(
            405,
            "Method Not Allowed",
            "The requested method and resource are not compatible. See the Allow header for this resource's available methods.",
        );
        e.allow = Some(allow);
        e
    }

    pub(crate) fn json_parse() -> Self {
        Self::new(
            400,
            "JSON Parse Error",
            "We encountered an unspecified JSON parsing error.",
        )
    }

    pub(crate) fn api_key_missing() -> Self {
        Self::new(
            401,
            "API Key Missing",
            "Your request did not include an API key.",
        )
    }

    pub(crate) fn api_key_invalid() -> Self {
        Self::new(
            401,
            "API Key Invalid",
            "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
        )
    }

    pub(crate) fn too_many_requests(limit: usize) -> Self {
        Self::new(
            429,
            "Too Many Requests",
            format!("You have exceeded the limit of {limit} simultaneous connections."),
        )
    }

    pub(crate) fn service_unavailable() -> Self {
        Self::new(
            503,
            "Service Unavailable",
            "The server is temporarily unable to handle the request. Please try again later.",
        )
    }

    /// A member write naming an interest the audience does not have: the observed detail (also
    /// a batch item's `error`), and the field in `errors[]` as Mailchimp's validation failures
    /// name it (the recorded answers show only the detail; a client reading either finds it).
    pub(crate) fn unknown_interest(id: &str) -> Self {
        let detail = format!("Invalid interest ID: '{id}'.");
        let mut e = Self::invalid_detail(detail.clone());
        e.errors = vec![FieldError::new("interests", detail)];
        e
    }

    /// A member write naming a marketing permission the audience does not have (wording ours,
    /// on the pattern of the interest one).
    pub(crate) fn unknown_permission(id: &str) -> Self {
        let detail = format!("Invalid marketing permission ID: '{id}'.");
        let mut e = Self::invalid_detail(detail.clone());
        e.errors = vec![FieldError::new("marketing_permissions", detail)];
        e
    }

    /// An interest name taken in its category, or a category title taken in the audience
    /// (observed for interests; the same text for categories is our choice).
    pub(crate) fn already_on_list(name: &str) -> Self {
        Self::invalid_detail(format!(
            "Cannot add \"{name}\" because it already exists on the list."
        ))
    }

    /// "A url may only exist on a list once" (wording ours).
    pub(crate) fn webhook_url_taken() -> Self {
        Self::invalid_field(
            "url",
            "This URL is already registered as a webhook on this list.",
        )
    }

    /// The validator's GET did not get a 200 (wording ours).
    pub(crate) fn webhook_validation_failed(what: &str) -> Self {
        Self::invalid_field(
            "url",
            format!("The webhook URL could not be validated: the validator's GET {what}; it must answer 200."),
        )
    }

    /// The problem document with `instance` set to the request id.
    pub(crate) fn to_json(&self, request_id: &str) -> Vec<u8> {
        serde_json::to_vec(&ProblemJson {
            error: self,
            instance: request_id,
        })
        .unwrap_or_default()
    }
}

struct ProblemJson<'a> {
    error: &'a ApiError,
    instance: &'a str,
}

impl Serialize for ProblemJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.error;
        let mut map = s.serialize_map(None)?;
        if e.with_type {
            map.serialize_entry("type", ERROR_TYPE)?;
        }
        map.serialize_entry("title", e.title)?;
        map.serialize_entry("status", &e.status)?;
        map.serialize_entry("detail", &e.detail)?;
        map.serialize_entry("instance", self.instance)?;
        if !e.errors.is_empty() {
            map.serialize_entry("errors", &e.errors)?;
        }
        map.end()
    }
}

/// A JSON type name the way Mailchimp's schema validator words it.
pub(crate) fn json_type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "NULL",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(n) if n.is_f64() => "number",
        serde_json::Value::Number(_) => "integer",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// `{field, "Schema describes <want>, <found> found instead"}`.
pub(crate) fn wrong_type(field: &str, want: &str, found: &serde_json::Value) -> ApiError {
    ApiError::invalid_field(
        field,
        format!(
            "Schema describes {want}, {} found instead",
            json_type_name(found)
        ),
    )
}
