//! The programme as an editable roster document: what the store holds, written back as the
//! roster format ([`RosterDoc::current`], [`RosterDoc::to_toml`]), so that a single change
//! (one person, trio, cycle or region, sent as JSON) goes through the very same validation
//! as a whole roster, and `GET /api/roster` gives the coordinator a file to edit and apply.

use serde::{Deserialize, Serialize};
use triad_protocol::{Role, RoomKind};

use super::model::{self, Cycle};
use crate::store::{Store, StoreError};

/// A region entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionEntry {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A cycle entry (dates as `YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CycleEntry {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its first day.
    pub starts: String,
    /// Its last day.
    pub ends: String,
    /// The hosting region.
    pub host_region: String,
}

/// A person entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonEntry {
    /// Their id.
    pub id: String,
    /// Their name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// Their region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Their school.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub school: String,
    /// Their IANA time zone.
    pub time_zone: String,
    /// Their e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A trio entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrioEntry {
    /// Its room id.
    pub id: String,
    /// Its title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Its three heads.
    pub heads: Vec<String>,
    /// Its moderators.
    #[serde(default)]
    pub moderators: Vec<String>,
}

/// A whole roster, as data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterDoc {
    /// Regions.
    pub regions: Vec<RegionEntry>,
    /// Cycles.
    pub cycles: Vec<CycleEntry>,
    /// People (removed people are not listed).
    pub people: Vec<PersonEntry>,
    /// Trios that have heads.
    pub trios: Vec<TrioEntry>,
}

impl RosterDoc {
    /// The programme in the store, as a roster.
    pub async fn current(store: &dyn Store) -> Result<Self, StoreError> {
        let programme = store.programme().await?;
        let mut people = Vec::new();
        for person in &programme.people {
            if super::admin::is_removed(store, &person.id).await? {
                continue;
            }
            let email = model::preferences(store, &person.id).await?.email;
            people.push(PersonEntry {
                id: person.id.to_string(),
                name: person.name.clone(),
                role: person.role,
                region: (!person.region.is_empty()).then(|| person.region.clone()),
                school: person.school.clone(),
                time_zone: person.time_zone.clone(),
                email,
            });
        }
        people.sort_by(|a, b| a.id.cmp(&b.id));
        let mut trios: Vec<TrioEntry> = programme
            .rooms
            .iter()
            .filter(|room| room.kind == RoomKind::Trio && !room.members.is_empty())
            .map(|room| TrioEntry {
                id: room.id.to_string(),
                title: Some(room.title.clone()),
                heads: room.members.iter().map(ToString::to_string).collect(),
                moderators: room.moderators.iter().map(ToString::to_string).collect(),
            })
            .collect();
        trios.sort_by(|a, b| a.id.cmp(&b.id));
        let regions = model::regions(store)
            .await?
            .into_iter()
            .map(|r| RegionEntry {
                id: r.id,
                name: r.name,
            })
            .collect();
        let cycles = model::cycles(store)
            .await?
            .into_iter()
            .map(|c: Cycle| CycleEntry {
                id: c.id,
                name: c.name,
                starts: c.starts.to_string(),
                ends: c.ends.to_string(),
                host_region: c.host_region,
            })
            .collect();
        Ok(Self {
            regions,
            cycles,
            people,
            trios,
        })
    }

    /// The roster file.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Puts a person in (replacing the one with the same id).
    pub fn put_person(&mut self, person: PersonEntry) {
        put(&mut self.people, person, |p| &p.id);
    }

    /// Puts a trio in.
    pub fn put_trio(&mut self, trio: TrioEntry) {
        put(&mut self.trios, trio, |t| &t.id);
    }

    /// Puts a cycle in.
    pub fn put_cycle(&mut self, cycle: CycleEntry) {
        put(&mut self.cycles, cycle, |c| &c.id);
    }

    /// Puts a region in.
    pub fn put_region(&mut self, region: RegionEntry) {
        put(&mut self.regions, region, |r| &r.id);
    }

    /// Takes a person out; whether they were in.
    pub fn remove_person(&mut self, id: &str) -> bool {
        let before = self.people.len();
        self.people.retain(|p| p.id != id);
        before != self.people.len()
    }

    /// Takes a trio out (its room keeps its history, without people); whether it was in.
    pub fn remove_trio(&mut self, id: &str) -> bool {
        let before = self.trios.len();
        self.trios.retain(|t| t.id != id);
        before != self.trios.len()
    }
}

fn put<T>(list: &mut Vec<T>, item: T, id: impl Fn(&T) -> &String) {
    match list.iter().position(|x| id(x) == id(&item)) {
        Some(at) => list[at] = item,
        None => list.push(item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programme::{DEMO_ROSTER, Roster};

    #[test]
    fn a_roster_written_back_parses_to_the_same_programme() {
        let roster = Roster::parse(DEMO_ROSTER).unwrap();
        let doc = RosterDoc {
            regions: roster
                .regions
                .iter()
                .map(|(id, name)| RegionEntry {
                    id: id.clone(),
                    name: name.clone(),
                })
                .collect(),
            cycles: Vec::new(),
            people: roster
                .programme
                .people
                .iter()
                .map(|p| PersonEntry {
                    id: p.id.to_string(),
                    name: p.name.clone(),
                    role: p.role,
                    region: (!p.region.is_empty()).then(|| p.region.clone()),
                    school: p.school.clone(),
                    time_zone: p.time_zone.clone(),
                    email: None,
                })
                .collect(),
            trios: roster
                .programme
                .rooms
                .iter()
                .filter(|r| r.kind == RoomKind::Trio)
                .map(|r| TrioEntry {
                    id: r.id.to_string(),
                    title: Some(r.title.clone()),
                    heads: r.members.iter().map(ToString::to_string).collect(),
                    moderators: r.moderators.iter().map(ToString::to_string).collect(),
                })
                .collect(),
        };
        let again = Roster::parse(&doc.to_toml()).unwrap();
        assert_eq!(again.programme, roster.programme);
    }
}
