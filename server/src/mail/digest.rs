//! Digests of unread messages: every `digest_interval`, each person with an address and the
//! digest on who is offline everywhere gets one e-mail listing, per room they are in, how
//! many events they have not read and the newest messages, if messages arrived since the
//! last digest covered the room.
//!
//! What a person's digests have covered is one document in [`Collection::Jobs`]
//! (`digest:<person>`: room to the last seq covered). A node claims a digest by moving
//! those positions with compare-and-set before sending, so with several nodes only one
//! sends it; if sending fails, the claim is given back for the next round.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use triad_protocol::{EventBody, PersonId, PersonInfo, PresenceStatus, Seq};

use super::compose::{self, DigestRoom, Quoted};
use super::{MailError, Mailer};
use crate::auth::access_to;
use crate::hub::Hub;
use crate::programme::Preferences;
use crate::store::docs::{Docs, UpdateError};
use crate::store::{Collection, Page, SharedStore, Store, StoreError};

/// How many of the newest unread messages of a room a digest quotes.
pub const QUOTED_PER_ROOM: usize = 3;

/// How far back a digest looks for the messages it quotes.
const LOOK_BACK: u32 = 50;

/// Room id to the last seq a person's digests covered.
pub type Covered = BTreeMap<String, Seq>;

/// The key of a person's digest record in [`Collection::Jobs`].
pub fn job_key(person: &PersonId) -> String {
    format!("digest:{person}")
}

/// Starts the digest loop: a round every `interval` until `shutdown`. Does nothing when
/// e-mail is off.
pub fn start_digests(
    mailer: Arc<Mailer>,
    store: SharedStore,
    hub: Arc<Hub>,
    interval: Duration,
    shutdown: CancellationToken,
) -> Option<JoinHandle<()>> {
    if !mailer.enabled() {
        return None;
    }
    let interval = interval.max(Duration::from_millis(10));
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            match send_digests(&mailer, store.as_ref(), &hub).await {
                Ok(0) => {}
                Ok(sent) => tracing::info!(sent, "unread digests e-mailed"),
                Err(err) => tracing::warn!(error = %err, "digest round failed"),
            }
        }
    }))
}

/// One round: sends the digests that are due; returns how many were sent. A failure for
/// one person is logged and the round goes on.
pub async fn send_digests(
    mailer: &Mailer,
    store: &dyn Store,
    hub: &Hub,
) -> Result<usize, StoreError> {
    let wanted: Vec<(String, Preferences)> = Docs::new(store, Collection::Preferences)
        .all()
        .await?
        .into_iter()
        .filter(|(_, prefs): &(String, Preferences)| prefs.email.is_some() && prefs.email_digest)
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let programme = store.programme().await?;
    let names: HashMap<&PersonId, &str> = programme
        .people
        .iter()
        .map(|person| (&person.id, person.name.as_str()))
        .collect();
    let mut sent = 0;
    for (id, prefs) in wanted {
        let Some(person) = programme.people.iter().find(|p| p.id.as_str() == id) else {
            continue;
        };
        let Some(email) = prefs.email.as_deref() else {
            continue;
        };
        if hub.status(&person.id) != PresenceStatus::Offline {
            continue;
        }
        match digest_for(mailer, store, person, email, &programme.rooms, &names).await {
            Ok(true) => sent += 1,
            Ok(false) => {}
            Err(err) => tracing::warn!(person = %person.id, error = %err, "digest not sent"),
        }
    }
    Ok(sent)
}

/// A room's part of a digest, with the seq it covers up to.
struct Due {
    room: String,
    last_seq: Seq,
    /// The position the record held when read.
    seen: Option<Seq>,
    part: DigestRoom,
}

/// Sends `person` their digest if one is due; returns whether it was sent (by this node).
async fn digest_for(
    mailer: &Mailer,
    store: &dyn Store,
    person: &PersonInfo,
    email: &str,
    rooms: &[crate::store::RoomRecord],
    names: &HashMap<&PersonId, &str>,
) -> Result<bool, MailError> {
    let jobs: Docs<'_, Covered> = Docs::new(store, Collection::Jobs);
    let key = job_key(&person.id);
    let covered = jobs.get(&key).await?.unwrap_or_default();
    let mut due = Vec::new();
    for room in rooms
        .iter()
        .filter(|room| access_to(room, &person.id).is_in())
    {
        let state = store.room_state(&room.id).await?;
        let read = store
            .read_marker(&room.id, &person.id)
            .await?
            .min(state.last_seq);
        // A position past the end means the room's history was reset since.
        let seen = covered.get(room.id.as_str()).copied();
        let done = seen.filter(|&seq| seq <= state.last_seq).unwrap_or(0);
        let since = read.max(done);
        if state.last_seq <= since {
            continue;
        }
        let page = store
            .history(&room.id, Page::Latest { limit: LOOK_BACK })
            .await?;
        let messages: Vec<_> = page
            .events
            .iter()
            .filter(|event| event.seq > read)
            .filter_map(|event| match &event.body {
                EventBody::Message { body, .. } => Some((event.seq, &event.author, body)),
                _ => None,
            })
            .collect();
        if !messages.iter().any(|(seq, _, _)| *seq > since) {
            continue;
        }
        let latest = messages[messages.len().saturating_sub(QUOTED_PER_ROOM)..]
            .iter()
            .map(|(_, author, body)| Quoted {
                author: names
                    .get(author)
                    .map_or_else(|| author.to_string(), |name| (*name).to_owned()),
                body: (*body).clone(),
            })
            .collect();
        due.push(Due {
            room: room.id.to_string(),
            last_seq: state.last_seq,
            seen,
            part: DigestRoom {
                title: room.title.clone(),
                unread: state.last_seq - read,
                latest,
            },
        });
    }
    if due.is_empty() {
        return Ok(false);
    }
    let Some((previous, claimed)) = claim(&jobs, &key, &due).await? else {
        return Ok(false);
    };
    let parts: Vec<DigestRoom> = due.into_iter().map(|due| due.part).collect();
    let (subject, body) = compose::digest(person, &parts, mailer.public_url());
    if let Err(err) = mailer.send(email, &subject, body).await {
        give_back(&jobs, &key, previous, claimed).await;
        return Err(err);
    }
    tracing::info!(person = %person.id, rooms = parts.len(), "unread digest e-mailed");
    Ok(true)
}

/// Why a claim did not happen.
enum NotDue {
    /// Another node covered these rooms meanwhile.
    Covered,
}

/// Moves the person's covered positions to `due`, unless another node already did;
/// returns the record before and after.
async fn claim(
    jobs: &Docs<'_, Covered>,
    key: &str,
    due: &[Due],
) -> Result<Option<(Option<Covered>, Covered)>, StoreError> {
    let result = jobs
        .update(key, |current| {
            let mut next = current.clone().unwrap_or_default();
            let mut moved = false;
            for due in due {
                let seq = next.entry(due.room.clone()).or_insert(0);
                // Behind: ours to cover. Ahead of the room: stale from before a reset,
                // unless another node wrote it since we read.
                let stale = *seq > due.last_seq && Some(*seq) == due.seen;
                if *seq < due.last_seq || stale {
                    *seq = due.last_seq;
                    moved = true;
                }
            }
            if moved {
                Ok((Some(next.clone()), (current, next)))
            } else {
                Err(NotDue::Covered)
            }
        })
        .await;
    match result {
        Ok(claimed) => Ok(Some(claimed)),
        Err(UpdateError::Refused(NotDue::Covered)) => Ok(None),
        Err(UpdateError::Store(err)) => Err(err),
    }
}

/// Puts the record back as it was before a claim whose mail could not be sent, unless it
/// changed since.
async fn give_back(
    jobs: &Docs<'_, Covered>,
    key: &str,
    previous: Option<Covered>,
    claimed: Covered,
) {
    let result = jobs
        .update(key, |current| {
            if current.as_ref() == Some(&claimed) {
                Ok((previous.clone(), ()))
            } else {
                Err(())
            }
        })
        .await;
    if let Err(UpdateError::Store(err)) = result {
        tracing::warn!(key, error = %err, "could not give back a digest claim");
    }
}
