//! What contacts do themselves, outside the API (unsubscribe link, bounce, confirmation,
//! profile page), for tests: the `/_emulator` routes and the `Emulator::simulate_*` methods.
//! Each answers false when the member cannot do it.

use serde_json::{Map, Value};

use crate::email::path_key;
use crate::endpoints::write::{apply_fields, check_rename, rename};
use crate::events::Source;
use crate::input::MemberInput;
use crate::merge_values::validate_merge;
use crate::model::{Member, Now, Status};
use crate::state::State;

impl State {
    /// Applies `change` to the member named by `email` (address or hash); if it did change it,
    /// the member is touched and the events of `source` are recorded.
    fn simulate(
        &mut self,
        list_id: &str,
        email: &str,
        source: Source,
        now: &Now,
        change: impl FnOnce(&mut Member) -> bool,
    ) -> bool {
        let hash = path_key(email);
        let before = self.before(list_id, &hash);
        let Some(m) = self
            .audiences
            .get_mut(list_id)
            .and_then(|a| a.members.get_mut(&hash))
        else {
            return false;
        };
        if !change(m) {
            return false;
        }
        m.touch(now);
        self.note(list_id, before, &hash, source, now);
        true
    }

    /// The contact unsubscribed themselves (from a campaign's footer).
    pub(crate) fn simulate_unsubscribe(&mut self, list_id: &str, email: &str, now: &Now) -> bool {
        self.simulate(list_id, email, Source::User, now, |m| {
            if matches!(m.status, Status::Archived | Status::Cleaned) {
                return false;
            }
            m.status = Status::Unsubscribed;
            m.unsubscribed_by_contact = true;
            true
        })
    }

    /// The address hard-bounced: the contact is cleaned.
    pub(crate) fn simulate_bounce(&mut self, list_id: &str, email: &str, now: &Now) -> bool {
        self.simulate(list_id, email, Source::System, now, |m| {
            if m.status == Status::Archived {
                return false;
            }
            m.status = Status::Cleaned;
            m.bounced = true;
            true
        })
    }

    /// A pending contact clicked the confirmation link: subscribed, compliance state lifted.
    pub(crate) fn simulate_confirm(&mut self, list_id: &str, email: &str, now: &Now) -> bool {
        self.simulate(list_id, email, Source::User, now, |m| {
            if m.status != Status::Pending {
                return false;
            }
            m.status = Status::Subscribed;
            m.unsubscribed_by_contact = false;
            m.bounced = false;
            m.timestamp_opt.clone_from(&now.text);
            true
        })
    }

    /// The contact changed their address on their profile page. Like an API rename, only a
    /// subscribed contact can, and only to a valid address that is not in the list.
    pub(crate) fn simulate_email_change(
        &mut self,
        list_id: &str,
        email: &str,
        new_email: &str,
        now: &Now,
    ) -> bool {
        let key = path_key(email);
        let new_email = new_email.trim();
        let before = self.before(list_id, &key);
        let Some(aud) = self.audiences.get_mut(list_id) else {
            return false;
        };
        let Some(m) = aud.members.get(&key) else {
            return false;
        };
        let Ok(Some(new_hash)) = check_rename(aud, m, &key, new_email) else {
            return false;
        };
        if !rename(aud, &key, &new_hash, new_email) {
            return false;
        }
        if let Some(moved) = aud.members.get_mut(&new_hash) {
            moved.touch(now);
        }
        self.note(list_id, before, &new_hash, Source::User, now);
        true
    }

    /// The contact edited merge values on their profile page (unknown tags are ignored, `""`
    /// clears). False if there is no such live member or a value is refused.
    pub(crate) fn simulate_profile_update(
        &mut self,
        list_id: &str,
        email: &str,
        merges: &Map<String, Value>,
        now: &Now,
    ) -> bool {
        let key = path_key(email);
        let before = self.before(list_id, &key);
        let Some(aud) = self.audiences.get_mut(list_id) else {
            return false;
        };
        let Some(m) = aud.members.get(&key) else {
            return false;
        };
        if m.status == Status::Archived {
            return false;
        }
        let Ok(changes) =
            validate_merge(&aud.merge_fields, Some(merges), Some(&m.merge), false, true)
        else {
            return false;
        };
        let Some(m) = aud.members.get_mut(&key) else {
            return false;
        };
        apply_fields(m, &MemberInput::default(), changes);
        m.touch(now);
        self.note(list_id, before, &key, Source::User, now);
        true
    }
}
