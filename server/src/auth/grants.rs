//! Sign-in without passwords: single-use, expiring invitations that the coordinator sends
//! each person, exchanged for a short-lived access token (a JWT) and a refresh token; and
//! revocation.
//!
//! Codes and refresh tokens are 32 random bytes, given out once and stored only as their
//! SHA-256 ([`Collection::Invitations`], [`Collection::Grants`]). Redeeming and refreshing
//! are compare-and-set updates, so a code or refresh token works once even when two nodes
//! receive it at the same moment. A refresh token is rotated on each use; presenting a
//! replaced one again revokes the person's tokens (it was copied), unless it comes back
//! within [`GrantSettings::refresh_retry_window`] while the token it was exchanged for is
//! still unused (the answer was lost; the unused one is voided, and presenting a voided
//! one revokes). Revoking a person
//! ([`Collection::Revocations`]) voids every token issued until then, access and refresh
//! alike, and closes their connections on every node.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use triad_protocol::{CloseCode, ErrorCode, PersonId, Timestamp};

use super::jwt::{AuthError, TokenMinter, Verified};
use crate::hub::Hub;
use crate::store::docs::{Docs, UpdateError};
use crate::store::{Collection, SharedStore, StoreError, now_ms};

/// The close reason (with close code 4009) when the coordinator withdrew a person's access.
const REASON_WITHDRAWN: &str = CloseCode::REASON_WITHDRAWN;
/// The close reason (with close code 4009) when the person signed out on every device.
const REASON_SIGNED_OUT: &str = CloseCode::REASON_SIGNED_OUT_EVERYWHERE;

/// How long tokens and invitations last.
#[derive(Debug, Clone, Copy)]
pub struct GrantSettings {
    /// An access token's lifetime.
    pub access_ttl: Duration,
    /// A refresh token's lifetime.
    pub refresh_ttl: Duration,
    /// An invitation's lifetime, unless the coordinator asks for another.
    pub invitation_ttl: Duration,
    /// The clock leeway of tokens (`jwt.leeway`): a revocation is stamped this far ahead,
    /// so a token minted just before it by a node whose clock runs ahead is void too.
    pub revocation_leeway: Duration,
    /// A replaced refresh token presented again this soon after its exchange is taken for
    /// a retry whose answer never arrived (the page closed, the network dropped
    /// mid-answer), not for a copy, as long as the token it was exchanged for was never
    /// used: that one is voided and new tokens are issued. Later, or once the successor
    /// was used, or when the voided successor itself is presented, the person is revoked.
    pub refresh_retry_window: Duration,
}

/// Why a sign-in, refresh or revocation failed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// No invitation has that code.
    #[error("this invitation link is not valid")]
    UnknownInvitation,
    /// The invitation was used already.
    #[error("this invitation was already used; ask the coordinator for a new link")]
    InvitationUsed,
    /// The invitation has expired.
    #[error("this invitation has expired; ask the coordinator for a new link")]
    InvitationExpired,
    /// The refresh token is unknown, expired, replaced or revoked.
    #[error("{0}")]
    Revoked(String),
    /// The person is not in the programme.
    #[error("{0} is not in the programme")]
    UnknownPerson(PersonId),
    /// This server has no key to sign tokens with.
    #[error("this server cannot issue tokens: {0}")]
    NoSigningKey(String),
    /// Signing failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl GrantError {
    /// The protocol code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownInvitation => ErrorCode::InvitationInvalid,
            Self::InvitationUsed => ErrorCode::InvitationUsed,
            Self::InvitationExpired => ErrorCode::InvitationExpired,
            Self::Revoked(_) => ErrorCode::TokenRevoked,
            Self::UnknownPerson(_) => ErrorCode::UnknownPerson,
            Self::NoSigningKey(_) | Self::Auth(_) => ErrorCode::Internal,
            Self::Store(_) => ErrorCode::StoreUnavailable,
        }
    }
}

impl From<UpdateError<GrantError>> for GrantError {
    fn from(err: UpdateError<GrantError>) -> Self {
        match err {
            UpdateError::Refused(err) => err,
            UpdateError::Store(err) => Self::Store(err),
        }
    }
}

/// A stored invitation (under the hash of its code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// Who it signs in.
    pub person: PersonId,
    /// Who created it.
    pub created_by: PersonId,
    /// When.
    pub created_at: Timestamp,
    /// Until when it can be used.
    pub expires_at: Timestamp,
    /// When it was used, if it was.
    pub used_at: Option<Timestamp>,
}

/// A stored refresh grant (under the hash of its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Grant {
    person: PersonId,
    issued_at: Timestamp,
    expires_at: Timestamp,
    /// When it was exchanged for a new one.
    replaced_at: Option<Timestamp>,
    /// The key of the grant it was exchanged for.
    #[serde(default)]
    successor: Option<String>,
    /// Voided by a retry of the refresh that issued it: its answer was lost, so presenting
    /// it is presenting a copy.
    #[serde(default)]
    voided: bool,
    /// The key of the grant it was issued for, on a refresh: dropped once this one is
    /// exchanged in turn.
    #[serde(default)]
    predecessor: Option<String>,
}

/// How often a refresh starts over when another exchange of the same token got in first.
const REFRESH_ATTEMPTS: usize = 4;

/// A person's revocation: tokens issued at or before it are void.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Revocation {
    revoked_at: Timestamp,
}

/// A new invitation: the code, given out once.
#[derive(Debug, Clone, Serialize)]
pub struct NewInvitation {
    /// The person.
    pub person: PersonId,
    /// The secret code (goes in the link).
    pub code: String,
    /// Until when it can be used.
    pub expires_at: Timestamp,
}

/// Tokens for a signed-in person.
#[derive(Debug, Clone, Serialize)]
pub struct Tokens {
    /// Who.
    pub person: PersonId,
    /// The JWT for `hello` and the API.
    pub access_token: String,
    /// When it expires, ms since the Unix epoch.
    pub access_expires_at: Timestamp,
    /// The refresh token, for `POST /api/auth/refresh`.
    pub refresh_token: String,
    /// When it expires.
    pub refresh_expires_at: Timestamp,
}

/// A random secret, URL-safe.
fn secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The stored key of a secret.
fn digest(secret: &str) -> String {
    let hash = Sha256::digest(secret.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Invitations, tokens and revocations.
pub struct Grants {
    store: SharedStore,
    hub: Arc<Hub>,
    minter: Result<TokenMinter, String>,
    settings: GrantSettings,
}

impl Grants {
    /// Grants kept in `store`; `minter` signs access tokens (or says why there is none).
    pub fn new(
        store: SharedStore,
        hub: Arc<Hub>,
        minter: Result<TokenMinter, String>,
        settings: GrantSettings,
    ) -> Self {
        Self {
            store,
            hub,
            minter,
            settings,
        }
    }

    /// The lifetimes in force.
    pub fn settings(&self) -> GrantSettings {
        self.settings
    }

    fn invitations(&self) -> Docs<'_, Invitation> {
        Docs::new(self.store.as_ref(), Collection::Invitations)
    }

    fn grants(&self) -> Docs<'_, Grant> {
        Docs::new(self.store.as_ref(), Collection::Grants)
    }

    fn revocations(&self) -> Docs<'_, Revocation> {
        Docs::new(self.store.as_ref(), Collection::Revocations)
    }

    /// Creates an invitation for `person`, valid for `ttl` (or the default).
    pub async fn invite(
        &self,
        person: &PersonId,
        by: &PersonId,
        ttl: Option<Duration>,
    ) -> Result<NewInvitation, GrantError> {
        if self.store.person(person).await?.is_none()
            || crate::programme::admin::is_removed(self.store.as_ref(), person).await?
        {
            return Err(GrantError::UnknownPerson(person.clone()));
        }
        let now = now_ms();
        let code = secret();
        let invitation = Invitation {
            person: person.clone(),
            created_by: by.clone(),
            created_at: now,
            expires_at: now + ms(ttl.unwrap_or(self.settings.invitation_ttl)),
            used_at: None,
        };
        self.invitations().put(&digest(&code), &invitation).await?;
        tracing::info!(%person, %by, "invitation created");
        Ok(NewInvitation {
            person: person.clone(),
            code,
            expires_at: invitation.expires_at,
        })
    }

    /// Exchanges an invitation code for tokens, once.
    pub async fn redeem(&self, code: &str) -> Result<Tokens, GrantError> {
        if let Err(why) = &self.minter {
            // Refused before the code is used up.
            return Err(GrantError::NoSigningKey(why.clone()));
        }
        let now = now_ms();
        let person = self
            .invitations()
            .update(&digest(code.trim()), |invitation| {
                let mut invitation = invitation.ok_or(GrantError::UnknownInvitation)?;
                if invitation.used_at.is_some() {
                    return Err(GrantError::InvitationUsed);
                }
                if invitation.expires_at <= now {
                    return Err(GrantError::InvitationExpired);
                }
                invitation.used_at = Some(now);
                let person = invitation.person.clone();
                Ok((Some(invitation), person))
            })
            .await?;
        if self.store.person(&person).await?.is_none()
            || crate::programme::admin::is_removed(self.store.as_ref(), &person).await?
        {
            return Err(GrantError::UnknownPerson(person));
        }
        tracing::info!(%person, "invitation redeemed");
        let tokens = self.issue(&person, now).await?;
        match self.prune().await {
            Ok(0) => {}
            Ok(dropped) => {
                tracing::info!(dropped, "refresh grants that can no longer be used dropped")
            }
            Err(err) => tracing::warn!(error = %err, "old refresh grants were not dropped"),
        }
        Ok(tokens)
    }

    /// Exchanges a refresh token for new tokens; the old refresh token stops working.
    ///
    /// The new grant is written (unused) before the old one is marked replaced by it, so a
    /// store failure at any step leaves the old token either untouched or pointing to a
    /// grant that exists: the client's retry is a retry, never a reuse.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, GrantError> {
        let key = digest(refresh_token.trim());
        // Another exchange of the same token can win the compare-and-set in between: then
        // this one starts over and sees the token as replaced.
        for _ in 0..REFRESH_ATTEMPTS {
            let now = now_ms();
            let grant = self
                .grants()
                .get(&key)
                .await?
                .ok_or_else(|| GrantError::Revoked("this refresh token is not valid".into()))?;
            let person = grant.person.clone();
            if grant.voided {
                // Only the answer of a retried refresh is voided, and that answer was never
                // delivered to the client that retried: whoever holds it has a copy.
                return Err(self
                    .reused(&person, "a voided refresh token was presented")
                    .await);
            }
            if grant.expires_at <= now {
                return Err(GrantError::Revoked("this refresh token has expired".into()));
            }
            let expected = match (&grant.replaced_at, &grant.successor) {
                (None, _) => None,
                (Some(replaced_at), Some(successor))
                    if now - replaced_at <= ms(self.settings.refresh_retry_window) =>
                {
                    if !self.void_unused(successor).await? {
                        return Err(self
                            .reused(&person, "a replaced refresh token was presented again")
                            .await);
                    }
                    Some(successor.clone())
                }
                _ => {
                    return Err(self
                        .reused(&person, "a replaced refresh token was presented again")
                        .await);
                }
            };
            // Refresh grants are compared with when the revocation happened, not with its
            // stamp, which is the clock leeway ahead (for access tokens minted elsewhere).
            let leeway = ms(self.settings.revocation_leeway);
            if self
                .revoked_at(&person)
                .await?
                .is_some_and(|at| grant.issued_at <= at.saturating_sub(leeway))
            {
                return Err(GrantError::Revoked(
                    "access was withdrawn; sign in again".into(),
                ));
            }
            if self.store.person(&person).await?.is_none() {
                return Err(GrantError::UnknownPerson(person));
            }
            let next = secret();
            let next_key = digest(&next);
            let tokens = self.issue_as(&person, now, next, Some(key.clone())).await?;
            let exchanged = self
                .grants()
                .update(&key, |current| match current {
                    Some(mut current) if !current.voided && current.successor == expected => {
                        // A retry keeps the time of the first exchange: the window does not
                        // slide.
                        current.replaced_at.get_or_insert(now);
                        current.successor = Some(next_key.clone());
                        Ok::<_, GrantError>((Some(current), true))
                    }
                    other => Ok((other, false)),
                })
                .await?;
            if exchanged {
                if expected.is_some() {
                    tracing::info!(%person, "a refresh was retried; its lost answer is voided");
                }
                if let Some(predecessor) = &grant.predecessor
                    && let Err(err) = self.drop_replaced(predecessor, now).await
                {
                    tracing::warn!(error = %err, "a replaced refresh grant was not dropped");
                }
                return Ok(tokens);
            }
            self.grants().delete(&next_key).await?;
        }
        Err(GrantError::Store(StoreError::Unavailable(
            "this refresh token kept changing; try again".into(),
        )))
    }

    /// Revokes `person` because one of their refresh tokens was presented by someone who
    /// should not have it; the refusal to answer with.
    async fn reused(&self, person: &PersonId, what: &str) -> GrantError {
        tracing::warn!(%person, "{what}; revoking");
        if let Err(err) = self.revoke(person).await {
            return err;
        }
        GrantError::Revoked("this refresh token was already used; sign in again".into())
    }

    /// Marks the grant under `key` voided if it was never exchanged (or was voided
    /// already, by a retry that failed before it finished); says whether it is voided now.
    async fn void_unused(&self, key: &str) -> Result<bool, GrantError> {
        Ok(self
            .grants()
            .update(key, |grant| match grant {
                Some(mut grant) if grant.replaced_at.is_none() => {
                    grant.voided = true;
                    Ok::<_, GrantError>((Some(grant), true))
                }
                other => Ok((other, false)),
            })
            .await?)
    }

    /// Drops the grant under `key` if it was replaced longer ago than the retry window:
    /// presenting it again could no longer be a retry. (Presented later, it is refused as
    /// unknown without revoking the person.)
    async fn drop_replaced(&self, key: &str, now: Timestamp) -> Result<(), GrantError> {
        let window = ms(self.settings.refresh_retry_window);
        self.grants()
            .update(key, |grant| match grant {
                Some(grant) if grant.replaced_at.is_some_and(|at| now - at >= window) => {
                    Ok::<_, GrantError>((None, ()))
                }
                other => Ok((other, ())),
            })
            .await?;
        Ok(())
    }

    /// Drops every refresh grant that can no longer be used: past its `expires_at`, or
    /// replaced longer ago than the retry window. Reads every grant, so it runs
    /// on a sign-in with an invitation, which is rare; refreshing drops the grant two
    /// generations back as it goes.
    pub async fn prune(&self) -> Result<usize, GrantError> {
        let now = now_ms();
        let window = ms(self.settings.refresh_retry_window);
        let mut dropped = 0;
        for (key, grant) in self.grants().all().await? {
            // A voided grant is kept until it expires: presenting it revokes the person.
            if grant.expires_at <= now || grant.replaced_at.is_some_and(|at| now - at >= window) {
                let removed = self
                    .grants()
                    .update(&key, |current| match current {
                        Some(current) if current == grant => Ok::<_, GrantError>((None, true)),
                        other => Ok((other, false)),
                    })
                    .await?;
                dropped += usize::from(removed);
            }
        }
        Ok(dropped)
    }

    /// Signs out one refresh token.
    pub async fn sign_out(&self, refresh_token: &str) -> Result<(), GrantError> {
        self.grants().delete(&digest(refresh_token.trim())).await?;
        Ok(())
    }

    async fn issue(&self, person: &PersonId, now: Timestamp) -> Result<Tokens, GrantError> {
        self.issue_as(person, now, secret(), None).await
    }

    /// Issues tokens with `refresh_token` as the new refresh token, in exchange for the
    /// grant under `predecessor` if it is a refresh.
    async fn issue_as(
        &self,
        person: &PersonId,
        now: Timestamp,
        refresh_token: String,
        predecessor: Option<String>,
    ) -> Result<Tokens, GrantError> {
        let minter = self
            .minter
            .as_ref()
            .map_err(|why| GrantError::NoSigningKey(why.clone()))?;
        // A token's `iat` is in whole seconds and one at or before the second of the
        // person's last revocation is refused: a token issued after a revocation (stamped
        // the clock leeway ahead) carries the second after the stamp.
        let min_iat = self
            .revoked_at(person)
            .await?
            .map_or(0, |at| revoked_second(at) + 1);
        let access_token = minter.mint_issued_after(person, self.settings.access_ttl, min_iat)?;
        let grant = Grant {
            person: person.clone(),
            issued_at: now,
            expires_at: now + ms(self.settings.refresh_ttl),
            replaced_at: None,
            successor: None,
            voided: false,
            predecessor,
        };
        self.grants().put(&digest(&refresh_token), &grant).await?;
        Ok(Tokens {
            person: person.clone(),
            access_token,
            access_expires_at: now + ms(self.settings.access_ttl),
            refresh_token,
            refresh_expires_at: grant.expires_at,
        })
    }

    /// When the person's tokens were last revoked, if ever.
    pub async fn revoked_at(&self, person: &PersonId) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .revocations()
            .get(person.as_str())
            .await?
            .map(|r| r.revoked_at))
    }

    /// Refuses (with `token_revoked`) a verified token issued in or before the second of
    /// the person's revocation, or for a person removed from the programme.
    pub async fn check(&self, verified: &Verified) -> Result<(), GrantError> {
        if crate::programme::admin::is_removed(self.store.as_ref(), &verified.person).await? {
            return Err(GrantError::Revoked(
                "your access was withdrawn: you are no longer in the programme".into(),
            ));
        }
        let issued_second = u64::try_from(verified.issued_at / 1000).unwrap_or(0);
        match self.revoked_at(&verified.person).await? {
            Some(at) if issued_second <= revoked_second(at) => Err(GrantError::Revoked(
                "this token was revoked; sign in again".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Voids every token of `person` issued until now, drops their refresh grants, and
    /// closes their connections on every node.
    pub async fn revoke(&self, person: &PersonId) -> Result<(), GrantError> {
        revoke_offline(self.store.as_ref(), person, self.settings.revocation_leeway).await?;
        self.hub.revoke(person, REASON_WITHDRAWN);
        tracing::info!(%person, "access revoked");
        Ok(())
    }

    /// The person signs out on every device: as [`Grants::revoke`], with the close reason
    /// saying so, so their other pages can tell them what happened.
    pub async fn sign_out_everywhere(&self, person: &PersonId) -> Result<(), GrantError> {
        revoke_offline(self.store.as_ref(), person, self.settings.revocation_leeway).await?;
        self.hub.revoke(person, REASON_SIGNED_OUT);
        tracing::info!(%person, "signed out on every device");
        Ok(())
    }
}

/// The second (since the Unix epoch) a revocation at `at` (ms) falls in: tokens whose
/// `iat` is at or before it are void.
fn revoked_second(at: Timestamp) -> u64 {
    u64::try_from(at.div_euclid(1000)).unwrap_or(0)
}

/// Voids every token of `person` issued until now and drops their refresh grants and
/// calendar feed key, in the store only (connections are closed by [`Grants::revoke`]).
///
/// The revocation is stamped `leeway` ahead of this node's clock: a token minted just
/// before it on a node whose clock runs ahead (by up to the leeway) is void too. Tokens
/// minted after it carry an `iat` past the stamp (see [`Grants`]' minting), so signing in
/// again right away works.
pub async fn revoke_offline(
    store: &dyn crate::store::Store,
    person: &PersonId,
    leeway: Duration,
) -> Result<(), StoreError> {
    let revocations: Docs<'_, Revocation> = Docs::new(store, Collection::Revocations);
    revocations
        .put(
            person.as_str(),
            &Revocation {
                revoked_at: now_ms().saturating_add(ms(leeway)),
            },
        )
        .await?;
    let grants: Docs<'_, Grant> = Docs::new(store, Collection::Grants);
    for (key, grant) in grants.all().await? {
        if &grant.person == person {
            grants.delete(&key).await?;
        }
    }
    crate::schedule::calendar::void_key(store, person).await
}
