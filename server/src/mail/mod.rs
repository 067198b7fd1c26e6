//! E-mail: reminders of coaching sessions ([`Mailer::reminder`]) and digests of unread
//! messages for people who are offline ([`digest`]), sent through SMTP with lettre.
//!
//! E-mail is off unless `smtp_url` is configured. Whether a person gets mail at all, and
//! which, is their choice in their [`Preferences`]: an address (from the roster) and the
//! `email_reminders` and `email_digest` switches. The texts are in [`compose`]; times in
//! them are shown in the reader's own time zone.
//!
//! Mails about bookings, moves and cancellations are limited per person and room
//! (`COACHING_MAILS_BURST`, then `COACHING_MAILS_PER_HOUR`), by each node for itself (with
//! several nodes, up to that many times as much): a burst of changes reaches everyone in
//! the app and the calendar feed, but not as a flood of mail. Reminders before
//! a session and its start are always sent.

pub mod compose;
pub mod digest;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Tokio1Executor};
use std::time::Duration;

use triad_protocol::limits::{COACHING_MAILS_BURST, COACHING_MAILS_PER_HOUR};
use triad_protocol::{CoachingChange, CoachingSession, PersonId, PersonInfo, RoomId};

use crate::config::Config;
use crate::programme::Preferences;
use crate::programme::model::preferences;
use crate::store::{SharedStore, StoreError};
use crate::throttle::{Rate, Throttle};

pub use digest::start_digests;

/// Why an e-mail could not be sent, or the mailer set up.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The `smtp_url` setting is not a usable SMTP URL.
    #[error("invalid smtp_url: {0}")]
    SmtpUrl(String),
    /// The `mail_from` setting is not an address.
    #[error("invalid mail_from {0:?}: {1}")]
    From(String, String),
    /// A person's address is not an address.
    #[error("invalid e-mail address {0:?}: {1}")]
    Address(String, String),
    /// The message could not be built.
    #[error("cannot build the e-mail: {0}")]
    Build(#[from] lettre::error::Error),
    /// The SMTP server refused or could not be reached.
    #[error("cannot send the e-mail: {0}")]
    Send(#[from] lettre::transport::smtp::Error),
    /// The store failed (reading preferences).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sends e-mail, or nothing when no SMTP server is configured.
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    public_url: String,
    store: SharedStore,
    /// E-mails about bookings, moves and cancellations, per person and room.
    change_mails: Throttle<(PersonId, RoomId)>,
}

impl Mailer {
    /// A mailer sending through `smtp_url` (none: sending nothing) as `from`, with links
    /// under `public_url`; preferences are read from `store`.
    pub fn new(
        smtp_url: Option<&str>,
        from: &str,
        public_url: &str,
        store: SharedStore,
    ) -> Result<Self, MailError> {
        let transport = smtp_url
            .map(|url| {
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map(|builder| builder.build())
                    .map_err(|err| MailError::SmtpUrl(err.to_string()))
            })
            .transpose()?;
        let from = from
            .parse::<Mailbox>()
            .map_err(|err| MailError::From(from.to_owned(), err.to_string()))?;
        Ok(Self {
            transport,
            from,
            public_url: public_url.trim_end_matches('/').to_owned(),
            store,
            change_mails: Throttle::new(Rate::new(
                COACHING_MAILS_PER_HOUR,
                Duration::from_secs(3600),
                COACHING_MAILS_BURST,
            )),
        })
    }

    /// The mailer the configuration asks for.
    pub fn from_config(config: &Config, store: SharedStore) -> Result<Self, MailError> {
        Self::new(
            config.smtp_url.as_deref(),
            &config.mail_from,
            &config.public_url(),
            store,
        )
    }

    /// Whether e-mail is configured.
    pub fn enabled(&self) -> bool {
        self.transport.is_some()
    }

    /// The URL people reach the server at, without a trailing slash, for links in mails and
    /// calendars.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The store preferences are read from.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// Sends a plain-text mail to `to`; nothing when e-mail is off.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let Some(transport) = &self.transport else {
            return Ok(());
        };
        let to = to
            .parse::<Mailbox>()
            .map_err(|err| MailError::Address(to.to_owned(), err.to_string()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)?;
        transport.send(message).await?;
        Ok(())
    }

    /// Tells `person` by e-mail that `session` (of the room titled `room_title`) was booked,
    /// moved or cancelled, is coming up, or starts: only if e-mail is on and the person has
    /// an address and reminders on. The time is shown in the person's own zone.
    pub async fn reminder(
        &self,
        person: &PersonInfo,
        session: &CoachingSession,
        room_title: &str,
        change: CoachingChange,
    ) -> Result<(), MailError> {
        if !self.enabled() {
            return Ok(());
        }
        let Preferences {
            email: Some(email),
            email_reminders: true,
            ..
        } = preferences(self.store.as_ref(), &person.id).await?
        else {
            return Ok(());
        };
        let is_change = matches!(
            change,
            CoachingChange::Booked | CoachingChange::Moved | CoachingChange::Cancelled
        );
        if is_change
            && self
                .change_mails
                .check(&(person.id.clone(), session.room.clone()))
                .is_err()
        {
            tracing::info!(person = %person.id, coaching = %session.id, ?change, "change not e-mailed: too many for this room lately");
            return Ok(());
        }
        let (subject, body) =
            compose::reminder(person, session, room_title, change, &self.public_url);
        self.send(&email, &subject, body).await?;
        tracing::info!(person = %person.id, coaching = %session.id, ?change, "reminder e-mailed");
        Ok(())
    }
}
