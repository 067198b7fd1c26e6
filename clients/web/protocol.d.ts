// Triad's wire protocol as TypeScript declarations, for the web client's type check.
// Generated from the triad-protocol crate by clients/web/types: do not edit.
// Regenerate with `TRIAD_BLESS=1 cargo test -p triad-web-types`.

/** The websocket subprotocol and protocol version. */
export type ProtocolVersion = "triad.v1";

/**
 * The answer to `send`: the message is stored.
 */
export type Ack = {
/**
 * The room.
 */
room: RoomId,
/**
 * The client's id for the message.
 */
client_msg_id: ClientMsgId,
/**
 * Its sequence number in the room.
 */
seq: number,
/**
 * When it was stored.
 */
ts: number,
/**
 * True when this id had been stored before: nothing new was stored.
 */
duplicate: boolean, };

/**
 * The change a [`CallState`] announces, and whose it is.
 */
export type CallChange = {
/**
 * What happened.
 */
kind: CallChangeKind,
/**
 * To whom.
 */
person: PersonId, };

/**
 * What changed in a call, for people ("Sara joined the call").
 */
export type CallChangeKind = "started" | "joined" | "rejoined" | "reconnecting" | "left" | "removed" | "media";

/**
 * Why a call ended.
 */
export type CallEndReason = "ended" | "empty" | "server_lost";

/**
 * A call, assigned by the server when the call starts.
 */
export type CallId = string;

/**
 * One person in a call, through one session.
 */
export type CallParticipant = {
/**
 * The session signals are addressed to (it changes when a reconnected client takes
 * its place back with `resume`).
 */
session: SessionId,
/**
 * Who.
 */
person: PersonId,
/**
 * Whether their microphone is on.
 */
mic: boolean,
/**
 * Whether their camera is on.
 */
camera: boolean,
/**
 * When they joined; kept when a reconnected client takes its place back.
 */
joined_at: number,
/**
 * False while their connection is lost and the server waits for them to come back
 * (the grace period); they are removed if they do not.
 */
connected: boolean, };

/**
 * A call as it is now.
 */
export type CallState = {
/**
 * The call.
 */
id: CallId,
/**
 * Its room.
 */
room: RoomId,
/**
 * Who started it.
 */
started_by: PersonId,
/**
 * When it started.
 */
started_at: number,
/**
 * The participants in the order they joined. Each makes the offer to every
 * participant listed before it, and waits for an offer from every one after it.
 */
participants: Array<CallParticipant>,
/**
 * What changed, if this state follows a change.
 */
change?: CallChange | null, };

/**
 * A frame from a client: a request and an optional id the response will carry in `re`.
 */
export type ClientFrame = {
/**
 * Chosen by the client; echoed as `re` in the response.
 */
id?: number | null, } & ({ "type": "hello",
/**
 * A JWT for the person.
 */
token: string,
/**
 * Per room, the last event the client has; the server sends the rest, then `live`.
 */
resume?: Array<ResumePoint>, } | { "type": "refresh",
/**
 * A new JWT for the same person.
 */
token: string, } | { "type": "send",
/**
 * The room.
 */
room: RoomId,
/**
 * The client's id for this message; a retry with the same id is stored once.
 */
client_msg_id: ClientMsgId,
/**
 * The text.
 */
body: string, } | { "type": "history",
/**
 * The room.
 */
room: RoomId,
/**
 * Events with a sequence number lower than this, newest page first.
 */
before?: number | null,
/**
 * Events with a sequence number higher than this, oldest first.
 */
after?: number | null,
/**
 * The page size, at most [`crate::limits::MAX_PAGE_SIZE`].
 */
limit?: number | null, } | { "type": "join",
/**
 * The room.
 */
room: RoomId, } | { "type": "leave",
/**
 * The room.
 */
room: RoomId, } | { "type": "typing",
/**
 * The room.
 */
room: RoomId,
/**
 * Whether they are typing now.
 */
active: boolean, } | { "type": "read",
/**
 * The room.
 */
room: RoomId,
/**
 * The last sequence number read.
 */
seq: number, } | { "type": "presence",
/**
 * The new status (`offline` is not accepted: close the connection instead).
 */
status: PresenceStatus, } | { "type": "ping" } | { "type": "call_start",
/**
 * The room.
 */
room: RoomId, } | { "type": "call_join",
/**
 * The call.
 */
call: CallId,
/**
 * Take back this person's place in the call.
 */
resume?: boolean, } | { "type": "call_leave",
/**
 * The call.
 */
call: CallId, } | { "type": "call_end",
/**
 * The call.
 */
call: CallId, } | { "type": "call_media",
/**
 * The call.
 */
call: CallId,
/**
 * Microphone on.
 */
mic: boolean,
/**
 * Camera on.
 */
camera: boolean, } | { "type": "call_signal",
/**
 * The call.
 */
call: CallId,
/**
 * The participant session it is for.
 */
to: SessionId,
/**
 * The signal.
 */
signal: Signal, } | { "type": "ice_servers",
/**
 * The call they are for.
 */
call: CallId, } | { "type": "coachings",
/**
 * Only this room's.
 */
room?: RoomId | null, } | { "type": "pin",
/**
 * The room.
 */
room: RoomId,
/**
 * The message.
 */
seq: number, } | { "type": "unpin",
/**
 * The room.
 */
room: RoomId,
/**
 * The message.
 */
seq: number, } | { "type": "pins",
/**
 * The room.
 */
room: RoomId, } | { "type": "members",
/**
 * The room.
 */
room: RoomId,
/**
 * People with an id after this one.
 */
after?: PersonId | null,
/**
 * The page size, at most [`crate::limits::MAX_PAGE_SIZE`].
 */
limit?: number | null, });

/**
 * The id a client gives a message it sends, so a retried send is stored once.
 * 1 to [`crate::limits::MAX_CLIENT_MSG_ID_LEN`] printable ASCII characters.
 */
export type ClientMsgId = string;

/**
 * A websocket close code the server uses, with its meaning. 1000-1011 are the standard
 * codes; 4000-4999 are Triad's own.
 */
export type CloseCode = number;

/**
 * Why a session's members are told about it.
 */
export type CoachingChange = "booked" | "moved" | "cancelled" | "reminder_day" | "reminder_soon" | "started";

/**
 * A scheduled coaching session, assigned by the server (`cs-<hex>`).
 */
export type CoachingId = string;

/**
 * A scheduled coaching session.
 */
export type CoachingSession = {
/**
 * The session.
 */
id: CoachingId,
/**
 * The room it is for (a trio room or the commons).
 */
room: RoomId,
/**
 * Its title.
 */
title: string,
/**
 * What it is about (may be empty).
 */
agenda: string,
/**
 * When it starts, milliseconds since the Unix epoch (UTC).
 */
start: number,
/**
 * How long it lasts, in minutes.
 */
duration_min: number,
/**
 * The IANA time zone it was booked in, e.g. `Europe/Rome`.
 */
time_zone: string,
/**
 * Scheduled or cancelled.
 */
status: CoachingStatus,
/**
 * 0 when booked, raised by each move or cancellation.
 */
sequence: number,
/**
 * Who booked it.
 */
booked_by: PersonId,
/**
 * When it was last changed.
 */
updated_at: number, };

/**
 * Whether a session will take place.
 */
export type CoachingStatus = "scheduled" | "cancelled";

/**
 * Why a request failed. Serialized as a snake_case string, e.g. `"not_a_member"`.
 */
export type ErrorCode = "bad_json" | "unknown_type" | "invalid_request" | "binary_frame" | "not_authenticated" | "already_authenticated" | "token_expired" | "token_invalid" | "unknown_person" | "unknown_room" | "not_a_member" | "join_required" | "forbidden" | "body_too_long" | "empty_body" | "bad_client_msg_id" | "rate_limited" | "page_too_large" | "store_unavailable" | "internal" | "no_call" | "not_in_call" | "call_full" | "already_in_call" | "signal_too_large" | "coaching_in_past" | "coaching_overlap" | "unknown_time_zone" | "no_coaching" | "coaching_cancelled" | "no_message" | "invitation_invalid" | "invitation_used" | "invitation_expired" | "token_revoked" | "roster_invalid" | "not_found" | "conflict" | "too_many_coachings" | "not_bookable" | "request_timeout" | "request_too_large";

/**
 * What happened in a room event. Tagged by `kind`.
 */
export type EventBody = { "kind": "message",
/**
 * The id the sender gave it.
 */
client_msg_id: ClientMsgId,
/**
 * The text, UTF-8, at most [`crate::limits::MAX_BODY_BYTES`].
 */
body: string, } | { "kind": "moderator_joined" } | { "kind": "moderator_left" };

/**
 * The answer to `history`.
 */
export type History = {
/**
 * The room.
 */
room: RoomId,
/**
 * The room's epoch.
 */
epoch: number,
/**
 * Events in ascending sequence order.
 */
events: Array<RoomEvent>,
/**
 * Whether more events lie beyond this page in the direction asked.
 */
has_more: boolean, };

/**
 * One STUN or TURN server, as a browser's `RTCIceServer`.
 */
export type IceServer = {
/**
 * `stun:`, `turn:` or `turns:` URLs, e.g. `turns:turn.example.org:443?transport=tcp`.
 */
urls: Array<string>,
/**
 * The TURN username: `<unix expiry>:<person>`.
 */
username?: string | null,
/**
 * The TURN password for the username.
 */
credential?: string | null, };

/**
 * The ICE servers for one participant, with when their TURN credentials expire.
 */
export type IceServers = {
/**
 * The call they are for.
 */
call: CallId,
/**
 * The servers (empty when the deployment has none: host candidates only).
 */
servers: Array<IceServer>,
/**
 * When the TURN credentials expire (ms since the Unix epoch). The server pushes new
 * ones at about 80% of their lifetime; `ice_servers` asks for fresh ones at any time.
 */
expires_at: number, };

/**
 * The limits in force on a connection, sent in the welcome.
 */
export type Limits = {
/**
 * See [`MAX_FRAME_BYTES`].
 */
max_frame_bytes: number,
/**
 * See [`MAX_BODY_BYTES`].
 */
max_body_bytes: number,
/**
 * See [`MAX_PAGE_SIZE`].
 */
max_page_size: number,
/**
 * See [`SEND_RATE_PER_SECOND`].
 */
send_rate_per_second: number,
/**
 * See [`SEND_BURST`].
 */
send_burst: number,
/**
 * See [`TYPING_TTL_SECS`].
 */
typing_ttl_secs: number, };

/**
 * A room is live: every event up to `seq` has been sent; new ones follow as they happen.
 */
export type Live = {
/**
 * The room.
 */
room: RoomId,
/**
 * The room's epoch.
 */
epoch: number,
/**
 * The last sequence number sent.
 */
seq: number, };

/**
 * A member of a room as the room shows it.
 */
export type MemberInfo = {
/**
 * The person.
 */
person: PersonId,
/**
 * Their display name.
 */
name: string,
/**
 * Their role.
 */
role: Role,
/**
 * Their presence now.
 */
status: PresenceStatus, };

/**
 * A person in the programme.
 */
export type PersonId = string;

/**
 * Who a person is.
 */
export type PersonInfo = {
/**
 * Their id.
 */
id: PersonId,
/**
 * Their display name.
 */
name: string,
/**
 * Their role.
 */
role: Role,
/**
 * Their region (e.g. `vejle`), empty for staff outside any region.
 */
region: string,
/**
 * Their school, empty for staff.
 */
school: string,
/**
 * Their IANA time zone, e.g. `Europe/Rome`.
 */
time_zone: string, };

/**
 * A message pinned as key learning.
 */
export type Pin = {
/**
 * The room.
 */
room: RoomId,
/**
 * The pinned message.
 */
seq: number,
/**
 * Who pinned it.
 */
pinned_by: PersonId,
/**
 * When.
 */
pinned_at: number, };

/**
 * A person's presence.
 */
export type PresenceStatus = "online" | "away" | "offline";

/**
 * A client request. Tagged by `type`.
 */
export type Request = { "type": "hello",
/**
 * A JWT for the person.
 */
token: string,
/**
 * Per room, the last event the client has; the server sends the rest, then `live`.
 */
resume?: Array<ResumePoint>, } | { "type": "refresh",
/**
 * A new JWT for the same person.
 */
token: string, } | { "type": "send",
/**
 * The room.
 */
room: RoomId,
/**
 * The client's id for this message; a retry with the same id is stored once.
 */
client_msg_id: ClientMsgId,
/**
 * The text.
 */
body: string, } | { "type": "history",
/**
 * The room.
 */
room: RoomId,
/**
 * Events with a sequence number lower than this, newest page first.
 */
before?: number | null,
/**
 * Events with a sequence number higher than this, oldest first.
 */
after?: number | null,
/**
 * The page size, at most [`crate::limits::MAX_PAGE_SIZE`].
 */
limit?: number | null, } | { "type": "join",
/**
 * The room.
 */
room: RoomId, } | { "type": "leave",
/**
 * The room.
 */
room: RoomId, } | { "type": "typing",
/**
 * The room.
 */
room: RoomId,
/**
 * Whether they are typing now.
 */
active: boolean, } | { "type": "read",
/**
 * The room.
 */
room: RoomId,
/**
 * The last sequence number read.
 */
seq: number, } | { "type": "presence",
/**
 * The new status (`offline` is not accepted: close the connection instead).
 */
status: PresenceStatus, } | { "type": "ping" } | { "type": "call_start",
/**
 * The room.
 */
room: RoomId, } | { "type": "call_join",
/**
 * The call.
 */
call: CallId,
/**
 * Take back this person's place in the call.
 */
resume?: boolean, } | { "type": "call_leave",
/**
 * The call.
 */
call: CallId, } | { "type": "call_end",
/**
 * The call.
 */
call: CallId, } | { "type": "call_media",
/**
 * The call.
 */
call: CallId,
/**
 * Microphone on.
 */
mic: boolean,
/**
 * Camera on.
 */
camera: boolean, } | { "type": "call_signal",
/**
 * The call.
 */
call: CallId,
/**
 * The participant session it is for.
 */
to: SessionId,
/**
 * The signal.
 */
signal: Signal, } | { "type": "ice_servers",
/**
 * The call they are for.
 */
call: CallId, } | { "type": "coachings",
/**
 * Only this room's.
 */
room?: RoomId | null, } | { "type": "pin",
/**
 * The room.
 */
room: RoomId,
/**
 * The message.
 */
seq: number, } | { "type": "unpin",
/**
 * The room.
 */
room: RoomId,
/**
 * The message.
 */
seq: number, } | { "type": "pins",
/**
 * The room.
 */
room: RoomId, } | { "type": "members",
/**
 * The room.
 */
room: RoomId,
/**
 * People with an id after this one.
 */
after?: PersonId | null,
/**
 * The page size, at most [`crate::limits::MAX_PAGE_SIZE`].
 */
limit?: number | null, };

/**
 * Where a client is in a room: the last sequence number it holds, in an epoch.
 */
export type ResumePoint = {
/**
 * The room.
 */
room: RoomId,
/**
 * The epoch the client's position belongs to.
 */
epoch: number,
/**
 * The last sequence number the client has.
 */
seq: number, };

/**
 * A person's role in the programme.
 */
export type Role = "head" | "moderator" | "coordinator";

/**
 * One event in a room's history.
 */
export type RoomEvent = {
/**
 * The room.
 */
room: RoomId,
/**
 * Its sequence number in the room, contiguous from 1 within an epoch.
 */
seq: number,
/**
 * When the server stored it.
 */
ts: number,
/**
 * Who caused it.
 */
author: PersonId, } & ({ "kind": "message",
/**
 * The id the sender gave it.
 */
client_msg_id: ClientMsgId,
/**
 * The text, UTF-8, at most [`crate::limits::MAX_BODY_BYTES`].
 */
body: string, } | { "kind": "moderator_joined" } | { "kind": "moderator_left" });

/**
 * A room: `trio-<n>` for a trio, `commons` for the programme, `staff` for moderators
 * and the coordinator.
 */
export type RoomId = string;

/**
 * A room as a person sees it.
 */
export type RoomInfo = {
/**
 * The room.
 */
id: RoomId,
/**
 * Its kind.
 */
kind: RoomKind,
/**
 * Its title.
 */
title: string,
/**
 * Its history epoch.
 */
epoch: number,
/**
 * Its last sequence number (0 when empty).
 */
last_seq: number,
/**
 * Where this person has read to.
 */
read_seq: number,
/**
 * Events after the read marker.
 */
unread: number,
/**
 * When the last event was stored, if any.
 */
last_ts?: number | null,
/**
 * Whether this person is in the room now: always for members; for a moderator of a
 * trio, only after `join`.
 */
joined: boolean,
/**
 * The people of the room, with their presence (moderators who have joined included).
 * For a room of more than [`crate::limits::MAX_LISTED_MEMBERS`] people, only those
 * online or away (at most that many); `members` pages through everyone, and presence
 * changes in such a room are not pushed.
 */
members: Array<MemberInfo>,
/**
 * How many people the room has.
 */
member_count: number,
/**
 * The room's call in progress, if any (later changes come as `call_state`).
 */
call?: CallState | null, };

/**
 * The kind of a room.
 */
export type RoomKind = "trio" | "commons" | "staff";

/**
 * A frame from the server.
 */
export type ServerFrame = {
/**
 * The id of the request this answers; absent on pushed events.
 */
re?: number | null, } & ({ "type": "welcome" } & Welcome | { "type": "ack" } & Ack | { "type": "history" } & History | { "type": "event",
/**
 * The event.
 */
event: RoomEvent, } | { "type": "live" } & Live | { "type": "joined",
/**
 * The room.
 */
room: RoomInfo, } | { "type": "left",
/**
 * The room.
 */
room: RoomId, } | { "type": "typing",
/**
 * The room.
 */
room: RoomId,
/**
 * Who.
 */
person: PersonId,
/**
 * Whether they are typing.
 */
active: boolean, } | { "type": "presence",
/**
 * The room.
 */
room: RoomId,
/**
 * Who.
 */
person: PersonId,
/**
 * Their status now.
 */
status: PresenceStatus, } | { "type": "read",
/**
 * The room.
 */
room: RoomId,
/**
 * The last sequence number read.
 */
seq: number,
/**
 * Events after it.
 */
unread: number, } | { "type": "ok" } | { "type": "pong" } | { "type": "error",
/**
 * The stable code.
 */
code: ErrorCode,
/**
 * A human-readable explanation.
 */
message: string,
/**
 * The room the request was about, when there was one.
 */
room?: RoomId | null, } | { "type": "call_joined",
/**
 * The call as it is now.
 */
call: CallState,
/**
 * This participant's session (signals to it are addressed so).
 */
session: SessionId,
/**
 * STUN and TURN servers with this person's credentials.
 */
ice_servers: IceServers, } | { "type": "call_state",
/**
 * The call as it is now.
 */
call: CallState, } | { "type": "call_signal",
/**
 * The call.
 */
call: CallId,
/**
 * The participant session it comes from (answer to it with `to`).
 */
from: SessionId,
/**
 * The person it comes from.
 */
person: PersonId,
/**
 * The signal.
 */
signal: Signal, } | { "type": "call_ended",
/**
 * The call.
 */
call: CallId,
/**
 * Its room.
 */
room: RoomId,
/**
 * Why it ended.
 */
reason: CallEndReason,
/**
 * Who ended it, for `ended`.
 */
ended_by?: PersonId | null, } | { "type": "ice_servers" } & IceServers | { "type": "coaching",
/**
 * What happened.
 */
change: CoachingChange,
/**
 * The session as it is now.
 */
coaching: CoachingSession,
/**
 * For `moved`: where it started before.
 */
previous_start?: number | null, } | { "type": "coachings",
/**
 * Sessions that have not ended, soonest first.
 */
coachings: Array<CoachingSession>, } | { "type": "pinned",
/**
 * The pin.
 */
pin: Pin,
/**
 * True when pinned, false when the pin was taken away.
 */
pinned: boolean, } | { "type": "pins",
/**
 * The room.
 */
room: RoomId,
/**
 * Its pins, in message order.
 */
pins: Array<Pin>, } | { "type": "members",
/**
 * The room.
 */
room: RoomId,
/**
 * The people, with their presence now.
 */
members: Array<MemberInfo>,
/**
 * Whether more people follow the last one.
 */
has_more: boolean, });

/**
 * A message from the server. Tagged by `type`.
 */
export type ServerMessage = { "type": "welcome" } & Welcome | { "type": "ack" } & Ack | { "type": "history" } & History | { "type": "event",
/**
 * The event.
 */
event: RoomEvent, } | { "type": "live" } & Live | { "type": "joined",
/**
 * The room.
 */
room: RoomInfo, } | { "type": "left",
/**
 * The room.
 */
room: RoomId, } | { "type": "typing",
/**
 * The room.
 */
room: RoomId,
/**
 * Who.
 */
person: PersonId,
/**
 * Whether they are typing.
 */
active: boolean, } | { "type": "presence",
/**
 * The room.
 */
room: RoomId,
/**
 * Who.
 */
person: PersonId,
/**
 * Their status now.
 */
status: PresenceStatus, } | { "type": "read",
/**
 * The room.
 */
room: RoomId,
/**
 * The last sequence number read.
 */
seq: number,
/**
 * Events after it.
 */
unread: number, } | { "type": "ok" } | { "type": "pong" } | { "type": "error",
/**
 * The stable code.
 */
code: ErrorCode,
/**
 * A human-readable explanation.
 */
message: string,
/**
 * The room the request was about, when there was one.
 */
room?: RoomId | null, } | { "type": "call_joined",
/**
 * The call as it is now.
 */
call: CallState,
/**
 * This participant's session (signals to it are addressed so).
 */
session: SessionId,
/**
 * STUN and TURN servers with this person's credentials.
 */
ice_servers: IceServers, } | { "type": "call_state",
/**
 * The call as it is now.
 */
call: CallState, } | { "type": "call_signal",
/**
 * The call.
 */
call: CallId,
/**
 * The participant session it comes from (answer to it with `to`).
 */
from: SessionId,
/**
 * The person it comes from.
 */
person: PersonId,
/**
 * The signal.
 */
signal: Signal, } | { "type": "call_ended",
/**
 * The call.
 */
call: CallId,
/**
 * Its room.
 */
room: RoomId,
/**
 * Why it ended.
 */
reason: CallEndReason,
/**
 * Who ended it, for `ended`.
 */
ended_by?: PersonId | null, } | { "type": "ice_servers" } & IceServers | { "type": "coaching",
/**
 * What happened.
 */
change: CoachingChange,
/**
 * The session as it is now.
 */
coaching: CoachingSession,
/**
 * For `moved`: where it started before.
 */
previous_start?: number | null, } | { "type": "coachings",
/**
 * Sessions that have not ended, soonest first.
 */
coachings: Array<CoachingSession>, } | { "type": "pinned",
/**
 * The pin.
 */
pin: Pin,
/**
 * True when pinned, false when the pin was taken away.
 */
pinned: boolean, } | { "type": "pins",
/**
 * The room.
 */
room: RoomId,
/**
 * Its pins, in message order.
 */
pins: Array<Pin>, } | { "type": "members",
/**
 * The room.
 */
room: RoomId,
/**
 * The people, with their presence now.
 */
members: Array<MemberInfo>,
/**
 * Whether more people follow the last one.
 */
has_more: boolean, };

/**
 * One websocket session (a browser tab or a device), assigned by the server.
 */
export type SessionId = string;

/**
 * A signalling message between two participants' peer connections.
 */
export type Signal = { "kind": "offer",
/**
 * The SDP, at most [`crate::limits::MAX_SDP_BYTES`].
 */
sdp: string,
/**
 * Whether the offer restarts ICE.
 */
ice_restart?: boolean, } | { "kind": "answer",
/**
 * The SDP, at most [`crate::limits::MAX_SDP_BYTES`].
 */
sdp: string, } | { "kind": "candidate",
/**
 * The candidate line, at most [`crate::limits::MAX_CANDIDATE_BYTES`].
 */
candidate: string,
/**
 * The media section's id.
 */
sdp_mid?: string | null,
/**
 * The media section's index.
 */
sdp_mline_index?: number | null, };

/**
 * The answer to `hello`.
 */
export type Welcome = {
/**
 * The protocol version, [`crate::PROTOCOL_VERSION`].
 */
protocol: string,
/**
 * This session's id.
 */
session: SessionId,
/**
 * Who is signed in.
 */
person: PersonInfo,
/**
 * Every room the person can see, with unread counts.
 */
rooms: Array<RoomInfo>,
/**
 * The limits in force.
 */
limits: Limits,
/**
 * When the token expires; send `refresh` before then.
 */
token_expires_at: number, };
