//! What the programme keeps beyond people and rooms: regions and cycles, stored as
//! documents ([`Collection::Regions`], [`Collection::Cycles`]).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use triad_protocol::Timestamp;

use crate::store::docs::Docs;
use crate::store::{Collection, Store, StoreError};

/// A region of the programme (one country's group of schools).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// Its id, e.g. `vejle`.
    pub id: String,
    /// Its name, e.g. `Vejle, Denmark`.
    pub name: String,
}

/// A cycle of the programme: about eight months, hosted by one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cycle {
    /// Its id, e.g. `cycle-1`.
    pub id: String,
    /// Its name, e.g. `Cycle 1: Vejle`.
    pub name: String,
    /// Its first day.
    pub starts: NaiveDate,
    /// Its last day (inclusive).
    pub ends: NaiveDate,
    /// The region hosting its visits.
    pub host_region: String,
}

impl Cycle {
    /// The cycle as a UTC time range `[from, to)` in milliseconds: from the start of its
    /// first day to the end of its last (UTC days; a day's margin either side is the
    /// reader's business).
    pub fn range(&self) -> (Timestamp, Timestamp) {
        let from = self
            .starts
            .and_hms_opt(0, 0, 0)
            .map_or(0, |at| at.and_utc().timestamp_millis());
        let to = self
            .ends
            .succ_opt()
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .map_or(i64::MAX, |at| at.and_utc().timestamp_millis());
        (from, to)
    }

    /// Whether an instant falls in the cycle.
    pub fn contains(&self, at: Timestamp) -> bool {
        let (from, to) = self.range();
        (from..to).contains(&at)
    }
}

/// Every region, by id.
pub async fn regions(store: &dyn Store) -> Result<Vec<Region>, StoreError> {
    let docs: Docs<'_, Region> = Docs::new(store, Collection::Regions);
    Ok(docs.all().await?.into_iter().map(|(_, r)| r).collect())
}

/// Every cycle, by start.
pub async fn cycles(store: &dyn Store) -> Result<Vec<Cycle>, StoreError> {
    let docs: Docs<'_, Cycle> = Docs::new(store, Collection::Cycles);
    let mut cycles: Vec<Cycle> = docs.all().await?.into_iter().map(|(_, c)| c).collect();
    cycles.sort_by(|a, b| (a.starts, &a.id).cmp(&(b.starts, &b.id)));
    Ok(cycles)
}

/// One cycle.
pub async fn cycle(store: &dyn Store, id: &str) -> Result<Option<Cycle>, StoreError> {
    Docs::new(store, Collection::Cycles).get(id).await
}

/// A person's contact details and choices ([`Collection::Preferences`], keyed by person).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    /// Their e-mail address, from the roster.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether they get reminders of coaching sessions by e-mail.
    #[serde(default = "yes")]
    pub email_reminders: bool,
    /// Whether they get a digest of unread messages by e-mail while offline.
    #[serde(default = "yes")]
    pub email_digest: bool,
}

fn yes() -> bool {
    true
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            email: None,
            email_reminders: true,
            email_digest: true,
        }
    }
}

/// A person's preferences (the defaults if none are stored).
pub async fn preferences(
    store: &dyn Store,
    person: &triad_protocol::PersonId,
) -> Result<Preferences, StoreError> {
    let docs: Docs<'_, Preferences> = Docs::new(store, Collection::Preferences);
    Ok(docs.get(person.as_str()).await?.unwrap_or_default())
}
