//! Video calls: the state of each room's call, the grace period of lost connections,
//! signalling relay between participants, TURN credentials, and call records.
//!
//! [`Calls`] keeps the truth about who is in which call. Membership changes (start, join,
//! leave, end, a lost connection, a grace period running out) take the book's lock, then
//! the call's; a signal takes the book's read lock only to find its call, then the call's
//! lock. Every change is pushed to the call's room as `call_state` (through the hub, like
//! any room broadcast) while the call's lock is held, so everyone sees the changes of a
//! call in the order they happened; its record is queued for the store the same way.
//!
//! **Several nodes.** A call lives on one node, the one where it started: its state, its
//! lock, its grace timers and its records are there, and the room's entry in the store's
//! [`crate::store::Collection::CallOwners`] names that node (written with compare-and-set, so
//! two nodes never start two calls in one room). A participant is a session of that node
//! (its outbox) or of another node ([`state::SessionAddr::Remote`]); [`relay::deliver`]
//! hands a frame to either, the second over the bus. A call request from a session whose
//! room's call another node holds is forwarded to that node, which applies the same rules
//! and answers (see [`cluster`]). When a node is lost, the node holding a call gives that
//! node's participants the grace period, and every other node ends the calls the lost node
//! held (`call_ended` with `server_lost`). Without a link to other nodes none of this
//! runs: calls stay on their node, as they always did.
//!
//! Files: [`state`] (a call's participants and transitions), [`relay`] (signal checks and
//! delivery), [`turn`] (ICE servers and TURN credentials), [`records`] (the record writer),
//! [`cluster`] (owners, forwarding and lost nodes), [`wire`] (call messages between nodes).

pub mod cluster;
pub mod records;
pub mod relay;
pub mod state;
pub mod turn;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use triad_protocol::{
    CallChangeKind, CallEndReason, CallId, CallState, ErrorCode, RoomId, ServerFrame,
    ServerMessage, SessionId, Signal,
};

use crate::auth::Access;
use crate::hub::{Hub, SessionKey};
use crate::store::{SharedStore, now_ms};
use records::RecordWriter;
use state::{Call, CallCell, Caller, SessionAddr};
use turn::IceConfig;

/// How calls behave.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// How long a participant whose connection was lost stays in the call.
    pub grace: Duration,
    /// STUN and TURN servers and credentials.
    pub ice: IceConfig,
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(20),
            ice: IceConfig::default(),
        }
    }
}

/// A call request refused: the protocol code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{code}: {message}")]
pub struct CallError {
    /// The code.
    pub code: ErrorCode,
    /// Why, for people.
    pub message: String,
}

impl CallError {
    /// A refusal.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn no_call(call: &CallId) -> Self {
        Self::new(ErrorCode::NoCall, format!("there is no call {call}"))
    }

    fn not_in_call(call: &CallId) -> Self {
        Self::new(
            ErrorCode::NotInCall,
            format!("this session is not in call {call}"),
        )
    }
}

type Reply = Result<ServerMessage, CallError>;

/// Which calls exist and which sessions are in them.
#[derive(Default)]
struct Book {
    by_room: HashMap<RoomId, Arc<CallCell>>,
    by_id: HashMap<CallId, Arc<CallCell>>,
    /// The call each connected participant session is in.
    by_session: HashMap<SessionAddr, Arc<CallCell>>,
}

/// Every call on this node.
pub struct Calls {
    hub: Arc<Hub>,
    store: SharedStore,
    settings: CallSettings,
    book: RwLock<Book>,
    records: RecordWriter,
    /// What this node knows of other nodes' calls, and the requests it forwarded.
    cluster: cluster::Cluster,
    /// Itself, for timers and for messages from other nodes.
    me: Weak<Calls>,
}

/// Checks that the person may take part in the room now.
fn check_access(room: &RoomId, access: Access) -> Result<(), CallError> {
    access.check_in().map_err(|code| {
        let message = match code {
            ErrorCode::JoinRequired => format!("join {room} before taking part in its call"),
            _ => format!("you are not a member of {room}"),
        };
        CallError::new(code, message)
    })
}

impl Calls {
    /// No calls yet. Starts the record writer, so it must be called within a runtime.
    pub fn new(hub: Arc<Hub>, store: SharedStore, settings: CallSettings) -> Arc<Self> {
        let calls = Arc::new_cyclic(|me| Self {
            hub: hub.clone(),
            settings,
            book: RwLock::default(),
            records: RecordWriter::start(store.clone()),
            store,
            cluster: cluster::Cluster::default(),
            me: me.clone(),
        });
        let peer: Arc<dyn crate::hub::CallPeer> = calls.clone();
        hub.serve_calls(Arc::downgrade(&peer));
        calls
    }

    fn book(&self) -> std::sync::RwLockWriteGuard<'_, Book> {
        self.book.write().unwrap_or_else(|e| e.into_inner())
    }

    fn find(&self, call: &CallId) -> Result<Arc<CallCell>, CallError> {
        let book = self.book.read().unwrap_or_else(|e| e.into_inner());
        book.by_id
            .get(call)
            .cloned()
            .ok_or_else(|| CallError::no_call(call))
    }

    /// The current call of a room, if any.
    pub fn in_room(&self, room: &RoomId) -> Option<CallId> {
        let book = self.book.read().unwrap_or_else(|e| e.into_inner());
        book.by_room.get(room).map(|cell| cell.id.clone())
    }

    /// The current call of a room as it is now, as `call_state` pushes it (without a
    /// change), for a room's description in the welcome and on `join`: this node's, or
    /// the last state another node told of its call in the room.
    pub fn current(&self, room: &RoomId) -> Option<CallState> {
        let cell = {
            let book = self.book.read().unwrap_or_else(|e| e.into_inner());
            book.by_room.get(room).cloned()
        };
        let Some(cell) = cell else {
            return self.cluster.state_in(room);
        };
        let call = cell.lock();
        if call.ended_at.is_some() {
            return None;
        }
        Some(call.state(&cell.id, &cell.room, None))
    }

    /// A fresh call id.
    fn new_id() -> CallId {
        CallId(format!("c-{:016x}", rand::random::<u64>()))
    }

    /// Answers a call request on this node, for a session here or (forwarded) on another
    /// node; `start` with `id` names the call a start creates if the room has none.
    fn serve(
        self: &Arc<Self>,
        caller: &Caller,
        request: triad_protocol::Request,
        access: &dyn Fn(&RoomId) -> Access,
        id: Option<CallId>,
    ) -> Reply {
        use triad_protocol::Request;
        match request {
            Request::CallStart { room } => self.start(caller, &room, access(&room), id),
            Request::CallJoin { call, resume } => self.join(caller, &call, resume, access),
            Request::CallLeave { call } => self.leave(caller, &call),
            Request::CallEnd { call } => self.end(caller, &call, access),
            Request::CallMedia { call, mic, camera } => self.media(caller, &call, mic, camera),
            Request::CallSignal { call, to, signal } => self.signal(caller, &call, &to, signal),
            Request::IceServers { call } => self.ice_servers(caller, &call),
            other => Err(CallError::new(
                ErrorCode::InvalidRequest,
                format!("{} is not a call request", other.type_name()),
            )),
        }
    }

    /// `call_start`: starts the room's call (named `id`, or a new id), or joins the one in
    /// progress.
    fn start(
        self: &Arc<Self>,
        caller: &Caller,
        room: &RoomId,
        access: Access,
        id: Option<CallId>,
    ) -> Reply {
        check_access(room, access)?;
        let mut book = self.book();
        if let Some(cell) = book.by_room.get(room).cloned() {
            return self.join_cell(&mut book, &cell, caller, false);
        }
        self.check_not_elsewhere(&book, caller, None)?;
        let now = now_ms();
        let id = id.unwrap_or_else(Self::new_id);
        let cell = Arc::new(CallCell {
            id: id.clone(),
            room: room.clone(),
            call: std::sync::Mutex::new(Call::start(caller, now)),
        });
        book.by_room.insert(room.clone(), cell.clone());
        book.by_id.insert(id, cell.clone());
        book.by_session.insert(caller.addr.clone(), cell.clone());
        let call = cell.lock();
        tracing::info!(call = %cell.id, %room, "call started");
        self.changed(&cell, &call, CallChangeKind::Started, &caller.person);
        self.refresh_later(&cell, &call, 0);
        Ok(self.joined(&cell, &call, caller))
    }

    /// `call_join`: joins a call; with `resume`, takes back this person's place.
    fn join(
        self: &Arc<Self>,
        caller: &Caller,
        call: &CallId,
        resume: bool,
        access: &dyn Fn(&RoomId) -> Access,
    ) -> Reply {
        let mut book = self.book();
        let cell = book
            .by_id
            .get(call)
            .cloned()
            .ok_or_else(|| CallError::no_call(call))?;
        check_access(&cell.room, access(&cell.room))?;
        self.join_cell(&mut book, &cell, caller, resume)
    }

    fn check_not_elsewhere(
        &self,
        book: &Book,
        caller: &Caller,
        here: Option<&CallId>,
    ) -> Result<(), CallError> {
        match book.by_session.get(&caller.addr) {
            Some(other) if Some(&other.id) != here => Err(CallError::new(
                ErrorCode::AlreadyInCall,
                format!("this session is in call {}; leave it first", other.id),
            )),
            _ => Ok(()),
        }
    }

    fn join_cell(
        self: &Arc<Self>,
        book: &mut Book,
        cell: &Arc<CallCell>,
        caller: &Caller,
        resume: bool,
    ) -> Reply {
        self.check_not_elsewhere(book, caller, Some(&cell.id))?;
        let mut call = cell.lock();
        if call.ended_at.is_some() {
            return Err(CallError::no_call(&cell.id));
        }
        if call.position(&caller.addr).is_some() {
            // Already in: the same answer again.
            return Ok(self.joined(cell, &call, caller));
        }
        let now = now_ms();
        let person = caller.person.clone();
        let (position, kind) = match call.position_of(&person) {
            Some(position) if resume => {
                let old = call.take_over(position, caller);
                book.by_session.remove(&old);
                (position, CallChangeKind::Rejoined)
            }
            Some(position) => {
                let old = call.remove(position, now);
                book.by_session.remove(&old.key);
                (call.add(caller, now), CallChangeKind::Joined)
            }
            None if call.is_full() => {
                return Err(CallError::new(
                    ErrorCode::CallFull,
                    format!(
                        "call {} has {} participants, the most it may have",
                        cell.id,
                        call.participants.len()
                    ),
                ));
            }
            None => (call.add(caller, now), CallChangeKind::Joined),
        };
        book.by_session.insert(caller.addr.clone(), cell.clone());
        tracing::info!(call = %cell.id, ?kind, "call joined");
        self.changed(cell, &call, kind, &person);
        self.refresh_later(cell, &call, position);
        Ok(self.joined(cell, &call, caller))
    }

    /// The answer to a join: the call, the session, its ICE servers.
    fn joined(&self, cell: &CallCell, call: &Call, caller: &Caller) -> ServerMessage {
        ServerMessage::CallJoined {
            call: call.state(&cell.id, &cell.room, None),
            session: caller.session_id(),
            ice_servers: self
                .settings
                .ice
                .servers_for(&cell.id, &caller.person, now_ms()),
        }
    }

    /// Announces a change to the room and queues the call's record.
    fn changed(
        &self,
        cell: &CallCell,
        call: &Call,
        kind: CallChangeKind,
        person: &triad_protocol::PersonId,
    ) {
        let state = call.state(&cell.id, &cell.room, Some((kind, person)));
        self.tell_nodes(cell, Some(&state));
        let frame = ServerFrame::push(ServerMessage::CallState { call: state });
        self.hub.broadcast(&cell.room, &frame, None);
        if kind != CallChangeKind::Media {
            self.records.submit(call.record(&cell.id, &cell.room));
        }
    }

    /// Ends a call: everyone's time in it closes, the room is told, the book forgets it.
    fn finish(
        &self,
        book: &mut Book,
        cell: &CallCell,
        call: &mut Call,
        reason: CallEndReason,
        ended_by: Option<triad_protocol::PersonId>,
    ) {
        for participant in &call.participants {
            book.by_session.remove(&participant.key);
        }
        call.end(now_ms());
        book.by_id.remove(&cell.id);
        if book
            .by_room
            .get(&cell.room)
            .is_some_and(|current| current.id == cell.id)
        {
            book.by_room.remove(&cell.room);
        }
        tracing::info!(call = %cell.id, ?reason, "call ended");
        self.tell_nodes(cell, None);
        self.release(cell);
        let frame = ServerFrame::push(ServerMessage::CallEnded {
            call: cell.id.clone(),
            room: cell.room.clone(),
            reason,
            ended_by,
        });
        self.hub.broadcast(&cell.room, &frame, None);
        self.records.submit(call.record(&cell.id, &cell.room));
    }

    /// Removes the participant at `position`; the last one out ends the call.
    fn remove(
        &self,
        book: &mut Book,
        cell: &CallCell,
        call: &mut Call,
        position: usize,
        kind: CallChangeKind,
    ) {
        let gone = call.remove(position, now_ms());
        book.by_session.remove(&gone.key);
        if call.participants.is_empty() {
            self.finish(book, cell, call, CallEndReason::Empty, None);
        } else {
            self.changed(cell, call, kind, &gone.person);
        }
    }

    /// `call_leave`.
    fn leave(&self, caller: &Caller, call: &CallId) -> Reply {
        let mut book = self.book();
        let cell = book
            .by_id
            .get(call)
            .cloned()
            .ok_or_else(|| CallError::no_call(call))?;
        let mut state = cell.lock();
        let position = state
            .position(&caller.addr)
            .ok_or_else(|| CallError::not_in_call(call))?;
        self.remove(&mut book, &cell, &mut state, position, CallChangeKind::Left);
        Ok(ServerMessage::Ok)
    }

    /// `call_end`: whoever started the call, or a moderator in the room, ends it.
    fn end(&self, caller: &Caller, call: &CallId, access: &dyn Fn(&RoomId) -> Access) -> Reply {
        let mut book = self.book();
        let cell = book
            .by_id
            .get(call)
            .cloned()
            .ok_or_else(|| CallError::no_call(call))?;
        let access = access(&cell.room);
        check_access(&cell.room, access)?;
        let mut state = cell.lock();
        let moderator = matches!(access, Access::Moderator { joined: true });
        if state.started_by != caller.person && !moderator {
            return Err(CallError::new(
                ErrorCode::Forbidden,
                "only whoever started the call or a moderator may end it",
            ));
        }
        let by = Some(caller.person.clone());
        self.finish(&mut book, &cell, &mut state, CallEndReason::Ended, by);
        Ok(ServerMessage::Ok)
    }

    /// `call_media`.
    fn media(&self, caller: &Caller, call: &CallId, mic: bool, camera: bool) -> Reply {
        let cell = self.find(call)?;
        let mut state = cell.lock();
        let position = state
            .position(&caller.addr)
            .ok_or_else(|| CallError::not_in_call(call))?;
        let participant = &mut state.participants[position];
        if (participant.mic, participant.camera) != (mic, camera) {
            participant.mic = mic;
            participant.camera = camera;
            self.changed(&cell, &state, CallChangeKind::Media, &caller.person);
        }
        Ok(ServerMessage::Ok)
    }

    /// `call_signal`: relays a signal from a participant to another participant session
    /// of the same call, within the signal limits.
    fn signal(&self, caller: &Caller, call: &CallId, to: &SessionId, signal: Signal) -> Reply {
        relay::check_signal(&signal)?;
        let cell = self.find(call)?;
        let mut state = cell.lock();
        let position = state
            .position(&caller.addr)
            .ok_or_else(|| CallError::not_in_call(call))?;
        if !state.participants[position]
            .signals
            .try_take(Instant::now())
        {
            return Err(CallError::new(
                ErrorCode::RateLimited,
                "too many call signals; slow down",
            ));
        }
        let from = caller.session_id();
        if &from == to {
            return Err(CallError::new(
                ErrorCode::InvalidRequest,
                "a signal to oneself",
            ));
        }
        let target = state.by_session(to).ok_or_else(|| {
            CallError::new(
                ErrorCode::NotInCall,
                format!("{to} is not a participant of call {call}"),
            )
        })?;
        if target.endpoint.is_none() {
            return Err(CallError::new(
                ErrorCode::NotInCall,
                format!("{to} is reconnecting; the signal was not delivered"),
            ));
        }
        let frame = ServerFrame::push(ServerMessage::CallSignal {
            call: call.clone(),
            from,
            person: caller.person.clone(),
            signal,
        });
        if relay::deliver(&self.hub, target, &frame) {
            Ok(ServerMessage::Ok)
        } else {
            Err(CallError::new(
                ErrorCode::NotInCall,
                format!("{to} is leaving; the signal was not delivered"),
            ))
        }
    }

    /// `ice_servers`: fresh ICE servers and credentials for a participant.
    fn ice_servers(&self, caller: &Caller, call: &CallId) -> Reply {
        let cell = self.find(call)?;
        let state = cell.lock();
        if state.position(&caller.addr).is_none() {
            return Err(CallError::not_in_call(call));
        }
        let servers = self
            .settings
            .ice
            .servers_for(call, &caller.person, now_ms());
        Ok(ServerMessage::IceServers(servers))
    }

    /// A session of this node ended: if it was in a call, its participant waits out the
    /// grace period (the node holding the call is told, if another).
    pub fn session_gone(self: &Arc<Self>, key: SessionKey) {
        self.lose(SessionAddr::Local(key));
        self.session_gone_elsewhere(key);
    }

    /// A participant session was lost: it waits out the grace period.
    fn lose(self: &Arc<Self>, key: SessionAddr) {
        let mut book = self.book();
        let Some(cell) = book.by_session.remove(&key) else {
            return;
        };
        let mut call = cell.lock();
        let Some(position) = call.position(&key) else {
            return;
        };
        let generation = call.lose(position, now_ms());
        let person = call.participants[position].person.clone();
        tracing::info!(call = %cell.id, %person, "call participant lost; grace period starts");
        self.changed(&cell, &call, CallChangeKind::Reconnecting, &person);
        let calls = Arc::downgrade(self);
        let cell = Arc::downgrade(&cell);
        let grace = self.settings.grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let (Some(calls), Some(cell)) = (calls.upgrade(), cell.upgrade()) {
                calls.grace_over(&cell, key, generation);
            }
        });
    }

    /// The grace period of a lost participant ran out: remove it unless it came back.
    fn grace_over(&self, cell: &CallCell, key: SessionAddr, generation: u64) {
        let mut book = self.book();
        let mut call = cell.lock();
        let Some(position) = call.position(&key) else {
            return;
        };
        let participant = &call.participants[position];
        if participant.generation != generation || participant.endpoint.is_some() {
            return;
        }
        tracing::info!(call = %cell.id, person = %participant.person, "call participant removed after the grace period");
        self.remove(
            &mut book,
            cell,
            &mut call,
            position,
            CallChangeKind::Removed,
        );
    }

    /// A moderator's session of this node left a room: they leave its call too.
    pub fn left_room(&self, key: SessionKey, room: &RoomId) {
        self.leave_room(&SessionAddr::Local(key), room);
        self.left_room_elsewhere(key, room);
    }

    /// A moderator's session left a room: if in the room's call here, it leaves it.
    fn leave_room(&self, key: &SessionAddr, room: &RoomId) {
        let mut book = self.book();
        let Some(cell) = book.by_session.get(key).cloned() else {
            return;
        };
        if &cell.room != room {
            return;
        }
        let mut call = cell.lock();
        if let Some(position) = call.position(key) {
            self.remove(&mut book, &cell, &mut call, position, CallChangeKind::Left);
        }
    }

    /// Pushes fresh ICE servers to the participant at `position` at 80% of their
    /// credentials' lifetime, and again after that, until it leaves, is lost or taken over.
    fn refresh_later(&self, cell: &Arc<CallCell>, call: &Call, position: usize) {
        if !self.settings.ice.issues_credentials() {
            return;
        }
        let participant = &call.participants[position];
        let stop = participant.stop.clone();
        let key = participant.key.clone();
        let every = self.settings.ice.refresh_after();
        let ice = self.settings.ice.clone();
        let hub = Arc::downgrade(&self.hub);
        let cell: Weak<CallCell> = Arc::downgrade(cell);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                let (Some(cell), Some(hub)) = (cell.upgrade(), hub.upgrade()) else {
                    return;
                };
                let call = cell.lock();
                let Some(participant) = call.position(&key).map(|p| &call.participants[p]) else {
                    return;
                };
                if participant.endpoint.is_none() {
                    return;
                }
                let servers = ice.servers_for(&cell.id, &participant.person, now_ms());
                let frame = ServerFrame::push(ServerMessage::IceServers(servers));
                if !relay::deliver(&hub, participant, &frame) {
                    return;
                }
            }
        });
    }
}
