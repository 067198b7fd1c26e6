//! ICE servers and TURN credentials. TURN credentials follow the shared-secret scheme that
//! coturn (`use-auth-secret`) and other TURN servers check: the username is
//! `<unix expiry>:<person>`, the password base64(HMAC-SHA1(secret, username)). The TURN
//! server needs only the secret; a credential stops working at its expiry.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use triad_protocol::{CallId, IceServer, IceServers, PersonId, Timestamp};

/// Which STUN and TURN servers participants use, and how TURN credentials are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceConfig {
    /// `stun:`, `turn:` and `turns:` URLs. TURN URLs get credentials.
    pub urls: Vec<String>,
    /// The secret shared with the TURN server; without it, TURN URLs are handed out
    /// without credentials.
    pub turn_secret: Option<String>,
    /// How long a TURN credential lasts.
    pub ttl: Duration,
}

impl Default for IceConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            turn_secret: None,
            ttl: Duration::from_secs(3600),
        }
    }
}

/// Whether a URL names a TURN server (which needs credentials).
fn is_turn(url: &str) -> bool {
    let url = url.trim().to_ascii_lowercase();
    url.starts_with("turn:") || url.starts_with("turns:")
}

impl IceConfig {
    /// Whether credentials are issued (TURN URLs and a secret), so they need refreshing.
    pub fn issues_credentials(&self) -> bool {
        self.turn_secret.is_some() && self.urls.iter().any(|url| is_turn(url))
    }

    /// When to hand a participant new credentials: at 80% of their lifetime.
    pub fn refresh_after(&self) -> Duration {
        (self.ttl * 4 / 5).max(Duration::from_secs(1))
    }

    /// The servers for `person` in `call` at `now` (ms since the Unix epoch), with TURN
    /// credentials valid for the configured lifetime.
    pub fn servers_for(&self, call: &CallId, person: &PersonId, now: Timestamp) -> IceServers {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let expires_at = now.saturating_add(ttl_ms);
        let (turn, stun): (Vec<String>, Vec<String>) =
            self.urls.iter().cloned().partition(|url| is_turn(url));
        let mut servers = Vec::new();
        if !stun.is_empty() {
            servers.push(IceServer {
                urls: stun,
                username: None,
                credential: None,
            });
        }
        if !turn.is_empty() {
            let (username, credential) = match &self.turn_secret {
                Some(secret) => {
                    let (username, credential) = credentials(secret, person, expires_at / 1000);
                    (Some(username), Some(credential))
                }
                None => (None, None),
            };
            servers.push(IceServer {
                urls: turn,
                username,
                credential,
            });
        }
        IceServers {
            call: call.clone(),
            servers,
            expires_at,
        }
    }
}

/// A TURN username and password for `person`, valid until `expires_at` (seconds since the
/// Unix epoch), under `secret`.
pub fn credentials(secret: &str, person: &PersonId, expires_at: i64) -> (String, String) {
    let username = format!("{expires_at}:{person}");
    let password = password(secret, &username);
    (username, password)
}

/// base64(HMAC-SHA1(secret, username)).
pub fn password(secret: &str, username: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str) -> PersonId {
        PersonId::new(id).unwrap()
    }

    #[test]
    fn password_is_base64_of_hmac_sha1() {
        // RFC 2202, test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
        assert_eq!(
            password("Jefe", "what do ya want for nothing?"),
            STANDARD.encode([
                0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84,
                0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79
            ])
        );
    }

    #[test]
    fn turn_urls_get_credentials_and_stun_urls_none() {
        let config = IceConfig {
            urls: vec![
                "stun:turn.example.org:3478".into(),
                "turn:turn.example.org:3478?transport=udp".into(),
                "turns:turn.example.org:443?transport=tcp".into(),
            ],
            turn_secret: Some("s3cret".into()),
            ttl: Duration::from_secs(600),
        };
        assert!(config.issues_credentials());
        assert_eq!(config.refresh_after(), Duration::from_secs(480));
        let call = CallId("c-1".into());
        let servers = config.servers_for(&call, &person("anna.jensen"), 1_763_900_000_123);
        assert_eq!(servers.expires_at, 1_763_900_600_123);
        assert_eq!(servers.servers.len(), 2);
        assert_eq!(servers.servers[0].urls, ["stun:turn.example.org:3478"]);
        assert_eq!(servers.servers[0].username, None);
        let turn = &servers.servers[1];
        assert_eq!(turn.urls.len(), 2);
        let username = turn.username.clone().unwrap();
        assert_eq!(username, "1763900600:anna.jensen");
        assert_eq!(turn.credential, Some(password("s3cret", &username)));
    }

    #[test]
    fn no_secret_no_credentials() {
        let config = IceConfig {
            urls: vec!["stun:stun.example.org:3478".into()],
            ..IceConfig::default()
        };
        assert!(!config.issues_credentials());
        let servers = config.servers_for(&CallId("c-1".into()), &person("anna.jensen"), 0);
        assert_eq!(servers.servers.len(), 1);
        assert!(servers.servers[0].credential.is_none());
    }
}
