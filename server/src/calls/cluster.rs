//! Calls across nodes: which node holds a room's call, forwarding requests to it, and what
//! happens when a node is lost.
//!
//! - **Owners.** The room's document in [`Collection::CallOwners`] names the node holding
//!   its call and the call's id. A `call_start` where no call is held here reads it: a live
//!   other node's entry turns the start into a join forwarded there; no entry, or one of a
//!   node that is gone, is replaced by this node's, with compare-and-set, so of two nodes
//!   starting at once one wins and the other joins. Two sessions of one node converge on
//!   the id in the entry. The holder deletes the entry when the call ends.
//! - **Forwarding.** A request for a call another node holds is sent to it
//!   ([`CallMessage::Request`], with the session's key, person and access to the call's
//!   room as this node computed it); that node answers it exactly as for its own sessions,
//!   and this node waits at most [`FORWARD_TIMEOUT`] for the reply (`store_unavailable`
//!   after that: retry). Which node holds a call is known from the holder's
//!   [`CallMessage::State`] announcements, or else from the owner documents.
//! - **Lost sessions and nodes.** A session here that ended tells the holder of a call it
//!   joined elsewhere, which gives it the grace period. When a node leaves or expires, the
//!   holder does the same for that node's participants, and every other node tells its own
//!   sessions that the calls the lost node held ended (`server_lost`); whoever deletes
//!   such a call's owner entry closes its record.
//!
//! Nothing here runs without a link to other nodes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use triad_protocol::{
    CallEndReason, CallId, CallState, ErrorCode, Request, RoomId, ServerFrame, ServerMessage,
};

use super::state::{Caller, SessionAddr};
use super::wire::CallMessage;
use super::{CallError, Calls, Reply, check_access, relay};
use crate::auth::Access;
use crate::bus::NodeId;
use crate::hub::{CallPeer, Outbox, SessionKey};
use crate::store::{Collection, Expect, SharedStore, StoreError, now_ms};

/// How long a node waits for the reply to a request it forwarded.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a start re-reads a room's owner entry that others keep changing.
const CLAIM_ATTEMPTS: usize = 4;

/// A room's entry in [`Collection::CallOwners`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallOwner {
    /// The node holding the call.
    pub node: NodeId,
    /// The call.
    pub call: CallId,
}

impl CallOwner {
    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A call another node holds, as it told.
struct RemoteCall {
    node: NodeId,
    room: RoomId,
    state: Option<CallState>,
}

/// A reply being waited for, and the node it must come from.
type Waiting = (NodeId, oneshot::Sender<Reply>);

/// What a node knows of the calls of others, and the requests it forwarded.
#[derive(Default)]
pub struct Cluster {
    pending: Mutex<HashMap<u64, Waiting>>,
    next_id: AtomicU64,
    remote: Mutex<HashMap<CallId, RemoteCall>>,
    /// This node's sessions that joined a call of another node, and that node.
    away: Mutex<HashMap<SessionKey, NodeId>>,
    /// Calls that ended here whose owner entry is not deleted yet.
    retired: Mutex<HashSet<CallId>>,
    /// Nodes never heard of that did not answer a forwarded request (say, the node of a
    /// previous process, before this node has listened for a whole expiry period).
    silent: Mutex<HashSet<NodeId>>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cluster {
    /// The last state another node told of its call in `room`.
    pub fn state_in(&self, room: &RoomId) -> Option<CallState> {
        let remote = locked(&self.remote);
        remote
            .values()
            .filter(|call| &call.room == room)
            .find_map(|call| call.state.clone())
    }
}

/// Where a room's call is to be held.
enum Claim {
    /// Here, with this id.
    Here(CallId),
    /// On that node.
    There(NodeId),
}

fn unavailable(message: impl Into<String>) -> CallError {
    CallError::new(ErrorCode::StoreUnavailable, message)
}

fn store_failed(err: &StoreError) -> CallError {
    tracing::warn!(error = %err, "call owners not readable or writable");
    unavailable(format!("calls are not available now: {err}"))
}

/// The call a call request is about (`None` for a start, which names a room).
fn call_of(request: &Request) -> Option<&CallId> {
    match request {
        Request::CallJoin { call, .. }
        | Request::CallLeave { call }
        | Request::CallEnd { call }
        | Request::CallMedia { call, .. }
        | Request::CallSignal { call, .. }
        | Request::IceServers { call } => Some(call),
        _ => None,
    }
}

impl Calls {
    /// Answers a call request from a session of this node: here if this node holds the
    /// call (or there are no other nodes), forwarded to the node holding it otherwise.
    pub async fn request(
        self: &Arc<Self>,
        outbox: &Outbox,
        request: Request,
        access: &(dyn Fn(&RoomId) -> Access + Sync),
    ) -> Reply {
        let caller = Caller::local(outbox);
        if !self.hub.is_linked() {
            return self.serve(&caller, request, access, None);
        }
        if let Request::CallStart { room } = &request {
            check_access(room, access(room))?;
            // Twice at most: a node never heard of that does not answer is taken for gone.
            for _ in 0..2 {
                let node = match self.claim(room).await? {
                    Claim::Here(id) => return self.serve(&caller, request, access, Some(id)),
                    Claim::There(node) => node,
                };
                self.check_free(&caller)?;
                let forwarded = request.clone();
                let reply = self
                    .forward(&node, outbox, room.clone(), access(room), forwarded)
                    .await;
                if reply.is_ok() || self.alive(&node) {
                    return reply;
                }
            }
            return Err(unavailable(
                "the call of this room is unreachable; try again",
            ));
        }
        let Some(call) = call_of(&request) else {
            return self.serve(&caller, request, access, None);
        };
        if self.find(call).is_ok() {
            return self.serve(&caller, request, access, None);
        }
        let (node, room) = self
            .owner_of(call)
            .await?
            .ok_or_else(|| CallError::no_call(call))?;
        if matches!(request, Request::CallJoin { .. }) {
            self.check_free(&caller)?;
        }
        let access = access(&room);
        self.forward(&node, outbox, room, access, request).await
    }

    /// Refuses a session already in a call held here from joining one held elsewhere.
    fn check_free(&self, caller: &Caller) -> Result<(), CallError> {
        let book = self.book.read().unwrap_or_else(|e| e.into_inner());
        match book.by_session.get(&caller.addr) {
            Some(other) => Err(CallError::new(
                ErrorCode::AlreadyInCall,
                format!("this session is in call {}; leave it first", other.id),
            )),
            None => Ok(()),
        }
    }

    /// Whether another node may hold calls: alive as far as the hub can tell, and not a
    /// node never heard of that left a forwarded request unanswered.
    fn alive(&self, node: &str) -> bool {
        self.hub.node_alive(node)
            && (self.hub.knows_node(node) || !locked(&self.cluster.silent).contains(node))
    }

    /// Decides where the room's call is held, claiming it for this node if no live node
    /// holds it.
    async fn claim(&self, room: &RoomId) -> Result<Claim, CallError> {
        if let Some(id) = self.in_room(room) {
            return Ok(Claim::Here(id));
        }
        let here = self.hub.node();
        for _ in 0..CLAIM_ATTEMPTS {
            let raw = self
                .store
                .doc(Collection::CallOwners, room.as_str())
                .await
                .map_err(|e| store_failed(&e))?;
            let current = raw
                .as_deref()
                .and_then(|json| serde_json::from_str::<CallOwner>(json).ok());
            if let Some(owner) = &current {
                let retired = locked(&self.cluster.retired).contains(&owner.call);
                if owner.node == here && !retired {
                    return Ok(Claim::Here(owner.call.clone()));
                }
                if owner.node != here && self.alive(&owner.node) {
                    return Ok(Claim::There(owner.node.clone()));
                }
            }
            let mine = CallOwner {
                node: here.to_string(),
                call: Self::new_id(),
            };
            let expect = raw.clone().map_or(Expect::Absent, Expect::Value);
            let written = self
                .store
                .write_doc(
                    Collection::CallOwners,
                    room.as_str(),
                    expect,
                    Some(mine.json()),
                )
                .await
                .map_err(|e| store_failed(&e))?;
            if written {
                if let Some(old) = current.filter(|old| old.node != here) {
                    tracing::info!(%room, call = %old.call, node = %old.node,
                        "the call of a lost node is replaced");
                    close_record(&self.store, room, &old.call).await;
                }
                return Ok(Claim::Here(mine.call));
            }
        }
        Err(unavailable(format!(
            "the call of {room} kept changing; try again"
        )))
    }

    /// The node holding a call and its room, if any live node does.
    async fn owner_of(&self, call: &CallId) -> Result<Option<(NodeId, RoomId)>, CallError> {
        let known = {
            let remote = locked(&self.cluster.remote);
            remote
                .get(call)
                .map(|known| (known.node.clone(), known.room.clone()))
        };
        let found = match known {
            Some(found) => Some(found),
            None => {
                let owners = self
                    .store
                    .docs(Collection::CallOwners)
                    .await
                    .map_err(|e| store_failed(&e))?;
                owners.into_iter().find_map(|(room, json)| {
                    let owner = serde_json::from_str::<CallOwner>(&json).ok()?;
                    let room = RoomId::new(&room).ok()?;
                    (&owner.call == call).then_some((owner.node, room))
                })
            }
        };
        Ok(found.filter(|(node, _)| node != self.hub.node() && self.alive(node)))
    }

    /// Sends a request to the node holding its call and waits for the answer.
    async fn forward(
        &self,
        node: &str,
        outbox: &Outbox,
        room: RoomId,
        access: Access,
        request: Request,
    ) -> Reply {
        let id = self.cluster.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        locked(&self.cluster.pending).insert(id, (node.to_string(), tx));
        let call = call_of(&request).cloned();
        let message = CallMessage::Request {
            id,
            key: outbox.key(),
            person: outbox.person().clone(),
            room: room.clone(),
            access,
            request,
        };
        self.hub.send_call(Some(node), message);
        let reply = match tokio::time::timeout(FORWARD_TIMEOUT, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(unavailable(
                "the server holding this call stopped; try again",
            )),
            Err(_) => {
                locked(&self.cluster.pending).remove(&id);
                if !self.hub.knows_node(node) {
                    locked(&self.cluster.silent).insert(node.to_string());
                }
                Err(unavailable(
                    "the server holding this call did not answer in time; try again",
                ))
            }
        };
        match &reply {
            Ok(ServerMessage::CallJoined { call, .. }) => {
                locked(&self.cluster.away).insert(outbox.key(), node.to_string());
                let known = RemoteCall {
                    node: node.to_string(),
                    room,
                    state: Some(call.clone()),
                };
                locked(&self.cluster.remote).insert(call.id.clone(), known);
            }
            Err(err) if err.code == ErrorCode::NoCall => {
                if let Some(call) = call {
                    locked(&self.cluster.remote).remove(&call);
                }
            }
            _ => {}
        }
        reply
    }

    /// Answers a request another node forwarded for one of its sessions.
    fn answer(
        self: &Arc<Self>,
        origin: &str,
        id: u64,
        caller: Caller,
        room: RoomId,
        access: Access,
        request: Request,
    ) {
        let grant = move |r: &RoomId| if r == &room { access } else { Access::None };
        let Request::CallStart { room: wanted } = request else {
            // Answered at once, in the order the requests came.
            let reply = self.serve(&caller, request, &grant, None);
            self.hub
                .send_call(Some(origin), CallMessage::Reply { id, reply });
            return;
        };
        let calls = self.clone();
        let origin = origin.to_string();
        tokio::spawn(async move {
            let access = grant(&wanted);
            let reply = match check_access(&wanted, access) {
                Err(err) => Err(err),
                Ok(()) => match calls.claim(&wanted).await {
                    Ok(Claim::Here(call)) => {
                        let request = Request::CallStart { room: wanted };
                        calls.serve(&caller, request, &grant, Some(call))
                    }
                    Ok(Claim::There(_)) => {
                        Err(unavailable("the call moved to another server; try again"))
                    }
                    Err(err) => Err(err),
                },
            };
            calls
                .hub
                .send_call(Some(&origin), CallMessage::Reply { id, reply });
        });
    }

    /// Tells the other nodes how a call held here is now (`None`: ended).
    pub(super) fn tell_nodes(&self, cell: &super::state::CallCell, state: Option<&CallState>) {
        if self.hub.is_linked() {
            self.hub.send_call(
                None,
                CallMessage::State {
                    call: cell.id.clone(),
                    room: cell.room.clone(),
                    state: state.cloned(),
                },
            );
        }
    }

    /// A call held here ended: deletes its owner entry (if it is still this node's).
    pub(super) fn release(&self, cell: &super::state::CallCell) {
        if !self.hub.is_linked() {
            return;
        }
        let mine = CallOwner {
            node: self.hub.node().to_string(),
            call: cell.id.clone(),
        };
        locked(&self.cluster.retired).insert(mine.call.clone());
        let store = self.store.clone();
        let room = cell.room.clone();
        let me = self.me.clone();
        tokio::spawn(async move {
            let deleted = store
                .write_doc(
                    Collection::CallOwners,
                    room.as_str(),
                    Expect::Value(mine.json()),
                    None,
                )
                .await;
            if let Err(err) = &deleted {
                tracing::warn!(call = %mine.call, error = %err, "a call's owner entry was not deleted");
                return;
            }
            if let Some(calls) = me.upgrade() {
                locked(&calls.cluster.retired).remove(&mine.call);
            }
        });
    }

    /// A session here ended: the node holding a call it joined there is told.
    pub(super) fn session_gone_elsewhere(&self, key: SessionKey) {
        let node = locked(&self.cluster.away).remove(&key);
        if let Some(node) = node {
            self.hub
                .send_call(Some(&node), CallMessage::SessionGone { key });
        }
    }

    /// A moderator's session here left a room: the node holding a call it joined there is
    /// told.
    pub(super) fn left_room_elsewhere(&self, key: SessionKey, room: &RoomId) {
        let node = locked(&self.cluster.away).get(&key).cloned();
        if let Some(node) = node {
            let message = CallMessage::LeftRoom {
                key,
                room: room.clone(),
            };
            self.hub.send_call(Some(&node), message);
        }
    }

    fn lost_node(self: &Arc<Self>, node: &str) {
        // Its sessions in calls held here: the grace period, as for a lost connection.
        let sessions: Vec<SessionAddr> = {
            let book = self.book.read().unwrap_or_else(|e| e.into_inner());
            book.by_session
                .keys()
                .filter(|addr| addr.node() == Some(node))
                .cloned()
                .collect()
        };
        for addr in sessions {
            self.lose(addr);
        }
        // Requests waiting on it fail now (their senders drop).
        locked(&self.cluster.pending).retain(|_, (to, _)| to != node);
        locked(&self.cluster.away).retain(|_, to| to != node);
        // The calls it held end.
        let mut ended: HashSet<CallId> = HashSet::new();
        locked(&self.cluster.remote).retain(|call, known| {
            if known.node != node {
                return true;
            }
            announce_lost(&self.hub, call, &known.room);
            ended.insert(call.clone());
            false
        });
        let calls = Arc::downgrade(self);
        let node = node.to_string();
        tokio::spawn(async move {
            let Some(store) = calls.upgrade().map(|c| c.store.clone()) else {
                return;
            };
            let owners = match store.docs(Collection::CallOwners).await {
                Ok(owners) => owners,
                Err(err) => {
                    return tracing::warn!(error = %err, %node, "the calls of a lost node are not known");
                }
            };
            for (room, json) in owners {
                let Ok(owner) = serde_json::from_str::<CallOwner>(&json) else {
                    continue;
                };
                let Ok(room) = RoomId::new(&room) else {
                    continue;
                };
                if owner.node != node {
                    continue;
                }
                if !ended.contains(&owner.call)
                    && let Some(calls) = calls.upgrade()
                {
                    announce_lost(&calls.hub, &owner.call, &room);
                }
                let deleted = store
                    .write_doc(
                        Collection::CallOwners,
                        room.as_str(),
                        Expect::Value(json),
                        None,
                    )
                    .await;
                if matches!(deleted, Ok(true)) {
                    tracing::info!(call = %owner.call, %room, %node, "a lost node's call ended");
                    close_record(&store, &room, &owner.call).await;
                }
            }
        });
    }
}

/// Tells this node's sessions in `room` that `call` ended with its node.
fn announce_lost(hub: &crate::hub::Hub, call: &CallId, room: &RoomId) {
    let frame = ServerFrame::push(ServerMessage::CallEnded {
        call: call.clone(),
        room: room.clone(),
        reason: CallEndReason::ServerLost,
        ended_by: None,
    });
    hub.broadcast_here(room, &frame);
}

/// Closes the record of a call whose node was lost: it ends now, and so does everyone's
/// open time in it.
async fn close_record(store: &SharedStore, room: &RoomId, call: &CallId) {
    let records = match store.call_records(room).await {
        Ok(records) => records,
        Err(err) => {
            return tracing::warn!(%call, error = %err, "a lost call's record is not readable");
        }
    };
    let Some(mut record) = records
        .into_iter()
        .find(|r| &r.call == call && r.ended_at.is_none())
    else {
        return;
    };
    let now = now_ms();
    record.ended_at = Some(now);
    for stretch in &mut record.attendance {
        stretch.left_at.get_or_insert(now);
    }
    if let Err(err) = store.record_call(&record).await {
        tracing::warn!(%call, error = %err, "a lost call's record was not closed");
    }
}

impl CallPeer for Calls {
    fn receive(&self, origin: &str, message: CallMessage) {
        let Some(calls) = self.me.upgrade() else {
            return;
        };
        match message {
            CallMessage::Request {
                id,
                key,
                person,
                room,
                access,
                request,
            } => {
                let caller = Caller::remote(origin.to_string(), key, person);
                calls.answer(origin, id, caller, room, access, request);
            }
            CallMessage::Reply { id, reply } => {
                let waiting = locked(&self.cluster.pending).remove(&id);
                if let Some((node, tx)) = waiting
                    && node == origin
                {
                    // The requester may have given up; nothing to do then.
                    let _ = tx.send(reply);
                }
            }
            CallMessage::Frame { key, person, frame } => {
                relay::deliver_here(&self.hub, &person, key, frame);
            }
            CallMessage::SessionGone { key } => calls.lose(SessionAddr::Remote {
                node: origin.to_string(),
                key,
            }),
            CallMessage::LeftRoom { key, room } => {
                let addr = SessionAddr::Remote {
                    node: origin.to_string(),
                    key,
                };
                calls.leave_room(&addr, &room);
            }
            CallMessage::State { call, room, state } => {
                let mut remote = locked(&self.cluster.remote);
                match state {
                    Some(state) => {
                        let known = RemoteCall {
                            node: origin.to_string(),
                            room,
                            state: Some(state),
                        };
                        remote.insert(call, known);
                    }
                    None => {
                        remote.remove(&call);
                    }
                }
            }
        }
    }

    fn node_lost(&self, node: &str) {
        if let Some(calls) = self.me.upgrade() {
            calls.lost_node(node);
        }
    }
}
