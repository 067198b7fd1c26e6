//! The programme as sessions read it: one in-memory snapshot per node, shared by every
//! `hello` and `join`. Once a second at most, the store's programme version is read (one
//! small read); the programme itself is read again only when that version has changed,
//! when this node changed the programme, or once a minute whatever the version says (so a
//! change whose announcement was lost is picked up all the same). A storm of reconnections then reads the programme
//! once, not once per connection, and a large programme that does not change is not
//! read again and again (each reading would build and drop the whole programme).
//!
//! On a node that did not make a change, a snapshot may lag the store by up to a second
//! (a roster applied on another node reaches `hello` here within a second). Which
//! moderators have joined a trio room is not taken from the snapshot: it changes with
//! every first visit, so sessions read trio rooms fresh and it is never stale.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use triad_protocol::limits::MAX_LISTED_MEMBERS;
use triad_protocol::{PersonId, PersonInfo, RoomId};

use crate::hub::Hub;
use crate::store::{Programme, SharedStore, StoreError};

/// How long a snapshot is used before the store's programme version is read again.
const MAX_AGE: Duration = Duration::from_secs(1);

/// How long a snapshot is kept at most, even if the version has not changed.
const MAX_KEPT: Duration = Duration::from_secs(60);

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

/// The snapshot in use: the store's programme version it was read at, when it was read,
/// and when that version was last found current.
struct Current {
    read: Instant,
    checked: Instant,
    version: u64,
    snapshot: Arc<Snapshot>,
}

/// The shared snapshot and when it was read.
pub struct ProgrammeCache {
    store: SharedStore,
    hub: Arc<Hub>,
    current: RwLock<Option<Current>>,
    /// One reload at a time; the others wait for it and share its result.
    loading: tokio::sync::Mutex<()>,
    /// Raised by [`ProgrammeCache::invalidate`]: a reload that began before is not kept.
    generation: AtomicU64,
}

impl ProgrammeCache {
    /// An empty cache over `store`; the hub learns which rooms are large at each reload.
    pub fn new(store: SharedStore, hub: Arc<Hub>) -> Self {
        Self {
            store,
            hub,
            current: RwLock::new(None),
            loading: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    fn fresh(&self) -> Option<Arc<Snapshot>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|c| c.checked.elapsed() < MAX_AGE)
            .map(|c| c.snapshot.clone())
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
        let generation = self.generation.load(Ordering::Acquire);
        let checked = Instant::now();
        // Read before the programme: a programme read after it holds every change the
        // version counts.
        let version = self.store.programme_version().await?;
        if let Some(unchanged) = self.confirm(version, checked) {
            return Ok(unchanged);
        }
        let snapshot = Arc::new(Snapshot::of(self.store.programme().await?));
        if self.generation.load(Ordering::Acquire) == generation {
            self.hub.set_large_rooms(snapshot.large_rooms());
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Current {
                read: checked,
                checked,
                version,
                snapshot: snapshot.clone(),
            });
        }
        Ok(snapshot)
    }

    /// The snapshot in use, marked current, if it was read at `version` and is not too old
    /// to keep.
    fn confirm(&self, version: u64, checked: Instant) -> Option<Arc<Snapshot>> {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let current = current
            .as_mut()
            .filter(|c| c.version == version && c.read.elapsed() < MAX_KEPT)?;
        current.checked = checked;
        Some(current.snapshot.clone())
    }

    /// Forgets the snapshot: this node changed the programme.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
