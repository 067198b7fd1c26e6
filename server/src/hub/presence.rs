//! The presence book: each person's sessions on this node, their status (online or away),
//! and the person's send bucket. A person with several tabs or devices is one presence:
//! online if any session is online, away if all are away, offline when none is left.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use triad_protocol::{PersonId, PresenceStatus, RoomId};

use super::outbox::{Outbox, SessionKey};
use super::rate::TokenBucket;

/// A person's presence changed: tell these rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    /// Who.
    pub person: PersonId,
    /// Their status now.
    pub status: PresenceStatus,
    /// The rooms to tell.
    pub rooms: Vec<RoomId>,
}

struct SessionEntry {
    status: PresenceStatus,
    outbox: Outbox,
    rooms: Vec<RoomId>,
}

struct PersonEntry {
    sessions: HashMap<SessionKey, SessionEntry>,
    bucket: Arc<Mutex<TokenBucket>>,
}

impl PersonEntry {
    fn status(&self) -> PresenceStatus {
        let mut status = PresenceStatus::Offline;
        for session in self.sessions.values() {
            match session.status {
                PresenceStatus::Online => return PresenceStatus::Online,
                PresenceStatus::Away => status = PresenceStatus::Away,
                PresenceStatus::Offline => {}
            }
        }
        status
    }

    fn rooms(&self) -> Vec<RoomId> {
        let set: BTreeSet<&RoomId> = self
            .sessions
            .values()
            .flat_map(|s| s.rooms.iter())
            .collect();
        set.into_iter().cloned().collect()
    }
}

/// Sessions and status per person.
pub struct PresenceBook {
    people: Mutex<HashMap<PersonId, PersonEntry>>,
    send_rate: u32,
    send_burst: u32,
}

impl PresenceBook {
    /// An empty book; new people get a send bucket of `send_rate` per second and
    /// `send_burst` at once.
    pub fn new(send_rate: u32, send_burst: u32) -> Self {
        Self {
            people: Mutex::default(),
            send_rate,
            send_burst,
        }
    }

    /// Sends per person per second.
    pub fn send_rate(&self) -> u32 {
        self.send_rate
    }

    /// Sends per person in a burst.
    pub fn send_burst(&self) -> u32 {
        self.send_burst
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<PersonId, PersonEntry>) -> R) -> R {
        f(&mut self.people.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A session connected, in `rooms`. Returns the person's send bucket, and the change
    /// to announce if they were offline.
    pub fn connect(
        &self,
        outbox: &Outbox,
        rooms: Vec<RoomId>,
    ) -> (Arc<Mutex<TokenBucket>>, Option<PresenceChange>) {
        self.with(|people| {
            let entry = people
                .entry(outbox.person().clone())
                .or_insert_with(|| PersonEntry {
                    sessions: HashMap::new(),
                    bucket: Arc::new(Mutex::new(TokenBucket::new(
                        self.send_rate,
                        self.send_burst,
                    ))),
                });
            let before = entry.status();
            entry.sessions.insert(
                outbox.key(),
                SessionEntry {
                    status: PresenceStatus::Online,
                    outbox: outbox.clone(),
                    rooms,
                },
            );
            let change = change(outbox.person(), before, entry, None);
            (entry.bucket.clone(), change)
        })
    }

    /// A session ended.
    pub fn disconnect(&self, person: &PersonId, key: SessionKey) -> Option<PresenceChange> {
        self.with(|people| {
            let entry = people.get_mut(person)?;
            let before = entry.status();
            let rooms_before = entry.rooms();
            entry.sessions.remove(&key);
            change(person, before, entry, Some(rooms_before))
        })
    }

    /// A session became online or away.
    pub fn set_status(
        &self,
        person: &PersonId,
        key: SessionKey,
        status: PresenceStatus,
    ) -> Option<PresenceChange> {
        self.with(|people| {
            let entry = people.get_mut(person)?;
            let before = entry.status();
            entry.sessions.get_mut(&key)?.status = status;
            change(person, before, entry, None)
        })
    }

    /// A session entered or left rooms (a moderator's join or leave).
    pub fn set_rooms(&self, person: &PersonId, key: SessionKey, rooms: Vec<RoomId>) {
        self.with(|people| {
            if let Some(session) = people
                .get_mut(person)
                .and_then(|e| e.sessions.get_mut(&key))
            {
                session.rooms = rooms;
            }
        });
    }

    /// A person's status now.
    pub fn status(&self, person: &PersonId) -> PresenceStatus {
        self.with(|people| {
            people
                .get(person)
                .map_or(PresenceStatus::Offline, PersonEntry::status)
        })
    }

    /// A person's status and rooms on this node.
    pub fn local(&self, person: &PersonId) -> (PresenceStatus, Vec<RoomId>) {
        self.with(|people| {
            people
                .get(person)
                .map_or((PresenceStatus::Offline, Vec::new()), |e| {
                    (e.status(), e.rooms())
                })
        })
    }

    /// Everyone connected to this node, for heartbeats.
    pub fn snapshot(&self) -> Vec<crate::bus::PresenceEntry> {
        self.with(|people| {
            people
                .iter()
                .filter(|(_, e)| !e.sessions.is_empty())
                .map(|(person, e)| crate::bus::PresenceEntry {
                    person: person.clone(),
                    status: e.status(),
                    rooms: e.rooms(),
                })
                .collect()
        })
    }

    /// The outbox of one of a person's sessions (for a call frame another node sent it).
    pub fn outbox(&self, person: &PersonId, key: SessionKey) -> Option<Outbox> {
        self.with(|people| {
            let session = people.get(person)?.sessions.get(&key)?;
            Some(session.outbox.clone())
        })
    }

    /// The outboxes of a person's sessions.
    pub fn sessions_of(&self, person: &PersonId) -> Vec<Outbox> {
        self.with(|people| {
            people
                .get(person)
                .map(|e| e.sessions.values().map(|s| s.outbox.clone()).collect())
                .unwrap_or_default()
        })
    }
}

fn change(
    person: &PersonId,
    before: PresenceStatus,
    entry: &PersonEntry,
    rooms: Option<Vec<RoomId>>,
) -> Option<PresenceChange> {
    let status = entry.status();
    (status != before).then(|| PresenceChange {
        person: person.clone(),
        status,
        rooms: rooms.unwrap_or_else(|| entry.rooms()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::outbox::SessionControl;

    fn outbox(person: &PersonId, key: SessionKey) -> Outbox {
        Outbox::new(key, person.clone(), 4, Arc::new(SessionControl::default())).0
    }

    #[test]
    fn several_tabs_count_as_one_presence() {
        let book = PresenceBook::new(5, 30);
        let anna = PersonId::new("anna").unwrap();
        let room = vec![RoomId::new("trio-1").unwrap()];
        let (_, first) = book.connect(&outbox(&anna, 1), room.clone());
        assert_eq!(first.unwrap().status, PresenceStatus::Online);
        let (_, second) = book.connect(&outbox(&anna, 2), room.clone());
        assert_eq!(second, None, "a second tab changes nothing");
        assert_eq!(
            book.set_status(&anna, 1, PresenceStatus::Away),
            None,
            "the other tab is online"
        );
        let away = book.set_status(&anna, 2, PresenceStatus::Away).unwrap();
        assert_eq!(away.status, PresenceStatus::Away);
        assert_eq!(book.disconnect(&anna, 1), None);
        let gone = book.disconnect(&anna, 2).unwrap();
        assert_eq!((gone.status, gone.rooms), (PresenceStatus::Offline, room));
        assert_eq!(book.status(&anna), PresenceStatus::Offline);
    }
}
