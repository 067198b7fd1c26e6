//! Presence across nodes: what this node knows of the people connected to other nodes
//! (from their presence messages and heartbeats), combined with its own sessions into one
//! status per person, and what it last announced to its local sessions.
//!
//! Every node announces presence to its own sessions only, from its own view; the nodes
//! exchange statuses, not frames. Entries of a node that stops sending heartbeats expire.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use triad_protocol::{PersonId, PresenceStatus, RoomId};

use crate::bus::{NodeId, PresenceEntry};

struct RemoteEntry {
    status: PresenceStatus,
    rooms: Vec<RoomId>,
}

/// Other nodes' presence, and what was announced here.
#[derive(Default)]
pub struct ClusterView {
    remote: HashMap<PersonId, HashMap<NodeId, RemoteEntry>>,
    nodes: HashMap<NodeId, Instant>,
    /// Nodes that said goodbye (node ids are random per process start, so few).
    departed: HashSet<NodeId>,
    announced: HashMap<PersonId, (PresenceStatus, BTreeSet<RoomId>)>,
}

/// The combined status of several sessions or nodes: online beats away beats offline.
pub fn combine(a: PresenceStatus, b: PresenceStatus) -> PresenceStatus {
    use PresenceStatus::{Away, Offline, Online};
    match (a, b) {
        (Online, _) | (_, Online) => Online,
        (Away, _) | (_, Away) => Away,
        (Offline, Offline) => Offline,
    }
}

/// A presence frame to send to local sessions: (room, person, status).
pub type Announcement = (RoomId, PersonId, PresenceStatus);

impl ClusterView {
    /// The person's status on other nodes.
    pub fn remote_status(&self, person: &PersonId) -> PresenceStatus {
        self.remote
            .get(person)
            .map_or(PresenceStatus::Offline, |nodes| {
                nodes
                    .values()
                    .fold(PresenceStatus::Offline, |acc, e| combine(acc, e.status))
            })
    }

    fn remote_rooms(&self, person: &PersonId) -> BTreeSet<RoomId> {
        self.remote
            .get(person)
            .map(|nodes| {
                nodes
                    .values()
                    .flat_map(|e| e.rooms.iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records another node's entry for a person.
    pub fn set_remote(&mut self, node: &str, entry: PresenceEntry, now: Instant) {
        self.nodes.insert(node.to_string(), now);
        let nodes = self.remote.entry(entry.person).or_default();
        if entry.status == PresenceStatus::Offline {
            nodes.remove(node);
        } else {
            nodes.insert(
                node.to_string(),
                RemoteEntry {
                    status: entry.status,
                    rooms: entry.rooms,
                },
            );
        }
    }

    /// Replaces everything known of a node; returns the people whose entries changed.
    pub fn replace_node(
        &mut self,
        node: &str,
        people: Vec<PresenceEntry>,
        now: Instant,
    ) -> Vec<PersonId> {
        let mut touched = self.forget_node(node);
        self.nodes.insert(node.to_string(), now);
        for entry in people {
            touched.push(entry.person.clone());
            self.set_remote(node, entry, now);
        }
        touched.sort();
        touched.dedup();
        touched
    }

    /// Forgets a node; returns the people it had.
    pub fn forget_node(&mut self, node: &str) -> Vec<PersonId> {
        self.nodes.remove(node);
        let mut touched = Vec::new();
        self.remote.retain(|person, nodes| {
            if nodes.remove(node).is_some() {
                touched.push(person.clone());
            }
            !nodes.is_empty()
        });
        touched
    }

    /// Whether a node has been heard from (and has not expired or left since).
    pub fn knows(&self, node: &str) -> bool {
        self.nodes.contains_key(node)
    }

    /// Whether a node said goodbye.
    pub fn departed(&self, node: &str) -> bool {
        self.departed.contains(node)
    }

    /// A node said goodbye: forgets it; returns the people it had.
    pub fn depart(&mut self, node: &str) -> Vec<PersonId> {
        self.departed.insert(node.to_string());
        self.forget_node(node)
    }

    /// The nodes not heard from within `max_age`.
    pub fn stale(&self, now: Instant, max_age: Duration) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, seen)| now.saturating_duration_since(**seen) > max_age)
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// Forgets nodes not heard from within `max_age`; returns the people they had.
    pub fn expire(&mut self, now: Instant, max_age: Duration) -> Vec<PersonId> {
        let stale = self.stale(now, max_age);
        let mut touched = Vec::new();
        for node in stale {
            tracing::info!(%node, "a node stopped sending heartbeats; its presence expires");
            touched.extend(self.forget_node(&node));
        }
        touched
    }

    /// Given the person's local status and rooms, returns the announcements to make if the
    /// combined status differs from what was last announced, and records it.
    pub fn reconcile(
        &mut self,
        person: &PersonId,
        local: PresenceStatus,
        local_rooms: &[RoomId],
    ) -> Vec<Announcement> {
        let status = combine(local, self.remote_status(person));
        let mut rooms = self.remote_rooms(person);
        rooms.extend(local_rooms.iter().cloned());
        let (before, before_rooms) = self
            .announced
            .get(person)
            .cloned()
            .unwrap_or((PresenceStatus::Offline, BTreeSet::new()));
        if before == status {
            // Same status: rooms newly entered hear of it (a moderator's second node, say).
            let fresh: Vec<_> = rooms.difference(&before_rooms).cloned().collect();
            if status != PresenceStatus::Offline {
                self.announced.insert(person.clone(), (status, rooms));
            }
            return fresh
                .into_iter()
                .map(|r| (r, person.clone(), status))
                .collect();
        }
        let mut all = before_rooms;
        all.extend(rooms.iter().cloned());
        if status == PresenceStatus::Offline {
            self.announced.remove(person);
        } else {
            self.announced.insert(person.clone(), (status, rooms));
        }
        all.into_iter()
            .map(|r| (r, person.clone(), status))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str) -> PersonId {
        PersonId::new(id).unwrap()
    }

    fn room(id: &str) -> RoomId {
        RoomId::new(id).unwrap()
    }

    #[test]
    fn a_person_on_two_nodes_is_online_until_both_are_gone() {
        let mut view = ClusterView::default();
        let anna = person("anna");
        let now = Instant::now();
        let rooms = vec![room("trio-1")];
        // Online here: announced.
        let first = view.reconcile(&anna, PresenceStatus::Online, &rooms);
        assert_eq!(
            first,
            vec![(room("trio-1"), anna.clone(), PresenceStatus::Online)]
        );
        // Also online on node B: nothing new to say.
        let entry = PresenceEntry {
            person: anna.clone(),
            status: PresenceStatus::Online,
            rooms: rooms.clone(),
        };
        view.set_remote("b", entry, now);
        assert!(
            view.reconcile(&anna, PresenceStatus::Online, &rooms)
                .is_empty()
        );
        // Gone here, still on B: nothing.
        assert!(
            view.reconcile(&anna, PresenceStatus::Offline, &[])
                .is_empty()
        );
        // B stops heartbeating: offline.
        let touched = view.expire(now + Duration::from_secs(60), Duration::from_secs(15));
        assert_eq!(touched, vec![anna.clone()]);
        let gone = view.reconcile(&anna, PresenceStatus::Offline, &[]);
        assert_eq!(gone, vec![(room("trio-1"), anna, PresenceStatus::Offline)]);
    }
}
