//! JWT verification and minting (jsonwebtoken). The algorithm is pinned by configuration;
//! `exp`, `nbf`, `iss`, `aud` and `sub` are required and checked with a small leeway.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use triad_protocol::{ErrorCode, PersonId, Timestamp};

use crate::config::{JwtAlgorithm, JwtConfig};

/// The claims of a Triad token. (A token format, not a wire message: it is the JWT's
/// payload, which only this module reads and writes.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The person.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not before, seconds since the Unix epoch.
    pub nbf: u64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
}

/// Why a token was refused, or a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token's `exp` is past.
    #[error("token has expired")]
    Expired,
    /// The token is malformed, badly signed, of another algorithm, or has wrong claims; the
    /// reason is one of a fixed set of sentences, safe to show to the client.
    #[error("the token is not valid: {0}")]
    Invalid(&'static str),
    /// A key could not be read or parsed.
    #[error("cannot load key: {0}")]
    Key(String),
}

impl AuthError {
    /// The protocol error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Expired => ErrorCode::TokenExpired,
            Self::Invalid(_) | Self::Key(_) => ErrorCode::TokenInvalid,
        }
    }
}

/// A verified token.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Who it is for.
    pub person: PersonId,
    /// When it expires (its `exp`), milliseconds since the Unix epoch.
    pub expires_at: Timestamp,
    /// Until when the server still accepts it: `exp` plus the clock leeway, milliseconds
    /// since the Unix epoch. A session on this token is closed then.
    pub accepted_until: Timestamp,
    /// When it was issued, milliseconds since the Unix epoch (0 when the token says not).
    pub issued_at: Timestamp,
}

fn algorithm(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::Hs256 => Algorithm::HS256,
        JwtAlgorithm::EdDsa => Algorithm::EdDSA,
        JwtAlgorithm::Rs256 => Algorithm::RS256,
    }
}

fn read_key(path: &Path) -> Result<Vec<u8>, AuthError> {
    std::fs::read(path).map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))
}

/// The HS256 secret from the configuration, its file, or `<data_dir>/jwt-secret`.
pub fn hs256_secret(jwt: &JwtConfig, data_dir: &Path) -> Result<Vec<u8>, AuthError> {
    if let Some(secret) = &jwt.secret {
        return Ok(secret.trim().as_bytes().to_vec());
    }
    let path = jwt
        .secret_file
        .clone()
        .unwrap_or_else(|| data_dir.join("jwt-secret"));
    let bytes = read_key(&path)?;
    let trimmed = String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec();
    if trimmed.len() < 32 {
        return Err(AuthError::Key(format!(
            "{}: the HS256 secret must be at least 32 bytes",
            path.display()
        )));
    }
    Ok(trimmed)
}

/// Verifies tokens.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    /// Builds a verifier from the configuration.
    pub fn from_config(jwt: &JwtConfig, data_dir: &Path) -> Result<Self, AuthError> {
        let key = match jwt.algorithm {
            JwtAlgorithm::Hs256 => DecodingKey::from_secret(&hs256_secret(jwt, data_dir)?),
            JwtAlgorithm::EdDsa | JwtAlgorithm::Rs256 => {
                let path = jwt.public_key_file.as_deref().ok_or_else(|| {
                    AuthError::Key("jwt_public_key_file is required for EdDSA and RS256".into())
                })?;
                let pem = read_key(path)?;
                let parsed = if jwt.algorithm == JwtAlgorithm::EdDsa {
                    DecodingKey::from_ed_pem(&pem)
                } else {
                    DecodingKey::from_rsa_pem(&pem)
                };
                parsed.map_err(|e| AuthError::Key(format!("{}: {e}", path.display())))?
            }
        };
        let mut validation = Validation::new(algorithm(jwt.algorithm));
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_issuer(&[&jwt.issuer]);
        validation.set_audience(&[&jwt.audience]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = jwt.leeway.as_secs();
        Ok(Self { key, validation })
    }

    /// Verifies a token and returns who it is for.
    pub fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                other => AuthError::Invalid(describe(other)),
            },
        )?;
        let person = PersonId::new(data.claims.sub)
            .map_err(|_| AuthError::Invalid("its subject is not a person id"))?;
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        Ok(Verified {
            person,
            expires_at: ms(data.claims.exp),
            accepted_until: ms(data.claims.exp.saturating_add(self.validation.leeway)),
            issued_at: i64::try_from(data.claims.iat.saturating_mul(1000)).unwrap_or(0),
        })
    }
}

/// Why a token was refused, in words for the person holding it: never the library's own
/// error text.
fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "its signature does not match",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "its algorithm is not accepted"
        }
        ErrorKind::InvalidIssuer => "it has the wrong issuer",
        ErrorKind::InvalidAudience => "it has the wrong audience",
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => {
            "its claims are not of the expected types"
        }
        _ => "it is not a well-formed signed token",
    }
}

/// Mints tokens (for operators, the demo and tests).
pub struct TokenMinter {
    key: EncodingKey,
    algorithm: Algorithm,
    issuer: String,
    audience: String,
}

impl TokenMinter {
    /// A minter for HS256 tokens with the configured secret.
    pub fn from_config(jwt: &JwtConfig, data_dir: &Path) -> Result<Self, AuthError> {
        match jwt.algorithm {
            JwtAlgorithm::Hs256 => Ok(Self::hs256(&hs256_secret(jwt, data_dir)?, jwt)),
            _ => Err(AuthError::Key(
                "with EdDSA or RS256, mint with a private key (--private-key)".into(),
            )),
        }
    }

    /// The minter a server issues sign-in tokens with: the HS256 secret, or the configured
    /// private key for EdDSA and RS256. The error says what to configure.
    pub fn for_server(jwt: &JwtConfig, data_dir: &Path) -> Result<Self, String> {
        match (jwt.algorithm, &jwt.private_key_file) {
            (JwtAlgorithm::Hs256, _) => Self::from_config(jwt, data_dir).map_err(|e| e.to_string()),
            (_, Some(path)) => {
                let pem = read_key(path).map_err(|e| e.to_string())?;
                Self::with_private_key(&pem, jwt).map_err(|e| e.to_string())
            }
            (_, None) => Err("set jwt_private_key_file to issue EdDSA or RS256 tokens".into()),
        }
    }

    /// An HS256 minter.
    pub fn hs256(secret: &[u8], jwt: &JwtConfig) -> Self {
        Self {
            key: EncodingKey::from_secret(secret),
            algorithm: Algorithm::HS256,
            issuer: jwt.issuer.clone(),
            audience: jwt.audience.clone(),
        }
    }

    /// A minter signing with a PEM private key (EdDSA or RS256).
    pub fn with_private_key(pem: &[u8], jwt: &JwtConfig) -> Result<Self, AuthError> {
        let (key, algorithm) = match jwt.algorithm {
            JwtAlgorithm::EdDsa => (EncodingKey::from_ed_pem(pem), Algorithm::EdDSA),
            JwtAlgorithm::Rs256 => (EncodingKey::from_rsa_pem(pem), Algorithm::RS256),
            JwtAlgorithm::Hs256 => return Err(AuthError::Key("HS256 uses a secret".into())),
        };
        let key = key.map_err(|e| AuthError::Key(e.to_string()))?;
        Ok(Self {
            key,
            algorithm,
            issuer: jwt.issuer.clone(),
            audience: jwt.audience.clone(),
        })
    }

    /// A token for `person` valid for `ttl` from now.
    pub fn mint(&self, person: &PersonId, ttl: Duration) -> Result<String, AuthError> {
        self.mint_issued_after(person, ttl, 0)
    }

    /// A token for `person` valid for `ttl` from now whose `iat` is at least `min_iat`
    /// (seconds since the Unix epoch). A token minted just after a revocation gets an `iat`
    /// past the revocation's second, so it is not taken for one issued before it.
    pub fn mint_issued_after(
        &self,
        person: &PersonId,
        ttl: Duration,
        min_iat: u64,
    ) -> Result<String, AuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: person.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl.as_secs(),
            nbf: now.saturating_sub(1),
            iat: now.max(min_iat),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.key)
            .map_err(|e| AuthError::Key(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config() -> JwtConfig {
        let mut jwt = Config::default().jwt;
        jwt.secret = Some("0123456789abcdef0123456789abcdef".into());
        jwt.leeway = Duration::from_secs(0);
        jwt
    }

    #[test]
    fn minted_tokens_verify() {
        let jwt = config();
        let minter = TokenMinter::from_config(&jwt, Path::new(".")).unwrap();
        let verifier = TokenVerifier::from_config(&jwt, Path::new(".")).unwrap();
        let person = PersonId::new("anna").unwrap();
        let token = minter.mint(&person, Duration::from_secs(60)).unwrap();
        assert_eq!(verifier.verify(&token).unwrap().person, person);
    }

    #[test]
    fn wrong_audience_and_issuer_are_refused() {
        let jwt = config();
        let verifier = TokenVerifier::from_config(&jwt, Path::new(".")).unwrap();
        let person = PersonId::new("anna").unwrap();
        for (iss, aud) in [("other", "triad"), ("triad", "other")] {
            let mut other = jwt.clone();
            other.issuer = iss.into();
            other.audience = aud.into();
            let token = TokenMinter::from_config(&other, Path::new("."))
                .unwrap()
                .mint(&person, Duration::from_secs(60))
                .unwrap();
            assert!(matches!(
                verifier.verify(&token),
                Err(AuthError::Invalid(_))
            ));
        }
    }

    #[test]
    fn short_secret_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jwt-secret"), "short").unwrap();
        let mut jwt = config();
        jwt.secret = None;
        assert!(matches!(
            hs256_secret(&jwt, dir.path()),
            Err(AuthError::Key(_))
        ));
    }
}
