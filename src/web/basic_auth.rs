//! Basic auth against `basic_auth_users`' bcrypt hashes. bcrypt is slow on
//! purpose (about 50 ms at cost 10), so checks run off the async workers,
//! one at a time as exporter-toolkit runs them, and each (user, hash,
//! password) verdict is remembered: a scrape every 15 s costs one bcrypt per
//! password ever seen, not one per scrape.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use axum::http::HeaderValue;
use base64::Engine;

/// Verdicts remembered at most; the memory is cleared when full.
const REMEMBERED: usize = 1024;

/// A hash checked for users that do not exist, so that the time of an
/// answer does not tell which users do. Made once, at cost 10, the cost
/// `htpasswd -B -C 10` and exporter-toolkit's documentation use.
static UNKNOWN_USER: LazyLock<String> =
    LazyLock::new(|| bcrypt::hash("not a user", 10).unwrap_or_default());

/// Basic auth checks and the verdicts remembered.
#[derive(Debug, Default)]
pub struct BasicAuth {
    verdicts: Mutex<HashMap<[u8; 32], bool>>,
    /// One bcrypt at a time: they are CPU-bound.
    bcrypt: tokio::sync::Mutex<()>,
}

impl BasicAuth {
    /// Whether the `Authorization` header names one of `users` with the
    /// right password.
    pub async fn allows(
        self: &Arc<Self>,
        users: &BTreeMap<String, String>,
        header: Option<&HeaderValue>,
    ) -> bool {
        let Some((user, password)) = header.and_then(credentials) else {
            return false;
        };
        let known = users.get(&user).cloned();
        let hash = known.as_deref().unwrap_or("");
        let key = super::config::digest(
            [user.as_bytes(), hash.as_bytes(), password.as_bytes()]
                .join(&0u8)
                .as_slice(),
        );
        if let Some(&verdict) = self.remembered().get(&key) {
            return verdict;
        }
        let _one_at_a_time = self.bcrypt.lock().await;
        let is_known = known.is_some();
        // The dummy hash is made (once) and checked here, off the async
        // workers, like a real one.
        let matches = tokio::task::spawn_blocking(move || {
            let hash = known.unwrap_or_else(|| UNKNOWN_USER.clone());
            bcrypt::verify(password, &hash)
        })
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false);
        let verdict = matches && is_known;
        let mut verdicts = self.remembered();
        if verdicts.len() >= REMEMBERED {
            verdicts.clear();
        }
        verdicts.insert(key, verdict);
        verdict
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], bool>> {
        match self.verdicts.lock() {
            Ok(v) => v,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The user and password of a `Basic` authorization header.
fn credentials(header: &HeaderValue) -> Option<(String, String)> {
    let value = header.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("header")
    }

    #[tokio::test]
    async fn checks_users_passwords_and_remembers_verdicts() {
        let users = BTreeMap::from([(
            "prometheus".to_owned(),
            bcrypt::hash("s3cret", 4).expect("hash"),
        )]);
        let auth = Arc::new(BasicAuth::default());
        let ok = header("prometheus", "s3cret");
        assert!(auth.allows(&users, Some(&ok)).await);
        assert!(auth.allows(&users, Some(&ok)).await, "remembered");
        assert!(
            !auth
                .allows(&users, Some(&header("prometheus", "wrong")))
                .await
        );
        assert!(!auth.allows(&users, Some(&header("nobody", "s3cret"))).await);
        assert!(!auth.allows(&users, None).await);
        let bearer = HeaderValue::from_static("Bearer abc");
        assert!(!auth.allows(&users, Some(&bearer)).await);
        assert_eq!(
            auth.remembered().len(),
            3,
            "ok, wrong password, unknown user"
        );
        // A changed hash (a reloaded file) is a new verdict, not a remembered one.
        let changed = BTreeMap::from([(
            "prometheus".to_owned(),
            bcrypt::hash("other", 4).expect("hash"),
        )]);
        assert!(!auth.allows(&changed, Some(&ok)).await);
    }

    #[test]
    fn reads_basic_credentials() {
        assert_eq!(
            credentials(&header("a", "b:c")),
            Some(("a".to_owned(), "b:c".to_owned()))
        );
        assert_eq!(credentials(&HeaderValue::from_static("Basic !!!")), None);
    }
}
