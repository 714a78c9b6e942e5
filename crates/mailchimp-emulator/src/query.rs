//! The query string of a request, and the checks of the parameters the endpoints read.

use crate::problem::ApiError;

/// Largest page (`count`) Mailchimp serves.
const MAX_PAGE: usize = 1000;

/// Decoded query string.
#[derive(Debug, Default)]
pub(crate) struct Query(pub Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Query(
            raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }

    /// `(count, offset)`: 10 and 0 when absent, `count` at most 1000.
    pub(crate) fn page(&self) -> Result<(usize, usize), ApiError> {
        let count = match self.get("count") {
            None => 10,
            Some(c) => c.parse::<usize>().map_err(|_| {
                ApiError::invalid_field("count", "Value must be a non-negative integer")
            })?,
        };
        if count > MAX_PAGE {
            return Err(ApiError::invalid_field(
                "count",
                format!("Value must be less than or equal to {MAX_PAGE}"),
            ));
        }
        let offset = match self.get("offset") {
            None => 0,
            Some(o) => o.parse::<usize>().map_err(|_| {
                ApiError::invalid_field("offset", "Value must be a non-negative integer")
            })?,
        };
        Ok((count, offset))
    }

    /// `since_last_changed` and friends, as Unix seconds: ISO 8601 with offset, without offset
    /// (UTC), or a date.
    pub(crate) fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.get(name).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
            return Ok(Some(t.timestamp()));
        }
        for fmt in ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"] {
            if let Ok(t) = chrono::DateTime::parse_from_str(raw, fmt) {
                return Ok(Some(t.timestamp()));
            }
        }
        for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(raw, fmt) {
                return Ok(Some(t.and_utc().timestamp()));
            }
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            if let Some(t) = d.and_hms_opt(0, 0, 0) {
                return Ok(Some(t.and_utc().timestamp()));
            }
        }
        Err(ApiError::invalid_field(
            name,
            "Please provide a date in ISO 8601 format, e.g. 2015-10-21T15:41:36+00:00",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_parameters_accept_the_usual_iso_forms() {
        let q = |v: &str| Query(vec![("t".into(), v.into())]);
        let want = Some(1_445_442_096);
        assert_eq!(q("2015-10-21T15:41:36+00:00").time("t").ok(), Some(want));
        assert_eq!(q("2015-10-21T15:41:36Z").time("t").ok(), Some(want));
        assert_eq!(q("2015-10-21T15:41:36").time("t").ok(), Some(want));
        assert!(q("yesterday").time("t").is_err());
    }
}
