//! Where the client stands in each room: the epoch and the last sequence number it has
//! delivered. This is what makes room events arrive exactly once and in order, whatever the
//! network does: duplicates are dropped, and an event that skips ahead is held back until the
//! gap before it has been filled from history.
//!
//! [`Positions`] is plain state with no I/O. The connection feeds it what the server says
//! (welcome, events, `live`, `joined`, `left`, history pages) and carries out what it answers:
//! deliver these items, or fetch a history page.

use std::collections::{BTreeMap, HashMap};

use triad_protocol::limits::MAX_RESUME_POINTS;
use triad_protocol::{
    Epoch, History, Live, ResumePoint, RoomEvent, RoomId, RoomInfo, Seq, Welcome,
};

/// Something ready to hand to the application, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// A room event, the next one of its room.
    Event(RoomEvent),
    /// The room has caught up to the server.
    Live(Live),
}

/// What the connection must do after telling [`Positions`] something.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Items to deliver now, in this order.
    pub deliver: Vec<Delivery>,
    /// A history page to fetch: events of this room after this sequence number.
    pub fetch: Option<(RoomId, Seq)>,
}

impl Outcome {
    fn deliver(items: Vec<Delivery>) -> Self {
        Self {
            deliver: items,
            fetch: None,
        }
    }

    fn nothing() -> Self {
        Self::default()
    }
}

/// The client's position in one room.
#[derive(Debug, Clone, Default)]
struct Room {
    /// The epoch the position belongs to; unknown for a room first seen through an event.
    epoch: Option<Epoch>,
    /// The last sequence number delivered.
    seq: Seq,
    /// Events after a gap, waiting for the gap to be filled.
    held: BTreeMap<Seq, RoomEvent>,
    /// A `live` waiting until every event up to its sequence number is delivered.
    live: Option<Live>,
    /// Whether a history page for this room is being fetched.
    filling: bool,
}

impl Room {
    fn at(epoch: Option<Epoch>, seq: Seq) -> Self {
        Self {
            epoch,
            seq,
            ..Self::default()
        }
    }

    /// The sequence number the room must reach before it stops filling.
    fn target(&self) -> Seq {
        let held = self.held.keys().next_back().copied().unwrap_or(0);
        let live = self.live.as_ref().map_or(0, |live| live.seq);
        held.max(live)
    }

    /// Delivers the held events that follow the position without a gap, and then the
    /// waiting `live` once the position has reached it.
    fn drain(&mut self, out: &mut Vec<Delivery>) {
        while let Some(entry) = self.held.first_entry() {
            let seq = *entry.key();
            if seq <= self.seq {
                entry.remove();
            } else if seq == self.seq + 1 {
                out.push(Delivery::Event(entry.remove()));
                self.seq = seq;
            } else {
                break;
            }
        }
        if self.held.is_empty()
            && let Some(live) = self.live.take_if(|live| live.seq <= self.seq)
        {
            out.push(Delivery::Live(live));
        }
    }

    /// Forgets everything waiting: the server will send it again after a resume.
    fn reset_waiting(&mut self) {
        self.held.clear();
        self.live = None;
        self.filling = false;
    }
}

/// Per room, where the client stands and what it holds back.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    rooms: HashMap<RoomId, Room>,
}

impl Positions {
    /// No position in any room.
    pub fn new() -> Self {
        Self::default()
    }

    /// The position in a room: its epoch (if known) and the last sequence number delivered.
    #[cfg(test)]
    pub fn get(&self, room: &RoomId) -> Option<(Option<Epoch>, Seq)> {
        self.rooms.get(room).map(|r| (r.epoch, r.seq))
    }

    /// What a `hello` says to resume from: every room whose epoch is known, at most
    /// [`MAX_RESUME_POINTS`], in room order.
    pub fn resume_points(&self) -> Vec<ResumePoint> {
        let mut points: Vec<ResumePoint> = self
            .rooms
            .iter()
            .filter_map(|(room, r)| {
                r.epoch.map(|epoch| ResumePoint {
                    room: room.clone(),
                    epoch,
                    seq: r.seq,
                })
            })
            .collect();
        points.sort_by(|a, b| a.room.cmp(&b.room));
        points.truncate(MAX_RESUME_POINTS);
        points
    }

    /// The connection dropped: whatever was held back or being fetched will be replayed by
    /// the server after the resume, so it is forgotten.
    pub fn on_disconnect(&mut self) {
        for room in self.rooms.values_mut() {
            room.reset_waiting();
        }
    }

    /// A welcome: keep the positions whose epoch matches the room's (the server replays
    /// from them); start every other joined room at the welcome's `last_seq`; forget rooms
    /// the person is not in.
    pub fn on_welcome(&mut self, welcome: &Welcome) {
        let mut rooms = HashMap::with_capacity(welcome.rooms.len());
        for info in welcome.rooms.iter().filter(|info| info.joined) {
            let room = match self.rooms.remove(&info.id) {
                Some(mut room) if room.epoch == Some(info.epoch) => {
                    room.reset_waiting();
                    room
                }
                _ => Room::at(Some(info.epoch), info.last_seq),
            };
            rooms.insert(info.id.clone(), room);
        }
        self.rooms = rooms;
    }

    /// The answer to `join`: the room starts at its `last_seq`, unless events pushed before
    /// the answer already gave it a position.
    pub fn on_joined(&mut self, info: &RoomInfo) {
        match self.rooms.get_mut(&info.id) {
            None => {
                self.rooms
                    .insert(info.id.clone(), Room::at(Some(info.epoch), info.last_seq));
            }
            Some(room) if room.epoch.is_none() => room.epoch = Some(info.epoch),
            Some(room) if room.epoch != Some(info.epoch) => {
                *room = Room::at(Some(info.epoch), info.last_seq);
            }
            Some(_) => {}
        }
    }

    /// The answer to `leave`: no more events come from the room.
    pub fn on_left(&mut self, room: &RoomId) {
        self.rooms.remove(room);
    }

    /// A pushed room event.
    pub fn on_event(&mut self, event: RoomEvent) -> Outcome {
        let Some(room) = self.rooms.get_mut(&event.room) else {
            // A room the client had no position in (e.g. the push of a join that came before
            // its answer): the first event seen sets the position.
            self.rooms
                .insert(event.room.clone(), Room::at(None, event.seq));
            return Outcome::deliver(vec![Delivery::Event(event)]);
        };
        if event.seq <= room.seq {
            return Outcome::nothing();
        }
        if room.filling {
            room.held.entry(event.seq).or_insert(event);
            return Outcome::nothing();
        }
        if event.seq == room.seq + 1 {
            room.seq = event.seq;
            let mut out = vec![Delivery::Event(event)];
            room.drain(&mut out);
            return Outcome::deliver(out);
        }
        tracing::warn!(
            room = %event.room, have = room.seq, got = event.seq,
            "gap in room events; fetching it from history"
        );
        let (name, after) = (event.room.clone(), room.seq);
        room.held.insert(event.seq, event);
        room.filling = true;
        Outcome {
            deliver: Vec::new(),
            fetch: Some((name, after)),
        }
    }

    /// A `live` push: delivered once every event up to its sequence number is.
    pub fn on_live(&mut self, live: Live) -> Outcome {
        let Some(room) = self.rooms.get_mut(&live.room) else {
            self.rooms
                .insert(live.room.clone(), Room::at(Some(live.epoch), live.seq));
            return Outcome::deliver(vec![Delivery::Live(live)]);
        };
        match room.epoch {
            None => room.epoch = Some(live.epoch),
            Some(epoch) if epoch != live.epoch => {
                tracing::warn!(room = %live.room, "room epoch changed; positions reset");
                *room = Room::at(Some(live.epoch), live.seq);
                return Outcome::deliver(vec![Delivery::Live(live)]);
            }
            Some(_) => {}
        }
        if room.filling {
            room.live = Some(live);
            return Outcome::nothing();
        }
        if live.seq <= room.seq {
            return Outcome::deliver(vec![Delivery::Live(live)]);
        }
        tracing::warn!(
            room = %live.room, have = room.seq, live = live.seq,
            "room is live past the events received; fetching the rest from history"
        );
        let (name, after) = (live.room.clone(), room.seq);
        room.live = Some(live);
        room.filling = true;
        Outcome {
            deliver: Vec::new(),
            fetch: Some((name, after)),
        }
    }

    /// A history page fetched to fill a gap.
    pub fn on_fill(&mut self, page: History) -> Outcome {
        let Some(room) = self.rooms.get_mut(&page.room) else {
            return Outcome::nothing();
        };
        if !room.filling {
            return Outcome::nothing();
        }
        match room.epoch {
            None => room.epoch = Some(page.epoch),
            Some(epoch) if epoch != page.epoch => {
                tracing::warn!(room = %page.room, "room epoch changed while filling a gap");
                let seq = page.events.last().map_or(0, |event| event.seq);
                *room = Room::at(Some(page.epoch), seq);
                return Outcome::nothing();
            }
            Some(_) => {}
        }
        let before = room.seq;
        for event in page.events {
            if event.seq > room.seq && event.room == page.room {
                room.held.entry(event.seq).or_insert(event);
            }
        }
        let mut out = Vec::new();
        room.drain(&mut out);
        if room.seq < room.target() && room.seq == before {
            // The page brought nothing that follows the position: history does not have the
            // missing events either. Skip the hole rather than ask forever, and deliver what
            // follows it.
            let next = room.held.keys().next().map_or(room.target(), |seq| seq - 1);
            tracing::warn!(
                room = %page.room, from = room.seq + 1, to = next,
                "events missing from history; skipping them"
            );
            room.seq = next;
            room.drain(&mut out);
        }
        if room.seq < room.target() {
            return Outcome {
                deliver: out,
                fetch: Some((page.room, room.seq)),
            };
        }
        room.filling = false;
        room.drain(&mut out);
        Outcome::deliver(out)
    }

    /// A history page could not be fetched: stop filling, keep what is held, and let the
    /// resume after a reconnect bring the rest.
    pub fn on_fill_failed(&mut self, room: &RoomId) {
        if let Some(room) = self.rooms.get_mut(room) {
            room.reset_waiting();
        }
    }
}

#[cfg(test)]
mod tests {
    use triad_protocol::{EventBody, Limits, PersonId, PersonInfo, Role, RoomKind, SessionId};

    use super::*;

    fn room(name: &str) -> RoomId {
        RoomId::new(name).expect("valid room id")
    }

    fn event(name: &str, seq: Seq) -> RoomEvent {
        RoomEvent {
            room: room(name),
            seq,
            ts: 1_700_000_000_000,
            author: PersonId::new("anna").expect("valid person id"),
            body: EventBody::Message {
                client_msg_id: triad_protocol::ClientMsgId(format!("m{seq}")),
                body: format!("message {seq}"),
            },
        }
    }

    fn info(name: &str, epoch: Epoch, last_seq: Seq, joined: bool) -> RoomInfo {
        RoomInfo {
            id: room(name),
            kind: RoomKind::Trio,
            title: name.to_owned(),
            epoch,
            last_seq,
            read_seq: 0,
            unread: 0,
            last_ts: None,
            joined,
            members: Vec::new(),
            member_count: 0,
            call: None,
        }
    }

    fn welcome(rooms: Vec<RoomInfo>) -> Welcome {
        Welcome {
            protocol: triad_protocol::PROTOCOL_VERSION.to_owned(),
            session: SessionId("s1".into()),
            person: PersonInfo {
                id: PersonId::new("anna").expect("valid person id"),
                name: "Anna".into(),
                role: Role::Head,
                region: String::new(),
                school: String::new(),
                time_zone: "Europe/Copenhagen".into(),
            },
            rooms,
            limits: Limits::default(),
            token_expires_at: 0,
        }
    }

    fn live(name: &str, epoch: Epoch, seq: Seq) -> Live {
        Live {
            room: room(name),
            epoch,
            seq,
        }
    }

    fn page(
        name: &str,
        epoch: Epoch,
        seqs: std::ops::RangeInclusive<Seq>,
        has_more: bool,
    ) -> History {
        History {
            room: room(name),
            epoch,
            events: seqs.map(|s| event(name, s)).collect(),
            has_more,
        }
    }

    fn seqs(outcome: &Outcome) -> Vec<Seq> {
        outcome
            .deliver
            .iter()
            .filter_map(|d| match d {
                Delivery::Event(e) => Some(e.seq),
                Delivery::Live(_) => None,
            })
            .collect()
    }

    fn has_live(outcome: &Outcome) -> bool {
        outcome
            .deliver
            .iter()
            .any(|d| matches!(d, Delivery::Live(_)))
    }

    #[test]
    fn welcome_sets_positions_and_keeps_matching_epochs() {
        let mut p = Positions::new();
        p.on_welcome(&welcome(vec![
            info("trio-1", 1, 10, true),
            info("trio-2", 1, 4, false),
        ]));
        assert_eq!(p.get(&room("trio-1")), Some((Some(1), 10)));
        assert_eq!(
            p.get(&room("trio-2")),
            None,
            "rooms not joined have no position"
        );

        p.on_event(event("trio-1", 11));
        p.on_disconnect();
        // Same epoch: the position stays, whatever the welcome's last_seq.
        p.on_welcome(&welcome(vec![info("trio-1", 1, 15, true)]));
        assert_eq!(p.get(&room("trio-1")), Some((Some(1), 11)));
        assert_eq!(
            p.resume_points(),
            vec![ResumePoint {
                room: room("trio-1"),
                epoch: 1,
                seq: 11
            }]
        );
        // Another epoch: the position is void and starts at last_seq.
        p.on_welcome(&welcome(vec![info("trio-1", 2, 3, true)]));
        assert_eq!(p.get(&room("trio-1")), Some((Some(2), 3)));
    }

    #[test]
    fn in_order_events_are_delivered_once() {
        let mut p = Positions::new();
        p.on_welcome(&welcome(vec![info("trio-1", 1, 0, true)]));
        assert_eq!(seqs(&p.on_event(event("trio-1", 1))), vec![1]);
        assert_eq!(seqs(&p.on_event(event("trio-1", 2))), vec![2]);
        assert_eq!(p.on_event(event("trio-1", 2)), Outcome::nothing());
        assert_eq!(p.on_event(event("trio-1", 1)), Outcome::nothing());
        assert_eq!(seqs(&p.on_event(event("trio-1", 3))), vec![3]);
        assert_eq!(p.get(&room("trio-1")), Some((Some(1), 3)));
    }

    #[test]
    fn a_gap_is_filled_from_history_before_later_events() {
        let mut p = Positions::new();
        p.on_welcome(&welcome(vec![info("trio-1", 1, 2, true)]));
        let out = p.on_event(event("trio-1", 6));
        assert_eq!(
            out,
            Outcome {
                deliver: vec![],
                fetch: Some((room("trio-1"), 2))
            }
        );
        // While filling, later pushes are held too, and duplicates of held ones ignored.
        assert_eq!(p.on_event(event("trio-1", 7)), Outcome::nothing());
        assert_eq!(p.on_event(event("trio-1", 7)), Outcome::nothing());
        assert_eq!(p.on_live(live("trio-1", 1, 7)), Outcome::nothing());

        // The first page brings part of the gap.
        let out = p.on_fill(page("trio-1", 1, 3..=4, true));
        assert_eq!(seqs(&out), vec![3, 4]);
        assert_eq!(out.fetch, Some((room("trio-1"), 4)));
        // The second overlaps what is held.
        let out = p.on_fill(page("trio-1", 1, 5..=7, false));
        assert_eq!(seqs(&out), vec![5, 6, 7]);
        assert!(has_live(&out), "live comes after the events it covers");
        assert_eq!(out.fetch, None);
        assert_eq!(seqs(&p.on_event(event("trio-1", 8))), vec![8]);
    }

    #[test]
    fn a_hole_missing_from_history_is_skipped() {
        let mut p = Positions::new();
        p.on_welcome(&welcome(vec![info("trio-1", 1, 2, true)]));
        p.on_event(event("trio-1", 6));
        let out = p.on_fill(page("trio-1", 1, 3..=3, false));
        assert_eq!(seqs(&out), vec![3]);
        assert_eq!(out.fetch, Some((room("trio-1"), 3)));
        // 4 and 5 are nowhere: a page that brings nothing new skips the hole.
        let empty = History {
            room: room("trio-1"),
            epoch: 1,
            events: Vec::new(),
            has_more: false,
        };
        let out = p.on_fill(empty);
        assert_eq!(seqs(&out), vec![6]);
        assert_eq!(out.fetch, None);
        assert_eq!(p.get(&room("trio-1")), Some((Some(1), 6)));
    }

    #[test]
    fn live_past_the_position_fetches_the_rest() {
        let mut p = Positions::new();
        p.on_welcome(&welcome(vec![info("trio-1", 1, 2, true)]));
        let out = p.on_live(live("trio-1", 1, 4));
        assert_eq!(out.fetch, Some((room("trio-1"), 2)));
        let out = p.on_fill(page("trio-1", 1, 3..=4, false));
        assert_eq!(seqs(&out), vec![3, 4]);
        assert!(has_live(&out));
        // A live that is up to date is delivered at once.
        assert!(has_live(&p.on_live(live("trio-1", 1, 4))));
    }

    #[test]
    fn a_disconnect_forgets_what_is_held() {
        let mut p = Positions::new();
        p.on_welcome(&welcome(vec![info("trio-1", 1, 2, true)]));
        p.on_event(event("trio-1", 5));
        p.on_disconnect();
        // A late page of the old connection is ignored.
        assert_eq!(
            p.on_fill(page("trio-1", 1, 3..=4, false)),
            Outcome::nothing()
        );
        p.on_welcome(&welcome(vec![info("trio-1", 1, 5, true)]));
        assert_eq!(p.get(&room("trio-1")), Some((Some(1), 2)));
        assert_eq!(seqs(&p.on_event(event("trio-1", 3))), vec![3]);
    }

    #[test]
    fn joining_sets_a_position_only_when_there_is_none() {
        let mut p = Positions::new();
        p.on_welcome(&welcome(vec![info("trio-1", 1, 5, false)]));
        // The join's push came before the answer: it sets the position.
        assert_eq!(seqs(&p.on_event(event("trio-1", 6))), vec![6]);
        p.on_joined(&info("trio-1", 1, 6, true));
        assert_eq!(p.get(&room("trio-1")), Some((Some(1), 6)));
        assert_eq!(seqs(&p.on_event(event("trio-1", 7))), vec![7]);

        // The answer came first: later pushes are delivered.
        p.on_left(&room("trio-1"));
        assert_eq!(p.get(&room("trio-1")), None);
        p.on_joined(&info("trio-1", 1, 9, true));
        assert_eq!(p.on_event(event("trio-1", 9)), Outcome::nothing());
        assert_eq!(seqs(&p.on_event(event("trio-1", 10))), vec![10]);
    }

    #[test]
    fn an_epoch_change_in_live_resets_the_position() {
        let mut p = Positions::new();
        p.on_welcome(&welcome(vec![info("trio-1", 1, 7, true)]));
        assert!(has_live(&p.on_live(live("trio-1", 2, 1))));
        assert_eq!(p.get(&room("trio-1")), Some((Some(2), 1)));
        assert_eq!(seqs(&p.on_event(event("trio-1", 2))), vec![2]);
    }

    #[test]
    fn a_failed_fill_waits_for_the_resume() {
        let mut p = Positions::new();
        p.on_welcome(&welcome(vec![info("trio-1", 1, 2, true)]));
        p.on_event(event("trio-1", 5));
        p.on_fill_failed(&room("trio-1"));
        assert_eq!(p.get(&room("trio-1")), Some((Some(1), 2)));
        assert_eq!(seqs(&p.on_event(event("trio-1", 3))), vec![3]);
    }

    #[test]
    fn resume_points_are_bounded() {
        let mut p = Positions::new();
        let rooms = (0..MAX_RESUME_POINTS + 10)
            .map(|i| info(&format!("r{i}"), 1, 1, true))
            .collect();
        p.on_welcome(&welcome(rooms));
        assert_eq!(p.resume_points().len(), MAX_RESUME_POINTS);
    }
}
