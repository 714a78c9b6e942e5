//! Shared fixtures of the client's test binaries: a client pointed at a mock server and
//! Mailchimp-shaped response bodies (checked against the OpenAPI subset in `openapi.rs`).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod contract;

use std::time::Duration;

use mailchimp::{subscriber_hash, ApiKey, Client, ClientConfig, NewAudience, NewMergeField};
use serde_json::{json, Value};

/// A key of the documented shape; tests check it never leaks.
pub const KEY: &str = "0123456789abcdef0123456789abcdef-us6";
/// The part of [`KEY`] that must never appear anywhere.
pub const KEY_SECRET_PART: &str = "0123456789abcdef0123456789abcdef";
/// An audience id.
pub const LIST: &str = "a1b2c3d4e5";

/// A client for `base` (`http://host:port`), with the `/3.0` prefix and short timeouts.
pub fn client_for(base: &str) -> Client {
    client_with_timeout(base, Duration::from_secs(5))
}

/// A client for `base` with the given request timeout.
pub fn client_with_timeout(base: &str, request_timeout: Duration) -> Client {
    let mut config = ClientConfig::new(ApiKey::parse(KEY).unwrap());
    config.base_url = Some(format!("{base}/3.0"));
    config.connect_timeout = Duration::from_secs(2);
    config.request_timeout = request_timeout;
    Client::new(config).unwrap()
}

/// The audience the tests create: Acme's, named `name`, campaigns sent from `from_email`.
pub fn new_audience(name: &str, from_email: &str) -> NewAudience {
    NewAudience {
        name: name.into(),
        company: "Acme".into(),
        address1: "1 Main St".into(),
        city: "Atlanta".into(),
        state: "GA".into(),
        zip: "30308".into(),
        country: "US".into(),
        permission_reminder: "You bought from us.".into(),
        from_name: "Acme".into(),
        from_email: from_email.into(),
        language: "en".into(),
    }
}

/// The number merge field the tests create: `LTV`, "Lifetime value".
pub fn ltv_merge_field() -> NewMergeField {
    NewMergeField {
        tag: "LTV".into(),
        name: "Lifetime value".into(),
        r#type: "number".into(),
    }
}

/// A full member object as Mailchimp returns it (shape of a recorded response).
pub fn member_json(email: &str, status: &str) -> Value {
    json!({
        "id": subscriber_hash(email),
        "email_address": email,
        "unique_email_id": "7ee8f2229e",
        "contact_id": "93b835cc104791040b356ff76030415d",
        "full_name": "Ada Lovelace",
        "web_id": 400751728,
        "email_type": "html",
        "status": status,
        "unsubscribe_reason": "",
        "consents_to_one_to_one_messaging": true,
        "merge_fields": {"FNAME": "Ada", "LNAME": "Lovelace", "ADDRESS": "", "PHONE": "", "LTV": 15.5},
        "interests": {},
        "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
        "ip_signup": "",
        "timestamp_signup": "",
        "ip_opt": "45.228.145.112",
        "timestamp_opt": "2021-11-23T22:51:56+00:00",
        "member_rating": 2,
        "last_changed": "2021-11-23T22:51:59+00:00",
        "language": "",
        "vip": false,
        "email_client": "",
        "location": {"latitude": 0, "longitude": 0, "gmtoff": 0, "dstoff": 0, "country_code": "", "timezone": ""},
        "source": "API - Generic",
        "tags_count": 1,
        "tags": [{"id": 101, "name": "customer"}],
        "list_id": LIST,
        "_links": [{"rel": "self", "href": format!("https://us6.api.mailchimp.com/3.0/lists/{LIST}/members/{}", subscriber_hash(email)), "method": "GET"}]
    })
}

/// A list object.
pub fn list_json(id: &str, name: &str, member_count: u64) -> Value {
    json!({
        "id": id,
        "web_id": 123456,
        "name": name,
        "contact": {"company": "Acme", "address1": "675 Ponce De Leon Ave NE", "address2": "", "city": "Atlanta", "state": "GA", "zip": "30308", "country": "US", "phone": ""},
        "permission_reminder": "You are receiving this because you are an Acme customer.",
        "use_archive_bar": false,
        "campaign_defaults": {"from_name": "Acme", "from_email": "news@acme.example", "subject": "", "language": "en"},
        "notify_on_subscribe": "",
        "notify_on_unsubscribe": "",
        "date_created": "2024-01-01T00:00:00+00:00",
        "list_rating": 0,
        "email_type_option": false,
        "subscribe_url_short": "http://eepurl.com/abc",
        "subscribe_url_long": "https://acme.us6.list-manage.com/subscribe?u=1&id=2",
        "beamer_address": "us6-abc@inbound.mailchimp.com",
        "visibility": "prv",
        "double_optin": false,
        "has_welcome": false,
        "marketing_permissions": false,
        "modules": [],
        "stats": {"member_count": member_count, "unsubscribe_count": 0, "cleaned_count": 0, "member_count_since_send": member_count, "unsubscribe_count_since_send": 0, "cleaned_count_since_send": 0, "campaign_count": 0, "merge_field_count": 4, "avg_sub_rate": 0, "avg_unsub_rate": 0, "target_sub_rate": 0, "open_rate": 0, "click_rate": 0},
        "_links": []
    })
}

/// A merge field object.
pub fn merge_field_json(merge_id: u64, tag: &str, name: &str, kind: &str, required: bool) -> Value {
    json!({
        "merge_id": merge_id, "tag": tag, "name": name, "type": kind, "required": required,
        "default_value": "", "public": true, "display_order": merge_id + 1,
        "options": {"size": 25}, "help_text": "", "list_id": LIST,
        "_links": []
    })
}

/// An interest category object.
pub fn category_json(id: &str, title: &str, kind: &str) -> Value {
    json!({
        "list_id": LIST, "id": id, "title": title, "display_order": 0, "type": kind,
        "_links": [{"rel": "self", "href": format!("https://us6.api.mailchimp.com/3.0/lists/{LIST}/interest-categories/{id}"), "method": "GET"}]
    })
}

/// An interest object (`subscriber_count` is a string in Mailchimp's schema).
pub fn interest_json(id: &str, category_id: &str, name: &str) -> Value {
    json!({
        "category_id": category_id, "list_id": LIST, "id": id, "name": name,
        "subscriber_count": "3", "display_order": 0, "_links": []
    })
}

/// A problem document.
pub fn problem_json(status: u16, title: &str, detail: &str) -> Value {
    json!({
        "type": "https://mailchimp.com/developer/marketing/docs/errors/",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": "14c40d88-9b23-1adf-9d0b-bb2996468021"
    })
}
