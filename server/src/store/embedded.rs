//! The embedded store: one durable redb file on this machine, the default backend.
//!
//! Every write goes to one writer thread. It takes commands from a bounded channel, applies
//! all that are waiting (up to [`BATCH_LIMIT`]) in one write transaction and commits once, so
//! many concurrent appends cost few fsyncs. After the commit it hands the batch's new events
//! to the [`EventSink`] in order (restored events excepted: a restore is not live traffic),
//! and only then answers each caller. If the commit fails, every caller of the batch gets
//! [`StoreError::Unavailable`] and nothing is published; a command that is refused on its
//! own (an unknown room, a restored event out of sequence) fails alone and the rest commit.
//!
//! Reads open their own read transaction on the blocking pool and never wait for the writer.
//!
//! Tables, keyed by strings and sequence numbers:
//! - `events`: (room, seq) to the JSON of a [`RoomEvent`];
//! - `dedup`: (room, client_msg_id) to the seq of the message stored with it;
//! - `read_markers`: (person, room) to the last seq read;
//! - `room_states`: room to (epoch, last_seq, last_ts); a room exists iff it has a state;
//! - `rooms`: room to the JSON of its membership;
//! - `people`: person to the JSON of their [`PersonInfo`];
//! - `calls`: (room, call id) to the JSON of a [`CallRecord`];
//! - `docs`: (collection, key) to a document (see [`Collection`]).

use std::fmt::Display;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use async_trait::async_trait;
use redb::{
    AccessGuard, Database, ReadTransaction, ReadableDatabase, ReadableTable, StorageError, Table,
    TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use triad_protocol::{
    CallId, ClientMsgId, EventBody, PersonId, PersonInfo, RoomEvent, RoomId, RoomKind, Seq,
    Timestamp,
};

use super::stored_call::StoredCall;
use super::{
    Appended, CallRecord, Collection, EventSink, Expect, HistoryPage, Page, Programme, RoomRecord,
    RoomState, Store, StoreError, now_ms,
};

/// How many commands may wait for the writer before callers wait to enqueue.
const QUEUE_CAPACITY: usize = 4096;

/// The most commands applied in one write transaction.
pub const BATCH_LIMIT: usize = 256;

type EventKey = (&'static str, u64);
type StateRow = (u64, u64, Option<i64>);

const EVENTS: TableDefinition<EventKey, &[u8]> = TableDefinition::new("events");
const DEDUP: TableDefinition<(&str, &str), u64> = TableDefinition::new("dedup");
const READS: TableDefinition<(&str, &str), u64> = TableDefinition::new("read_markers");
const STATES: TableDefinition<&str, StateRow> = TableDefinition::new("room_states");
const ROOMS: TableDefinition<&str, &[u8]> = TableDefinition::new("rooms");
const PEOPLE: TableDefinition<&str, &[u8]> = TableDefinition::new("people");
const CALLS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("calls");
const DOCS: TableDefinition<(&str, &str), &str> = TableDefinition::new("docs");

/// The embedded backend: a single crash-safe file, every commit durable when it returns.
///
/// Dropping the store waits for the writer thread to finish its current batch and closes
/// the file, so the same path can be opened again at once.
pub struct EmbeddedStore {
    /// The database, shared with the writer thread and the read tasks.
    db: Arc<Database>,
    /// Commands for the writer thread. Declared before `writer` so that it is dropped first:
    /// the thread sees the channel close and ends, and `writer` waits for that.
    commands: mpsc::Sender<Command>,
    /// The writer thread.
    writer: WriterThread,
    /// Raised by the writer thread when a programme it applied is committed. In memory:
    /// no other process opens the database while this one has it.
    programme_version: Arc<AtomicU64>,
}

impl EmbeddedStore {
    /// Opens the store at `path`, creating the file and its tables if missing, and starts
    /// its writer thread. Durable events are handed to `sink`.
    pub fn open(path: &Path, sink: Arc<dyn EventSink>) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|err| {
            StoreError::Unavailable(format!("cannot open {}: {err}", path.display()))
        })?;
        create_tables(&db)?;
        let db = Arc::new(db);
        let (commands, queue) = mpsc::channel(QUEUE_CAPACITY);
        let thread_db = Arc::clone(&db);
        let programme_version = Arc::new(AtomicU64::new(0));
        let version = Arc::clone(&programme_version);
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run_writer(&thread_db, sink.as_ref(), &version, queue))
            .map_err(|err| unavailable("cannot start the store writer", err))?;
        Ok(Self {
            db,
            commands,
            writer: WriterThread(Some(handle)),
            programme_version,
        })
    }

    /// Sends a command to the writer thread and waits for its answer.
    async fn submit<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(command(reply)).await.is_err() {
            return Err(StoreError::Unavailable(
                "the store writer has stopped".into(),
            ));
        }
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(
                "the store writer stopped before answering".into(),
            )),
        }
    }

    /// Runs `read` in a read transaction on the blocking pool.
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let task = tokio::task::spawn_blocking(move || {
            let txn = db
                .begin_read()
                .map_err(|err| unavailable("cannot begin a read", err))?;
            read(&txn)
        });
        match task.await {
            Ok(result) => result,
            Err(err) => Err(unavailable("a store read failed", err)),
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn programme(&self) -> Result<Programme, StoreError> {
        self.read(read_programme).await
    }

    async fn apply_programme(&self, programme: &Programme) -> Result<(), StoreError> {
        let programme = programme.clone();
        self.submit(|reply| Command::Programme { programme, reply })
            .await
    }

    async fn programme_version(&self) -> Result<u64, StoreError> {
        Ok(self.programme_version.load(Ordering::Acquire))
    }

    async fn person(&self, id: &PersonId) -> Result<Option<PersonInfo>, StoreError> {
        let id = id.clone();
        self.read(move |txn| {
            let people = txn.open_table(PEOPLE).map_err(storage)?;
            let found = people.get(id.as_str()).map_err(storage)?;
            found
                .map(|value| decode::<PersonInfo>(value.value(), "person"))
                .transpose()
        })
        .await
    }

    async fn room(&self, id: &RoomId) -> Result<Option<RoomRecord>, StoreError> {
        let id = id.clone();
        self.read(move |txn| read_room(&txn.open_table(ROOMS).map_err(storage)?, &id))
            .await
    }

    async fn append_message(
        &self,
        room: &RoomId,
        author: &PersonId,
        client_msg_id: &ClientMsgId,
        body: &str,
    ) -> Result<Appended, StoreError> {
        self.submit(|reply| Command::Append {
            room: room.clone(),
            author: author.clone(),
            client_msg_id: client_msg_id.clone(),
            body: body.to_owned(),
            reply,
        })
        .await
    }

    async fn set_moderator_joined(
        &self,
        room: &RoomId,
        moderator: &PersonId,
        joined: bool,
    ) -> Result<Option<RoomEvent>, StoreError> {
        self.submit(|reply| Command::Moderator {
            room: room.clone(),
            moderator: moderator.clone(),
            joined,
            reply,
        })
        .await
    }

    async fn restore_event(&self, event: &RoomEvent) -> Result<(), StoreError> {
        let event = event.clone();
        self.submit(|reply| Command::Restore { event, reply }).await
    }

    async fn history(&self, room: &RoomId, page: Page) -> Result<HistoryPage, StoreError> {
        let room = room.clone();
        self.read(move |txn| read_history(txn, &room, page)).await
    }

    async fn room_state(&self, room: &RoomId) -> Result<RoomState, StoreError> {
        let room = room.clone();
        self.read(move |txn| existing_state(&txn.open_table(STATES).map_err(storage)?, &room))
            .await
    }

    async fn set_read(
        &self,
        room: &RoomId,
        person: &PersonId,
        seq: Seq,
    ) -> Result<Seq, StoreError> {
        self.submit(|reply| Command::Read {
            room: room.clone(),
            person: person.clone(),
            seq,
            reply,
        })
        .await
    }

    async fn read_marker(&self, room: &RoomId, person: &PersonId) -> Result<Seq, StoreError> {
        let (room, person) = (room.clone(), person.clone());
        self.read(move |txn| {
            existing_state(&txn.open_table(STATES).map_err(storage)?, &room)?;
            let reads = txn.open_table(READS).map_err(storage)?;
            let marker = reads
                .get((person.as_str(), room.as_str()))
                .map_err(storage)?;
            Ok(marker.map_or(0, |value| value.value()))
        })
        .await
    }

    async fn ready(&self) -> bool {
        self.writer.is_alive() && !self.commands.is_closed()
    }

    async fn record_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.submit(|reply| Command::Call { record, reply }).await
    }

    async fn call_records(&self, room: &RoomId) -> Result<Vec<CallRecord>, StoreError> {
        let room = room.clone();
        self.read(move |txn| read_calls(txn, &room)).await
    }

    async fn doc(&self, collection: Collection, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.read(move |txn| {
            let docs = txn.open_table(DOCS).map_err(storage)?;
            let found = docs
                .get((collection.as_str(), key.as_str()))
                .map_err(storage)?;
            Ok(found.map(|value| value.value().to_owned()))
        })
        .await
    }

    async fn docs(&self, collection: Collection) -> Result<Vec<(String, String)>, StoreError> {
        self.read(move |txn| {
            let docs = txn.open_table(DOCS).map_err(storage)?;
            let name = collection.as_str();
            let mut found = Vec::new();
            // Keys are UTF-8 and sort below U+10FFFF.
            for entry in docs
                .range((name, "")..=(name, "\u{10ffff}"))
                .map_err(storage)?
            {
                let (key, value) = entry.map_err(storage)?;
                found.push((key.value().1.to_owned(), value.value().to_owned()));
            }
            Ok(found)
        })
        .await
    }

    async fn write_doc(
        &self,
        collection: Collection,
        key: &str,
        expect: Expect,
        value: Option<String>,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.submit(|reply| Command::Doc {
            collection,
            key,
            expect,
            value,
            reply,
        })
        .await
    }
}

/// The writer thread's handle; waits for the thread when the store is dropped.
struct WriterThread(Option<JoinHandle<()>>);

impl WriterThread {
    fn is_alive(&self) -> bool {
        self.0.as_ref().is_some_and(|handle| !handle.is_finished())
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        let Some(handle) = self.0.take() else { return };
        // A sink that holds the store may drop it from the writer thread itself; that
        // thread ends on its own once it sees the channel closed.
        if handle.thread().id() == std::thread::current().id() {
            return;
        }
        if handle.join().is_err() {
            tracing::error!("the store writer thread panicked");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The writer thread.

/// Where the writer sends one caller's answer.
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write, as the writer thread receives it.
enum Command {
    Append {
        room: RoomId,
        author: PersonId,
        client_msg_id: ClientMsgId,
        body: String,
        reply: Reply<Appended>,
    },
    Moderator {
        room: RoomId,
        moderator: PersonId,
        joined: bool,
        reply: Reply<Option<RoomEvent>>,
    },
    Restore {
        event: RoomEvent,
        reply: Reply<()>,
    },
    Read {
        room: RoomId,
        person: PersonId,
        seq: Seq,
        reply: Reply<Seq>,
    },
    Programme {
        programme: Programme,
        reply: Reply<()>,
    },
    Call {
        record: CallRecord,
        reply: Reply<()>,
    },
    Doc {
        collection: Collection,
        key: String,
        expect: Expect,
        value: Option<String>,
        reply: Reply<bool>,
    },
}

impl Command {
    /// Answers the caller that its write was not stored.
    fn fail(self, message: &str) {
        match self {
            Self::Append { reply, .. } => Done::failed(reply, message).answer(),
            Self::Moderator { reply, .. } => Done::failed(reply, message).answer(),
            Self::Restore { reply, .. } => Done::failed(reply, message).answer(),
            Self::Read { reply, .. } => Done::failed(reply, message).answer(),
            Self::Programme { reply, .. } => Done::failed(reply, message).answer(),
            Self::Call { reply, .. } => Done::failed(reply, message).answer(),
            Self::Doc { reply, .. } => Done::failed(reply, message).answer(),
        }
    }
}

/// Why one command of a batch failed.
#[derive(Debug)]
enum Failure {
    /// Refused before it wrote anything: only its caller is told; the batch goes on.
    Caller(StoreError),
    /// The transaction itself failed: the whole batch is abandoned.
    Batch(String),
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(message) => Self::Batch(message),
            other => Self::Caller(other),
        }
    }
}

impl From<StorageError> for Failure {
    fn from(err: StorageError) -> Self {
        Self::Batch(err.to_string())
    }
}

/// A command applied to the open transaction, with its answer held until the commit.
struct Done<T> {
    reply: Reply<T>,
    result: Result<T, Failure>,
}

impl<T> Done<T> {
    fn failed(reply: Reply<T>, message: &str) -> Self {
        Self {
            reply,
            result: Err(Failure::Batch(message.to_owned())),
        }
    }

    /// The message of a failure that abandons the batch.
    fn fatal(&self) -> Option<&str> {
        match &self.result {
            Err(Failure::Batch(message)) => Some(message),
            _ => None,
        }
    }

    fn answer(self) {
        let result = self.result.map_err(|failure| match failure {
            Failure::Caller(err) => err,
            Failure::Batch(message) => StoreError::Unavailable(message),
        });
        if self.reply.send(result).is_err() {
            tracing::debug!("a store caller stopped waiting for its answer");
        }
    }

    fn fail(mut self, message: &str) {
        self.result = Err(Failure::Batch(message.to_owned()));
        self.answer();
    }
}

/// One applied command of the batch.
enum Applied {
    Append(Done<Appended>),
    Moderator(Done<Option<RoomEvent>>),
    /// Not handed to the sink: a restored event is not live traffic.
    Restore(Done<()>),
    Read(Done<Seq>),
    Programme(Done<()>),
    Call(Done<()>),
    Doc(Done<bool>),
}

impl Applied {
    /// Whether this is a programme applied without failure.
    fn applied_programme(&self) -> bool {
        matches!(self, Self::Programme(done) if done.result.is_ok())
    }

    fn fatal(&self) -> Option<&str> {
        match self {
            Self::Append(done) => done.fatal(),
            Self::Moderator(done) => done.fatal(),
            Self::Restore(done) => done.fatal(),
            Self::Read(done) => done.fatal(),
            Self::Programme(done) => done.fatal(),
            Self::Call(done) => done.fatal(),
            Self::Doc(done) => done.fatal(),
        }
    }

    /// The event this command added to a room, if any (a duplicate adds none).
    fn new_event(&self) -> Option<&RoomEvent> {
        match self {
            Self::Append(Done {
                result: Ok(appended),
                ..
            }) if !appended.duplicate => Some(&appended.event),
            Self::Moderator(Done {
                result: Ok(Some(event)),
                ..
            }) => Some(event),
            _ => None,
        }
    }

    fn answer(self) {
        match self {
            Self::Append(done) => done.answer(),
            Self::Moderator(done) => done.answer(),
            Self::Restore(done) => done.answer(),
            Self::Read(done) => done.answer(),
            Self::Programme(done) => done.answer(),
            Self::Call(done) => done.answer(),
            Self::Doc(done) => done.answer(),
        }
    }

    fn fail(self, message: &str) {
        match self {
            Self::Append(done) => done.fail(message),
            Self::Moderator(done) => done.fail(message),
            Self::Restore(done) => done.fail(message),
            Self::Read(done) => done.fail(message),
            Self::Programme(done) => done.fail(message),
            Self::Call(done) => done.fail(message),
            Self::Doc(done) => done.fail(message),
        }
    }
}

/// The writer thread's loop: one batch per wake-up, until every sender is dropped.
fn run_writer(
    db: &Database,
    sink: &dyn EventSink,
    programme_version: &AtomicU64,
    mut queue: mpsc::Receiver<Command>,
) {
    let mut batch = Vec::with_capacity(BATCH_LIMIT);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < BATCH_LIMIT {
            match queue.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        commit_batch(db, sink, programme_version, batch.drain(..));
    }
    tracing::debug!("the store writer stopped: its channel closed");
}

/// Applies a batch in one transaction and one commit, publishes its new events, answers
/// its callers.
fn commit_batch(
    db: &Database,
    sink: &dyn EventSink,
    programme_version: &AtomicU64,
    batch: impl ExactSizeIterator<Item = Command>,
) {
    let mut pending = batch;
    let mut applied = Vec::with_capacity(pending.len());
    match apply_batch(db, &mut pending, &mut applied) {
        Ok(()) => {
            tracing::trace!(commands = applied.len(), "store batch committed");
            // Raised here, once committed, whether or not the caller still waits.
            if applied.iter().any(Applied::applied_programme) {
                programme_version.fetch_add(1, Ordering::AcqRel);
            }
            for event in applied.iter().filter_map(Applied::new_event) {
                sink.publish(event);
            }
            for done in applied {
                done.answer();
            }
        }
        Err(message) => {
            tracing::error!(
                error = %message,
                commands = applied.len() + pending.len(),
                "a store batch failed; nothing of it was stored"
            );
            for done in applied {
                done.fail(&message);
            }
            for command in pending {
                command.fail(&message);
            }
        }
    }
}

/// Applies commands from `pending` into `applied` and commits; on a failure of the
/// transaction, returns why, leaving the unapplied commands in `pending`.
fn apply_batch(
    db: &Database,
    pending: &mut impl Iterator<Item = Command>,
    applied: &mut Vec<Applied>,
) -> Result<(), String> {
    let txn = db
        .begin_write()
        .map_err(|err| format!("cannot begin a write: {err}"))?;
    {
        let mut tables = WriteTables::open(&txn).map_err(|err| err.to_string())?;
        for command in pending.by_ref() {
            let done = tables.apply(command);
            let fatal = done.fatal().map(str::to_owned);
            applied.push(done);
            if let Some(message) = fatal {
                return Err(message);
            }
        }
    }
    txn.commit().map_err(|err| format!("commit failed: {err}"))
}

/// The tables of one write transaction.
struct WriteTables<'txn> {
    events: Table<'txn, EventKey, &'static [u8]>,
    dedup: Table<'txn, (&'static str, &'static str), u64>,
    reads: Table<'txn, (&'static str, &'static str), u64>,
    states: Table<'txn, &'static str, StateRow>,
    rooms: Table<'txn, &'static str, &'static [u8]>,
    people: Table<'txn, &'static str, &'static [u8]>,
    calls: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    docs: Table<'txn, (&'static str, &'static str), &'static str>,
}

impl<'txn> WriteTables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, redb::TableError> {
        Ok(Self {
            events: txn.open_table(EVENTS)?,
            dedup: txn.open_table(DEDUP)?,
            reads: txn.open_table(READS)?,
            states: txn.open_table(STATES)?,
            rooms: txn.open_table(ROOMS)?,
            people: txn.open_table(PEOPLE)?,
            calls: txn.open_table(CALLS)?,
            docs: txn.open_table(DOCS)?,
        })
    }

    /// Applies one command. Each command reads and checks everything before its first
    /// write, so a [`Failure::Caller`] leaves nothing of it in the transaction.
    fn apply(&mut self, command: Command) -> Applied {
        match command {
            Command::Append {
                room,
                author,
                client_msg_id,
                body,
                reply,
            } => {
                let result = self.append(&room, &author, &client_msg_id, body);
                Applied::Append(Done { reply, result })
            }
            Command::Moderator {
                room,
                moderator,
                joined,
                reply,
            } => {
                let result = self.set_moderator(&room, &moderator, joined);
                Applied::Moderator(Done { reply, result })
            }
            Command::Restore { event, reply } => {
                let result = self.restore(&event);
                Applied::Restore(Done { reply, result })
            }
            Command::Read {
                room,
                person,
                seq,
                reply,
            } => {
                let result = self.set_read(&room, &person, seq);
                Applied::Read(Done { reply, result })
            }
            Command::Programme { programme, reply } => {
                let result = self.apply_programme(programme);
                Applied::Programme(Done { reply, result })
            }
            Command::Call { record, reply } => {
                let result = self.record_call(&record);
                Applied::Call(Done { reply, result })
            }
            Command::Doc {
                collection,
                key,
                expect,
                value,
                reply,
            } => {
                let result = self.write_doc(collection, &key, &expect, value.as_deref());
                Applied::Doc(Done { reply, result })
            }
        }
    }

    fn append(
        &mut self,
        room: &RoomId,
        author: &PersonId,
        client_msg_id: &ClientMsgId,
        body: String,
    ) -> Result<Appended, Failure> {
        let state = existing_state(&self.states, room)?;
        let stored = self
            .dedup
            .get((room.as_str(), client_msg_id.as_str()))?
            .map(|seq| seq.value());
        if let Some(seq) = stored {
            let event = read_event(&self.events, room, seq)?.ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "{room}: message {client_msg_id} has no event {seq}"
                ))
            })?;
            return Ok(Appended {
                event,
                duplicate: true,
            });
        }
        let message = EventBody::Message {
            client_msg_id: client_msg_id.clone(),
            body,
        };
        let (event, state) = next_event(state, room, author, message);
        self.put_event(&event, &state)?;
        self.dedup
            .insert((room.as_str(), client_msg_id.as_str()), event.seq)?;
        // The author has read everything up to their own message.
        self.reads
            .insert((author.as_str(), room.as_str()), event.seq)?;
        Ok(Appended {
            event,
            duplicate: false,
        })
    }

    fn set_moderator(
        &mut self,
        room: &RoomId,
        moderator: &PersonId,
        joined: bool,
    ) -> Result<Option<RoomEvent>, Failure> {
        let state = existing_state(&self.states, room)?;
        let mut record = read_room(&self.rooms, room)?
            .ok_or_else(|| StoreError::Corrupt(format!("room {room} has a state but no record")))?;
        if record.joined_moderators.contains(moderator) == joined {
            return Ok(None);
        }
        if joined {
            record.joined_moderators.push(moderator.clone());
        } else {
            record.joined_moderators.retain(|id| id != moderator);
        }
        let body = if joined {
            EventBody::ModeratorJoined
        } else {
            EventBody::ModeratorLeft
        };
        let (event, state) = next_event(state, room, moderator, body);
        let stored_room = encode(&StoredRoom::from(&record))?;
        self.put_event(&event, &state)?;
        self.rooms.insert(room.as_str(), stored_room.as_slice())?;
        Ok(Some(event))
    }

    /// Writes an exported event as it is, with its effects on the room; see
    /// [`Store::restore_event`].
    fn restore(&mut self, event: &RoomEvent) -> Result<(), Failure> {
        let room = &event.room;
        let state = existing_state(&self.states, room)?;
        check_restorable(&state, event)?;
        if let Some(id) = event.body.client_msg_id() {
            let stored = self.dedup.get((room.as_str(), id.as_str()))?;
            if let Some(seq) = stored.map(|seq| seq.value()) {
                return Err(StoreError::Conflict(format!(
                    "{room}: message {id} of event {} is already stored as event {seq}",
                    event.seq
                ))
                .into());
            }
        }
        let moderators = match &event.body {
            EventBody::Message { .. } => None,
            EventBody::ModeratorJoined | EventBody::ModeratorLeft => {
                let mut record = read_room(&self.rooms, room)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("room {room} has a state but no record"))
                })?;
                let author = &event.author;
                let joined = record.joined_moderators.contains(author);
                if event.body == EventBody::ModeratorLeft {
                    record.joined_moderators.retain(|id| id != author);
                } else if !joined && record.moderators.contains(author) {
                    record.joined_moderators.push(author.clone());
                }
                Some(encode(&StoredRoom::from(&record))?)
            }
        };
        let state = RoomState {
            epoch: state.epoch,
            last_seq: event.seq,
            last_ts: Some(event.ts),
        };
        self.put_event(event, &state)?;
        if let Some(id) = event.body.client_msg_id() {
            self.dedup.insert((room.as_str(), id.as_str()), event.seq)?;
        }
        if let Some(stored_room) = moderators {
            self.rooms.insert(room.as_str(), stored_room.as_slice())?;
        }
        Ok(())
    }

    fn set_read(&mut self, room: &RoomId, person: &PersonId, seq: Seq) -> Result<Seq, Failure> {
        let state = existing_state(&self.states, room)?;
        let key = (person.as_str(), room.as_str());
        let old = self.reads.get(key)?.map_or(0, |marker| marker.value());
        let new = old.max(seq.min(state.last_seq));
        if new != old {
            self.reads.insert(key, new)?;
        }
        Ok(new)
    }

    fn apply_programme(&mut self, programme: Programme) -> Result<(), Failure> {
        // Everything is read and encoded first, then written.
        let mut people = Vec::with_capacity(programme.people.len());
        for person in &programme.people {
            people.push((person.id.as_str(), encode(person)?));
        }
        let created_epoch = u64::try_from(now_ms()).unwrap_or(0);
        let mut rooms = Vec::with_capacity(programme.rooms.len());
        for record in &programme.rooms {
            let existing = read_state(&self.states, &record.id)?;
            let joined = match existing {
                Some(_) => read_room(&self.rooms, &record.id)?
                    .map(|old| old.joined_moderators)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|id| record.moderators.contains(id))
                    .collect(),
                // Joining is recorded by `set_moderator_joined`, with its event.
                None => Vec::new(),
            };
            let stored = StoredRoom {
                kind: record.kind,
                title: record.title.clone(),
                members: record.members.clone(),
                moderators: record.moderators.clone(),
                joined_moderators: joined,
            };
            let new_state = match existing {
                Some(_) => None,
                None => Some(RoomState {
                    epoch: created_epoch,
                    last_seq: 0,
                    last_ts: None,
                }),
            };
            rooms.push((record.id.as_str(), encode(&stored)?, new_state));
        }
        for (id, person) in &people {
            self.people.insert(*id, person.as_slice())?;
        }
        for (id, room, new_state) in &rooms {
            self.rooms.insert(*id, room.as_slice())?;
            if let Some(state) = new_state {
                self.states.insert(*id, state_row(state))?;
            }
        }
        Ok(())
    }

    fn record_call(&mut self, record: &CallRecord) -> Result<(), Failure> {
        existing_state(&self.states, &record.room)?;
        let stored = encode(&StoredCall::of(record))?;
        self.calls.insert(
            (record.room.as_str(), record.call.as_str()),
            stored.as_slice(),
        )?;
        Ok(())
    }

    fn write_doc(
        &mut self,
        collection: Collection,
        key: &str,
        expect: &Expect,
        value: Option<&str>,
    ) -> Result<bool, Failure> {
        let at = (collection.as_str(), key);
        let holds = match expect {
            Expect::Anything => true,
            Expect::Absent => self.docs.get(at)?.is_none(),
            Expect::Value(wanted) => self
                .docs
                .get(at)?
                .is_some_and(|current| current.value() == wanted),
        };
        if !holds {
            return Ok(false);
        }
        match value {
            Some(value) => {
                self.docs.insert(at, value)?;
            }
            None => {
                self.docs.remove(at)?;
            }
        }
        Ok(true)
    }

    /// Writes a new event and its room's new state.
    fn put_event(&mut self, event: &RoomEvent, state: &RoomState) -> Result<(), Failure> {
        let bytes = encode(event)?;
        self.events
            .insert((event.room.as_str(), event.seq), bytes.as_slice())?;
        self.states.insert(event.room.as_str(), state_row(state))?;
        Ok(())
    }
}

/// Refuses a restored event that does not follow the room's last one, in seq or in time.
fn check_restorable(state: &RoomState, event: &RoomEvent) -> Result<(), StoreError> {
    let room = &event.room;
    if Some(event.seq) != state.last_seq.checked_add(1) {
        return Err(StoreError::Conflict(format!(
            "{room}: event {} does not follow the room's last event {}",
            event.seq, state.last_seq
        )));
    }
    if state.last_ts.is_some_and(|last| event.ts < last) {
        return Err(StoreError::Conflict(format!(
            "{room}: event {} is older than the room's last event",
            event.seq
        )));
    }
    Ok(())
}

/// The room's next event and its state after it. Timestamps never go back within a room.
fn next_event(
    state: RoomState,
    room: &RoomId,
    author: &PersonId,
    body: EventBody,
) -> (RoomEvent, RoomState) {
    let ts: Timestamp = state.last_ts.map_or_else(now_ms, |last| now_ms().max(last));
    let seq = state.last_seq + 1;
    let event = RoomEvent {
        room: room.clone(),
        seq,
        ts,
        author: author.clone(),
        body,
    };
    (
        event,
        RoomState {
            epoch: state.epoch,
            last_seq: seq,
            last_ts: Some(ts),
        },
    )
}

// ---------------------------------------------------------------------------------------
// Reading, shared by read transactions and the writer.

/// A room's membership as stored; the id is the key.
#[derive(Serialize, Deserialize)]
struct StoredRoom {
    kind: RoomKind,
    title: String,
    members: Vec<PersonId>,
    moderators: Vec<PersonId>,
    joined_moderators: Vec<PersonId>,
}

impl From<&RoomRecord> for StoredRoom {
    fn from(record: &RoomRecord) -> Self {
        Self {
            kind: record.kind,
            title: record.title.clone(),
            members: record.members.clone(),
            moderators: record.moderators.clone(),
            joined_moderators: record.joined_moderators.clone(),
        }
    }
}

impl StoredRoom {
    fn into_record(self, id: RoomId) -> RoomRecord {
        RoomRecord {
            id,
            kind: self.kind,
            title: self.title,
            members: self.members,
            moderators: self.moderators,
            joined_moderators: self.joined_moderators,
        }
    }
}

fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db
        .begin_write()
        .map_err(|err| unavailable("cannot begin a write", err))?;
    WriteTables::open(&txn).map_err(|err| unavailable("cannot create the tables", err))?;
    txn.commit()
        .map_err(|err| unavailable("cannot create the tables", err))
}

fn read_state(
    states: &impl ReadableTable<&'static str, StateRow>,
    room: &RoomId,
) -> Result<Option<RoomState>, StoreError> {
    let row = states.get(room.as_str()).map_err(storage)?;
    Ok(row.map(|row| {
        let (epoch, last_seq, last_ts) = row.value();
        RoomState {
            epoch,
            last_seq,
            last_ts,
        }
    }))
}

fn existing_state(
    states: &impl ReadableTable<&'static str, StateRow>,
    room: &RoomId,
) -> Result<RoomState, StoreError> {
    read_state(states, room)?.ok_or_else(|| StoreError::UnknownRoom(room.clone()))
}

fn state_row(state: &RoomState) -> StateRow {
    (state.epoch, state.last_seq, state.last_ts)
}

fn read_room(
    rooms: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &RoomId,
) -> Result<Option<RoomRecord>, StoreError> {
    let found = rooms.get(id.as_str()).map_err(storage)?;
    let Some(value) = found else { return Ok(None) };
    let stored: StoredRoom = decode(value.value(), "room")?;
    Ok(Some(stored.into_record(id.clone())))
}

fn read_event(
    events: &impl ReadableTable<EventKey, &'static [u8]>,
    room: &RoomId,
    seq: Seq,
) -> Result<Option<RoomEvent>, StoreError> {
    let found = events.get((room.as_str(), seq)).map_err(storage)?;
    found
        .map(|value| decode(value.value(), "event"))
        .transpose()
}

fn read_programme(txn: &ReadTransaction) -> Result<Programme, StoreError> {
    let mut programme = Programme::default();
    let people = txn.open_table(PEOPLE).map_err(storage)?;
    for entry in people.iter().map_err(storage)? {
        let (_, value) = entry.map_err(storage)?;
        programme.people.push(decode(value.value(), "person")?);
    }
    let rooms = txn.open_table(ROOMS).map_err(storage)?;
    for entry in rooms.iter().map_err(storage)? {
        let (key, value) = entry.map_err(storage)?;
        let id = RoomId::new(key.value()).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        let stored: StoredRoom = decode(value.value(), "room")?;
        programme.rooms.push(stored.into_record(id));
    }
    Ok(programme)
}

fn read_calls(txn: &ReadTransaction, room: &RoomId) -> Result<Vec<CallRecord>, StoreError> {
    existing_state(&txn.open_table(STATES).map_err(storage)?, room)?;
    let calls = txn.open_table(CALLS).map_err(storage)?;
    let key = room.as_str();
    let mut records = Vec::new();
    // Every call id of the room: ids are ASCII, so they sort below U+10FFFF.
    for entry in calls
        .range((key, "")..=(key, "\u{10ffff}"))
        .map_err(storage)?
    {
        let (id, value) = entry.map_err(storage)?;
        let stored: StoredCall = decode(value.value(), "call")?;
        let call = CallId(id.value().1.to_owned());
        records.push(stored.into_record(room.clone(), call));
    }
    records.sort_by_key(|record| record.started_at);
    Ok(records)
}

fn read_history(
    txn: &ReadTransaction,
    room: &RoomId,
    page: Page,
) -> Result<HistoryPage, StoreError> {
    let state = existing_state(&txn.open_table(STATES).map_err(storage)?, room)?;
    let events = txn.open_table(EVENTS).map_err(storage)?;
    let key = room.as_str();
    let (events, has_more) = match page {
        Page::Latest { limit } => {
            let newest = events.range((key, 0)..=(key, u64::MAX)).map_err(storage)?;
            newest_first(newest.rev(), limit)?
        }
        Page::Before { before, limit } => {
            let older = events.range((key, 0)..(key, before)).map_err(storage)?;
            newest_first(older.rev(), limit)?
        }
        Page::After { after, limit } => {
            let bounds = (
                Bound::Excluded((key, after)),
                Bound::Included((key, u64::MAX)),
            );
            let newer = events.range(bounds).map_err(storage)?;
            collect_page(newer, limit)?
        }
    };
    Ok(HistoryPage {
        epoch: state.epoch,
        events,
        has_more,
    })
}

type EventEntry<'a> =
    Result<(AccessGuard<'a, EventKey>, AccessGuard<'a, &'static [u8]>), StorageError>;

/// Up to `limit` events in the order given, and whether more follow.
fn collect_page<'a>(
    entries: impl Iterator<Item = EventEntry<'a>>,
    limit: u32,
) -> Result<(Vec<RoomEvent>, bool), StoreError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut events = Vec::new();
    for entry in entries {
        if events.len() == limit {
            return Ok((events, true));
        }
        let (_, value) = entry.map_err(storage)?;
        events.push(decode(value.value(), "event")?);
    }
    Ok((events, false))
}

/// Like [`collect_page`] over entries newest first, returning the events ascending.
fn newest_first<'a>(
    entries: impl Iterator<Item = EventEntry<'a>>,
    limit: u32,
) -> Result<(Vec<RoomEvent>, bool), StoreError> {
    let (mut events, has_more) = collect_page(entries, limit)?;
    events.reverse();
    Ok((events, has_more))
}

// ---------------------------------------------------------------------------------------
// Encoding and errors.

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(value).map_err(|err| {
        Failure::Caller(StoreError::Unavailable(format!(
            "cannot encode for storage: {err}"
        )))
    })
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt(format!("{what}: {err}")))
}

fn storage(err: impl Display) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

fn unavailable(context: &str, err: impl Display) -> StoreError {
    StoreError::Unavailable(format!("{context}: {err}"))
}

#[cfg(test)]
mod tests {
    //! What only this backend can show: how one batch behaves inside its transaction.

    use super::*;
    use crate::store::NoSink;

    fn room(id: &str) -> RoomId {
        RoomId::new(id).unwrap()
    }

    fn person(id: &str) -> PersonId {
        PersonId::new(id).unwrap()
    }

    fn one_room_programme() -> Programme {
        Programme {
            people: Vec::new(),
            rooms: vec![RoomRecord {
                id: room("trio-1"),
                kind: RoomKind::Trio,
                title: "Trio 1".into(),
                members: vec![person("anna")],
                moderators: Vec::new(),
                joined_moderators: Vec::new(),
            }],
        }
    }

    fn append(
        room_id: &str,
        client_msg_id: &str,
    ) -> (Command, oneshot::Receiver<Result<Appended, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let command = Command::Append {
            room: room(room_id),
            author: person("anna"),
            client_msg_id: ClientMsgId(client_msg_id.into()),
            body: format!("{client_msg_id} body"),
            reply,
        };
        (command, answer)
    }

    fn open_db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("store.redb")).unwrap();
        create_tables(&db).unwrap();
        let (reply, mut answer) = oneshot::channel();
        let programme = Command::Programme {
            programme: one_room_programme(),
            reply,
        };
        let version = AtomicU64::new(0);
        commit_batch(&db, &NoSink, &version, vec![programme].into_iter());
        answer.try_recv().unwrap().unwrap();
        assert_eq!(
            version.load(Ordering::Relaxed),
            1,
            "a committed programme counts"
        );
        (dir, db)
    }

    #[test]
    fn a_retry_in_the_same_batch_gets_the_first_message() {
        let (_dir, db) = open_db();
        let (first, mut first_answer) = append("trio-1", "m-1");
        let (retry, mut retry_answer) = append("trio-1", "m-1");
        commit_batch(
            &db,
            &NoSink,
            &AtomicU64::new(0),
            vec![first, retry].into_iter(),
        );
        let first = first_answer.try_recv().unwrap().unwrap();
        let retry = retry_answer.try_recv().unwrap().unwrap();
        assert!(!first.duplicate);
        assert!(retry.duplicate);
        assert_eq!(retry.event, first.event);
        assert_eq!(first.event.seq, 1);
    }

    #[test]
    fn an_unknown_room_fails_alone_and_the_rest_of_the_batch_commits() {
        let (_dir, db) = open_db();
        let (good, mut good_answer) = append("trio-1", "m-1");
        let (bad, mut bad_answer) = append("trio-9", "m-2");
        let (later, mut later_answer) = append("trio-1", "m-3");
        commit_batch(
            &db,
            &NoSink,
            &AtomicU64::new(0),
            vec![good, bad, later].into_iter(),
        );
        assert!(matches!(
            bad_answer.try_recv().unwrap(),
            Err(StoreError::UnknownRoom(_))
        ));
        assert_eq!(good_answer.try_recv().unwrap().unwrap().event.seq, 1);
        assert_eq!(later_answer.try_recv().unwrap().unwrap().event.seq, 2);
        let txn = db.begin_read().unwrap();
        let states = txn.open_table(STATES).unwrap();
        assert_eq!(
            existing_state(&states, &room("trio-1")).unwrap().last_seq,
            2
        );
    }
}
