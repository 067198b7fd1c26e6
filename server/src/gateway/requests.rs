//! Answering requests on an authenticated session: send, history, join, leave, typing,
//! read, presence, refresh, ping. Every request is checked against the person's access to
//! the room and the limits; every failure is answered with a code from the protocol.
//!
//! The session keeps reading while a request waits for the store. Requests that need the
//! store run one after another on the session's store lane (so their answers keep their
//! order), each by the store deadline counted from when it was read: once one times out,
//! those still waiting whose deadline has passed are answered at once. Call requests run on
//! a lane of their own, bounded by the calls' deadlines, so a call forwarded to a node that
//! does not answer holds up no chat. Each lane holds at most
//! [`limits::MAX_PENDING_STORE_REQUESTS`] requests, both together at most
//! [`limits::MAX_PENDING_REQUEST_BYTES`] of frame text; the session reads no further while
//! either is full. Requests that need no store (typing in a room the person is in, with no
//! `join` or `leave` of it waiting; presence; ping) are answered at once, ahead of requests
//! still waiting.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use triad_protocol::{
    Ack, CloseCode, ErrorCode, History, MemberInfo, PersonId, PersonInfo, PresenceStatus, Request,
    RequestId, RoomId, RoomInfo, RoomKind, ServerFrame, ServerMessage, decode_client, limits,
};

use super::Gateway;
use super::session::deadline_of;
use super::socket::{Stream, is_capacity_error, is_utf8_error};
use crate::auth::{Access, AuthError, GrantError};
use crate::calls::CallError;
use crate::hub::{Outbox, Outgoing, SessionControl, SessionKey, TokenBucket, Track, encode};
use crate::store::{Page, RoomRecord, StoreError};

/// What the client is told when the store did not answer in time or failed. Never the
/// store's own error text.
pub const STORE_UNAVAILABLE: &str = "the store timed out or failed; retry later \
     (a send: with the same client_msg_id, it is stored at most once)";

/// A request refused: the code and a message for people.
#[derive(Debug)]
pub struct Refusal {
    code: ErrorCode,
    message: String,
    room: Option<RoomId>,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            room: None,
        }
    }

    fn in_room(mut self, room: &RoomId) -> Self {
        self.room = Some(room.clone());
        self
    }

    /// Its code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The `error` frame answering request `re` with it.
    pub fn into_frame(self, re: Option<RequestId>) -> ServerFrame {
        ServerFrame::reply(
            re,
            ServerMessage::Error {
                code: self.code,
                message: self.message,
                room: self.room,
            },
        )
    }
}

impl Refusal {
    /// The store did not answer within the deadline.
    pub fn store_timeout() -> Self {
        crate::metrics::store_deadline_exceeded();
        Self::new(ErrorCode::StoreUnavailable, STORE_UNAVAILABLE)
    }
}

impl From<StoreError> for Refusal {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UnknownRoom(room) => {
                Self::new(ErrorCode::UnknownRoom, format!("no room {room}")).in_room(&room)
            }
            StoreError::Unavailable(_) => {
                // In an outage every request fails alike: logged at most once a second.
                static LAST_LOGGED: std::sync::atomic::AtomicU64 =
                    std::sync::atomic::AtomicU64::new(0);
                if crate::metrics::once_a_second(&LAST_LOGGED) {
                    tracing::warn!(error = %err, "store unavailable");
                }
                Self::new(ErrorCode::StoreUnavailable, STORE_UNAVAILABLE)
            }
            other => {
                tracing::warn!(error = %other, "store failed");
                Self::new(ErrorCode::StoreUnavailable, STORE_UNAVAILABLE)
            }
        }
    }
}

impl From<CallError> for Refusal {
    fn from(err: CallError) -> Self {
        Self::new(err.code, err.message)
    }
}

impl From<AuthError> for Refusal {
    fn from(err: AuthError) -> Self {
        match err {
            // A key problem is the server's, and its text names files.
            AuthError::Key(_) => {
                tracing::error!(error = %err, "token key unusable");
                Self::new(ErrorCode::Internal, "the server could not check the token")
            }
            other => Self::new(other.code(), other.to_string()),
        }
    }
}

impl From<GrantError> for Refusal {
    fn from(err: GrantError) -> Self {
        match err {
            GrantError::Store(err) => Self::from(err),
            GrantError::Auth(_) | GrantError::NoSigningKey(_) => {
                tracing::error!(error = %err, "token handling failed");
                Self::new(ErrorCode::Internal, "the server could not check the token")
            }
            other => Self::new(other.code(), other.to_string()),
        }
    }
}

type Reply = Result<ServerMessage, Refusal>;

/// A request being answered on a lane: its id and its answer.
type Job = Pin<Box<dyn Future<Output = (Option<RequestId>, Reply)> + Send>>;

/// What the reading loop does with a decoded request.
enum Route {
    /// Answered at once: it needs no store.
    Now(Request),
    /// Queued on the store lane.
    Store(Request),
    /// Queued on the call lane.
    Call(Request),
}

/// A request waiting on a lane.
struct Queued {
    id: Option<RequestId>,
    request: Request,
    /// When it was read: its store deadline runs from here.
    read_at: Instant,
    /// The length of its frame's text.
    bytes: usize,
}

/// Requests answered one after another, in the order they were read: the store lane, and
/// the call lane beside it (so a call forwarded to a node that does not answer holds up no
/// chat).
#[derive(Default)]
struct Lane {
    queue: VecDeque<Queued>,
    running: Option<Job>,
    /// The frame length of the running request.
    running_bytes: usize,
    /// The room of the running request if it is a `join` or a `leave`.
    running_room: Option<RoomId>,
}

impl Lane {
    /// Requests waiting or running.
    fn pending(&self) -> usize {
        self.queue.len() + usize::from(self.running.is_some())
    }

    /// Frame bytes waiting or running.
    fn bytes(&self) -> usize {
        self.running_bytes + self.queue.iter().map(|q| q.bytes).sum::<usize>()
    }

    /// Whether a `join` or `leave` of `room` waits or runs here: a `typing` there must wait
    /// for it.
    fn changes_access_to(&self, room: &RoomId) -> bool {
        self.running_room.as_ref() == Some(room)
            || self
                .queue
                .iter()
                .any(|q| access_change_of(&q.request) == Some(room))
    }

    /// The next answer of the running request; never, if none runs.
    async fn finished(&mut self) -> (Option<RequestId>, Reply) {
        let answer = match self.running.as_mut() {
            Some(job) => job.await,
            None => std::future::pending().await,
        };
        self.running = None;
        self.running_bytes = 0;
        self.running_room = None;
        answer
    }

    /// Waits for the running request, if any.
    async fn finish_running(&mut self) -> Option<(Option<RequestId>, Reply)> {
        self.running.is_some().then_some(())?;
        Some(self.finished().await)
    }
}

/// An authenticated session's state, shared by its reading loop and its store lane.
pub struct Session {
    /// Shared server state.
    pub gateway: Arc<Gateway>,
    /// This session's key.
    pub key: SessionKey,
    /// Who is signed in.
    pub person: PersonId,
    /// The session's outbox.
    pub outbox: Outbox,
    /// The session's close signal.
    pub control: Arc<SessionControl>,
    /// The rooms the person can see, and their access.
    pub rooms: Mutex<HashMap<RoomId, (RoomKind, Access)>>,
    /// The person's send bucket (shared by their sessions).
    pub send_bucket: Arc<Mutex<TokenBucket>>,
    /// This session's bucket for requests of any kind.
    pub request_bucket: Mutex<TokenBucket>,
    /// When the token stops being accepted.
    pub expires_at: Mutex<Instant>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Session {
    /// Reads and answers requests until the connection ends, then leaves every room.
    pub async fn serve(self: Arc<Self>, mut stream: Stream) {
        let gateway = self.gateway.clone();
        let control = self.control.clone();
        let mut store = Lane::default();
        let mut calls = Lane::default();
        loop {
            self.start_next_store_request(&mut store);
            if calls.running.is_none()
                && let Some(queued) = calls.queue.pop_front()
            {
                calls.running_bytes = queued.bytes;
                calls.running = Some(Box::pin(
                    self.clone().answer_call(queued.id, queued.request),
                ));
            }
            let readable = store.pending() < limits::MAX_PENDING_STORE_REQUESTS
                && calls.pending() < limits::MAX_PENDING_STORE_REQUESTS
                && store.bytes() + calls.bytes() < limits::MAX_PENDING_REQUEST_BYTES;
            let expiry = tokio::time::sleep_until((*locked(&self.expires_at)).into());
            let message = tokio::select! {
                () = control.closed() => break,
                () = gateway.shutdown.cancelled() => {
                    // The requests being answered are answered first.
                    self.finish_lanes(&mut store, &mut calls).await;
                    crate::metrics::drain_closed_session();
                    control.close(CloseCode::GOING_AWAY, "server shutting down: reconnect");
                    break;
                }
                () = expiry => {
                    self.reply(None, Err(Refusal::new(ErrorCode::TokenExpired, "token expired; refresh before expiry")));
                    control.close(CloseCode::TOKEN_EXPIRED, "token expired");
                    break;
                }
                (id, reply) = store.finished() => {
                    let timed_out = is_store_timeout(&reply);
                    self.reply(id, reply);
                    if timed_out {
                        self.expire_waiting(&mut store);
                    }
                    continue;
                }
                (id, reply) = calls.finished() => {
                    self.reply(id, reply);
                    continue;
                }
                message = stream.next(), if readable => message,
            };
            match message {
                Some(Ok(Message::Text(text))) => {
                    if let Some((id, route)) = self.on_text(&text, &store) {
                        let (lane, request) = match route {
                            Route::Call(request) => (&mut calls, request),
                            Route::Now(request) | Route::Store(request) => (&mut store, request),
                        };
                        lane.queue.push_back(Queued {
                            id,
                            request,
                            read_at: Instant::now(),
                            bytes: text.len(),
                        });
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    self.reply(
                        None,
                        Err(Refusal::new(ErrorCode::BinaryFrame, "text frames only")),
                    );
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => {
                    // The requests being answered are answered, for a client that waits.
                    self.finish_lanes(&mut store, &mut calls).await;
                    control.close(CloseCode::NORMAL, "");
                    break;
                }
                Some(Err(err)) => {
                    if is_capacity_error(&err) {
                        control.close(CloseCode::MESSAGE_TOO_BIG, "frame over the size limit");
                    } else if is_utf8_error(&err) {
                        self.reply(
                            None,
                            Err(Refusal::new(
                                ErrorCode::BadJson,
                                "a text frame that is not valid UTF-8",
                            )),
                        );
                        control.close(CloseCode::INVALID_PAYLOAD, "text frame not valid UTF-8");
                    } else {
                        control.close(CloseCode::NORMAL, "");
                    }
                    break;
                }
            }
        }
        drop(store);
        drop(calls);
        self.leave_all();
    }
    fn leave_all(&self) {
        let hub = &self.gateway.hub;
        for (room, (kind, access)) in locked(&self.rooms).iter() {
            if access.is_in() {
                hub.unsubscribe(room, self.key);
                crate::metrics::room_left(*kind);
            }
        }
        let change = hub.presence.disconnect(&self.person, self.key);
        hub.presence_changed(&self.person, change.is_some());
        // A participant of a call stays in it for the grace period.
        self.gateway.calls.session_gone(self.key);
    }

    fn reply(&self, re: Option<u64>, reply: Reply) {
        let message = match reply {
            Ok(message) => message,
            Err(refusal) => {
                tracing::debug!(code = %refusal.code, message = %refusal.message, "request refused");
                ServerMessage::Error {
                    code: refusal.code,
                    message: refusal.message,
                    room: refusal.room,
                }
            }
        };
        self.push(&ServerFrame::reply(re, message));
    }

    fn push(&self, frame: &ServerFrame) {
        self.outbox.push(Outgoing::Frame(encode(frame)));
    }

    /// Decodes a frame and answers it if it needs no store; returns a request for a lane.
    fn on_text(&self, text: &Utf8Bytes, store: &Lane) -> Option<(Option<RequestId>, Route)> {
        let frame = match decode_client(text) {
            Ok(frame) => frame,
            Err(err) => {
                self.reply(err.id, Err(Refusal::new(err.code, err.message)));
                return None;
            }
        };
        if !locked(&self.request_bucket).try_take(Instant::now()) {
            let refusal = Refusal::new(ErrorCode::RateLimited, "too many requests; slow down");
            self.reply(frame.id, Err(refusal));
            return None;
        }
        match self.route(frame.request, store) {
            Route::Now(request) => {
                let reply = self.answer_now(request);
                self.reply(frame.id, reply);
                None
            }
            route => Some((frame.id, route)),
        }
    }

    /// Whether a request is answered at once or waits on a lane. Typing goes ahead only in
    /// a room the person is in, with no `join` or `leave` of it waiting: otherwise it is
    /// answered in order after them (and telling an unknown room from one of another trio
    /// reads the store).
    fn route(&self, request: Request, store: &Lane) -> Route {
        match &request {
            Request::Hello { .. } | Request::Presence { .. } | Request::Ping => Route::Now(request),
            Request::Typing { room, .. }
                if self.access(room).is_in() && !store.changes_access_to(room) =>
            {
                Route::Now(request)
            }
            _ if is_call_request(&request) => Route::Call(request),
            _ => Route::Store(request),
        }
    }

    /// Starts the next store request unless one runs. Those whose deadline passed while
    /// they waited are answered `store_unavailable` without running.
    fn start_next_store_request(self: &Arc<Self>, lane: &mut Lane) {
        if lane.running.is_some() {
            return;
        }
        let deadline = self.gateway.settings.store_deadline;
        while let Some(queued) = lane.queue.pop_front() {
            let until = queued.read_at + deadline;
            if until <= Instant::now() {
                self.reply(queued.id, Err(timed_out(&queued.request)));
                continue;
            }
            lane.running_bytes = queued.bytes;
            lane.running_room = access_change_of(&queued.request).cloned();
            lane.running = Some(Box::pin(self.clone().answer_from_store(
                queued.id,
                queued.request,
                until,
            )));
            return;
        }
    }

    /// After a request timed out: answers at once the waiting ones whose deadline passed.
    fn expire_waiting(&self, lane: &mut Lane) {
        let deadline = self.gateway.settings.store_deadline;
        let now = Instant::now();
        while lane
            .queue
            .front()
            .is_some_and(|queued| queued.read_at + deadline <= now)
        {
            if let Some(queued) = lane.queue.pop_front() {
                self.reply(queued.id, Err(timed_out(&queued.request)));
            }
        }
    }

    /// Answers the requests running on the lanes (each bounded by its own deadlines).
    async fn finish_lanes(&self, store: &mut Lane, calls: &mut Lane) {
        let (a, b) = tokio::join!(store.finish_running(), calls.finish_running());
        for (id, reply) in [a, b].into_iter().flatten() {
            self.reply(id, reply);
        }
    }

    /// Answers a request that needs the store, by the store deadline `until`.
    async fn answer_from_store(
        self: Arc<Self>,
        id: Option<RequestId>,
        request: Request,
        until: Instant,
    ) -> (Option<RequestId>, Reply) {
        let room = request_room(&request);
        let reply = match tokio::time::timeout_at(until.into(), self.handle(request)).await {
            Ok(reply) => reply,
            Err(_) => Err(match room {
                Some(room) => Refusal::store_timeout().in_room(&room),
                None => Refusal::store_timeout(),
            }),
        };
        (id, reply)
    }

    /// Answers a call request: the calls bound their own waits (the store's and another
    /// node's).
    async fn answer_call(
        self: Arc<Self>,
        id: Option<RequestId>,
        request: Request,
    ) -> (Option<RequestId>, Reply) {
        let reply = self.handle(request).await;
        (id, reply)
    }

    /// Answers a request that needs no store.
    fn answer_now(&self, request: Request) -> Reply {
        match request {
            Request::Hello { .. } => Err(Refusal::new(
                ErrorCode::AlreadyAuthenticated,
                "this session is signed in",
            )),
            Request::Presence { status } => self.presence(status),
            Request::Ping => Ok(ServerMessage::Pong),
            Request::Typing { room, active } => {
                self.typing(&room, active).map_err(|r| r.in_room(&room))
            }
            other => Err(Refusal::new(
                ErrorCode::Internal,
                format!("{} is answered from the store", other.type_name()),
            )),
        }
    }

    async fn handle(&self, request: Request) -> Reply {
        match request {
            Request::Hello { .. } | Request::Presence { .. } | Request::Ping => {
                self.answer_now(request)
            }
            Request::Refresh { token } => self.refresh(&token).await,
            Request::Send {
                room,
                client_msg_id,
                body,
            } => self
                .send(&room, &client_msg_id, &body)
                .await
                .map_err(|r| r.in_room(&room)),
            Request::History {
                room,
                before,
                after,
                limit,
            } => self
                .history(&room, before, after, limit)
                .await
                .map_err(|r| r.in_room(&room)),
            Request::Join { room } => self.join(&room).await.map_err(|r| r.in_room(&room)),
            Request::Leave { room } => self.leave(&room).await.map_err(|r| r.in_room(&room)),
            Request::Typing { room, active } => {
                if self.access(&room) == Access::None {
                    return Err(self.not_visible(&room).await.in_room(&room));
                }
                self.typing(&room, active).map_err(|r| r.in_room(&room))
            }
            Request::Read { room, seq } => {
                self.read(&room, seq).await.map_err(|r| r.in_room(&room))
            }
            Request::CallStart { room } => {
                if self.access(&room) == Access::None {
                    return Err(self.not_visible(&room).await.in_room(&room));
                }
                let access = |room: &RoomId| self.access(room);
                let started = self
                    .gateway
                    .calls
                    .request(
                        &self.outbox,
                        Request::CallStart { room: room.clone() },
                        &access,
                    )
                    .await;
                started.map_err(|e| Refusal::from(e).in_room(&room))
            }
            call @ (Request::CallJoin { .. }
            | Request::CallLeave { .. }
            | Request::CallEnd { .. }
            | Request::CallMedia { .. }
            | Request::CallSignal { .. }
            | Request::IceServers { .. }) => {
                let access = |room: &RoomId| self.access(room);
                Ok(self
                    .gateway
                    .calls
                    .request(&self.outbox, call, &access)
                    .await?)
            }
            Request::Coachings { room } => self.coachings(room.as_ref()).await,
            Request::Pin { room, seq } => self
                .pin(&room, seq, true)
                .await
                .map_err(|r| r.in_room(&room)),
            Request::Unpin { room, seq } => self
                .pin(&room, seq, false)
                .await
                .map_err(|r| r.in_room(&room)),
            Request::Pins { room } => self.pins(&room).await.map_err(|r| r.in_room(&room)),
            Request::Members { room, after, limit } => self
                .members(&room, after.as_ref(), limit)
                .await
                .map_err(|r| r.in_room(&room)),
        }
    }

    /// `members`: a page of a room's people, by id.
    async fn members(&self, room: &RoomId, after: Option<&PersonId>, limit: Option<u32>) -> Reply {
        if self.access(room) == Access::None {
            return Err(self.not_visible(room).await);
        }
        let limit = limit.unwrap_or(limits::DEFAULT_PAGE_SIZE);
        if limit == 0 || limit > limits::MAX_PAGE_SIZE {
            return Err(Refusal::new(
                ErrorCode::PageTooLarge,
                format!("limit must be 1 to {}", limits::MAX_PAGE_SIZE),
            ));
        }
        let snapshot = self.gateway.programme.get().await?;
        let record = self
            .gateway
            .store
            .room(room)
            .await?
            .ok_or_else(|| Refusal::new(ErrorCode::UnknownRoom, format!("no room {room}")))?;
        let mut ids: Vec<&PersonId> = record
            .members
            .iter()
            .chain(record.joined_moderators.iter())
            .filter(|id| after.is_none_or(|after| *id > after))
            .collect();
        ids.sort();
        ids.dedup();
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = ids.len() > limit;
        let members = ids
            .into_iter()
            .take(limit)
            .filter_map(|id| snapshot.people.get(id))
            .map(|p| MemberInfo {
                person: p.id.clone(),
                name: p.name.clone(),
                role: p.role,
                status: self.gateway.hub.status(&p.id),
            })
            .collect();
        Ok(ServerMessage::Members {
            room: room.clone(),
            members,
            has_more,
        })
    }

    /// `coachings`: the sessions of the rooms this person sees (or of one) not yet ended.
    async fn coachings(&self, room: Option<&RoomId>) -> Reply {
        let rooms: Vec<RoomId> = match room {
            Some(room) if self.access(room) != Access::None => vec![room.clone()],
            Some(room) => return Err(self.not_visible(room).await.in_room(room)),
            None => locked(&self.rooms).keys().cloned().collect(),
        };
        let coachings = self
            .gateway
            .schedule
            .upcoming(&rooms, crate::store::now_ms())
            .await?;
        Ok(ServerMessage::Coachings { coachings })
    }

    /// `pin` and `unpin`: changes the room's pins and, if anything changed, tells everyone
    /// in the room (the person's own sessions too). Pinning twice or unpinning a message
    /// that is not pinned is answered `ok` and announces nothing.
    async fn pin(&self, room: &RoomId, seq: u64, pinned: bool) -> Reply {
        use crate::programme::pins;
        self.check_in(room).await?;
        let store = self.gateway.store.as_ref();
        let changed = if pinned {
            pins::pin(store, room, seq, &self.person, crate::store::now_ms()).await
        } else {
            pins::unpin(store, room, seq).await
        }
        .map_err(Self::pin_refusal)?;
        if let Some(pin) = changed {
            tracing::info!(%room, seq, pinned, by = %self.person, "pins changed");
            let frame = ServerFrame::push(ServerMessage::Pinned { pin, pinned });
            self.gateway.hub.broadcast(room, &frame, None);
        }
        Ok(ServerMessage::Ok)
    }

    fn pin_refusal(err: crate::programme::pins::PinError) -> Refusal {
        use crate::programme::pins::PinError;
        match err {
            PinError::Store(err) => Refusal::from(err),
            other => Refusal::new(other.code(), other.to_string()),
        }
    }

    /// `pins`: the room's pins, in message order.
    async fn pins(&self, room: &RoomId) -> Reply {
        self.check_in(room).await?;
        let pins = crate::programme::pins::pins(self.gateway.store.as_ref(), room).await?;
        Ok(ServerMessage::Pins {
            room: room.clone(),
            pins,
        })
    }

    fn kind_of(&self, room: &RoomId) -> RoomKind {
        locked(&self.rooms)
            .get(room)
            .map_or(RoomKind::Trio, |(kind, _)| *kind)
    }

    fn access(&self, room: &RoomId) -> Access {
        locked(&self.rooms)
            .get(room)
            .map_or(Access::None, |(_, access)| *access)
    }

    /// The refusal for a room this person cannot see: `unknown_room` if it does not
    /// exist, `not_a_member` if it does.
    async fn not_visible(&self, room: &RoomId) -> Refusal {
        match self.gateway.store.room(room).await {
            Ok(Some(_)) => Refusal::new(
                ErrorCode::NotAMember,
                format!("you are not a member of {room}"),
            ),
            Ok(None) => Refusal::new(ErrorCode::UnknownRoom, format!("there is no room {room}")),
            Err(err) => Refusal::from(err),
        }
    }

    /// Whether the person takes part in the room: `join_required` for a moderator who has
    /// not joined, and for a room they cannot see, as [`Session::not_visible`] says.
    async fn check_in(&self, room: &RoomId) -> Result<(), Refusal> {
        match self.access(room).check_in() {
            Ok(()) => Ok(()),
            Err(ErrorCode::JoinRequired) => Err(Refusal::new(
                ErrorCode::JoinRequired,
                format!("join {room} before taking part"),
            )),
            Err(_) => Err(self.not_visible(room).await),
        }
    }

    /// Takes part in the room, without the store: for requests answered at once, routed
    /// here only for rooms the person can see.
    fn check_in_now(&self, room: &RoomId) -> Result<(), Refusal> {
        self.access(room).check_in().map_err(|code| {
            let message = match code {
                ErrorCode::JoinRequired => format!("join {room} before taking part"),
                _ => format!("you are not a member of {room}"),
            };
            Refusal::new(code, message)
        })
    }

    async fn refresh(&self, token: &str) -> Reply {
        if token.len() > limits::MAX_TOKEN_BYTES {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                "token over the size limit",
            ));
        }
        let verified = self.gateway.verifier.verify(token)?;
        self.gateway.grants.check(&verified).await?;
        if verified.person != self.person {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "the token is for another person",
            ));
        }
        *locked(&self.expires_at) = deadline_of(verified.accepted_until);
        Ok(ServerMessage::Ok)
    }

    async fn send(
        &self,
        room: &RoomId,
        client_msg_id: &triad_protocol::ClientMsgId,
        body: &str,
    ) -> Reply {
        self.check_in(room).await?;
        if !client_msg_id.is_valid() {
            let message = format!(
                "client_msg_id must be 1 to {} printable ASCII characters",
                limits::MAX_CLIENT_MSG_ID_LEN
            );
            return Err(Refusal::new(ErrorCode::BadClientMsgId, message));
        }
        if body.len() > limits::MAX_BODY_BYTES {
            let message = format!(
                "body is {} bytes; the limit is {}",
                body.len(),
                limits::MAX_BODY_BYTES
            );
            return Err(Refusal::new(ErrorCode::BodyTooLong, message));
        }
        if body.trim().is_empty() {
            return Err(Refusal::new(ErrorCode::EmptyBody, "the message is empty"));
        }
        let allowed = self
            .send_bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_take(Instant::now());
        if !allowed {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "sending too fast; wait a moment",
            ));
        }
        let store = &self.gateway.store;
        let appended = crate::metrics::timed_append(store.append_message(
            room,
            &self.person,
            client_msg_id,
            body,
        ))
        .await?;
        Ok(ServerMessage::Ack(Ack {
            room: room.clone(),
            client_msg_id: client_msg_id.clone(),
            seq: appended.event.seq,
            ts: appended.event.ts,
            duplicate: appended.duplicate,
        }))
    }

    async fn history(
        &self,
        room: &RoomId,
        before: Option<u64>,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Reply {
        self.check_in(room).await?;
        let limit = limit.unwrap_or(limits::DEFAULT_PAGE_SIZE);
        // An empty page would say nothing about what lies beyond it: a client paging
        // until `has_more` is false would never stop.
        if limit == 0 || limit > limits::MAX_PAGE_SIZE {
            let message = format!("limit must be 1 to {}", limits::MAX_PAGE_SIZE);
            return Err(Refusal::new(ErrorCode::PageTooLarge, message));
        }
        let page = match (before, after) {
            (None, None) => Page::Latest { limit },
            (Some(before), None) => Page::Before { before, limit },
            (None, Some(after)) => Page::After { after, limit },
            (Some(_), Some(_)) => {
                return Err(Refusal::new(
                    ErrorCode::InvalidRequest,
                    "give before or after, not both",
                ));
            }
        };
        let page = self.gateway.store.history(room, page).await?;
        Ok(ServerMessage::History(History {
            room: room.clone(),
            epoch: page.epoch,
            events: page.events,
            has_more: page.has_more,
        }))
    }

    async fn join(&self, room: &RoomId) -> Reply {
        let access = self.access(room);
        if access == Access::None {
            return Err(self.not_visible(room).await);
        }
        let gateway = self.gateway.clone();
        if matches!(access, Access::Moderator { .. }) {
            gateway
                .store
                .set_moderator_joined(room, &self.person, true)
                .await?;
        }
        let newly_in = !access.is_in();
        // Dropped part-way (the deadline passed, the session closed), the join leaves no
        // subscription behind: the guard takes it back unless the join is committed.
        let entered = newly_in.then(|| Entering::new(&gateway.hub, room, &self.outbox));
        if newly_in {
            gateway.store.settle_watches().await;
        }
        let now_access = if newly_in {
            Access::Moderator { joined: true }
        } else {
            access
        };
        let snapshot = gateway.programme.get().await?;
        let record = gateway
            .store
            .room(room)
            .await?
            .ok_or_else(|| Refusal::new(ErrorCode::UnknownRoom, format!("no room {room}")))?;
        let info = room_info(
            &gateway,
            &snapshot.people,
            &record,
            now_access,
            &self.person,
        )
        .await?;
        if let Some(entered) = entered {
            // Nothing below waits: the join completes as a whole.
            self.outbox.push(Outgoing::Track(Box::new(Track {
                room: room.clone(),
                epoch: info.epoch,
                after: info.last_seq,
                live: false,
            })));
            entered.commit();
            crate::metrics::room_entered(self.kind_of(room));
            self.set_access(room, now_access);
        }
        Ok(ServerMessage::Joined { room: info })
    }

    async fn leave(&self, room: &RoomId) -> Reply {
        match self.access(room) {
            Access::None => Err(self.not_visible(room).await),
            Access::Member => Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("members cannot leave {room}"),
            )),
            Access::Moderator { joined } => {
                let gateway = self.gateway.clone();
                gateway
                    .store
                    .set_moderator_joined(room, &self.person, false)
                    .await?;
                if joined {
                    gateway.calls.left_room(self.key, room);
                    gateway.hub.unsubscribe(room, self.key);
                    crate::metrics::room_left(self.kind_of(room));
                    self.outbox.push(Outgoing::Untrack { room: room.clone() });
                    self.set_access(room, Access::Moderator { joined: false });
                    let frame = ServerFrame::push(ServerMessage::Presence {
                        room: room.clone(),
                        person: self.person.clone(),
                        status: PresenceStatus::Offline,
                    });
                    gateway.hub.broadcast(room, &frame, Some(&self.person));
                }
                Ok(ServerMessage::Left { room: room.clone() })
            }
        }
    }

    fn set_access(&self, room: &RoomId, access: Access) {
        let inside = {
            let mut rooms = locked(&self.rooms);
            if let Some(slot) = rooms.get_mut(room) {
                slot.1 = access;
            }
            rooms
                .iter()
                .filter(|(_, (_, a))| a.is_in())
                .map(|(r, _)| r.clone())
                .collect()
        };
        let hub = &self.gateway.hub;
        hub.presence.set_rooms(&self.person, self.key, inside);
        // Tells the other nodes, and announces the person in a room newly entered.
        hub.presence_changed(&self.person, true);
    }

    fn typing(&self, room: &RoomId, active: bool) -> Reply {
        self.check_in_now(room)?;
        let frame = ServerFrame::push(ServerMessage::Typing {
            room: room.clone(),
            person: self.person.clone(),
            active,
        });
        self.gateway.hub.broadcast(room, &frame, Some(&self.person));
        Ok(ServerMessage::Ok)
    }

    async fn read(&self, room: &RoomId, seq: u64) -> Reply {
        self.check_in(room).await?;
        let store = &self.gateway.store;
        let marker = store.set_read(room, &self.person, seq).await?;
        let state = store.room_state(room).await?;
        let message = ServerMessage::Read {
            room: room.clone(),
            seq: marker,
            unread: state.last_seq.saturating_sub(marker),
        };
        let frame = ServerFrame::push(message.clone());
        self.gateway
            .hub
            .to_person(&self.person, &frame, Some(self.key));
        Ok(message)
    }

    fn presence(&self, status: PresenceStatus) -> Reply {
        if status == PresenceStatus::Offline {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                "close the connection to go offline",
            ));
        }
        let hub = &self.gateway.hub;
        let change = hub.presence.set_status(&self.person, self.key, status);
        hub.presence_changed(&self.person, change.is_some());
        Ok(ServerMessage::Ok)
    }
}

/// Whether a request is about a call: answered by the calls, which bound their own waits
/// (the store's and another node's).
fn is_call_request(request: &Request) -> bool {
    matches!(
        request,
        Request::CallStart { .. }
            | Request::CallJoin { .. }
            | Request::CallLeave { .. }
            | Request::CallEnd { .. }
            | Request::CallMedia { .. }
            | Request::CallSignal { .. }
            | Request::IceServers { .. }
    )
}

/// A session subscribed to a room's fan-out by a `join` still under way: unsubscribed again
/// when dropped, unless committed.
struct Entering<'a> {
    hub: &'a crate::hub::Hub,
    room: &'a RoomId,
    session: SessionKey,
    committed: bool,
}

impl<'a> Entering<'a> {
    fn new(hub: &'a crate::hub::Hub, room: &'a RoomId, outbox: &Outbox) -> Self {
        hub.subscribe(room, outbox);
        Self {
            hub,
            room,
            session: outbox.key(),
            committed: false,
        }
    }

    /// The join is complete: the subscription stays.
    fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Entering<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.hub.unsubscribe(self.room, self.session);
        }
    }
}

/// The room whose access a request changes: that of a `join` or a `leave`.
fn access_change_of(request: &Request) -> Option<&RoomId> {
    match request {
        Request::Join { room } | Request::Leave { room } => Some(room),
        _ => None,
    }
}

/// The refusal of a request whose store deadline passed.
fn timed_out(request: &Request) -> Refusal {
    match request_room(request) {
        Some(room) => Refusal::store_timeout().in_room(&room),
        None => Refusal::store_timeout(),
    }
}

/// Whether an answer says the store deadline passed (or the store failed).
fn is_store_timeout(reply: &Reply) -> bool {
    matches!(reply, Err(refusal) if refusal.code == ErrorCode::StoreUnavailable)
}

/// The room a request is about, if any.
fn request_room(request: &Request) -> Option<RoomId> {
    match request {
        Request::Send { room, .. }
        | Request::History { room, .. }
        | Request::Join { room }
        | Request::Leave { room }
        | Request::Typing { room, .. }
        | Request::Read { room, .. }
        | Request::CallStart { room }
        | Request::Pin { room, .. }
        | Request::Unpin { room, .. }
        | Request::Pins { room }
        | Request::Members { room, .. } => Some(room.clone()),
        Request::Coachings { room } => room.clone(),
        _ => None,
    }
}

/// People by id.
pub type Directory = HashMap<PersonId, PersonInfo>;

/// A room as `person` sees it now: history position, unread count, members and presence.
pub async fn room_info(
    gateway: &Gateway,
    people: &Directory,
    record: &RoomRecord,
    access: Access,
    person: &PersonId,
) -> Result<RoomInfo, StoreError> {
    let state = gateway.store.room_state(&record.id).await?;
    let read_seq = gateway.store.read_marker(&record.id, person).await?;
    let present = record.members.iter().chain(record.joined_moderators.iter());
    let member_count = record.members.len() + record.joined_moderators.len();
    // A large room lists only who is online now; `members` pages through everyone.
    let large = member_count > limits::MAX_LISTED_MEMBERS;
    let members = present
        .filter_map(|id| people.get(id))
        .map(|p| MemberInfo {
            person: p.id.clone(),
            name: p.name.clone(),
            role: p.role,
            status: gateway.hub.status(&p.id),
        })
        .filter(|m| !large || m.status != PresenceStatus::Offline)
        .take(if large {
            limits::MAX_LISTED_MEMBERS
        } else {
            usize::MAX
        })
        .collect();
    Ok(RoomInfo {
        id: record.id.clone(),
        kind: record.kind,
        title: record.title.clone(),
        epoch: state.epoch,
        last_seq: state.last_seq,
        read_seq,
        unread: state.last_seq.saturating_sub(read_seq),
        last_ts: state.last_ts,
        joined: access.is_in(),
        members,
        member_count: u32::try_from(member_count).unwrap_or(u32::MAX),
        call: gateway.calls.current(&record.id),
    })
}
