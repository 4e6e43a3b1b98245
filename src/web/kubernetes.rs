//! `--metrics-auth kubernetes`: the scraper's bearer token is authenticated
//! with a TokenReview and authorized with a SubjectAccessReview for `get` on
//! the request's path, as kube-rbac-proxy and controller-runtime's secure
//! metrics serving do. Verdicts are cached per token and path, for
//! [`ALLOWED_TTL`] when allowed and [`DENIED_TTL`] when not, so a scrape
//! every 15 s costs the API server two requests a minute per scraper; a
//! revoked token keeps reading for up to [`ALLOWED_TTL`]. Failed reviews are
//! not cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

/// How long an allowed token stays allowed without a new review.
pub const ALLOWED_TTL: Duration = Duration::from_secs(60);
/// How long a refused or unknown token stays refused without a new review.
pub const DENIED_TTL: Duration = Duration::from_secs(10);
/// Verdicts cached at most; expired ones go first, then all of them.
const CACHED: usize = 4096;

/// The outcome of a review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The token is valid and may `get` the path.
    Allowed,
    /// The token is not valid (401).
    Unauthenticated,
    /// The token is valid but may not `get` the path (403).
    Forbidden,
}

/// Reviews tokens against the API server, with a cache.
pub struct Reviewer {
    client: kube::Client,
    cache: Mutex<HashMap<[u8; 32], (Verdict, Instant)>>,
}

impl std::fmt::Debug for Reviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reviewer").finish_non_exhaustive()
    }
}

impl Reviewer {
    /// Reviews through `client`, whose identity needs `create` on
    /// `tokenreviews` and `subjectaccessreviews`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `token` may `get` `path`; an error when the API server
    /// could not answer.
    pub async fn review(&self, token: &str, path: &str) -> Result<Verdict, kube::Error> {
        let key = super::config::digest([token.as_bytes(), path.as_bytes()].join(&0u8).as_slice());
        let now = Instant::now();
        if let Some(&(verdict, until)) = self.cached().get(&key)
            && until > now
        {
            return Ok(verdict);
        }
        let verdict = self.ask(token, path).await?;
        let ttl = if verdict == Verdict::Allowed {
            ALLOWED_TTL
        } else {
            DENIED_TTL
        };
        let mut cache = self.cached();
        if cache.len() >= CACHED {
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= CACHED {
                cache.clear();
            }
        }
        cache.insert(key, (verdict, now + ttl));
        Ok(verdict)
    }

    async fn ask(&self, token: &str, path: &str) -> Result<Verdict, kube::Error> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let Some(status) = reviewed.status.filter(|s| s.authenticated == Some(true)) else {
            return Ok(Verdict::Unauthenticated);
        };
        let user = status.user.unwrap_or_default();
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_owned()),
                    verb: Some("get".to_owned()),
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let decided = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await?;
        Ok(if decided.status.is_some_and(|s| s.allowed) {
            Verdict::Allowed
        } else {
            Verdict::Forbidden
        })
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Verdict, Instant)>> {
        match self.cache.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
