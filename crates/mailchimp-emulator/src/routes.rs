//! The paths the emulator serves: the Marketing API's resources under `/3.0`.

use crate::email::path_key;

/// The path's segments, percent-decoded (empty ones skipped).
pub(crate) fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

/// `%XX` escapes decoded; `+` stays (a path is not a form).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The Marketing API resources the emulator serves.
pub(crate) enum Route {
    Root,
    Ping,
    Lists,
    List(String),
    Members(String),
    Member(String, String),
    MemberTags(String, String),
    DeletePermanent(String, String),
    MergeFields(String),
    MergeField(String, String),
    Webhooks(String),
    Webhook(String, String),
    TagSearch(String),
    SearchMembers,
    InterestCategories(String),
    InterestCategory(String, String),
    Interests(String, String),
    Interest(String, String, String),
}

impl Route {
    /// The resource a request path names (`/3.0/…`); `None` for anything the emulator does
    /// not serve.
    pub(crate) fn of(path: &str) -> Option<Route> {
        let rest = path
            .strip_prefix("/3.0")
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))?;
        let segs = segments(rest);
        let seg = |i: usize| segs[i].clone();
        let member = |i: usize| path_key(&segs[i]);
        Some(match segs.len() {
            0 => Route::Root,
            1 if segs[0] == "ping" => Route::Ping,
            1 if segs[0] == "lists" => Route::Lists,
            1 if segs[0] == "search-members" => Route::SearchMembers,
            2 if segs[0] == "lists" => Route::List(seg(1)),
            3 if segs[0] == "lists" && segs[2] == "members" => Route::Members(seg(1)),
            3 if segs[0] == "lists" && segs[2] == "merge-fields" => Route::MergeFields(seg(1)),
            4 if segs[0] == "lists" && segs[2] == "members" => Route::Member(seg(1), member(3)),
            4 if segs[0] == "lists" && segs[2] == "merge-fields" => {
                Route::MergeField(seg(1), seg(3))
            }
            3 if segs[0] == "lists" && segs[2] == "webhooks" => Route::Webhooks(seg(1)),
            4 if segs[0] == "lists" && segs[2] == "webhooks" => Route::Webhook(seg(1), seg(3)),
            5 if segs[0] == "lists" && segs[2] == "members" && segs[4] == "tags" => {
                Route::MemberTags(seg(1), member(3))
            }
            6 if segs[0] == "lists"
                && segs[2] == "members"
                && segs[4] == "actions"
                && segs[5] == "delete-permanent" =>
            {
                Route::DeletePermanent(seg(1), member(3))
            }
            3 if segs[0] == "lists" && segs[2] == "tag-search" => Route::TagSearch(seg(1)),
            3 if segs[0] == "lists" && segs[2] == "interest-categories" => {
                Route::InterestCategories(seg(1))
            }
            4 if segs[0] == "lists" && segs[2] == "interest-categories" => {
                Route::InterestCategory(seg(1), seg(3))
            }
            5 if segs[0] == "lists"
                && segs[2] == "interest-categories"
                && segs[4] == "interests" =>
            {
                Route::Interests(seg(1), seg(3))
            }
            6 if segs[0] == "lists"
                && segs[2] == "interest-categories"
                && segs[4] == "interests" =>
            {
                Route::Interest(seg(1), seg(3), seg(5))
            }
            _ => return None,
        })
    }

    /// The methods the resource takes, for the `Allow` header of a 405.
    pub(crate) fn allow(&self) -> &'static str {
        match self {
            Route::Root | Route::Ping | Route::TagSearch(_) | Route::SearchMembers => "GET",
            Route::Lists
            | Route::Members(_)
            | Route::MergeFields(_)
            | Route::MemberTags(..)
            | Route::Webhooks(_)
            | Route::InterestCategories(_)
            | Route::Interests(..) => "GET, POST",
            Route::List(_) => "GET, POST, PATCH, DELETE",
            Route::Member(..) => "GET, PUT, PATCH, DELETE",
            Route::DeletePermanent(..) => "POST",
            Route::MergeField(..)
            | Route::Webhook(..)
            | Route::InterestCategory(..)
            | Route::Interest(..) => "GET, PATCH, DELETE",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_in_paths_are_decoded_but_plus_stays() {
        assert_eq!(percent_decode("a%40b.co"), "a@b.co");
        assert_eq!(percent_decode("a+b%2"), "a+b%2");
    }
}
