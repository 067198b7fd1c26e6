//! Changing the programme as a whole: applying a validated roster (people, rooms, regions,
//! cycles and e-mail addresses) and removing the people it no longer lists.
//!
//! A person left out of a new roster is removed: taken out of every room, their tokens
//! revoked and their connections closed, and marked removed so they cannot sign in or be
//! invited. Their past messages stay in history under their id. Listing them again in a
//! later roster brings them back.

use serde::Serialize;
use triad_protocol::{PersonId, RoomKind};

use super::model::{Cycle, Preferences, Region};
use super::roster::Roster;
use crate::auth::Grants;
use crate::store::docs::Docs;
use crate::store::{Collection, Store, StoreError};

/// What an import changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// People in the roster.
    pub people: usize,
    /// Trios in the roster.
    pub trios: usize,
    /// Regions.
    pub regions: usize,
    /// Cycles.
    pub cycles: usize,
    /// People who were in the programme and are no longer.
    pub removed: Vec<PersonId>,
}

/// The removed people ([`Collection::Revocations`] holds the revocation; this is the mark).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct Removed {
    removed_at: i64,
}

/// Whether `person` was removed from the programme.
pub async fn is_removed(store: &dyn Store, person: &PersonId) -> Result<bool, StoreError> {
    let docs: Docs<'_, Removed> = Docs::new(store, Collection::Jobs);
    Ok(docs.get(&removed_key(person)).await?.is_some())
}

fn removed_key(person: &PersonId) -> String {
    format!("removed:{person}")
}

/// Applies a validated roster. With `grants` (a running server), removed people are
/// disconnected at once; without (an offline import), their tokens are voided in the
/// store and a running server refuses them at their next request.
pub async fn apply_roster(
    store: &dyn Store,
    grants: Option<&Grants>,
    roster: &Roster,
) -> Result<ImportSummary, StoreError> {
    let before = store.programme().await?;
    let mut programme = roster.programme.clone();
    // Rooms the roster no longer lists (a trio dissolved) keep their history but lose
    // their people.
    for old in &before.rooms {
        if !programme.rooms.iter().any(|room| room.id == old.id) {
            let mut emptied = old.clone();
            emptied.members.clear();
            emptied.moderators.clear();
            emptied.joined_moderators.clear();
            programme.rooms.push(emptied);
        }
    }
    store.apply_programme(&programme).await?;

    let regions: Docs<'_, Region> = Docs::new(store, Collection::Regions);
    for (id, name) in &roster.regions {
        let region = Region {
            id: id.clone(),
            name: name.clone(),
        };
        regions.put(id, &region).await?;
    }
    let cycles: Docs<'_, Cycle> = Docs::new(store, Collection::Cycles);
    for cycle in &roster.cycles {
        cycles.put(&cycle.id, cycle).await?;
    }
    let preferences: Docs<'_, Preferences> = Docs::new(store, Collection::Preferences);
    for (person, email) in &roster.emails {
        preferences
            .update(person.as_str(), |current| {
                let mut prefs = current.unwrap_or_default();
                prefs.email = Some(email.clone());
                Ok::<_, StoreError>((Some(prefs), ()))
            })
            .await
            .map_err(flatten)?;
    }
    let marks: Docs<'_, Removed> = Docs::new(store, Collection::Jobs);
    for person in &roster.programme.people {
        marks.delete(&removed_key(&person.id)).await?;
    }

    let mut removed = Vec::new();
    for person in &before.people {
        if roster.programme.people.iter().any(|p| p.id == person.id) {
            continue;
        }
        if is_removed(store, &person.id).await? {
            continue;
        }
        let now = crate::store::now_ms();
        marks
            .put(&removed_key(&person.id), &Removed { removed_at: now })
            .await?;
        match grants {
            Some(grants) => grants
                .revoke(&person.id)
                .await
                .map_err(|err| StoreError::Unavailable(err.to_string()))?,
            // Offline, without the token settings: the removal mark refuses the person's
            // tokens anyway, whatever their clock.
            None => {
                crate::auth::grants::revoke_offline(store, &person.id, std::time::Duration::ZERO)
                    .await?;
            }
        }
        removed.push(person.id.clone());
    }
    Ok(ImportSummary {
        people: roster.programme.people.len(),
        trios: roster
            .programme
            .rooms
            .iter()
            .filter(|room| room.kind == RoomKind::Trio)
            .count(),
        regions: roster.regions.len(),
        cycles: roster.cycles.len(),
        removed,
    })
}

fn flatten(err: crate::store::docs::UpdateError<StoreError>) -> StoreError {
    match err {
        crate::store::docs::UpdateError::Refused(err)
        | crate::store::docs::UpdateError::Store(err) => err,
    }
}
