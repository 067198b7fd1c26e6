//! One websocket connection: wait for `hello` (with a deadline), authenticate, enter the
//! person's rooms, send the welcome and resume each room, then answer requests until the
//! connection closes, the token expires, or the server shuts down.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tracing::Instrument;
use triad_protocol::{
    CloseCode, ErrorCode, PROTOCOL_VERSION, Request, ResumePoint, ServerFrame, ServerMessage,
    SessionId, Welcome, decode_client, limits,
};

use super::Gateway;
use super::requests::{Refusal, Session, room_info};
use super::socket::{Sink, Socket, Stream, is_capacity_error, is_utf8_error};
use super::writer::Writer;
use crate::auth::{Access, Verified, access_to};
use crate::hub::{Outbox, Outgoing, SessionControl, TokenBucket, Track, encode};
use crate::store::{StoreError, now_ms, within_until};

/// What a successful `hello` carried.
struct Hello {
    id: Option<u64>,
    verified: Verified,
    resume: Vec<ResumePoint>,
    /// The store deadline of signing in: every store call of it and of starting the
    /// session is answered by then.
    until: Instant,
}

/// An open session, as [`open`] leaves it.
struct Opened {
    session: Arc<Session>,
    stream: Stream,
    writer: tokio::task::JoinHandle<()>,
    span: tracing::Span,
    _connection: crate::metrics::Connection,
}

/// Runs one connection to its end.
///
/// Signing in and starting the session run in their own allocation, freed once done: a
/// future keeps room for everything it may hold at any point, so the connection's task
/// then holds only what an open session needs, for as long as it is open.
pub fn run(gateway: Arc<Gateway>, socket: Socket) -> impl Future<Output = ()> + Send {
    let opening = Box::pin(open(gateway, socket));
    async move {
        let Some(Opened {
            session,
            stream,
            writer,
            span,
            _connection,
        }) = opening.await
        else {
            return;
        };
        // A session closed as too slow has its close deadline to read the close frame.
        let writer_deadline = session.gateway.settings.slow_close_deadline + CLOSE_DEADLINE;
        async move {
            session.serve(stream).await;
            if tokio::time::timeout(writer_deadline, writer).await.is_err() {
                tracing::debug!("writer did not finish in time");
            }
            tracing::info!("session ended");
        }
        .instrument(span)
        .await;
    }
}

/// Waits for `hello` and starts the session; `None` if it never starts (the connection is
/// then closed).
async fn open(gateway: Arc<Gateway>, socket: Socket) -> Option<Opened> {
    let connection = crate::metrics::connection_opened();
    let (mut sink, mut stream) = socket.split();
    let hello = wait_hello(&gateway, &mut sink, &mut stream).await?;
    let key = gateway.next_key();
    // The session id as the client sees it in its welcome; never a message body.
    let span = tracing::info_span!("session", session = %format_args!("s{key}"), person = %hello.verified.person);
    match start(&gateway, key, hello, sink)
        .instrument(span.clone())
        .await
    {
        Ok((session, writer)) => {
            span.in_scope(|| tracing::info!("session started"));
            Some(Opened {
                session,
                stream,
                writer,
                span,
                _connection: connection,
            })
        }
        Err(mut sink) => {
            if tokio::time::timeout(Duration::from_secs(2), sink.close())
                .await
                .is_err()
            {
                span.in_scope(|| tracing::debug!("close not delivered"));
            }
            None
        }
    }
}

/// How long a close frame (and what is queued before it) may take to go out, except after
/// a slow consumer (see [`super::SessionSettings::slow_close_deadline`]).
pub const CLOSE_DEADLINE: Duration = Duration::from_secs(2);

async fn send_frame(sink: &mut Sink, frame: &ServerFrame) -> bool {
    sink.send(Message::Text(encode(frame))).await.is_ok()
}

async fn close(sink: &mut Sink, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code: code.0.into(),
        reason: reason.into(),
    };
    let closing = sink.send(Message::Close(Some(frame)));
    if tokio::time::timeout(CLOSE_DEADLINE, closing).await.is_err() {
        tracing::debug!("close frame not delivered");
    }
}

/// Reads frames until a valid `hello`, answering anything else with an error. Returns
/// `None` (after closing) on timeout, a refused token, or a closed connection.
async fn wait_hello(gateway: &Gateway, sink: &mut Sink, stream: &mut Stream) -> Option<Hello> {
    let deadline = tokio::time::sleep(gateway.settings.hello_timeout);
    tokio::pin!(deadline);
    loop {
        let message = tokio::select! {
            () = &mut deadline => {
                let frame = ServerFrame::error(None, ErrorCode::NotAuthenticated, "no hello in time");
                send_frame(sink, &frame).await;
                close(sink, CloseCode::HELLO_TIMEOUT, "no hello in time").await;
                return None;
            }
            () = gateway.shutdown.cancelled() => {
                close(sink, CloseCode::GOING_AWAY, "server shutting down").await;
                return None;
            }
            message = stream.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                let frame = ServerFrame::error(None, ErrorCode::BinaryFrame, "text frames only");
                send_frame(sink, &frame).await;
                continue;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(_))) | None => return None,
            Some(Err(err)) => {
                read_failed(sink, err).await;
                return None;
            }
        };
        let frame = match decode_client(&text) {
            Ok(frame) => frame,
            Err(err) => {
                send_frame(sink, &ServerFrame::error(err.id, err.code, err.message)).await;
                continue;
            }
        };
        let Request::Hello { token, resume } = frame.request else {
            let message = format!("send hello first, not {}", frame.request.type_name());
            send_frame(
                sink,
                &ServerFrame::error(frame.id, ErrorCode::NotAuthenticated, message),
            )
            .await;
            continue;
        };
        if token.len() > limits::MAX_TOKEN_BYTES || resume.len() > limits::MAX_RESUME_POINTS {
            let message = "token or resume list over the limit";
            send_frame(
                sink,
                &ServerFrame::error(frame.id, ErrorCode::InvalidRequest, message),
            )
            .await;
            close(sink, CloseCode::AUTH_FAILED, message).await;
            return None;
        }
        // Signing in, all its store calls together, is bounded by one store deadline.
        let until = Instant::now() + gateway.settings.store_deadline;
        let verified = match gateway.verifier.verify(&token) {
            Ok(verified) => {
                let checked =
                    tokio::time::timeout_at(until.into(), gateway.grants.check(&verified)).await;
                match checked {
                    Ok(Ok(())) => Ok(verified),
                    Ok(Err(err)) => Err(Refusal::from(err)),
                    Err(_) => Err(Refusal::store_timeout()),
                }
            }
            Err(err) => Err(Refusal::from(err)),
        };
        match verified {
            Ok(verified) => {
                return Some(Hello {
                    id: frame.id,
                    verified,
                    resume,
                    until,
                });
            }
            Err(refusal) => {
                tracing::debug!(code = %refusal.code(), "hello refused");
                let code = refusal.code();
                send_frame(sink, &refusal.into_frame(frame.id)).await;
                if code == ErrorCode::StoreUnavailable {
                    close(sink, CloseCode::TRY_AGAIN_LATER, STORE_DOWN).await;
                } else {
                    close(sink, CloseCode::AUTH_FAILED, "authentication failed").await;
                }
                return None;
            }
        }
    }
}

/// The close reason when the store is down while signing in.
const STORE_DOWN: &str = "store unavailable: reconnect later";

/// Closes with 1009 after an oversized frame and 1007 after a text frame that is not
/// UTF-8; other read errors just end the session.
async fn read_failed(sink: &mut Sink, err: tokio_tungstenite::tungstenite::Error) {
    if is_capacity_error(&err) {
        close(
            sink,
            CloseCode::MESSAGE_TOO_BIG,
            "frame over the size limit",
        )
        .await;
    } else if is_utf8_error(&err) {
        let frame = ServerFrame::error(
            None,
            ErrorCode::BadJson,
            "a text frame that is not valid UTF-8",
        );
        send_frame(sink, &frame).await;
        close(
            sink,
            CloseCode::INVALID_PAYLOAD,
            "text frame not valid UTF-8",
        )
        .await;
    }
}

/// The refusal of a `hello` because the store failed: an `error` with
/// `store_unavailable`, then 1013.
async fn store_down(sink: &mut Sink, id: Option<u64>, err: StoreError) {
    send_frame(sink, &Refusal::from(err).into_frame(id)).await;
    close(sink, CloseCode::TRY_AGAIN_LATER, STORE_DOWN).await;
}

type Started = (Arc<Session>, tokio::task::JoinHandle<()>);

/// Authenticated: enter the rooms, queue the welcome and the resumes, start the writer.
async fn start(
    gateway: &Arc<Gateway>,
    key: u64,
    hello: Hello,
    mut sink: Sink,
) -> Result<Started, Sink> {
    let store = &gateway.store;
    let until = hello.until;
    let person_id = hello.verified.person.clone();
    let refuse = |code: ErrorCode, message: String| ServerFrame::error(hello.id, code, message);
    let snapshot = match within_until(until, gateway.programme.get()).await {
        Ok(snapshot) => snapshot,
        Err(err) => {
            store_down(&mut sink, hello.id, err).await;
            return Err(sink);
        }
    };
    let Some(person) = snapshot.people.get(&person_id).cloned() else {
        let message = format!("{person_id} is not in the programme");
        send_frame(&mut sink, &refuse(ErrorCode::UnknownPerson, message)).await;
        close(&mut sink, CloseCode::AUTH_FAILED, "unknown person").await;
        return Err(sink);
    };

    let control = Arc::new(SessionControl::default());
    let (outbox, rx) = Outbox::new(
        key,
        person_id.clone(),
        gateway.settings.outbox_capacity,
        control.clone(),
    );
    let mut rooms = HashMap::new();
    let mut order = Vec::new();
    for record in &snapshot.programme.rooms {
        let mut access = access_to(record, &person_id);
        if access == Access::None {
            continue;
        }
        // Which moderators have joined a trio room changes often and is not in the
        // snapshot's version: a room with moderators is read fresh (a small record).
        let record = if record.moderators.is_empty() {
            Cow::Borrowed(record)
        } else {
            match within_until(until, store.room(&record.id)).await {
                Ok(Some(fresh)) => {
                    access = access_to(&fresh, &person_id);
                    Cow::Owned(fresh)
                }
                Ok(None) => continue,
                Err(err) => {
                    store_down(&mut sink, hello.id, err).await;
                    return Err(sink);
                }
            }
        };
        if access == Access::None {
            continue;
        }
        order.push(record.id.clone());
        rooms.insert(record.id.clone(), (record, access));
    }
    // Subscribe before reading room states: an event stored in between reaches the outbox
    // and the writer skips or fills as needed, so nothing falls between the two.
    let inside: Vec<_> = order
        .iter()
        .filter(|r| rooms[*r].1.is_in())
        .cloned()
        .collect();
    for room in &inside {
        gateway.hub.subscribe(room, &outbox);
        crate::metrics::room_entered(rooms[room].0.kind);
    }
    let (send_bucket, change) = gateway.hub.presence.connect(&outbox, inside.clone());
    gateway.hub.presence_changed(&person_id, change.is_some());
    if tokio::time::timeout_at(until.into(), gateway.store.settle_watches())
        .await
        .is_err()
    {
        tracing::debug!("room subscriptions not settled by the store deadline; gaps fill later");
    }

    let people = &snapshot.people;
    let mut infos = Vec::with_capacity(order.len());
    let mut tracks = Vec::new();
    let mut failed = false;
    for room in &order {
        let (record, access) = &rooms[room];
        let info = match within_until(
            until,
            room_info(gateway, people, record, *access, &person_id),
        )
        .await
        {
            Ok(info) => info,
            Err(err) => {
                // The session is already in its rooms: it ends through the writer.
                let frame = Refusal::from(err).into_frame(hello.id);
                outbox.push_first(Outgoing::Frame(encode(&frame)));
                control.close(CloseCode::TRY_AGAIN_LATER, STORE_DOWN);
                failed = true;
                break;
            }
        };
        if access.is_in() {
            let resumed = hello
                .resume
                .iter()
                .find(|p| &p.room == room && p.epoch == info.epoch);
            let after = resumed.map_or(info.last_seq, |p| p.seq.min(info.last_seq));
            tracks.push(Outgoing::Track(Box::new(Track {
                room: room.clone(),
                epoch: info.epoch,
                after,
                live: true,
            })));
        }
        infos.push(info);
    }
    let welcome = Welcome {
        protocol: PROTOCOL_VERSION.to_string(),
        session: SessionId(format!("s{key}")),
        person,
        rooms: infos,
        limits: limits::Limits {
            send_rate_per_second: gateway.hub.presence.send_rate(),
            send_burst: gateway.hub.presence.send_burst(),
            ..limits::Limits::default()
        },
        token_expires_at: hello.verified.expires_at,
    };
    if !failed {
        // First, ahead of the presence and typing pushes of the rooms entered above.
        outbox.push_first(Outgoing::Frame(encode(&ServerFrame::reply(
            hello.id,
            ServerMessage::Welcome(welcome),
        ))));
        for track in tracks {
            outbox.push(track);
        }
    }
    crate::metrics::session_started(!hello.resume.is_empty());
    let writer = tokio::spawn(
        Writer::new(
            sink,
            rx,
            control.clone(),
            gateway.store.clone(),
            gateway.settings.slow_close_deadline,
            gateway.shutdown.clone(),
        )
        .run()
        .in_current_span(),
    );
    let session = Arc::new(Session {
        gateway: gateway.clone(),
        key,
        person: person_id,
        outbox,
        control,
        rooms: Mutex::new(
            rooms
                .into_iter()
                .map(|(id, (record, access))| (id, (record.kind, access)))
                .collect(),
        ),
        send_bucket,
        request_bucket: Mutex::new(TokenBucket::new(
            gateway.settings.request_rate_per_second,
            gateway.settings.request_burst,
        )),
        expires_at: Mutex::new(deadline_of(hello.verified.accepted_until)),
    });
    Ok((session, writer))
}

/// The instant a token expiry (ms since the Unix epoch) falls at.
pub fn deadline_of(expires_at_ms: i64) -> Instant {
    let left = u64::try_from(expires_at_ms.saturating_sub(now_ms())).unwrap_or(0);
    Instant::now() + Duration::from_millis(left)
}
