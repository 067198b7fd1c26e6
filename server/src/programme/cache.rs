//! The programme as sessions read it: one in-memory snapshot per node, shared by every
//! `hello` and `join`, reloaded from the store when it is older than a second or when this
//! node changed the programme. A storm of reconnections then reads the programme once,
//! not once per connection.
//!
//! On a node that did not make a change, a snapshot may lag the store by up to its age (a
//! roster applied on another node reaches `hello` here within a second). A session reads
//! its own moderator rooms fresh, so whether a moderator has joined a trio room is never
//! stale for them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use triad_protocol::limits::MAX_LISTED_MEMBERS;
use triad_protocol::{PersonId, PersonInfo, RoomId};

use crate::hub::Hub;
use crate::store::{Programme, SharedStore, StoreError};

/// How old a snapshot may be before it is reloaded.
const MAX_AGE: Duration = Duration::from_secs(1);

/// The programme at one moment, with people indexed by id.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// People and rooms.
    pub programme: Programme,
    /// People by id.
    pub people: HashMap<PersonId, PersonInfo>,
}

impl Snapshot {
    fn of(programme: Programme) -> Self {
        let people = programme
            .people
            .iter()
            .map(|p| (p.id.clone(), p.clone()))
            .collect();
        Self { programme, people }
    }

    /// The rooms with more people than a welcome lists.
    fn large_rooms(&self) -> HashSet<RoomId> {
        self.programme
            .rooms
            .iter()
            .filter(|r| r.members.len() + r.joined_moderators.len() > MAX_LISTED_MEMBERS)
            .map(|r| r.id.clone())
            .collect()
    }
}

/// The shared snapshot and when it was read.
pub struct ProgrammeCache {
    store: SharedStore,
    hub: Arc<Hub>,
    current: RwLock<Option<(Instant, Arc<Snapshot>)>>,
    /// One reload at a time; the others wait for it and share its result.
    loading: tokio::sync::Mutex<()>,
}

impl ProgrammeCache {
    /// An empty cache over `store`; the hub learns which rooms are large at each reload.
    pub fn new(store: SharedStore, hub: Arc<Hub>) -> Self {
        Self {
            store,
            hub,
            current: RwLock::new(None),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<Arc<Snapshot>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|(at, _)| at.elapsed() < MAX_AGE)
            .map(|(_, snapshot)| snapshot.clone())
    }

    /// The programme, at most a second old.
    pub async fn get(&self) -> Result<Arc<Snapshot>, StoreError> {
        if let Some(snapshot) = self.fresh() {
            return Ok(snapshot);
        }
        let _loading = self.loading.lock().await;
        if let Some(snapshot) = self.fresh() {
            return Ok(snapshot);
        }
        let started = Instant::now();
        let snapshot = Arc::new(Snapshot::of(self.store.programme().await?));
        self.hub.set_large_rooms(snapshot.large_rooms());
        *self.current.write().unwrap_or_else(|e| e.into_inner()) =
            Some((started, snapshot.clone()));
        Ok(snapshot)
    }

    /// Forgets the snapshot: this node changed the programme.
    pub fn invalidate(&self) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
