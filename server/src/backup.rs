//! Backup, restore and migration: everything a store holds, as JSON lines, through any
//! [`Store`]. [`export`] writes a store out (`triad-server export`); [`Backup::parse`] reads
//! and checks a whole file, and [`import`] loads it into a store whose rooms have no events
//! yet (`triad-server import-data`), of the same backend or the other one.
//!
//! # The format
//!
//! UTF-8, one JSON object per line, each tagged by `type`, written in this order (an import
//! takes them in any order after the header, each room's events by seq):
//!
//! 1. `header`, the first line:
//!    `{"type":"header","format":"triad-backup","version":1,"exported_at":<ms>}`.
//! 2. `person`, one per person, as the protocol's `PersonInfo`:
//!    `{"type":"person","person":{"id":…,"name":…,"role":…,"region":…,"school":…,"time_zone":…}}`.
//! 3. `room`, one per room:
//!    `{"type":"room","id":…,"kind":…,"title":…,"members":[…],"moderators":[…],"joined_moderators":[…],"epoch":<n>}`.
//!    The epoch is where the room stood in the exported store; a restored room gets a new
//!    one, so clients' positions from before the restore are void and they reload history.
//! 4. `event`, every event of every room, room after room, each room's in order from seq 1
//!    without a gap, as the protocol's `RoomEvent`:
//!    `{"type":"event","event":{"room":…,"seq":…,"ts":…,"author":…,"kind":"message","client_msg_id":…,"body":…}}`
//!    (`moderator_joined` and `moderator_left` events have no `client_msg_id` or `body`).
//! 5. `call`, one per call record:
//!    `{"type":"call","room":…,"call":…,"started_by":…,"started_at":…,"ended_at":…,"attendance":[{"person":…,"joined_at":…,"left_at":…}]}`
//!    (`ended_at` and `left_at` are `null` while the call or the stretch goes on).
//! 6. `read`, one per read marker past 0 of a room's members and moderators:
//!    `{"type":"read","room":…,"person":…,"seq":<n>}`.
//! 7. `doc`, one per document of the programme's state beyond people and rooms (regions,
//!    cycles, coaching sessions, invitations, sign-in grants, revocations, pins,
//!    preferences, calendar keys, one-time jobs done), the value as the store holds it:
//!    `{"type":"doc","collection":"coachings","key":"trio-1","value":"[…]"}`.
//! 8. `end`, the last line, with how many lines of each kind came before it:
//!    `{"type":"end","people":…,"rooms":…,"events":…,"calls":…,"reads":…,"docs":…}`. A file
//!    without it was cut short. (`docs` may be absent in a backup written before documents
//!    existed.)
//!
//! Timestamps are UTC milliseconds. Blank lines are ignored; unknown fields too.
//!
//! # Importing
//!
//! The whole file is read and checked first, and every problem is reported with its line
//! number ([`BackupError::Invalid`]). Rooms that already have events in the store are
//! refused ([`BackupError::Occupied`]); in both cases nothing is written. Then the people
//! and rooms are applied as a programme, each room's events are restored in order
//! ([`Store::restore_event`]: same seq, timestamp, author and body, de-duplication ids
//! included, moderators' joins replayed), then the call records, the read markers and the
//! documents (each written over what the store holds under its key).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{BufRead, Write};

use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use triad_protocol::{
    CallId, ClientMsgId, Epoch, PersonId, PersonInfo, RoomEvent, RoomId, RoomKind, Seq, Timestamp,
};

use crate::store::{
    Attendance, CallRecord, Collection, Expect, Page, Programme, RoomRecord, Store, StoreError,
    now_ms,
};

/// The `format` of the header line.
const FORMAT: &str = "triad-backup";

/// The version of the format this module writes and reads.
const VERSION: u32 = 1;

/// How many events are read from a store at a time.
const EXPORT_PAGE: u32 = 500;

/// How many rooms are restored at once (each room's events in order).
const ROOMS_AT_ONCE: usize = 16;

/// The most problems an [`BackupError::Invalid`] shows.
const PROBLEMS_SHOWN: usize = 50;

/// Why a backup could not be written or imported.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The store failed before anything was written to it, or during an export.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The backup could not be written.
    #[error("cannot write the backup: {0}")]
    Write(std::io::Error),
    /// The backup could not be read.
    #[error("cannot read the backup: {0}")]
    Read(std::io::Error),
    /// The file is not a valid backup; nothing was written.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
    /// These rooms already have events in the store; nothing was written.
    #[error(
        "these rooms already have events in the store: {}; import into a store without \
         history (nothing was written)",
        list(.0)
    )]
    Occupied(Vec<RoomId>),
    /// The store failed part way: it now holds part of the backup.
    #[error(
        "the import stopped while {step}: {source}; the store now holds part of the backup: \
         start again with an empty store"
    )]
    Interrupted {
        /// What was being done, with the line of the backup.
        step: String,
        /// Why it failed.
        source: StoreError,
    },
}

/// A problem with one line of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The problems of an invalid backup, one a line, the first [`PROBLEMS_SHOWN`] of them.
struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the backup is not valid (nothing was written):")?;
        for problem in self.0.iter().take(PROBLEMS_SHOWN) {
            write!(f, "\n  {problem}")?;
        }
        if self.0.len() > PROBLEMS_SHOWN {
            write!(f, "\n  … and {} more", self.0.len() - PROBLEMS_SHOWN)?;
        }
        Ok(())
    }
}

fn list(rooms: &[RoomId]) -> String {
    let names: Vec<&str> = rooms.iter().map(RoomId::as_str).collect();
    names.join(", ")
}

/// How much a backup holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// People.
    pub people: usize,
    /// Rooms.
    pub rooms: usize,
    /// Events, all rooms together.
    pub events: usize,
    /// Call records.
    pub calls: usize,
    /// Read markers.
    pub reads: usize,
    /// Documents.
    pub docs: usize,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} people, {} rooms, {} events, {} call records, {} read markers, {} documents",
            self.people, self.rooms, self.events, self.calls, self.reads, self.docs
        )
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// What was imported.
    pub counts: Counts,
    /// Differences between the backup and the store after the import, for people to check
    /// (joined moderators that replaying the events did not give back).
    pub warnings: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// The lines.

/// One line of a backup.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Header(HeaderLine),
    Person { person: PersonInfo },
    Room(RoomLine),
    Event { event: RoomEvent },
    Call(CallLine),
    Read(ReadLine),
    Doc(DocLine),
    End(EndLine),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DocLine {
    collection: String,
    key: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
struct HeaderLine {
    format: String,
    version: u32,
    exported_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RoomLine {
    id: RoomId,
    kind: RoomKind,
    title: String,
    members: Vec<PersonId>,
    moderators: Vec<PersonId>,
    joined_moderators: Vec<PersonId>,
    epoch: Epoch,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CallLine {
    room: RoomId,
    call: CallId,
    started_by: PersonId,
    started_at: Timestamp,
    ended_at: Option<Timestamp>,
    attendance: Vec<AttendanceLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AttendanceLine {
    person: PersonId,
    joined_at: Timestamp,
    left_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReadLine {
    room: RoomId,
    person: PersonId,
    seq: Seq,
}

#[derive(Serialize, Deserialize)]
struct EndLine {
    people: usize,
    rooms: usize,
    events: usize,
    calls: usize,
    reads: usize,
    #[serde(default)]
    docs: usize,
}

impl RoomLine {
    fn of(record: RoomRecord, epoch: Epoch) -> Self {
        Self {
            id: record.id,
            kind: record.kind,
            title: record.title,
            members: record.members,
            moderators: record.moderators,
            joined_moderators: record.joined_moderators,
            epoch,
        }
    }

    fn record(&self) -> RoomRecord {
        RoomRecord {
            id: self.id.clone(),
            kind: self.kind,
            title: self.title.clone(),
            members: self.members.clone(),
            moderators: self.moderators.clone(),
            joined_moderators: self.joined_moderators.clone(),
        }
    }
}

impl CallLine {
    fn of(record: CallRecord) -> Self {
        Self {
            room: record.room,
            call: record.call,
            started_by: record.started_by,
            started_at: record.started_at,
            ended_at: record.ended_at,
            attendance: record
                .attendance
                .into_iter()
                .map(|stretch| AttendanceLine {
                    person: stretch.person,
                    joined_at: stretch.joined_at,
                    left_at: stretch.left_at,
                })
                .collect(),
        }
    }

    fn record(&self) -> CallRecord {
        CallRecord {
            call: self.call.clone(),
            room: self.room.clone(),
            started_by: self.started_by.clone(),
            started_at: self.started_at,
            ended_at: self.ended_at,
            attendance: self
                .attendance
                .iter()
                .map(|stretch| Attendance {
                    person: stretch.person.clone(),
                    joined_at: stretch.joined_at,
                    left_at: stretch.left_at,
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Export.

/// Writes everything `store` holds to `out` as a backup; returns what it wrote. A store in
/// use by servers (Redis) keeps changing meanwhile: each room is written as it stood when
/// it was read.
pub async fn export(store: &dyn Store, out: &mut dyn Write) -> Result<Counts, BackupError> {
    let mut programme = store.programme().await?;
    programme.people.sort_by(|a, b| a.id.cmp(&b.id));
    programme.rooms.sort_by(|a, b| a.id.cmp(&b.id));
    let mut counts = Counts::default();
    let header = HeaderLine {
        format: FORMAT.to_owned(),
        version: VERSION,
        exported_at: now_ms(),
    };
    write_line(out, &Line::Header(header))?;
    for person in programme.people {
        write_line(out, &Line::Person { person })?;
        counts.people += 1;
    }
    for record in &programme.rooms {
        let epoch = store.room_state(&record.id).await?.epoch;
        write_line(out, &Line::Room(RoomLine::of(record.clone(), epoch)))?;
        counts.rooms += 1;
    }
    for record in &programme.rooms {
        counts.events += export_events(store, &record.id, out).await?;
    }
    for record in &programme.rooms {
        for call in store.call_records(&record.id).await? {
            write_line(out, &Line::Call(CallLine::of(call)))?;
            counts.calls += 1;
        }
    }
    for record in &programme.rooms {
        let mut people: Vec<&PersonId> = record.members.iter().chain(&record.moderators).collect();
        people.sort();
        people.dedup();
        for person in people {
            let seq = store.read_marker(&record.id, person).await?;
            if seq > 0 {
                let read = ReadLine {
                    room: record.id.clone(),
                    person: person.clone(),
                    seq,
                };
                write_line(out, &Line::Read(read))?;
                counts.reads += 1;
            }
        }
    }
    for collection in Collection::ALL.into_iter().filter(|c| c.is_backed_up()) {
        for (key, value) in store.docs(collection).await? {
            let doc = DocLine {
                collection: collection.as_str().to_owned(),
                key,
                value,
            };
            write_line(out, &Line::Doc(doc))?;
            counts.docs += 1;
        }
    }
    let end = EndLine {
        people: counts.people,
        rooms: counts.rooms,
        events: counts.events,
        calls: counts.calls,
        reads: counts.reads,
        docs: counts.docs,
    };
    write_line(out, &Line::End(end))?;
    out.flush().map_err(BackupError::Write)?;
    Ok(counts)
}

/// Writes a room's events, page by page; returns how many.
async fn export_events(
    store: &dyn Store,
    room: &RoomId,
    out: &mut dyn Write,
) -> Result<usize, BackupError> {
    let mut after = 0;
    let mut written = 0;
    loop {
        let page = Page::After {
            after,
            limit: EXPORT_PAGE,
        };
        let page = store.history(room, page).await?;
        for event in page.events {
            after = event.seq;
            write_line(out, &Line::Event { event })?;
            written += 1;
        }
        if !page.has_more {
            return Ok(written);
        }
    }
}

fn write_line(out: &mut dyn Write, line: &Line) -> Result<(), BackupError> {
    serde_json::to_writer(&mut *out, line)
        .map_err(|err| BackupError::Write(std::io::Error::other(err)))?;
    out.write_all(b"\n").map_err(BackupError::Write)
}

// ---------------------------------------------------------------------------------------
// Reading and checking.

/// A whole backup, read and checked: every reference resolves, every room's events run
/// from seq 1 without a gap, the counts of the end line match.
#[derive(Debug, Clone)]
pub struct Backup {
    people: Vec<PersonInfo>,
    rooms: Vec<RoomContent>,
    calls: Vec<(usize, CallLine)>,
    reads: Vec<(usize, ReadLine)>,
    docs: Vec<(usize, Collection, DocLine)>,
}

/// A room of a backup with its events, each with its line.
#[derive(Debug, Clone)]
struct RoomContent {
    room: RoomLine,
    events: Vec<(usize, RoomEvent)>,
}

impl Backup {
    /// Reads and checks a whole backup. Every problem found is reported with its line; the
    /// first line that is not a header of a version this server reads stops the reading.
    pub fn parse(input: impl BufRead) -> Result<Self, BackupError> {
        let mut reader = Reader::default();
        let mut last = 0;
        for (index, text) in input.lines().enumerate() {
            let text = text.map_err(BackupError::Read)?;
            last = index + 1;
            if !text.trim().is_empty() {
                reader.line(last, &text)?;
            }
        }
        reader.finish(last)
    }

    /// What the backup holds.
    pub fn counts(&self) -> Counts {
        Counts {
            people: self.people.len(),
            rooms: self.rooms.len(),
            events: self.rooms.iter().map(|room| room.events.len()).sum(),
            calls: self.calls.len(),
            reads: self.reads.len(),
            docs: self.docs.len(),
        }
    }

    fn programme(&self) -> Programme {
        Programme {
            people: self.people.clone(),
            rooms: self.rooms.iter().map(|room| room.room.record()).collect(),
        }
    }
}

/// The lines read so far, and the problems found.
#[derive(Default)]
struct Reader {
    problems: Vec<Problem>,
    /// Whether the header was read.
    started: bool,
    /// The end line and its number.
    end: Option<(usize, EndLine)>,
    people: Vec<(usize, PersonInfo)>,
    rooms: Vec<(usize, RoomLine)>,
    events: Vec<(usize, RoomEvent)>,
    calls: Vec<(usize, CallLine)>,
    reads: Vec<(usize, ReadLine)>,
    docs: Vec<(usize, Collection, DocLine)>,
}

impl Reader {
    fn problem(&mut self, line: usize, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            message: message.into(),
        });
    }

    /// Takes one non-blank line. Fails at once only if the file does not start with a
    /// header this server reads: then it is not a backup, and the rest is noise.
    fn line(&mut self, number: usize, text: &str) -> Result<(), BackupError> {
        let parsed = serde_json::from_str::<Line>(text);
        if !self.started {
            let not_a_backup = |message: String| {
                Err(BackupError::Invalid(vec![Problem {
                    line: number,
                    message,
                }]))
            };
            return match parsed {
                Ok(Line::Header(header)) if header.format != FORMAT => {
                    not_a_backup(format!("the format is {:?}, not {FORMAT:?}", header.format))
                }
                Ok(Line::Header(header)) if header.version != VERSION => not_a_backup(format!(
                    "version {} of the format; this server reads version {VERSION}",
                    header.version
                )),
                Ok(Line::Header(_)) => {
                    self.started = true;
                    Ok(())
                }
                _ => not_a_backup("not a Triad backup: the first line is not its header".into()),
            };
        }
        if let Some((end, _)) = &self.end {
            let message = format!("a line after the end line (line {end})");
            self.problem(number, message);
            return Ok(());
        }
        match parsed {
            Err(err) => self.problem(number, format!("not a backup line: {err}")),
            Ok(Line::Header(_)) => self.problem(number, "a second header"),
            Ok(Line::Person { person }) => self.people.push((number, person)),
            Ok(Line::Room(room)) => self.rooms.push((number, room)),
            Ok(Line::Event { event }) => self.events.push((number, event)),
            Ok(Line::Call(call)) => self.calls.push((number, call)),
            Ok(Line::Read(read)) => self.reads.push((number, read)),
            Ok(Line::Doc(doc)) => match Collection::named(&doc.collection) {
                Some(collection) if collection.is_backed_up() => {
                    self.docs.push((number, collection, doc));
                }
                _ => self.problem(
                    number,
                    format!("unknown document collection {:?}", doc.collection),
                ),
            },
            Ok(Line::End(end)) => self.end = Some((number, end)),
        }
        Ok(())
    }

    /// Checks what was read as a whole; `last` is the number of the file's last line.
    fn finish(mut self, last: usize) -> Result<Backup, BackupError> {
        if !self.started {
            self.problem(last.max(1), "the file is empty");
            return Err(BackupError::Invalid(self.problems));
        }
        self.check_end(last);
        let people = self.check_people();
        let mut rooms = self.check_rooms(&people);
        self.check_events(&mut rooms);
        self.check_calls(&rooms);
        self.check_reads(&people, &rooms);
        if !self.problems.is_empty() {
            self.problems.sort_by_key(|problem| problem.line);
            return Err(BackupError::Invalid(self.problems));
        }
        let mut contents: Vec<RoomContent> = Vec::with_capacity(self.rooms.len());
        for (_, room) in std::mem::take(&mut self.rooms) {
            let events = rooms.remove(&room.id).map(|found| found.events);
            contents.push(RoomContent {
                room,
                events: events.unwrap_or_default(),
            });
        }
        Ok(Backup {
            people: self.people.into_iter().map(|(_, person)| person).collect(),
            rooms: contents,
            calls: self.calls,
            reads: self.reads,
            docs: self.docs,
        })
    }

    /// Each person once; returns their ids.
    fn check_people(&mut self) -> HashSet<PersonId> {
        let mut seen: HashMap<PersonId, usize> = HashMap::new();
        let mut problems = Vec::new();
        for (line, person) in &self.people {
            if let Some(first) = seen.insert(person.id.clone(), *line) {
                problems.push((*line, format!("person {} again (line {first})", person.id)));
            }
        }
        for (line, message) in problems {
            self.problem(line, message);
        }
        seen.into_keys().collect()
    }

    /// Each room once, naming known people, its joined moderators among its moderators;
    /// returns the rooms by id, without events yet.
    fn check_rooms(&mut self, people: &HashSet<PersonId>) -> HashMap<RoomId, Found> {
        let mut found: HashMap<RoomId, Found> = HashMap::new();
        let mut problems = Vec::new();
        for (line, room) in &self.rooms {
            if let Some(first) = found.get(&room.id) {
                problems.push((
                    *line,
                    format!("room {} again (line {})", room.id, first.line),
                ));
                continue;
            }
            let named = room
                .members
                .iter()
                .chain(&room.moderators)
                .chain(&room.joined_moderators);
            for person in named.filter(|person| !people.contains(*person)) {
                problems.push((*line, format!("room {}: unknown person {person}", room.id)));
            }
            for joined in &room.joined_moderators {
                if !room.moderators.contains(joined) {
                    let message = format!(
                        "room {}: {joined} is a joined moderator but not a moderator",
                        room.id
                    );
                    problems.push((*line, message));
                }
            }
            found.insert(room.id.clone(), Found::new(*line));
        }
        for (line, message) in problems {
            self.problem(line, message);
        }
        found
    }

    /// Each event in a known room, following the room's previous one in seq and in time,
    /// with a client message id not used before in the room.
    fn check_events(&mut self, rooms: &mut HashMap<RoomId, Found>) {
        let mut problems = Vec::new();
        for (line, event) in std::mem::take(&mut self.events) {
            let Some(room) = rooms.get_mut(&event.room) else {
                problems.push((line, format!("an event of unknown room {}", event.room)));
                continue;
            };
            let expected = room.events.len() as u64 + 1;
            if event.seq != expected {
                let message = format!(
                    "room {}: event {} where event {expected} should come",
                    event.room, event.seq
                );
                problems.push((line, message));
                continue;
            }
            if let Some((_, previous)) = room.events.last()
                && event.ts < previous.ts
            {
                let message = format!(
                    "room {}: event {} is older than event {}",
                    event.room, event.seq, previous.seq
                );
                problems.push((line, message));
            }
            if let Some(id) = event.body.client_msg_id()
                && let Some(first) = room.client_msg_ids.insert(id.clone(), line)
            {
                let message = format!(
                    "room {}: client message id {id} again (line {first})",
                    event.room
                );
                problems.push((line, message));
            }
            room.events.push((line, event));
        }
        for (line, message) in problems {
            self.problem(line, message);
        }
    }

    /// Each call record in a known room, once.
    fn check_calls(&mut self, rooms: &HashMap<RoomId, Found>) {
        let mut seen: HashMap<(&RoomId, &CallId), usize> = HashMap::new();
        let mut problems = Vec::new();
        for (line, call) in &self.calls {
            if !rooms.contains_key(&call.room) {
                problems.push((*line, format!("a call of unknown room {}", call.room)));
            } else if let Some(first) = seen.insert((&call.room, &call.call), *line) {
                let message = format!(
                    "room {}: call {} again (line {first})",
                    call.room, call.call
                );
                problems.push((*line, message));
            }
        }
        for (line, message) in problems {
            self.problem(line, message);
        }
    }

    /// Each read marker of a known person in a known room, once, at an event of the room.
    fn check_reads(&mut self, people: &HashSet<PersonId>, rooms: &HashMap<RoomId, Found>) {
        let mut seen: HashMap<(&RoomId, &PersonId), usize> = HashMap::new();
        let mut problems = Vec::new();
        for (line, read) in &self.reads {
            let Some(room) = rooms.get(&read.room) else {
                problems.push((
                    *line,
                    format!("a read marker in unknown room {}", read.room),
                ));
                continue;
            };
            if !people.contains(&read.person) {
                problems.push((
                    *line,
                    format!("a read marker of unknown person {}", read.person),
                ));
            }
            let last = room.events.len() as u64;
            if read.seq == 0 || read.seq > last {
                let message = format!(
                    "room {}: read marker {} of {}, but the room's events are 1 to {last}",
                    read.room, read.seq, read.person
                );
                problems.push((*line, message));
            }
            if let Some(first) = seen.insert((&read.room, &read.person), *line) {
                let message = format!(
                    "room {}: a read marker of {} again (line {first})",
                    read.room, read.person
                );
                problems.push((*line, message));
            }
        }
        for (line, message) in problems {
            self.problem(line, message);
        }
    }

    /// The end line is there and counts what came before it. Runs before the other
    /// checks, which set the lines aside.
    fn check_end(&mut self, last: usize) {
        let Some((line, end)) = self.end.take() else {
            self.problem(last, "the file ends without its end line: it was cut short");
            return;
        };
        let counted = [
            ("people", end.people, self.people.len()),
            ("rooms", end.rooms, self.rooms.len()),
            ("events", end.events, self.events.len()),
            ("calls", end.calls, self.calls.len()),
            ("reads", end.reads, self.reads.len()),
            ("docs", end.docs, self.docs.len()),
        ];
        for (what, said, found) in counted {
            if said != found {
                self.problem(
                    line,
                    format!("the end line counts {said} {what}, the file has {found}"),
                );
            }
        }
    }
}

/// A room while checking: its line, its events so far and their client message ids.
struct Found {
    line: usize,
    events: Vec<(usize, RoomEvent)>,
    client_msg_ids: HashMap<ClientMsgId, usize>,
}

impl Found {
    fn new(line: usize) -> Self {
        Self {
            line,
            events: Vec::new(),
            client_msg_ids: HashMap::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Import.

/// Loads `backup` into `store`. Refuses, writing nothing, if any of its rooms already has
/// events in the store. Restored rooms keep the store's epoch, new for a room created here.
pub async fn import(store: &dyn Store, backup: &Backup) -> Result<Imported, BackupError> {
    let mut occupied = Vec::new();
    for content in &backup.rooms {
        match store.room_state(&content.room.id).await {
            Ok(state) if state.last_seq > 0 => occupied.push(content.room.id.clone()),
            Ok(_) | Err(StoreError::UnknownRoom(_)) => {}
            Err(err) => return Err(err.into()),
        }
    }
    if !occupied.is_empty() {
        return Err(BackupError::Occupied(occupied));
    }
    let interrupted =
        |step: String| move |source: StoreError| BackupError::Interrupted { step, source };
    store
        .apply_programme(&backup.programme())
        .await
        .map_err(interrupted("storing the people and rooms".into()))?;
    futures_util::stream::iter(&backup.rooms)
        .map(|content| restore_room(store, content))
        .buffer_unordered(ROOMS_AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    for (line, call) in &backup.calls {
        let step = format!(
            "storing call {} of room {} (line {line})",
            call.call, call.room
        );
        store
            .record_call(&call.record())
            .await
            .map_err(interrupted(step))?;
    }
    for (line, read) in &backup.reads {
        let step = format!(
            "setting the read marker of {} in room {} (line {line})",
            read.person, read.room
        );
        store
            .set_read(&read.room, &read.person, read.seq)
            .await
            .map_err(interrupted(step))?;
    }
    for (line, collection, doc) in &backup.docs {
        let step = format!(
            "writing document {} of {} (line {line})",
            doc.key,
            collection.as_str()
        );
        store
            .write_doc(
                *collection,
                &doc.key,
                Expect::Anything,
                Some(doc.value.clone()),
            )
            .await
            .map_err(interrupted(step))?;
    }
    let mut warnings = Vec::new();
    for content in &backup.rooms {
        let room = &content.room;
        let record = store.room(&room.id).await?;
        let mut now = record
            .map(|record| record.joined_moderators)
            .unwrap_or_default();
        let mut exported = room.joined_moderators.clone();
        now.sort();
        exported.sort();
        if now != exported {
            warnings.push(format!(
                "room {}: the joined moderators are [{}] after the import, [{}] in the backup",
                room.id,
                names(&now),
                names(&exported)
            ));
        }
    }
    Ok(Imported {
        counts: backup.counts(),
        warnings,
    })
}

/// Restores one room's events, in order.
async fn restore_room(store: &dyn Store, content: &RoomContent) -> Result<(), BackupError> {
    for (line, event) in &content.events {
        store
            .restore_event(event)
            .await
            .map_err(|source| BackupError::Interrupted {
                step: format!(
                    "restoring event {} of room {} (line {line})",
                    event.seq, event.room
                ),
                source,
            })?;
    }
    Ok(())
}

fn names(people: &[PersonId]) -> String {
    let names: Vec<&str> = people.iter().map(PersonId::as_str).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;
    use tempfile::TempDir;
    use triad_protocol::Role;

    use super::*;
    use crate::store::NoSink;
    use crate::store::embedded::EmbeddedStore;

    fn room(id: &str) -> RoomId {
        RoomId::new(id).expect("room id")
    }

    fn person(id: &str) -> PersonId {
        PersonId::new(id).expect("person id")
    }

    fn someone(id: &str, role: Role) -> PersonInfo {
        PersonInfo {
            id: person(id),
            name: id.to_uppercase(),
            role,
            region: String::new(),
            school: String::new(),
            time_zone: "Europe/Rome".into(),
        }
    }

    /// Three heads and a moderator; a trio and the commons.
    fn programme() -> Programme {
        let heads = ["anna", "ben", "carla"].map(person).to_vec();
        Programme {
            people: vec![
                someone("anna", Role::Head),
                someone("ben", Role::Head),
                someone("carla", Role::Head),
                someone("mona", Role::Moderator),
            ],
            rooms: vec![
                RoomRecord {
                    id: room("trio-1"),
                    kind: RoomKind::Trio,
                    title: "Trio 1".into(),
                    members: heads.clone(),
                    moderators: vec![person("mona")],
                    joined_moderators: Vec::new(),
                },
                RoomRecord {
                    id: room("commons"),
                    kind: RoomKind::Commons,
                    title: "Commons".into(),
                    members: heads,
                    moderators: Vec::new(),
                    joined_moderators: Vec::new(),
                },
            ],
        }
    }

    /// A store on a fresh file; the store is declared first so it closes first.
    struct Fresh {
        store: EmbeddedStore,
        _dir: TempDir,
    }

    async fn fresh(with: &Programme) -> Fresh {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("triad.redb");
        let store = EmbeddedStore::open(&path, Arc::new(NoSink)).expect("open the store");
        store.apply_programme(with).await.expect("programme");
        Fresh { store, _dir: dir }
    }

    async fn say(store: &dyn Store, room_id: &str, author: &str, id: &str) -> Seq {
        let appended = store
            .append_message(
                &room(room_id),
                &person(author),
                &ClientMsgId(id.into()),
                &format!("text of {id}"),
            )
            .await;
        appended.expect("append").event.seq
    }

    /// A store with some of everything: messages, a moderator who joined, read markers and
    /// a call record.
    async fn busy() -> Fresh {
        let fresh = fresh(&programme()).await;
        let store = &fresh.store;
        let trio = room("trio-1");
        say(store, "trio-1", "anna", "m-1").await;
        say(store, "trio-1", "ben", "m-2").await;
        let joined = store
            .set_moderator_joined(&trio, &person("mona"), true)
            .await;
        assert!(joined.expect("join").is_some());
        say(store, "trio-1", "mona", "m-3").await;
        say(store, "commons", "carla", "m-1").await;
        store
            .set_read(&trio, &person("carla"), 2)
            .await
            .expect("read");
        let call = CallRecord {
            call: CallId("c-1".into()),
            room: trio,
            started_by: person("anna"),
            started_at: 1_000,
            ended_at: Some(9_000),
            attendance: vec![Attendance {
                person: person("anna"),
                joined_at: 1_000,
                left_at: Some(9_000),
            }],
        };
        store.record_call(&call).await.expect("call");
        // A coaching session and a pin (documents), and which node holds a call (not
        // backed up).
        for (collection, key, value) in [
            (Collection::Coachings, "trio-1", r#"[{"id":"cs-1"}]"#),
            (Collection::Pins, "trio-1", r#"[{"seq":1}]"#),
            (Collection::CallOwners, "trio-1", r#"{"node":"n1"}"#),
        ] {
            let written = store
                .write_doc(collection, key, Expect::Anything, Some(value.into()))
                .await;
            assert!(written.expect("document"));
        }
        fresh
    }

    async fn exported(store: &dyn Store) -> Vec<u8> {
        let mut out = Vec::new();
        export(store, &mut out).await.expect("export");
        out
    }

    /// The lines of a backup as JSON, without what differs between stores or exports.
    fn normalised(backup: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(backup).expect("UTF-8");
        text.lines()
            .map(|line| {
                let mut value: Value = serde_json::from_str(line).expect("JSON");
                let fields = value.as_object_mut().expect("an object");
                fields.remove("exported_at");
                fields.remove("epoch");
                value
            })
            .collect()
    }

    fn problems(text: &str) -> Vec<(usize, String)> {
        match Backup::parse(text.as_bytes()) {
            Err(BackupError::Invalid(problems)) => problems
                .into_iter()
                .map(|problem| (problem.line, problem.message))
                .collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_store_round_trips_through_its_backup() {
        let source = busy().await;
        let backup = exported(&source.store).await;
        let parsed = Backup::parse(backup.as_slice()).expect("a valid backup");
        let counts = Counts {
            people: 4,
            rooms: 2,
            events: 5,
            calls: 1,
            reads: 5,
            docs: 2,
        };
        assert_eq!(parsed.counts(), counts);

        let target = fresh(&Programme::default()).await;
        let imported = import(&target.store, &parsed).await.expect("import");
        assert_eq!(imported.counts, counts);
        assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
        assert_eq!(
            normalised(&exported(&target.store).await),
            normalised(&backup)
        );

        // Every line kind is there, and nothing else.
        let kinds: Vec<String> = normalised(&backup)
            .iter()
            .map(|line| line["type"].as_str().unwrap_or("?").to_owned())
            .collect();
        let mut expected = vec!["header"];
        expected.extend(["person"; 4]);
        expected.extend(["room"; 2]);
        expected.extend(["event"; 5]);
        expected.push("call");
        expected.extend(["read"; 5]);
        expected.extend(["doc"; 2]);
        expected.push("end");
        assert_eq!(kinds, expected);

        // The restored trio de-duplicates and goes on from its last event.
        let retry = target
            .store
            .append_message(
                &room("trio-1"),
                &person("ben"),
                &ClientMsgId("m-2".into()),
                "x",
            )
            .await
            .expect("retry");
        assert!(retry.duplicate);
        assert_eq!(retry.event.seq, 2);
        assert_eq!(say(&target.store, "trio-1", "anna", "m-4").await, 5);
    }

    #[tokio::test]
    async fn rooms_that_have_events_are_refused_and_nothing_is_written() {
        let source = busy().await;
        let mut more = programme();
        more.people.push(someone("zoe", Role::Head));
        source
            .store
            .apply_programme(&more)
            .await
            .expect("programme");
        let parsed = Backup::parse(exported(&source.store).await.as_slice()).expect("valid");

        let target = fresh(&programme()).await;
        say(&target.store, "commons", "anna", "m-1").await;
        match import(&target.store, &parsed).await {
            Err(BackupError::Occupied(rooms)) => assert_eq!(rooms, [room("commons")]),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(
            target.store.person(&person("zoe")).await.expect("person"),
            None
        );
        let state = target
            .store
            .room_state(&room("trio-1"))
            .await
            .expect("state");
        assert_eq!(state.last_seq, 0);
    }

    #[tokio::test]
    async fn a_backup_cut_short_is_refused() {
        let source = busy().await;
        let backup = String::from_utf8(exported(&source.store).await).expect("UTF-8");
        let lines: Vec<&str> = backup.lines().collect();
        let cut = lines[..lines.len() - 3].join("\n");
        let found = problems(&cut);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, lines.len() - 3);
        assert!(found[0].1.contains("cut short"), "{found:?}");
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"{"type":"header","format":"triad-backup","version":1,"exported_at":5}
{"type":"person","person":{"id":"anna","name":"Anna","role":"head","region":"","school":"","time_zone":"UTC"}}
{"type":"person","person":{"id":"anna","name":"Anna","role":"head","region":"","school":"","time_zone":"UTC"}}
{"type":"room","id":"trio-1","kind":"trio","title":"T","members":["anna","zed"],"moderators":[],"joined_moderators":[],"epoch":1}

{"type":"event","event":{"room":"trio-1","seq":1,"ts":10,"author":"anna","kind":"message","client_msg_id":"m-1","body":"hi"}}
{"type":"event","event":{"room":"trio-1","seq":2,"ts":9,"author":"anna","kind":"message","client_msg_id":"m-1","body":"hi"}}
{"type":"event","event":{"room":"trio-1","seq":4,"ts":11,"author":"anna","kind":"moderator_joined"}}
{"type":"event","event":{"room":"trio-2","seq":1,"ts":11,"author":"anna","kind":"moderator_left"}}
{"type":"gossip"}
{"type":"read","room":"trio-1","person":"anna","seq":3}
{"type":"end","people":2,"rooms":1,"events":4,"calls":0,"reads":2}
{"type":"read","room":"trio-1","person":"anna","seq":1}
"#;
        let found = problems(text);
        let lines: Vec<usize> = found.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [3, 4, 7, 7, 8, 9, 10, 11, 12, 13], "{found:#?}");
        let expected = [
            "person anna again (line 2)",
            "room trio-1: unknown person zed",
            "room trio-1: event 2 is older than event 1",
            "room trio-1: client message id m-1 again (line 6)",
            "room trio-1: event 4 where event 3 should come",
            "an event of unknown room trio-2",
            "not a backup line",
            "read marker 3 of anna, but the room's events are 1 to 2",
            "the end line counts 2 reads, the file has 1",
            "a line after the end line (line 12)",
        ];
        for ((_, message), expected) in found.iter().zip(expected) {
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn a_file_that_is_not_a_backup_stops_at_its_first_line() {
        let roster = "[[regions]]\nid = \"vejle\"\n";
        let found = problems(roster);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 1);
        assert!(found[0].1.contains("not a Triad backup"), "{found:?}");

        let newer = r#"{"type":"header","format":"triad-backup","version":2,"exported_at":5}"#;
        let found = problems(&format!("\n{newer}\n"));
        assert_eq!(found[0].0, 2);
        assert!(found[0].1.contains("version 2"), "{found:?}");
        assert_eq!(problems("")[0].1, "the file is empty");
    }
}
