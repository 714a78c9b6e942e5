//! The Mailchimp accounts the emulator serves: which API keys are accepted, which account each
//! belongs to, the keys revoked at runtime, and each account's requests in flight.
//!
//! An account owns audiences (`Audience::account` is its index here) and has its own cap on
//! requests in flight, as Mailchimp's limit of simultaneous connections is per API key.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::lock::lock;
pub(crate) use crate::model::AccountId;
use crate::problem::ApiError;

/// The account of the library's single-account methods: the `--api-key` account, else the
/// shared one (any key accepted), else the first `--account`.
pub(crate) const DEFAULT_ACCOUNT: AccountId = 0;

/// One account's gauges and counters.
#[derive(Default)]
pub(crate) struct Account {
    pub in_flight: AtomicUsize,
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub max_in_flight: AtomicU64,
}

/// Counters of one account (one API key; in the mode where any key is accepted, of all keys
/// together), since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AccountStats {
    /// Requests under `/3.0` whose key was accepted for this account.
    pub requests: u64,
    /// Of those, `429` answers because the account had `max_connections` requests in flight.
    pub throttled: u64,
    /// The most requests of this account admitted at once.
    pub max_in_flight: u64,
}

/// Every account, fixed at start, and the keys revoked since.
pub(crate) struct Accounts {
    /// Key → account. Empty in the shared mode, where any key is the one account's.
    by_key: HashMap<String, AccountId>,
    list: Vec<Account>,
    revoked: Mutex<HashSet<String>>,
}

impl Accounts {
    /// One account that accepts any key (no key configured).
    pub(crate) fn shared() -> Self {
        Self {
            by_key: HashMap::new(),
            list: vec![Account::default()],
            revoked: Mutex::new(HashSet::new()),
        }
    }

    /// One account per distinct key, in order of first appearance; only these keys are
    /// accepted.
    pub(crate) fn keyed<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let mut accounts = Self::shared();
        accounts.list.clear();
        for key in keys {
            if !accounts.by_key.contains_key(key) {
                accounts.by_key.insert(key.to_owned(), accounts.list.len());
                accounts.list.push(Account::default());
            }
        }
        accounts
    }

    /// The account of `key`, revoked or not; `None` if the key is not accepted at all.
    pub(crate) fn account_of(&self, key: &str) -> Option<AccountId> {
        if self.by_key.is_empty() {
            return Some(DEFAULT_ACCOUNT);
        }
        self.by_key.get(key).copied()
    }

    /// The account a request's key authenticates as, or `401 API Key Invalid`.
    pub(crate) fn authenticate(&self, key: &str) -> Result<AccountId, ApiError> {
        let account = self.account_of(key).ok_or_else(ApiError::api_key_invalid)?;
        if lock(&self.revoked).contains(key) {
            return Err(ApiError::api_key_invalid());
        }
        Ok(account)
    }

    /// The accounts a configuration describes, and the audiences each has at start.
    /// `--api-key K --audience A` is the same as `--account K=A` (its account comes first); with
    /// neither a key nor `--account`, one account accepts any key and has every `--audience`.
    pub(crate) fn from_config(
        api_key: Option<&str>,
        audiences: &[String],
        accounts: &[(String, String)],
    ) -> Result<(Self, Vec<(AccountId, String)>), String> {
        if api_key.is_none() && accounts.is_empty() {
            let start = audiences.iter().map(|a| (DEFAULT_ACCOUNT, a.clone()));
            return Ok((Self::shared(), start.collect()));
        }
        if api_key.is_none() && !audiences.is_empty() {
            return Err(
                "an audience without an account: with `--account`, give `--audience` \
                        with `--api-key`, or as `--account KEY=AUDIENCE`"
                    .to_owned(),
            );
        }
        let keyed: Vec<(&str, &str)> = api_key
            .into_iter()
            .flat_map(|key| audiences.iter().map(move |a| (key, a.as_str())))
            .chain(accounts.iter().map(|(k, a)| (k.as_str(), a.as_str())))
            .collect();
        if let Some((key, _)) = keyed.iter().find(|(k, a)| k.is_empty() || a.is_empty()) {
            let what = if key.is_empty() {
                "an API key"
            } else {
                "an audience id"
            };
            return Err(format!("{what} is empty"));
        }
        let this = Self::keyed(api_key.into_iter().chain(keyed.iter().map(|(k, _)| *k)));
        let mut owners: HashMap<&str, AccountId> = HashMap::new();
        let mut start = Vec::new();
        for (key, audience) in keyed {
            let id = this.by_key[key];
            match owners.insert(audience, id) {
                Some(other) if other != id => {
                    return Err(format!(
                        "audience `{audience}` is given to two accounts (audience ids are unique across accounts)"
                    ))
                }
                Some(_) => {}
                None => start.push((id, audience.to_owned())),
            }
        }
        Ok((this, start))
    }

    pub(crate) fn get(&self, id: AccountId) -> &Account {
        &self.list[id]
    }

    pub(crate) fn revoke(&self, key: &str) {
        lock(&self.revoked).insert(key.to_owned());
    }

    pub(crate) fn restore(&self, key: &str) {
        lock(&self.revoked).remove(key);
    }

    pub(crate) fn stats(&self, id: AccountId) -> AccountStats {
        let a = self.get(id);
        AccountStats {
            requests: a.requests.load(Ordering::Relaxed),
            throttled: a.throttled.load(Ordering::Relaxed),
            max_in_flight: a.max_in_flight.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_accounts_and_revoked_keys_are_refused() {
        let accounts = Accounts::keyed(["a", "b", "a"]);
        assert_eq!(accounts.account_of("a"), Some(0));
        assert_eq!(accounts.account_of("b"), Some(1));
        assert_eq!(accounts.account_of("c"), None);
        accounts.revoke("b");
        assert_eq!(accounts.authenticate("b").unwrap_err().status, 401);
        assert_eq!(accounts.authenticate("a").ok(), Some(0));
        accounts.restore("b");
        assert_eq!(accounts.authenticate("b").ok(), Some(1));
        let shared = Accounts::shared();
        assert_eq!(shared.authenticate("anything").ok(), Some(0));
    }

    #[test]
    fn api_key_with_audiences_is_the_first_account() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter().map(|(k, a)| ((*k).into(), (*a).into())).collect()
        };
        let (accounts, start) = Accounts::from_config(
            Some("k"),
            &["a".into()],
            &pairs(&[("j", "b"), ("k", "c"), ("j", "d"), ("j", "b")]),
        )
        .unwrap();
        assert_eq!(accounts.account_of("k"), Some(0));
        assert_eq!(accounts.account_of("j"), Some(1));
        assert_eq!(accounts.account_of("x"), None);
        let expected = [(0, "a"), (1, "b"), (0, "c"), (1, "d")];
        let expected: Vec<(AccountId, String)> = expected
            .iter()
            .map(|(i, a)| (*i, (*a).to_owned()))
            .collect();
        assert_eq!(start, expected);

        let shared_audience = Accounts::from_config(None, &["a".into()], &pairs(&[("j", "b")]));
        assert!(shared_audience.is_err());
        let twice = Accounts::from_config(None, &[], &pairs(&[("j", "b"), ("k", "b")]));
        assert!(twice.is_err());
        let (open, start) = Accounts::from_config(None, &["a".into()], &[]).unwrap();
        assert_eq!(open.account_of("any"), Some(0));
        assert_eq!(start, vec![(0, "a".to_owned())]);
    }
}
