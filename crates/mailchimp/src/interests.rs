//! Interest categories, interests and the marketing permissions of GDPR audiences: their
//! types and the [`Client`] calls that read and create them. Members' own interests and
//! permission choices travel in the member bodies (`types`).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::{id_segment, list_segment};
use crate::types::null_as_default;
use crate::wire::{decode, json_body};
use crate::{Client, MarketingPermissionChange, Member, MemberPermission, Result};

/// A marketing permission of a GDPR audience.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketingPermission {
    /// The id members' `marketing_permissions` name it by.
    pub id: String,
    /// What the contact consents to, e.g. `Email`, `Direct Mail`.
    pub text: String,
}

/// How an interest category is shown on signup forms.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum InterestCategoryType {
    /// Any number of its interests.
    Checkboxes,
    /// One interest, from a drop-down.
    Dropdown,
    /// One interest, from radio buttons.
    Radio,
    /// Not shown to contacts; set through the API or the web app only.
    Hidden,
}

/// An interest category ("group" in the web app) of an audience.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct InterestCategory {
    /// Mailchimp's id of the category.
    pub id: String,
    /// Its title, unique in the audience.
    #[serde(default)]
    pub title: String,
    /// How it is shown (`type` on the wire).
    #[serde(rename = "type")]
    pub kind: InterestCategoryType,
}

/// What `POST /lists/{id}/interest-categories` needs.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct NewInterestCategory {
    /// The title; Mailchimp refuses one the audience already has.
    pub title: String,
    /// How it is shown (`type` on the wire).
    #[serde(rename = "type")]
    pub kind: InterestCategoryType,
}

/// An interest ("group name" in the web app) of a category.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Interest {
    /// Mailchimp's id; members' `interests` are keyed by it.
    pub id: String,
    /// Its name, unique in the category.
    #[serde(default)]
    pub name: String,
    /// The category it belongs to.
    #[serde(default)]
    pub category_id: String,
}

#[derive(Serialize)]
pub(crate) struct WireNewInterest<'a> {
    pub(crate) name: &'a str,
}

#[derive(Deserialize)]
pub(crate) struct WireCategories {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) categories: Vec<InterestCategory>,
    #[serde(default)]
    pub(crate) total_items: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct WireInterests {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) interests: Vec<Interest>,
    #[serde(default)]
    pub(crate) total_items: Option<u64>,
}

/// `GET …/members?count=1&fields=members.marketing_permissions`: one member's permissions.
#[derive(Deserialize)]
pub(crate) struct WirePermissionsProbe {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) members: Vec<WirePermissionsOf>,
}

#[derive(Deserialize)]
pub(crate) struct WirePermissionsOf {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) marketing_permissions: Vec<MemberPermission>,
}

#[derive(Serialize)]
pub(crate) struct WirePermissionChanges<'a> {
    pub(crate) marketing_permissions: &'a [MarketingPermissionChange],
}

impl Client {
    /// `GET /lists/{list_id}/interest-categories?count=1000`: every interest category of the
    /// audience (pages with `offset` if Mailchimp reports more than one page).
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "GET /lists/{list_id}/interest-categories", list.id = %list_id)
    )]
    pub async fn interest_categories(&self, list_id: &str) -> Result<Vec<InterestCategory>> {
        let segments = ["lists", list_segment(list_id)?, "interest-categories"];
        self.all_pages(&segments, |w: WireCategories| (w.categories, w.total_items))
            .await
    }

    /// `POST /lists/{list_id}/interest-categories`. A title the audience already has is refused
    /// (`Invalid Resource`).
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "POST /lists/{list_id}/interest-categories", list.id = %list_id)
    )]
    pub async fn create_interest_category(
        &self,
        list_id: &str,
        category: &NewInterestCategory,
    ) -> Result<InterestCategory> {
        let url = self.url(&["lists", list_segment(list_id)?, "interest-categories"]);
        let body = json_body(category)?;
        let (status, body) = self.call(Method::POST, url, Some(body)).await?;
        decode(status, &body)
    }

    /// `GET /lists/{list_id}/interest-categories/{category_id}/interests?count=1000`: every
    /// interest of the category (pages with `offset` if Mailchimp reports more than one page).
    #[tracing::instrument(
        skip_all,
        fields(
            endpoint = "GET /lists/{list_id}/interest-categories/{interest_category_id}/interests",
            list.id = %list_id
        )
    )]
    pub async fn interests(&self, list_id: &str, category_id: &str) -> Result<Vec<Interest>> {
        let segments = [
            "lists",
            list_segment(list_id)?,
            "interest-categories",
            id_segment(category_id, "interest category")?,
            "interests",
        ];
        self.all_pages(&segments, |w: WireInterests| (w.interests, w.total_items))
            .await
    }

    /// `POST /lists/{list_id}/interest-categories/{category_id}/interests` with `{"name": …}`.
    /// A name the category already has is refused (`Invalid Resource`).
    #[tracing::instrument(
        skip_all,
        fields(
            endpoint = "POST /lists/{list_id}/interest-categories/{interest_category_id}/interests",
            list.id = %list_id
        )
    )]
    pub async fn create_interest(
        &self,
        list_id: &str,
        category_id: &str,
        name: &str,
    ) -> Result<Interest> {
        let url = self.url(&[
            "lists",
            list_segment(list_id)?,
            "interest-categories",
            id_segment(category_id, "interest category")?,
            "interests",
        ]);
        let body = json_body(&WireNewInterest { name })?;
        let (status, body) = self.call(Method::POST, url, Some(body)).await?;
        decode(status, &body)
    }

    /// The marketing permissions of a GDPR audience (their ids and texts).
    ///
    /// Mailchimp has no endpoint that lists an audience's permissions; every member of a GDPR
    /// audience carries all of them, so this reads one member:
    /// `GET /lists/{list_id}/members?count=1&fields=members.marketing_permissions`. An audience
    /// without (unarchived) members yet, or one that is not a GDPR audience, answers an empty
    /// `Vec`: check [`crate::Audience::marketing_permissions`] to tell the two apart.
    #[tracing::instrument(
        skip_all,
        fields(endpoint = "GET /lists/{list_id}/members", list.id = %list_id)
    )]
    pub async fn marketing_permissions(&self, list_id: &str) -> Result<Vec<MarketingPermission>> {
        let mut url = self.url(&["lists", list_segment(list_id)?, "members"]);
        url.query_pairs_mut()
            .append_pair("count", "1")
            .append_pair("fields", "members.marketing_permissions");
        let (status, body) = self.call(Method::GET, url, None).await?;
        let probe: WirePermissionsProbe = decode(status, &body)?;
        Ok(probe
            .members
            .into_iter()
            .next()
            .map(|m| {
                m.marketing_permissions
                    .into_iter()
                    .map(|p| MarketingPermission {
                        id: p.id,
                        text: p.text,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `PATCH /lists/{list_id}/members/{hash(email)}` with `{"marketing_permissions": […]}`:
    /// turns the given permissions on or off (the others stay). An id the audience does not
    /// have is refused (`Invalid Resource`); a missing member is `404`.
    #[tracing::instrument(
        skip_all,
        fields(
            endpoint = "PATCH /lists/{list_id}/members/{subscriber_hash}",
            list.id = %list_id,
            permissions.count = changes.len()
        )
    )]
    pub async fn set_member_permissions(
        &self,
        list_id: &str,
        email: &str,
        changes: &[MarketingPermissionChange],
    ) -> Result<Member> {
        let url = self.member_url(list_id, email, &[])?;
        let body = json_body(&WirePermissionChanges {
            marketing_permissions: changes,
        })?;
        let (code, body) = self.call(Method::PATCH, url, Some(body)).await?;
        decode(code, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn category_types_travel_as_type_in_lower_case() {
        let category = NewInterestCategory {
            title: "Pets".into(),
            kind: InterestCategoryType::Hidden,
        };
        assert_eq!(
            serde_json::to_value(&category).unwrap(),
            json!({"title": "Pets", "type": "hidden"})
        );
        let read: InterestCategory = serde_json::from_value(json!({
            "id": "c0ffee0001", "title": "Pets", "type": "dropdown", "display_order": 0
        }))
        .unwrap();
        assert_eq!(read.kind, InterestCategoryType::Dropdown);
    }
}
