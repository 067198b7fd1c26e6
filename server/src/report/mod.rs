//! Cycle reports: what one trio did in one cycle of the programme, for the coordinator and
//! the trio's moderators.
//!
//! [`build`] gathers a [`CycleReport`] from the store: the trio's heads and moderators, the
//! coaching sessions of the room that start within the cycle (with attendance, from the call
//! records, once a session has started: see [`crate::schedule::attendance`]), how many chat
//! messages each member wrote within the cycle, and the messages pinned as key learning that
//! were written within it. The report is plain data; [`markdown`], [`html`] and [`csv`]
//! render it (`to_markdown`, `to_html`, `to_csv`, or [`CycleReport::render`] with a
//! [`Format`]).
//!
//! Times are kept in UTC; each session is also shown in the time zone it was booked in.

pub mod csv;
pub mod html;
pub mod markdown;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use triad_protocol::{
    CoachingId, CoachingStatus, EventBody, PersonId, PersonInfo, Role, RoomId, RoomKind, Seq,
    Timestamp,
};

use crate::programme::{Cycle, pins};
use crate::schedule::Schedule;
use crate::schedule::attendance::attendance;
use crate::store::{Page, Store, StoreError};

/// How many events the report reads from history at a time.
const PAGE: u32 = 200;

/// Why a report could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The room does not exist.
    #[error("no room {0}")]
    UnknownRoom(RoomId),
    /// The room is not a trio (reports are per trio).
    #[error("{0} is not a trio")]
    NotATrio(RoomId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One trio's cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleReport {
    /// The trio room.
    pub room: RoomId,
    /// The trio's title.
    pub title: String,
    /// The cycle.
    pub cycle: Cycle,
    /// When the report was made.
    pub generated_at: Timestamp,
    /// The trio's heads.
    pub heads: Vec<Member>,
    /// The trio's moderators.
    pub moderators: Vec<Member>,
    /// The room's coaching sessions that start within the cycle, by start.
    pub sessions: Vec<SessionReport>,
    /// Chat messages written within the cycle, per person: every head and moderator (with
    /// 0 if silent), then anyone else who wrote.
    pub activity: Vec<Activity>,
    /// The pinned messages written within the cycle, in message order (empty when
    /// withheld).
    pub pins: Vec<PinnedMessage>,
    /// When the reader may not read the room (an assigned moderator who has not joined
    /// it): how many pinned messages were left out. `None`: nothing was withheld.
    pub pins_withheld: Option<usize>,
}

/// A person as the report names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Their id.
    pub person: PersonId,
    /// Their name (the id, for someone no longer in the programme).
    pub name: String,
    /// Their role, if they are still in the programme.
    pub role: Option<Role>,
    /// Their school (empty for staff).
    pub school: String,
    /// Their region's name (empty for staff outside any region).
    pub region: String,
}

/// One coaching session of the cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReport {
    /// The session.
    pub id: CoachingId,
    /// Its title.
    pub title: String,
    /// Its start, UTC.
    pub start: Timestamp,
    /// Its length in minutes.
    pub duration_min: u32,
    /// The IANA time zone it was booked in.
    pub time_zone: String,
    /// Scheduled or cancelled.
    pub status: CoachingStatus,
    /// Who attended (so far, while it goes on), once a scheduled session has started;
    /// `None` before that and for a cancelled one.
    pub attendance: Option<SessionAttendance>,
    /// Whether it has ended.
    pub over: bool,
}

/// Who was at a session that is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAttendance {
    /// Who attended, by who joined first.
    pub attended: Vec<Attendee>,
    /// The trio's heads and moderators who did not.
    pub absent: Vec<Member>,
}

impl SessionAttendance {
    /// Who attended, each with when they first joined and for how long
    /// (`Anna (joined 14:02 UTC, 58 min), …`), or `nobody`; `name` writes a name in the
    /// output's own escaping.
    pub fn attended_text(&self, name: impl Fn(&str) -> String) -> String {
        if self.attended.is_empty() {
            return "nobody".to_owned();
        }
        self.attended
            .iter()
            .map(|p| {
                format!(
                    "{} (joined {} UTC, {} min)",
                    name(&p.member.name),
                    clock(p.joined_at),
                    p.minutes
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One person at a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendee {
    /// Who.
    pub member: Member,
    /// Their time in the session's call, in whole minutes.
    pub minutes: u32,
    /// When they first joined the session's call.
    pub joined_at: Timestamp,
}

/// One person's chat messages within the cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// Who.
    pub member: Member,
    /// How many chat messages they wrote.
    pub messages: u64,
}

/// A pinned message: key learning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedMessage {
    /// The message's sequence number in the room.
    pub seq: Seq,
    /// Who wrote it.
    pub author: Member,
    /// When it was written.
    pub written_at: Timestamp,
    /// Its text.
    pub body: String,
    /// Who pinned it.
    pub pinned_by: Member,
}

impl SessionReport {
    /// Whether the session was cancelled.
    pub fn cancelled(&self) -> bool {
        self.status == CoachingStatus::Cancelled
    }

    /// A word for where the session stands: `cancelled`, `held` (over), `in progress` or
    /// `upcoming`.
    pub fn state(&self) -> &'static str {
        match (self.status, &self.attendance, self.over) {
            (CoachingStatus::Cancelled, _, _) => "cancelled",
            (CoachingStatus::Scheduled, Some(_), true) => "held",
            (CoachingStatus::Scheduled, Some(_), false) => "in progress",
            (CoachingStatus::Scheduled, None, _) => "upcoming",
        }
    }
}

/// People and region names, to name whoever the records mention.
struct Names {
    people: HashMap<PersonId, PersonInfo>,
    regions: HashMap<String, String>,
}

impl Names {
    fn member(&self, id: &PersonId) -> Member {
        match self.people.get(id) {
            Some(p) => Member {
                person: p.id.clone(),
                name: p.name.clone(),
                role: Some(p.role),
                school: p.school.clone(),
                region: self
                    .regions
                    .get(&p.region)
                    .cloned()
                    .unwrap_or_else(|| p.region.clone()),
            },
            None => Member {
                person: id.clone(),
                name: id.to_string(),
                role: None,
                school: String::new(),
                region: String::new(),
            },
        }
    }
}

/// Gathers the report of trio `room` for `cycle`, as things stand at `now`.
pub async fn build(
    store: &dyn Store,
    schedule: &Schedule,
    room: &RoomId,
    cycle: &Cycle,
    now: Timestamp,
) -> Result<CycleReport, ReportError> {
    let record = store
        .room(room)
        .await?
        .ok_or_else(|| ReportError::UnknownRoom(room.clone()))?;
    if record.kind != RoomKind::Trio {
        return Err(ReportError::NotATrio(room.clone()));
    }
    let names = Names {
        people: store
            .programme()
            .await?
            .people
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect(),
        regions: crate::programme::model::regions(store)
            .await?
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect(),
    };
    let heads: Vec<Member> = record.members.iter().map(|id| names.member(id)).collect();
    let moderators: Vec<Member> = record
        .moderators
        .iter()
        .map(|id| names.member(id))
        .collect();
    let everyone: Vec<&Member> = heads.iter().chain(&moderators).collect();

    let mut in_cycle: Vec<_> = schedule
        .of_room(room)
        .await?
        .into_iter()
        .filter(|s| cycle.contains(s.start))
        .collect();
    in_cycle.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    let any_started = in_cycle
        .iter()
        .any(|s| s.status == CoachingStatus::Scheduled && s.start <= now);
    let records = if any_started {
        store.call_records(room).await?
    } else {
        Vec::new()
    };
    let sessions = in_cycle
        .into_iter()
        .map(|session| {
            let started = session.status == CoachingStatus::Scheduled && session.start <= now;
            let over = session.end() <= now;
            let attendance = started.then(|| {
                let attended: Vec<Attendee> = attendance(&session, &records, now)
                    .into_iter()
                    .map(|a| Attendee {
                        member: names.member(&a.person),
                        minutes: a.minutes,
                        joined_at: a.first_joined,
                    })
                    .collect();
                let absent = everyone
                    .iter()
                    .filter(|m| !attended.iter().any(|a| a.member.person == m.person))
                    .map(|m| (*m).clone())
                    .collect();
                SessionAttendance { attended, absent }
            });
            SessionReport {
                id: session.id,
                title: session.title,
                start: session.start,
                duration_min: session.duration_min,
                time_zone: session.time_zone,
                status: session.status,
                attendance,
                over,
            }
        })
        .collect();

    let pinned = pins::pins(store, room).await?;
    let wanted: HashSet<Seq> = pinned.iter().map(|p| p.seq).collect();
    let (counts, messages) = read_history(store, room, cycle, &wanted).await?;
    let mut activity: Vec<Activity> = everyone
        .iter()
        .map(|m| Activity {
            member: (*m).clone(),
            messages: counts.get(&m.person).copied().unwrap_or(0),
        })
        .collect();
    for (person, count) in &counts {
        if !everyone.iter().any(|m| &m.person == person) {
            activity.push(Activity {
                member: names.member(person),
                messages: *count,
            });
        }
    }
    let pins = pinned
        .iter()
        .filter_map(|pin| {
            let (author, written_at, body) = messages.get(&pin.seq)?;
            Some(PinnedMessage {
                seq: pin.seq,
                author: names.member(author),
                written_at: *written_at,
                body: body.clone(),
                pinned_by: names.member(&pin.pinned_by),
            })
        })
        .collect();

    Ok(CycleReport {
        room: room.clone(),
        title: record.title,
        cycle: cycle.clone(),
        generated_at: now,
        heads,
        moderators,
        sessions,
        activity,
        pins,
        pins_withheld: None,
    })
}

/// A pinned message as read from history: author, time, text.
type Written = (PersonId, Timestamp, String);

/// Reads the room's history up to the end of the cycle: chat messages per author within the
/// cycle (ordered by author), and the messages among `wanted` written within it.
async fn read_history(
    store: &dyn Store,
    room: &RoomId,
    cycle: &Cycle,
    wanted: &HashSet<Seq>,
) -> Result<(BTreeMap<PersonId, u64>, HashMap<Seq, Written>), StoreError> {
    let (from, to) = cycle.range();
    let mut counts = BTreeMap::new();
    let mut found = HashMap::new();
    let mut after = 0;
    loop {
        let page = store
            .history(room, Page::After { after, limit: PAGE })
            .await?;
        for event in &page.events {
            after = event.seq;
            // Timestamps never go back within a room, so nothing later is in the cycle.
            if event.ts >= to {
                return Ok((counts, found));
            }
            if event.ts < from {
                continue;
            }
            if let EventBody::Message { body, .. } = &event.body {
                *counts.entry(event.author.clone()).or_insert(0) += 1;
                if wanted.contains(&event.seq) {
                    found.insert(event.seq, (event.author.clone(), event.ts, body.clone()));
                }
            }
        }
        if !page.has_more || page.events.is_empty() {
            return Ok((counts, found));
        }
    }
}

/// A rendering of a report: `md`, `html` or `csv` by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// Markdown ([`CycleReport::to_markdown`]).
    #[default]
    Markdown,
    /// A self-contained HTML document ([`CycleReport::to_html`]).
    Html,
    /// The numbers as CSV ([`CycleReport::to_csv`]).
    Csv,
}

/// A format name that is not `md`, `html` or `csv`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown report format {0:?}: use md, html or csv")]
pub struct UnknownFormat(pub String);

impl std::str::FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Self, UnknownFormat> {
        match name {
            "md" | "markdown" => Ok(Self::Markdown),
            "html" => Ok(Self::Html),
            "csv" => Ok(Self::Csv),
            other => Err(UnknownFormat(other.chars().take(40).collect())),
        }
    }
}

impl Format {
    /// Its HTTP `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Markdown => "text/markdown; charset=utf-8",
            Self::Html => "text/html; charset=utf-8",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }

    /// Its usual file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Markdown => "md",
            Self::Html => "html",
            Self::Csv => "csv",
        }
    }
}

/// What the report says where the key learning was withheld.
pub const PINS_WITHHELD_NOTE: &str = "Join the trio's room to see its key learning: pinned messages are quoted only to people who can read the room.";

impl CycleReport {
    /// Leaves the pinned messages out (their text is the room's), keeping their number:
    /// for a reader who cannot read the room.
    pub fn withhold_pins(&mut self) {
        self.pins_withheld = Some(self.pins.len());
        self.pins.clear();
    }

    /// The report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Markdown => self.to_markdown(),
            Format::Html => self.to_html(),
            Format::Csv => self.to_csv(),
        }
    }
}

/// `2025-03-04 14:00 UTC`.
/// The time of day of an instant, UTC (`14:02`), for when someone joined.
pub fn clock(at: Timestamp) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at)
        .map_or_else(|| at.to_string(), |t| t.format("%H:%M").to_string())
}

pub fn utc(at: Timestamp) -> String {
    DateTime::<Utc>::from_timestamp_millis(at).map_or_else(
        || at.to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// `2025-03-04`, UTC.
pub fn date(at: Timestamp) -> String {
    DateTime::<Utc>::from_timestamp_millis(at)
        .map_or_else(|| at.to_string(), |t| t.format("%Y-%m-%d").to_string())
}

/// `2025-03-04 15:00 Europe/Rome`: the instant in an IANA zone (in UTC if the zone is
/// unknown).
pub fn local(at: Timestamp, zone: &str) -> String {
    match (
        zone.parse::<Tz>(),
        DateTime::<Utc>::from_timestamp_millis(at),
    ) {
        (Ok(tz), Some(t)) => format!("{} {zone}", t.with_timezone(&tz).format("%Y-%m-%d %H:%M")),
        _ => utc(at),
    }
}

/// A role as a word.
pub fn role_name(role: Option<Role>) -> &'static str {
    match role {
        Some(Role::Head) => "head",
        Some(Role::Moderator) => "moderator",
        Some(Role::Coordinator) => "coordinator",
        None => "former member",
    }
}

#[cfg(test)]
pub(crate) mod sample {
    //! A hand-built report for the renderers' tests.

    use chrono::NaiveDate;

    use super::*;

    pub fn member(id: &str, name: &str, role: Role, school: &str, region: &str) -> Member {
        Member {
            person: PersonId::new(id).unwrap(),
            name: name.into(),
            role: Some(role),
            school: school.into(),
            region: region.into(),
        }
    }

    /// 2025-03-04 14:00 UTC.
    pub const START: Timestamp = 1_741_096_800_000;

    pub fn report() -> CycleReport {
        let anna = member(
            "anna.jensen",
            "Anna Jensen",
            Role::Head,
            "Rosenvang Skole",
            "Vejle, Denmark",
        );
        let marco = member(
            "marco.rossi",
            "Marco <Rossi> & \"Co\"",
            Role::Head,
            "Liceo Galilei",
            "Tuscany, Italy",
        );
        let rhian = member(
            "rhian.evans",
            "Rhian, Evans",
            Role::Head,
            "Ysgol Bro Teifi",
            "West Wales, UK",
        );
        let sara = member("sara.moderator", "Sara Lind", Role::Moderator, "", "");
        CycleReport {
            room: RoomId::new("trio-1").unwrap(),
            title: "Trio 1: Assessment for learning".into(),
            cycle: Cycle {
                id: "cycle-1".into(),
                name: "Cycle 1: Vejle".into(),
                starts: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
                ends: NaiveDate::from_ymd_opt(2025, 8, 31).unwrap(),
                host_region: "vejle".into(),
            },
            generated_at: START + 90 * 24 * 3_600_000,
            heads: vec![anna.clone(), marco.clone(), rhian.clone()],
            moderators: vec![sara.clone()],
            sessions: vec![
                SessionReport {
                    id: CoachingId::new("cs-1").unwrap(),
                    title: "Feedback that <lands>".into(),
                    start: START,
                    duration_min: 60,
                    time_zone: "Europe/Rome".into(),
                    status: CoachingStatus::Scheduled,
                    attendance: Some(SessionAttendance {
                        attended: vec![
                            Attendee {
                                member: anna.clone(),
                                minutes: 58,
                                joined_at: START + 60_000,
                            },
                            Attendee {
                                member: sara.clone(),
                                minutes: 61,
                                joined_at: START - 60_000,
                            },
                        ],
                        absent: vec![marco.clone(), rhian.clone()],
                    }),
                    over: true,
                },
                SessionReport {
                    id: CoachingId::new("cs-2").unwrap(),
                    title: "=Planning".into(),
                    start: START + 7 * 24 * 3_600_000,
                    duration_min: 45,
                    time_zone: "Europe/London".into(),
                    status: CoachingStatus::Cancelled,
                    attendance: None,
                    over: false,
                },
            ],
            activity: vec![
                Activity {
                    member: anna.clone(),
                    messages: 12,
                },
                Activity {
                    member: marco.clone(),
                    messages: 3,
                },
                Activity {
                    member: rhian,
                    messages: 0,
                },
                Activity {
                    member: sara.clone(),
                    messages: 1,
                },
            ],
            pins: vec![PinnedMessage {
                seq: 7,
                author: marco,
                written_at: START + 3_600_000,
                body: "Exit tickets <b>work</b>\nwhen 'students' & teachers agree".into(),
                pinned_by: anna,
            }],
            pins_withheld: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_in_utc_and_in_the_session_zone() {
        assert_eq!(utc(sample::START), "2025-03-04 14:00 UTC");
        assert_eq!(
            local(sample::START, "Europe/Rome"),
            "2025-03-04 15:00 Europe/Rome"
        );
        assert_eq!(local(sample::START, "Not/AZone"), "2025-03-04 14:00 UTC");
        assert_eq!(date(sample::START), "2025-03-04");
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("md".parse(), Ok(Format::Markdown));
        assert_eq!("html".parse(), Ok(Format::Html));
        assert_eq!("csv".parse(), Ok(Format::Csv));
        assert!("pdf".parse::<Format>().is_err());
    }

    #[test]
    fn a_session_says_where_it_stands() {
        let report = sample::report();
        assert_eq!(report.sessions[0].state(), "held");
        assert_eq!(report.sessions[1].state(), "cancelled");
    }
}
