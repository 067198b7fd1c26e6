//! Roster files: people with name, role, region, school and IANA time zone; trios of three
//! heads; moderator assignments. Parsing reports every problem, each with its line.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Deserialize;
use toml::Spanned;
use triad_protocol::{PersonId, PersonInfo, Role, RoomId, RoomKind};

use super::model::Cycle;
use super::{COMMONS, STAFF};
use crate::store::{Programme, RoomRecord};

/// One problem in a roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file.
    pub line: usize,
    /// The field (e.g. `people[2].time_zone`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.message)
    }
}

/// A roster that could not be accepted: every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RosterError {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for RosterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the roster has {} problem(s):", self.problems.len())?;
        for problem in &self.problems {
            writeln!(f, "  {problem}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterFile {
    #[serde(default)]
    regions: Vec<Spanned<RegionEntry>>,
    #[serde(default)]
    people: Vec<Spanned<PersonEntry>>,
    #[serde(default)]
    trios: Vec<Spanned<TrioEntry>>,
    #[serde(default)]
    cycles: Vec<Spanned<CycleEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CycleEntry {
    id: Spanned<String>,
    name: String,
    starts: Spanned<String>,
    ends: Spanned<String>,
    host_region: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionEntry {
    id: Spanned<String>,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonEntry {
    id: Spanned<String>,
    name: Spanned<String>,
    role: Role,
    #[serde(default)]
    region: Option<Spanned<String>>,
    #[serde(default)]
    school: String,
    time_zone: Spanned<String>,
    #[serde(default)]
    email: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrioEntry {
    id: Spanned<String>,
    #[serde(default)]
    title: Option<String>,
    heads: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    moderators: Vec<Spanned<String>>,
}

/// A validated roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// Region ids and names.
    pub regions: Vec<(String, String)>,
    /// The programme it defines.
    pub programme: Programme,
    /// The cycles, in file order.
    pub cycles: Vec<Cycle>,
    /// Each person's e-mail address, for those with one.
    pub emails: Vec<(PersonId, String)>,
}

struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn report<T>(&mut self, at: &Spanned<T>, field: String, message: impl Into<String>) {
        let line = self.line(at.span().start);
        self.problems.push(Problem {
            line,
            field,
            message: message.into(),
        });
    }
}

impl Roster {
    /// Parses and validates a roster, reporting every problem found.
    pub fn parse(text: &str) -> Result<Self, RosterError> {
        let file: RosterFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            RosterError {
                problems: vec![Problem {
                    line: line.unwrap_or(1),
                    field: "roster".into(),
                    message: e.message().to_string(),
                }],
            }
        })?;
        let mut c = Checker {
            text,
            problems: Vec::new(),
        };

        let mut regions = Vec::new();
        let mut region_ids = HashSet::new();
        for (i, region) in file.regions.iter().enumerate() {
            let id = region.get_ref().id.get_ref();
            if !region_ids.insert(id.clone()) {
                c.report(
                    &region.get_ref().id,
                    format!("regions[{i}].id"),
                    format!("region {id:?} appears twice"),
                );
            }
            regions.push((id.clone(), region.get_ref().name.clone()));
        }

        let mut cycles = Vec::new();
        let mut cycle_ids = HashSet::new();
        for (i, entry) in file.cycles.iter().enumerate() {
            let e = entry.get_ref();
            let field = |name: &str| format!("cycles[{i}].{name}");
            if let Err(err) = RoomId::new(e.id.get_ref().clone()) {
                c.report(
                    &e.id,
                    field("id"),
                    err.to_string().replace("room id", "cycle id"),
                );
            }
            if !cycle_ids.insert(e.id.get_ref().clone()) {
                c.report(
                    &e.id,
                    field("id"),
                    format!("cycle {:?} appears twice", e.id.get_ref()),
                );
            }
            let mut date = |value: &Spanned<String>, name: &str| {
                let parsed = chrono::NaiveDate::parse_from_str(value.get_ref(), "%Y-%m-%d");
                if parsed.is_err() {
                    c.report(
                        value,
                        field(name),
                        format!("{:?} is not a date like 2026-09-01", value.get_ref()),
                    );
                }
                parsed.ok()
            };
            let (starts, ends) = (date(&e.starts, "starts"), date(&e.ends, "ends"));
            if let (Some(starts), Some(ends)) = (starts, ends)
                && ends < starts
            {
                c.report(
                    &e.ends,
                    field("ends"),
                    "a cycle cannot end before it starts",
                );
            }
            if !region_ids.contains(e.host_region.get_ref()) {
                c.report(
                    &e.host_region,
                    field("host_region"),
                    format!("unknown region {:?}", e.host_region.get_ref()),
                );
            }
            if let (Some(starts), Some(ends)) = (starts, ends) {
                cycles.push(Cycle {
                    id: e.id.get_ref().clone(),
                    name: e.name.clone(),
                    starts,
                    ends,
                    host_region: e.host_region.get_ref().clone(),
                });
            }
        }

        let mut emails = Vec::new();
        let mut people: Vec<PersonInfo> = Vec::new();
        let mut roles: HashMap<String, Role> = HashMap::new();
        for (i, entry) in file.people.iter().enumerate() {
            let p = entry.get_ref();
            let field = |name: &str| format!("people[{i}].{name}");
            let id = match PersonId::new(p.id.get_ref().clone()) {
                Ok(id) => Some(id),
                Err(e) => {
                    c.report(&p.id, field("id"), e.to_string());
                    None
                }
            };
            if p.name.get_ref().trim().is_empty() {
                c.report(&p.name, field("name"), "a name is required");
            }
            if p.time_zone.get_ref().parse::<chrono_tz::Tz>().is_err() {
                c.report(
                    &p.time_zone,
                    field("time_zone"),
                    format!(
                        "{:?} is not an IANA time zone (e.g. Europe/Rome)",
                        p.time_zone.get_ref()
                    ),
                );
            }
            let region = p
                .region
                .as_ref()
                .map(|r| r.get_ref().clone())
                .unwrap_or_default();
            match &p.region {
                Some(r) if !region_ids.contains(r.get_ref()) => {
                    c.report(
                        r,
                        field("region"),
                        format!("unknown region {:?}", r.get_ref()),
                    );
                }
                None if p.role == Role::Head => {
                    c.report(entry, field("region"), "a head needs a region");
                }
                _ => {}
            }
            if p.role == Role::Head && p.school.trim().is_empty() {
                c.report(entry, field("school"), "a head needs a school");
            }
            if let Some(email) = &p.email {
                let value = email.get_ref();
                if !value.contains('@') || value.contains(char::is_whitespace) {
                    c.report(
                        email,
                        field("email"),
                        format!("{value:?} is not an e-mail address"),
                    );
                }
            }
            if let Some(id) = id {
                if roles.insert(id.to_string(), p.role).is_some() {
                    c.report(&p.id, field("id"), format!("person {id} appears twice"));
                    continue;
                }
                if let Some(email) = &p.email {
                    emails.push((id.clone(), email.get_ref().trim().to_string()));
                }
                people.push(PersonInfo {
                    id,
                    name: p.name.get_ref().trim().to_string(),
                    role: p.role,
                    region,
                    school: p.school.trim().to_string(),
                    time_zone: p.time_zone.get_ref().clone(),
                });
            }
        }

        let mut rooms = Vec::new();
        let mut in_trio: HashMap<String, String> = HashMap::new();
        let mut room_ids = HashSet::from([COMMONS.to_string(), STAFF.to_string()]);
        for (i, entry) in file.trios.iter().enumerate() {
            let t = entry.get_ref();
            let field = |name: &str| format!("trios[{i}].{name}");
            let id = match RoomId::new(t.id.get_ref().clone()) {
                Ok(id) => Some(id),
                Err(e) => {
                    c.report(&t.id, field("id"), e.to_string());
                    None
                }
            };
            if !room_ids.insert(t.id.get_ref().clone()) {
                c.report(
                    &t.id,
                    field("id"),
                    format!("room {:?} is already used", t.id.get_ref()),
                );
            }
            let heads = t.heads.get_ref();
            if heads.len() != 3 {
                c.report(
                    &t.heads,
                    field("heads"),
                    format!("a trio has three heads, this one has {}", heads.len()),
                );
            }
            let mut members = Vec::new();
            let mut head_regions = HashSet::new();
            for (j, head) in heads.iter().enumerate() {
                let name = head.get_ref();
                match roles.get(name) {
                    None => c.report(
                        head,
                        format!("trios[{i}].heads[{j}]"),
                        format!("unknown person {name:?}"),
                    ),
                    Some(Role::Head) => {
                        if let Some(other) = in_trio.insert(name.clone(), t.id.get_ref().clone()) {
                            c.report(
                                head,
                                format!("trios[{i}].heads[{j}]"),
                                format!("{name} is already in trio {other}"),
                            );
                        }
                        if let Some(p) = people.iter().find(|p| p.id.as_str() == name) {
                            head_regions.insert(p.region.clone());
                            members.push(p.id.clone());
                        }
                    }
                    Some(role) => c.report(
                        head,
                        format!("trios[{i}].heads[{j}]"),
                        format!("{name} is a {role:?}, not a head"),
                    ),
                }
            }
            let mut moderators = Vec::new();
            for (j, m) in t.moderators.iter().enumerate() {
                let name = m.get_ref();
                match roles.get(name) {
                    Some(Role::Moderator) => {
                        if let Some(p) = people.iter().find(|p| p.id.as_str() == name) {
                            moderators.push(p.id.clone());
                        }
                    }
                    Some(role) => c.report(
                        m,
                        format!("trios[{i}].moderators[{j}]"),
                        format!("{name} is a {role:?}, not a moderator"),
                    ),
                    None => c.report(
                        m,
                        format!("trios[{i}].moderators[{j}]"),
                        format!("unknown person {name:?}"),
                    ),
                }
            }
            if let Some(id) = id {
                let title = t.title.clone().unwrap_or_else(|| format!("Trio {}", id));
                rooms.push(RoomRecord {
                    id,
                    kind: RoomKind::Trio,
                    title,
                    members,
                    moderators,
                    joined_moderators: Vec::new(),
                });
            }
        }

        if !c.problems.is_empty() {
            c.problems.sort_by_key(|p| p.line);
            return Err(RosterError {
                problems: c.problems,
            });
        }
        rooms.push(RoomRecord {
            id: RoomId::new(COMMONS).expect("valid id"),
            kind: RoomKind::Commons,
            title: "Commons".into(),
            members: people.iter().map(|p| p.id.clone()).collect(),
            moderators: Vec::new(),
            joined_moderators: Vec::new(),
        });
        rooms.push(RoomRecord {
            id: RoomId::new(STAFF).expect("valid id"),
            kind: RoomKind::Staff,
            title: "Staff room".into(),
            members: people
                .iter()
                .filter(|p| p.role != Role::Head)
                .map(|p| p.id.clone())
                .collect(),
            moderators: Vec::new(),
            joined_moderators: Vec::new(),
        });
        Ok(Self {
            regions,
            programme: Programme { people, rooms },
            cycles,
            emails,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_roster_is_valid() {
        let roster = Roster::parse(super::super::DEMO_ROSTER).unwrap();
        assert_eq!(roster.regions.len(), 3);
        let trios: Vec<_> = roster
            .programme
            .rooms
            .iter()
            .filter(|r| r.kind == RoomKind::Trio)
            .collect();
        assert_eq!(trios.len(), 2);
        assert!(
            trios
                .iter()
                .all(|t| t.members.len() == 3 && t.moderators.len() == 1)
        );
        let staff = roster
            .programme
            .rooms
            .iter()
            .find(|r| r.kind == RoomKind::Staff)
            .unwrap();
        assert_eq!(staff.members.len(), 2);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"
[[regions]]
id = "vejle"
name = "Vejle"

[[people]]
id = "a"
name = "A"
role = "head"
region = "vejle"
school = "S"
time_zone = "Mars/Olympus"

[[people]]
id = "b"
name = "B"
role = "head"
region = "atlantis"
school = "S"
time_zone = "Europe/Rome"

[[trios]]
id = "trio-1"
heads = ["a", "b"]
"#;
        let err = Roster::parse(text).unwrap_err();
        let lines: Vec<_> = err
            .problems
            .iter()
            .map(|p| (p.line, p.field.as_str()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (12, "people[0].time_zone"),
                (18, "people[1].region"),
                (24, "trios[0].heads")
            ],
            "{err}"
        );
    }

    #[test]
    fn cycles_are_checked() {
        let text = r#"
[[regions]]
id = "vejle"
name = "Vejle"

[[cycles]]
id = "cycle-1"
name = "Cycle 1"
starts = "2026-09-01"
ends = "2027-04-30"
host_region = "vejle"

[[cycles]]
id = "cycle-2"
name = "Cycle 2"
starts = "2027-09-01"
ends = "2027-04-30"
host_region = "tuscany"
"#;
        let err = Roster::parse(text).unwrap_err();
        let lines: Vec<_> = err
            .problems
            .iter()
            .map(|p| (p.line, p.field.as_str()))
            .collect();
        assert_eq!(
            lines,
            vec![(17, "cycles[1].ends"), (18, "cycles[1].host_region")],
            "{err}"
        );
        let ok = text
            .replace("2027-09-01", "2027-01-01")
            .replace("\"tuscany\"", "\"vejle\"");
        let roster = Roster::parse(&ok).unwrap();
        assert_eq!(roster.cycles.len(), 2);
        assert_eq!(roster.cycles[0].starts.to_string(), "2026-09-01");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = Roster::parse("[[people]]\nid = \"a\"\nrole = \"janitor\"\n").unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].line, 3, "{err}");
    }
}
