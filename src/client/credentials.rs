//! Credentials that expire, cached and fetched again before they do: one fetch at a time, and
//! callers signing with a fresh one without waiting. Stores supply where credentials come from
//! (static keys, a cloud's provider chain, the app's own provider); the cache is shared.

use std::sync::{PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::core::error::Result;

/// A credential is fetched again this long before it expires, so no request goes out with one
/// that expires on the way.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// Something that expires (or not: `None`).
pub trait Expiring: Clone + Send + Sync + 'static {
    fn expires(&self) -> Option<SystemTime>;
}

/// Where credentials come from.
#[async_trait]
pub trait CredentialSource<T>: Send + Sync + 'static {
    async fn fetch(&self) -> Result<T>;
}

pub struct CredentialCache<T> {
    source: Box<dyn CredentialSource<T>>,
    current: RwLock<Option<T>>,
    /// Held while fetching, so that callers who find the credential stale wait for one fetch.
    fetching: tokio::sync::Mutex<()>,
}

/// Never shows a credential.
impl<T> std::fmt::Debug for CredentialCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialCache")
    }
}

impl<T: Expiring> CredentialCache<T> {
    pub fn new(source: Box<dyn CredentialSource<T>>) -> CredentialCache<T> {
        CredentialCache { source, current: RwLock::new(None), fetching: tokio::sync::Mutex::new(()) }
    }

    /// With a credential known up front (static keys): at hand from the first request.
    pub fn primed(source: Box<dyn CredentialSource<T>>, current: T) -> CredentialCache<T> {
        CredentialCache { source, current: RwLock::new(Some(current)), fetching: tokio::sync::Mutex::new(()) }
    }

    /// The cached credential while it is fresh, without waiting.
    pub fn fresh(&self, now: SystemTime) -> Option<T> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().filter(|c| is_fresh(*c, now)).cloned()
    }

    /// A fresh credential, fetched when the cached one is missing or about to expire.
    pub async fn get(&self) -> Result<T> {
        if let Some(fresh) = self.fresh(SystemTime::now()) {
            return Ok(fresh);
        }
        let _fetching = self.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        if let Some(fresh) = self.fresh(SystemTime::now()) {
            return Ok(fresh);
        }
        let fetched = self.source.fetch().await?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(fetched.clone());
        Ok(fetched)
    }
}

fn is_fresh<T: Expiring>(credential: &T, now: SystemTime) -> bool {
    credential.expires().is_none_or(|expires| now + REFRESH_BEFORE < expires)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::core::error::Error;

    #[derive(Clone, Debug, PartialEq)]
    struct Token(u32, Option<SystemTime>);

    impl Expiring for Token {
        fn expires(&self) -> Option<SystemTime> {
            self.1
        }
    }

    /// Hands out token 1, 2, 3…, each valid for `lifetime`; fails when told.
    struct Counter {
        fetches: Arc<AtomicU32>,
        lifetime: Option<Duration>,
        fail: bool,
    }

    #[async_trait]
    impl CredentialSource<Token> for Counter {
        async fn fetch(&self) -> Result<Token> {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.fail {
                return Err(Error::PermissionDenied("the provider refused".into()));
            }
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Token(n, self.lifetime.map(|l| SystemTime::now() + l)))
        }
    }

    fn cache(lifetime: Option<Duration>, fail: bool) -> (Arc<CredentialCache<Token>>, Arc<AtomicU32>) {
        let fetches = Arc::new(AtomicU32::new(0));
        let source = Counter { fetches: Arc::clone(&fetches), lifetime, fail };
        (Arc::new(CredentialCache::new(Box::new(source))), fetches)
    }

    #[tokio::test]
    async fn a_lasting_credential_is_fetched_once_however_many_ask_at_once() {
        let (cache, fetches) = cache(Some(Duration::from_secs(3600)), false);
        let asks = (0..50).map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { cache.get().await.unwrap() })
        });
        let tokens = futures::future::join_all(asks).await;
        assert!(tokens.iter().all(|t| t.as_ref().unwrap().0 == 1));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert_eq!(cache.fresh(SystemTime::now()).map(|t| t.0), Some(1));
    }

    #[tokio::test]
    async fn one_that_expires_within_the_margin_is_fetched_again() {
        let (cache, fetches) = cache(Some(REFRESH_BEFORE + Duration::from_millis(50)), false);
        assert_eq!(cache.get().await.unwrap().0, 1);
        assert_eq!(cache.get().await.unwrap().0, 1, "still fresh");
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(cache.fresh(SystemTime::now()), None);
        assert_eq!(cache.get().await.unwrap().0, 2);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn one_without_expiry_lasts_and_a_failed_fetch_is_the_callers_error() {
        let (cache, _) = cache(None, false);
        assert_eq!(cache.get().await.unwrap().0, 1);
        assert!(cache.fresh(SystemTime::now() + Duration::from_secs(10 * 365 * 86_400)).is_some());
        let (failing, _) = cache_failing();
        assert_eq!(failing.get().await.unwrap_err().code(), "PERMISSION_DENIED");
        assert_eq!(failing.fresh(SystemTime::now()), None);
    }

    fn cache_failing() -> (Arc<CredentialCache<Token>>, Arc<AtomicU32>) {
        cache(Some(Duration::from_secs(3600)), true)
    }
}
