//! The conformance suite for [`Store`]: what every backend must do, written once as async
//! functions in [`suite`] and run here against [`EmbeddedStore`] and [`RedisStore`]: each
//! backend makes a fresh store its own way.
//!
//! Most checks take a `&dyn Store`; those that append from many tasks at once take a
//! [`SharedStore`] so the tasks can be spawned, and those about the sink take the
//! [`Recorder`] the store was opened with. A shared store may hand events to its sink after
//! answering the append, so the checks wait for the sink ([`Recorder::wait_for`]) before
//! comparing what it got; the Redis runs watch the rooms first.
//!
//! [`EmbeddedStore`]: super::embedded::EmbeddedStore
//! [`RedisStore`]: super::redis::RedisStore

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use triad_protocol::{ClientMsgId, PersonId, PersonInfo, Role, RoomEvent, RoomId, RoomKind, Seq};

use super::{EventSink, Programme, RoomRecord, SharedStore, Store, StoreError};

/// How long a check waits for events to reach the sink.
const SINK_DEADLINE: Duration = Duration::from_secs(20);

/// A sink that keeps every event it is handed, in order.
pub(super) struct Recorder {
    events: Mutex<Vec<RoomEvent>>,
    /// How many events were handed so far; wakes [`Recorder::wait_for`].
    count: watch::Sender<usize>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            events: Mutex::default(),
            count: watch::Sender::new(0),
        }
    }
}

impl EventSink for Recorder {
    fn publish(&self, event: &RoomEvent) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.clone());
        self.count.send_modify(|count| *count += 1);
    }
}

impl Recorder {
    /// Everything published so far.
    pub(super) fn events(&self) -> Vec<RoomEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The sequence numbers published for one room, in the order they were published.
    pub(super) fn seqs_in(&self, room: &RoomId) -> Vec<Seq> {
        self.events()
            .iter()
            .filter(|event| &event.room == room)
            .map(|event| event.seq)
            .collect()
    }

    /// Waits until at least `count` events of `room` were published; panics after
    /// [`SINK_DEADLINE`]. What they are is for the caller to check.
    pub(super) async fn wait_for(&self, room: &RoomId, count: usize) {
        let mut changes = self.count.subscribe();
        let arrived = changes.wait_for(|_| self.seqs_in(room).len() >= count);
        let waited = tokio::time::timeout(SINK_DEADLINE, arrived).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "{room}: the sink got {:?}, expected {count} events",
            self.seqs_in(room)
        );
    }
}

fn room(id: &str) -> RoomId {
    RoomId::new(id).expect("valid room id")
}

fn person(id: &str) -> PersonId {
    PersonId::new(id).expect("valid person id")
}

fn msg(id: &str) -> ClientMsgId {
    ClientMsgId(id.to_owned())
}

fn someone(id: &str, name: &str, role: Role) -> PersonInfo {
    PersonInfo {
        id: person(id),
        name: name.to_owned(),
        role,
        region: if role == Role::Head {
            "vejle".into()
        } else {
            String::new()
        },
        school: if role == Role::Head {
            format!("{name} School")
        } else {
            String::new()
        },
        time_zone: "Europe/Copenhagen".into(),
    }
}

fn room_record(id: &str, kind: RoomKind, members: &[&str], moderators: &[&str]) -> RoomRecord {
    RoomRecord {
        id: room(id),
        kind,
        title: format!("Room {id}"),
        members: members.iter().copied().map(person).collect(),
        moderators: moderators.iter().copied().map(person).collect(),
        joined_moderators: Vec::new(),
    }
}

/// Three heads, two moderators and a coordinator; two trios, the commons and the staff room.
pub(super) fn programme() -> Programme {
    let heads = ["anna", "ben", "carla"];
    let everyone = ["anna", "ben", "carla", "mona", "olga", "cora"];
    Programme {
        people: vec![
            someone("anna", "Anna", Role::Head),
            someone("ben", "Ben", Role::Head),
            someone("carla", "Carla", Role::Head),
            someone("mona", "Mona", Role::Moderator),
            someone("olga", "Olga", Role::Moderator),
            someone("cora", "Cora", Role::Coordinator),
        ],
        rooms: vec![
            room_record("trio-1", RoomKind::Trio, &heads, &["mona", "olga"]),
            room_record("trio-2", RoomKind::Trio, &heads, &["mona"]),
            room_record("commons", RoomKind::Commons, &everyone, &[]),
            room_record("staff", RoomKind::Staff, &["mona", "olga", "cora"], &[]),
        ],
    }
}

/// The checks, one function each. Every function starts from a fresh, empty store.
pub(super) mod suite {
    use std::collections::HashSet;
    use std::future::Future;
    use std::time::Duration;

    use tokio::task::JoinSet;
    use triad_protocol::EventBody;

    use super::*;
    use crate::store::{Appended, HistoryPage, Page, now_ms};

    async fn set_up(store: &dyn Store) {
        store
            .apply_programme(&programme())
            .await
            .expect("apply the programme");
    }

    async fn say(store: &dyn Store, room_id: &str, author: &str, id: &str) -> Appended {
        store
            .append_message(
                &room(room_id),
                &person(author),
                &msg(id),
                &format!("text of {id}"),
            )
            .await
            .expect("append")
    }

    async fn seqs_of_history(store: &dyn Store, room_id: &str) -> Vec<Seq> {
        let page = store
            .history(&room(room_id), Page::Latest { limit: 10_000 })
            .await;
        page.expect("history")
            .events
            .iter()
            .map(|event| event.seq)
            .collect()
    }

    fn seqs(page: &HistoryPage) -> Vec<Seq> {
        page.events.iter().map(|event| event.seq).collect()
    }

    /// 8 tasks append 50 messages each into one room: the room holds seq 1..=400, no gap,
    /// no repeat, timestamps never going back, and the sink saw them in that order.
    pub(in super::super) async fn sequence_numbers_are_contiguous_under_concurrent_appends(
        store: SharedStore,
        sink: Arc<Recorder>,
    ) {
        set_up(store.as_ref()).await;
        let mut tasks = JoinSet::new();
        for task in 0..8 {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                let mut got = Vec::new();
                for n in 0..50 {
                    let author = ["anna", "ben", "carla"][n % 3];
                    let appended =
                        say(store.as_ref(), "trio-1", author, &format!("t{task}-{n}")).await;
                    assert!(!appended.duplicate);
                    got.push(appended.event.seq);
                }
                got
            });
        }
        let mut acked: Vec<Seq> = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let got = done.expect("append task");
            assert!(
                got.windows(2).all(|pair| pair[0] < pair[1]),
                "one task's acks go up"
            );
            acked.extend(got);
        }
        acked.sort_unstable();
        let expected: Vec<Seq> = (1..=400).collect();
        assert_eq!(acked, expected);

        let page = store
            .history(&room("trio-1"), Page::Latest { limit: 1000 })
            .await;
        let page = page.expect("history");
        assert_eq!(seqs(&page), expected);
        assert!(!page.has_more);
        assert!(page.events.windows(2).all(|pair| pair[0].ts <= pair[1].ts));
        let ids: HashSet<_> = page
            .events
            .iter()
            .filter_map(|e| e.body.client_msg_id())
            .collect();
        assert_eq!(ids.len(), 400);

        let state = store.room_state(&room("trio-1")).await.expect("room state");
        assert_eq!(state.last_seq, 400);
        assert_eq!(state.last_ts, page.events.last().map(|event| event.ts));
        sink.wait_for(&room("trio-1"), 400).await;
        assert_eq!(sink.seqs_in(&room("trio-1")), expected);
    }

    /// Appends into two rooms at once, with retries and a moderator joining: the sink gets
    /// every new event exactly once, per room in seq order, and nothing for a retry.
    pub(in super::super) async fn the_sink_gets_every_new_event_once_in_order(
        store: SharedStore,
        sink: Arc<Recorder>,
    ) {
        set_up(store.as_ref()).await;
        let mut tasks = JoinSet::new();
        for task in 0..6 {
            let store = Arc::clone(&store);
            let room_id = if task % 2 == 0 { "trio-1" } else { "trio-2" };
            tasks.spawn(async move {
                for n in 0..20 {
                    let id = format!("t{task}-{n}");
                    say(store.as_ref(), room_id, "anna", &id).await;
                    // Every other message is sent twice, as a client retrying would.
                    if n % 2 == 0 {
                        assert!(say(store.as_ref(), room_id, "anna", &id).await.duplicate);
                    }
                }
            });
        }
        let joined = store
            .set_moderator_joined(&room("trio-1"), &person("mona"), true)
            .await;
        let joined = joined.expect("join").expect("a join event");
        while let Some(done) = tasks.join_next().await {
            done.expect("append task");
        }

        sink.wait_for(&room("trio-1"), 61).await;
        sink.wait_for(&room("trio-2"), 60).await;
        for room_id in ["trio-1", "trio-2"] {
            let stored = seqs_of_history(store.as_ref(), room_id).await;
            assert_eq!(sink.seqs_in(&room(room_id)), stored, "{room_id}");
        }
        assert_eq!(sink.seqs_in(&room("trio-1")).len(), 61);
        assert_eq!(sink.seqs_in(&room("trio-2")).len(), 60);
        assert_eq!(
            sink.events()
                .iter()
                .filter(|event| **event == joined)
                .count(),
            1
        );
    }

    /// A retried send returns the original event, marked duplicate, and stores nothing.
    pub(in super::super) async fn a_retried_message_is_stored_once(
        store: &dyn Store,
        sink: &Recorder,
    ) {
        set_up(store).await;
        let first = say(store, "trio-1", "anna", "m-1").await;
        say(store, "trio-1", "ben", "m-2").await;
        let retry = store
            .append_message(
                &room("trio-1"),
                &person("anna"),
                &msg("m-1"),
                "edited on retry",
            )
            .await
            .expect("retry");
        assert!(retry.duplicate);
        assert_eq!(retry.event, first.event);
        assert_eq!(retry.event.seq, 1);
        assert_eq!(seqs_of_history(store, "trio-1").await, vec![1, 2]);
        sink.wait_for(&room("trio-1"), 2).await;
        assert_eq!(sink.seqs_in(&room("trio-1")), vec![1, 2]);
        let state = store.room_state(&room("trio-1")).await.expect("room state");
        assert_eq!(state.last_seq, 2);
    }

    /// The same message sent four times at once is stored once; every send gets its event.
    pub(in super::super) async fn concurrent_retries_are_stored_once(store: SharedStore) {
        set_up(store.as_ref()).await;
        let mut tasks = JoinSet::new();
        for n in 0..20 {
            for _ in 0..4 {
                let store = Arc::clone(&store);
                tasks.spawn(async move {
                    let id = format!("m-{n}");
                    (id.clone(), say(store.as_ref(), "trio-1", "ben", &id).await)
                });
            }
        }
        let mut answers: Vec<(String, Appended)> = Vec::new();
        while let Some(done) = tasks.join_next().await {
            answers.push(done.expect("append task"));
        }
        for n in 0..20 {
            let id = format!("m-{n}");
            let same: Vec<&Appended> = answers
                .iter()
                .filter(|(sent, _)| *sent == id)
                .map(|(_, got)| got)
                .collect();
            assert_eq!(same.len(), 4);
            assert_eq!(same.iter().filter(|got| !got.duplicate).count(), 1, "{id}");
            assert!(same.iter().all(|got| got.event == same[0].event), "{id}");
        }
        let expected: Vec<Seq> = (1..=20).collect();
        assert_eq!(seqs_of_history(store.as_ref(), "trio-1").await, expected);
    }

    /// A client message id is scoped to its room.
    pub(in super::super) async fn the_same_client_msg_id_in_two_rooms_is_two_messages(
        store: &dyn Store,
    ) {
        set_up(store).await;
        let in_one = say(store, "trio-1", "anna", "same").await;
        let in_two = say(store, "trio-2", "anna", "same").await;
        assert!(!in_one.duplicate);
        assert!(!in_two.duplicate);
        assert_eq!((in_one.event.seq, in_two.event.seq), (1, 1));
        assert_eq!(in_two.event.room, room("trio-2"));
        assert_eq!(seqs_of_history(store, "trio-1").await, vec![1]);
        assert_eq!(seqs_of_history(store, "trio-2").await, vec![1]);
    }

    /// Pages of history: the latest, before a seq, after a seq, with `has_more` right at
    /// both ends, and an empty room.
    pub(in super::super) async fn history_pages_both_ways(store: &dyn Store) {
        set_up(store).await;
        let empty = store
            .history(&room("trio-2"), Page::Latest { limit: 5 })
            .await;
        let empty = empty.expect("history of an empty room");
        assert!(empty.events.is_empty());
        assert!(!empty.has_more);
        let state = store.room_state(&room("trio-2")).await.expect("room state");
        assert_eq!(
            (empty.epoch, state.last_seq, state.last_ts),
            (state.epoch, 0, None)
        );
        let after = store
            .history(&room("trio-2"), Page::After { after: 0, limit: 5 })
            .await;
        assert!(after.expect("history").events.is_empty());

        for n in 1..=10 {
            say(store, "trio-1", "carla", &format!("m-{n}")).await;
        }
        let epoch = store
            .room_state(&room("trio-1"))
            .await
            .expect("room state")
            .epoch;
        let latest = |limit| Page::Latest { limit };
        let before = |before, limit| Page::Before { before, limit };
        let after = |after, limit| Page::After { after, limit };
        let all: Vec<Seq> = (1..=10).collect();
        let cases: [(Page, Vec<Seq>, bool); 13] = [
            (latest(3), vec![8, 9, 10], true),
            (latest(10), all.clone(), false),
            (latest(50), all, false),
            (before(8, 3), vec![5, 6, 7], true),
            (before(4, 3), vec![1, 2, 3], false),
            (before(1, 3), vec![], false),
            (before(0, 3), vec![], false),
            (before(100, 2), vec![9, 10], true),
            (after(0, 3), vec![1, 2, 3], true),
            (after(6, 3), vec![7, 8, 9], true),
            (after(7, 3), vec![8, 9, 10], false),
            (after(10, 3), vec![], false),
            (after(u64::MAX, 3), vec![], false),
        ];
        for (page, expected, has_more) in cases {
            let got = store.history(&room("trio-1"), page).await.expect("history");
            assert_eq!(seqs(&got), expected, "{page:?}");
            assert_eq!(got.has_more, has_more, "{page:?}");
            assert_eq!(got.epoch, epoch, "{page:?}");
            assert!(got.events.iter().all(|event| event.room == room("trio-1")));
        }
        let page = store
            .history(&room("trio-1"), Page::After { after: 1, limit: 1 })
            .await;
        let event = &page.expect("history").events[0];
        assert_eq!(event.author, person("carla"));
        let expected_body = EventBody::Message {
            client_msg_id: msg("m-2"),
            body: "text of m-2".into(),
        };
        assert_eq!(event.body, expected_body);
    }

    /// Everything about a room that does not exist is refused with `UnknownRoom`.
    pub(in super::super) async fn an_unknown_room_is_refused(store: &dyn Store) {
        set_up(store).await;
        let nowhere = room("trio-99");
        let (anna, mona) = (person("anna"), person("mona"));
        fn is_unknown<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
            assert!(
                matches!(&result, Err(StoreError::UnknownRoom(r)) if r.as_str() == "trio-99"),
                "{what}: {result:?}"
            );
        }
        is_unknown(
            store
                .append_message(&nowhere, &anna, &msg("m-1"), "hi")
                .await,
            "append",
        );
        is_unknown(
            store.history(&nowhere, Page::Latest { limit: 5 }).await,
            "history",
        );
        is_unknown(store.room_state(&nowhere).await, "room state");
        is_unknown(store.set_read(&nowhere, &anna, 1).await, "set read");
        is_unknown(store.read_marker(&nowhere, &anna).await, "read marker");
        is_unknown(
            store.set_moderator_joined(&nowhere, &mona, true).await,
            "join",
        );
        assert_eq!(store.room(&nowhere).await.expect("room"), None);
        assert_eq!(store.person(&person("nobody")).await.expect("person"), None);
        // The refusals stored nothing anywhere.
        assert_eq!(seqs_of_history(store, "trio-1").await, Vec::<Seq>::new());
    }

    /// Read markers start at 0, move only forward, never past the last event, and an
    /// author's own message moves theirs.
    pub(in super::super) async fn read_markers_only_move_forward(store: &dyn Store) {
        set_up(store).await;
        let trio = room("trio-1");
        let (anna, ben) = (person("anna"), person("ben"));
        assert_eq!(store.read_marker(&trio, &ben).await.expect("marker"), 0);
        assert_eq!(
            store.set_read(&trio, &ben, 5).await.expect("set read"),
            0,
            "empty room"
        );

        for n in 1..=3 {
            say(store, "trio-1", "anna", &format!("m-{n}")).await;
        }
        assert_eq!(
            store.read_marker(&trio, &anna).await.expect("marker"),
            3,
            "own messages"
        );
        assert_eq!(store.read_marker(&trio, &ben).await.expect("marker"), 0);
        assert_eq!(store.set_read(&trio, &ben, 2).await.expect("set read"), 2);
        assert_eq!(
            store.set_read(&trio, &ben, 1).await.expect("set read"),
            2,
            "never back"
        );
        assert_eq!(store.read_marker(&trio, &ben).await.expect("marker"), 2);
        assert_eq!(
            store.set_read(&trio, &ben, 99).await.expect("set read"),
            3,
            "clamped"
        );
        assert_eq!(store.read_marker(&trio, &ben).await.expect("marker"), 3);

        say(store, "trio-1", "ben", "m-4").await;
        assert_eq!(store.read_marker(&trio, &ben).await.expect("marker"), 4);
        assert_eq!(store.read_marker(&trio, &anna).await.expect("marker"), 3);
        assert_eq!(
            store
                .read_marker(&room("trio-2"), &ben)
                .await
                .expect("marker"),
            0
        );
    }

    /// The programme version moves after every programme applied, and only then: a node
    /// reads it to know whether its copy of the programme is current.
    pub(in super::super) async fn the_programme_version_moves_with_the_programme(
        store: &dyn Store,
    ) {
        let version = || async { store.programme_version().await.expect("version") };
        let empty = version().await;
        set_up(store).await;
        let applied = version().await;
        assert_ne!(applied, empty, "a programme applied");
        say(store, "trio-1", "anna", "m-1").await;
        store
            .set_read(&room("trio-1"), &person("anna"), 1)
            .await
            .expect("read");
        store
            .set_moderator_joined(&room("trio-1"), &person("mona"), true)
            .await
            .expect("join");
        assert_eq!(
            version().await,
            applied,
            "messages, reads and joins are not counted"
        );
        let mut renamed = programme();
        renamed.people[0].name = "Someone else".into();
        store.apply_programme(&renamed).await.expect("apply again");
        assert_ne!(version().await, applied, "a programme applied again");
    }

    /// Each change of a moderator's presence in a trio room is one system event, visible in
    /// history, to the sink and in the room's record; no change, no event.
    pub(in super::super) async fn moderators_joining_and_leaving_are_announced_once(
        store: &dyn Store,
        sink: &Recorder,
    ) {
        set_up(store).await;
        let trio = room("trio-1");
        let (mona, olga) = (person("mona"), person("olga"));
        say(store, "trio-1", "anna", "m-1").await;

        let joined = store
            .set_moderator_joined(&trio, &mona, true)
            .await
            .expect("join");
        let joined = joined.expect("an event for the join");
        assert_eq!(
            (joined.seq, &joined.author, &joined.body),
            (2, &mona, &EventBody::ModeratorJoined)
        );
        assert_eq!(joined.room, trio);
        let again = store
            .set_moderator_joined(&trio, &mona, true)
            .await
            .expect("join again");
        assert_eq!(again, None);
        let record = store
            .room(&trio)
            .await
            .expect("room")
            .expect("the room exists");
        assert_eq!(record.joined_moderators, vec![mona.clone()]);

        let olga_joined = store
            .set_moderator_joined(&trio, &olga, true)
            .await
            .expect("join");
        assert_eq!(olga_joined.expect("an event").seq, 3);
        let left = store
            .set_moderator_joined(&trio, &mona, false)
            .await
            .expect("leave");
        let left = left.expect("an event for the leave");
        assert_eq!(
            (left.seq, &left.author, &left.body),
            (4, &mona, &EventBody::ModeratorLeft)
        );
        let again = store
            .set_moderator_joined(&trio, &mona, false)
            .await
            .expect("leave again");
        assert_eq!(again, None);
        let never = store
            .set_moderator_joined(&room("trio-2"), &mona, false)
            .await;
        assert_eq!(never.expect("leave a room never joined"), None);

        let record = store
            .room(&trio)
            .await
            .expect("room")
            .expect("the room exists");
        assert_eq!(record.joined_moderators, vec![olga.clone()]);
        assert_eq!(seqs_of_history(store, "trio-1").await, vec![1, 2, 3, 4]);
        sink.wait_for(&trio, 4).await;
        assert_eq!(sink.seqs_in(&trio), vec![1, 2, 3, 4]);
        assert!(sink.seqs_in(&room("trio-2")).is_empty());
        let page = store
            .history(&trio, Page::Latest { limit: 10 })
            .await
            .expect("history");
        assert_eq!(page.events[1], joined);
        assert_eq!(page.events[3], left);
    }

    /// The programme reads back as it was applied.
    pub(in super::super) async fn the_programme_reads_back(store: &dyn Store) {
        assert_eq!(
            store.programme().await.expect("programme"),
            Programme::default()
        );
        set_up(store).await;
        let applied = programme();
        let mut read = store.programme().await.expect("programme");
        read.people.sort_by(|a, b| a.id.cmp(&b.id));
        read.rooms.sort_by(|a, b| a.id.cmp(&b.id));
        let mut expected = applied.clone();
        expected.people.sort_by(|a, b| a.id.cmp(&b.id));
        expected.rooms.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(read, expected);
        assert_eq!(
            store.person(&person("mona")).await.expect("person"),
            Some(applied.people[3].clone())
        );
        assert_eq!(
            store.room(&room("staff")).await.expect("room"),
            Some(applied.rooms[3].clone())
        );
        assert!(store.ready().await);
    }

    /// Applying the programme again updates people and rooms but keeps each room's epoch and
    /// history; joined moderators stay if still assigned; new rooms start empty.
    pub(in super::super) async fn applying_the_programme_again_keeps_history_and_epoch(
        store: &dyn Store,
    ) {
        set_up(store).await;
        let trio = room("trio-1");
        for n in 1..=3 {
            say(store, "trio-1", "ben", &format!("m-{n}")).await;
        }
        for moderator in ["mona", "olga"] {
            let joined = store
                .set_moderator_joined(&trio, &person(moderator), true)
                .await;
            assert!(joined.expect("join").is_some());
        }
        let before = store.room_state(&trio).await.expect("room state");
        let history = store
            .history(&trio, Page::Latest { limit: 50 })
            .await
            .expect("history");

        let mut changed = programme();
        changed.people[0].name = "Anna Jensen".into();
        changed.rooms[0].title = "Trio of the north".into();
        changed.rooms[0].moderators = vec![person("olga")];
        changed
            .rooms
            .push(room_record("trio-3", RoomKind::Trio, &["anna"], &["mona"]));
        store.apply_programme(&changed).await.expect("apply again");

        assert_eq!(store.room_state(&trio).await.expect("room state"), before);
        let again = store
            .history(&trio, Page::Latest { limit: 50 })
            .await
            .expect("history");
        assert_eq!(again, history);
        let record = store
            .room(&trio)
            .await
            .expect("room")
            .expect("the room exists");
        assert_eq!(record.title, "Trio of the north");
        assert_eq!(record.moderators, vec![person("olga")]);
        assert_eq!(
            record.joined_moderators,
            vec![person("olga")],
            "mona is no longer assigned"
        );
        let anna = store
            .person(&person("anna"))
            .await
            .expect("person")
            .expect("anna exists");
        assert_eq!(anna.name, "Anna Jensen");
        let added = store
            .room_state(&room("trio-3"))
            .await
            .expect("the new room");
        assert_eq!((added.last_seq, added.last_ts), (0, None));
        assert_eq!(say(store, "trio-1", "anna", "m-4").await.event.seq, 6);
    }

    /// History, markers, joined moderators and the programme are still there after the
    /// store is dropped and opened again; retries are still recognised. `open` opens the
    /// same store each time it is called.
    pub(in super::super) async fn data_survives_reopening<F, Fut>(open: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = SharedStore>,
    {
        let store = open().await;
        set_up(store.as_ref()).await;
        let trio = room("trio-1");
        for (n, author) in ["anna", "ben", "carla"].into_iter().enumerate() {
            say(store.as_ref(), "trio-1", author, &format!("m-{n}")).await;
        }
        let joined = store
            .set_moderator_joined(&trio, &person("mona"), true)
            .await;
        assert!(joined.expect("join").is_some());
        assert_eq!(
            store
                .set_read(&trio, &person("anna"), 2)
                .await
                .expect("read"),
            2
        );
        let latest = Page::Latest { limit: 50 };
        let state = store.room_state(&trio).await.expect("room state");
        let history = store.history(&trio, latest).await.expect("history");
        let record = store.room(&trio).await.expect("room");
        let everything = store.programme().await.expect("programme");
        drop(store);

        let store = open().await;
        assert_eq!(store.room_state(&trio).await.expect("room state"), state);
        assert_eq!(
            store.history(&trio, latest).await.expect("history"),
            history
        );
        assert_eq!(store.room(&trio).await.expect("room"), record);
        assert_eq!(store.programme().await.expect("programme"), everything);
        for (who, marker) in [("anna", 2), ("ben", 2), ("carla", 3), ("mona", 0)] {
            let read = store
                .read_marker(&trio, &person(who))
                .await
                .expect("marker");
            assert_eq!(read, marker, "{who}");
        }
        let retry = say(store.as_ref(), "trio-1", "anna", "m-0").await;
        assert_eq!((retry.duplicate, retry.event.seq), (true, 1));
        let next = say(store.as_ref(), "trio-1", "anna", "m-9").await;
        assert_eq!((next.duplicate, next.event.seq), (false, 5));
        assert!(next.event.ts >= history.events[3].ts);
    }

    /// Two stores created one after the other give the same room different epochs, so a
    /// client's positions from a lost database are void in its replacement.
    pub(in super::super) async fn fresh_stores_give_rooms_different_epochs(
        first: &dyn Store,
        second: &dyn Store,
    ) {
        set_up(first).await;
        let old = first
            .room_state(&room("trio-1"))
            .await
            .expect("room state")
            .epoch;
        // Epochs come from the clock: wait until it has moved past the first one, as it
        // has by the time a lost database is re-created.
        while u64::try_from(now_ms()).unwrap_or(0) <= old {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        set_up(second).await;
        let new = second
            .room_state(&room("trio-1"))
            .await
            .expect("room state")
            .epoch;
        assert_ne!(old, new);
    }
    /// A call record is inserted, then replaced by the same call id as the call goes on;
    /// a room's records come back oldest first, other rooms' apart, an unknown room is
    /// refused.
    /// Documents: conditional writes are compare-and-set, collections are separate, and a
    /// contended update loses no change.
    pub(in super::super) async fn documents_are_compared_and_set(store: SharedStore) {
        use crate::store::docs::Docs;
        use crate::store::{Collection, Expect};
        let s = store.as_ref();
        assert_eq!(s.doc(Collection::Cycles, "c1").await.unwrap(), None);
        assert!(
            s.write_doc(Collection::Cycles, "c1", Expect::Absent, Some("one".into()))
                .await
                .unwrap()
        );
        assert!(
            !s.write_doc(Collection::Cycles, "c1", Expect::Absent, Some("two".into()))
                .await
                .unwrap(),
            "an insert over an existing document must not happen"
        );
        assert!(
            !s.write_doc(Collection::Cycles, "c1", Expect::Value("zzz".into()), None)
                .await
                .unwrap()
        );
        assert!(
            s.write_doc(
                Collection::Cycles,
                "c1",
                Expect::Value("one".into()),
                Some("three".into())
            )
            .await
            .unwrap()
        );
        assert_eq!(
            s.doc(Collection::Cycles, "c1").await.unwrap().as_deref(),
            Some("three")
        );
        assert_eq!(
            s.doc(Collection::Regions, "c1").await.unwrap(),
            None,
            "collections are separate"
        );
        assert!(
            s.write_doc(
                Collection::Cycles,
                "a0",
                Expect::Anything,
                Some("first".into())
            )
            .await
            .unwrap()
        );
        let all = s.docs(Collection::Cycles).await.unwrap();
        assert_eq!(
            all,
            vec![("a0".into(), "first".into()), ("c1".into(), "three".into())]
        );
        assert!(
            s.write_doc(Collection::Cycles, "a0", Expect::Anything, None)
                .await
                .unwrap()
        );
        assert_eq!(s.docs(Collection::Cycles).await.unwrap().len(), 1);

        // Twenty concurrent increments of one counter: none is lost.
        let mut tasks = JoinSet::new();
        for _ in 0..20 {
            let store = store.clone();
            tasks.spawn(async move {
                let counters: Docs<'_, u32> = Docs::new(store.as_ref(), Collection::Jobs);
                counters
                    .update("counter", |n: Option<u32>| {
                        Ok::<_, ()>((Some(n.unwrap_or(0) + 1), ()))
                    })
                    .await
                    .map_err(|_| "update failed")
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap().unwrap();
        }
        let counters: Docs<'_, u32> = Docs::new(s, Collection::Jobs);
        assert_eq!(counters.get("counter").await.unwrap(), Some(20));
    }

    pub(in super::super) async fn call_records_are_inserted_and_updated(store: &dyn Store) {
        use crate::store::{Attendance, CallRecord};
        use triad_protocol::CallId;

        set_up(store).await;
        let trio = room("trio-1");
        let stretch = |who: &str, joined_at, left_at| Attendance {
            person: person(who),
            joined_at,
            left_at,
        };
        let mut first = CallRecord {
            call: CallId("c-b".into()),
            room: trio.clone(),
            started_by: person("anna"),
            started_at: 1_000,
            ended_at: None,
            attendance: vec![stretch("anna", 1_000, None)],
        };
        store.record_call(&first).await.expect("record a call");
        assert_eq!(
            store.call_records(&trio).await.expect("records"),
            [first.clone()]
        );

        first.attendance.push(stretch("ben", 2_000, Some(3_000)));
        first.attendance.push(stretch("ben", 4_000, None));
        first.ended_at = Some(5_000);
        first.attendance[0].left_at = Some(5_000);
        first.attendance[2].left_at = Some(5_000);
        store.record_call(&first).await.expect("update the call");
        let second = CallRecord {
            call: CallId("c-a".into()),
            room: trio.clone(),
            started_by: person("carla"),
            started_at: 6_000,
            ended_at: None,
            attendance: vec![stretch("carla", 6_000, None)],
        };
        store
            .record_call(&second)
            .await
            .expect("record another call");
        let other = CallRecord {
            call: CallId("c-c".into()),
            room: room("commons"),
            ..second.clone()
        };
        store
            .record_call(&other)
            .await
            .expect("record in another room");

        assert_eq!(
            store.call_records(&trio).await.expect("records"),
            [first, second]
        );
        assert_eq!(
            store.call_records(&room("commons")).await.expect("records"),
            std::slice::from_ref(&other)
        );
        let nowhere = CallRecord {
            room: room("trio-9"),
            ..other
        };
        assert!(matches!(
            store.record_call(&nowhere).await,
            Err(StoreError::UnknownRoom(_))
        ));
        assert!(matches!(
            store.call_records(&room("trio-9")).await,
            Err(StoreError::UnknownRoom(_))
        ));
    }

    /// A room's events, exported from one store and restored into a fresh one, give the
    /// same history, room state (but the new store's epoch), joined moderators and
    /// de-duplication; read markers stay where they were and nothing reaches the sink. An
    /// event that does not follow the room's last one, in seq or in time, or that repeats a
    /// client message id, is refused and stores nothing.
    pub(in super::super) async fn exported_events_restore_into_a_fresh_store(
        source: &dyn Store,
        target: &dyn Store,
        target_sink: &Recorder,
    ) {
        set_up(source).await;
        let trio = room("trio-1");
        let (mona, olga) = (person("mona"), person("olga"));
        say(source, "trio-1", "anna", "m-1").await;
        say(source, "trio-1", "ben", "m-2").await;
        for (moderator, joined) in [(&mona, true), (&olga, true), (&mona, false)] {
            let event = source.set_moderator_joined(&trio, moderator, joined).await;
            assert!(event.expect("join or leave").is_some());
        }
        say(source, "trio-1", "olga", "m-3").await;
        say(source, "trio-2", "carla", "m-1").await;
        let all = Page::Latest { limit: 1000 };
        let exported = source.history(&trio, all).await.expect("history").events;
        assert_eq!(exported.len(), 6);

        set_up(target).await;
        let epoch = target.room_state(&trio).await.expect("room state").epoch;
        for event in &exported {
            target.restore_event(event).await.expect("restore");
        }
        let restored = target.history(&trio, all).await.expect("history");
        assert_eq!(restored.events, exported);
        assert_eq!(restored.epoch, epoch, "the target's own epoch");
        let state = target.room_state(&trio).await.expect("room state");
        let source_state = source.room_state(&trio).await.expect("room state");
        assert_eq!(
            (state.epoch, state.last_seq, state.last_ts),
            (epoch, source_state.last_seq, source_state.last_ts)
        );
        let record = target.room(&trio).await.expect("room").expect("the room");
        assert_eq!(record.joined_moderators, vec![olga.clone()]);
        for who in ["anna", "ben", "olga"] {
            let marker = target.read_marker(&trio, &person(who)).await;
            assert_eq!(marker.expect("marker"), 0, "{who}");
        }
        assert!(target_sink.seqs_in(&trio).is_empty());

        // A send with a restored id is a duplicate of the restored message.
        let retry = target
            .append_message(&trio, &person("ben"), &msg("m-2"), "sent again")
            .await
            .expect("retry");
        assert!(retry.duplicate);
        assert_eq!(retry.event, exported[1]);

        // Refusals: a gap, a repeat, a client message id already used, an older timestamp.
        let last = exported[5].clone();
        let gap = RoomEvent {
            seq: 8,
            ..last.clone()
        };
        let again = last.clone();
        let reused = RoomEvent {
            seq: 7,
            body: EventBody::Message {
                client_msg_id: msg("m-1"),
                body: "again".into(),
            },
            ..last.clone()
        };
        let older = RoomEvent {
            seq: 7,
            ts: last.ts - 1,
            body: EventBody::Message {
                client_msg_id: msg("m-9"),
                body: "from the past".into(),
            },
            ..last.clone()
        };
        for (what, event) in [
            ("a gap", gap),
            ("a repeat", again),
            ("a reused id", reused),
            ("an older ts", older),
        ] {
            let refused = target.restore_event(&event).await;
            assert!(
                matches!(refused, Err(StoreError::Conflict(_))),
                "{what}: {refused:?}"
            );
        }
        let nowhere = RoomEvent {
            room: room("trio-9"),
            ..last.clone()
        };
        assert!(matches!(
            target.restore_event(&nowhere).await,
            Err(StoreError::UnknownRoom(_))
        ));
        assert_eq!(
            target.history(&trio, all).await.expect("history").events,
            exported,
            "the refusals stored nothing"
        );
        assert_eq!(target.room_state(&trio).await.expect("room state"), state);

        // Live traffic goes on from the restored events.
        let next = say(target, "trio-1", "anna", "m-4").await;
        assert!(!next.duplicate);
        assert_eq!(next.event.seq, 7);
        assert!(next.event.ts >= last.ts);

        // A moderator not assigned to the room joins nobody's list by a restored event.
        let stray = RoomEvent {
            room: room("trio-2"),
            seq: 1,
            ts: last.ts,
            author: olga,
            body: EventBody::ModeratorJoined,
        };
        target.restore_event(&stray).await.expect("restore");
        let record = target.room(&room("trio-2")).await.expect("room");
        assert_eq!(
            record.expect("the room").joined_moderators,
            Vec::<PersonId>::new()
        );
        assert_eq!(seqs_of_history(target, "trio-2").await, vec![1]);
    }
}

mod embedded {
    //! The suite against [`EmbeddedStore`], each test on a fresh file.

    use std::path::PathBuf;

    use tempfile::TempDir;

    use super::{Recorder, suite};
    use crate::store::embedded::EmbeddedStore;
    use crate::store::{NoSink, SharedStore};
    use std::sync::Arc;

    /// A store on a fresh file. The store is declared first so it closes before the
    /// directory is removed.
    struct Fresh {
        store: SharedStore,
        sink: Arc<Recorder>,
        _dir: TempDir,
    }

    fn fresh() -> Fresh {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sink = Arc::new(Recorder::default());
        let store = EmbeddedStore::open(&dir.path().join("triad.redb"), sink.clone())
            .expect("open the store");
        Fresh {
            store: Arc::new(store),
            sink,
            _dir: dir,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sequence_numbers_are_contiguous_under_concurrent_appends() {
        let fresh = fresh();
        suite::sequence_numbers_are_contiguous_under_concurrent_appends(fresh.store, fresh.sink)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_sink_gets_every_new_event_once_in_order() {
        let fresh = fresh();
        suite::the_sink_gets_every_new_event_once_in_order(fresh.store, fresh.sink).await;
    }

    #[tokio::test]
    async fn a_retried_message_is_stored_once() {
        let fresh = fresh();
        suite::a_retried_message_is_stored_once(fresh.store.as_ref(), &fresh.sink).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_retries_are_stored_once() {
        let fresh = fresh();
        suite::concurrent_retries_are_stored_once(fresh.store).await;
    }

    #[tokio::test]
    async fn the_same_client_msg_id_in_two_rooms_is_two_messages() {
        let fresh = fresh();
        suite::the_same_client_msg_id_in_two_rooms_is_two_messages(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn history_pages_both_ways() {
        let fresh = fresh();
        suite::history_pages_both_ways(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn an_unknown_room_is_refused() {
        let fresh = fresh();
        suite::an_unknown_room_is_refused(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn read_markers_only_move_forward() {
        let fresh = fresh();
        suite::read_markers_only_move_forward(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn the_programme_version_moves_with_the_programme() {
        let fresh = fresh();
        suite::the_programme_version_moves_with_the_programme(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn moderators_joining_and_leaving_are_announced_once() {
        let fresh = fresh();
        suite::moderators_joining_and_leaving_are_announced_once(fresh.store.as_ref(), &fresh.sink)
            .await;
    }

    #[tokio::test]
    async fn the_programme_reads_back() {
        let fresh = fresh();
        suite::the_programme_reads_back(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn applying_the_programme_again_keeps_history_and_epoch() {
        let fresh = fresh();
        suite::applying_the_programme_again_keeps_history_and_epoch(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn data_survives_reopening() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path: PathBuf = dir.path().join("triad.redb");
        suite::data_survives_reopening(|| {
            let path = path.clone();
            async move {
                let store = EmbeddedStore::open(&path, Arc::new(NoSink)).expect("open the store");
                Arc::new(store) as SharedStore
            }
        })
        .await;
    }

    #[tokio::test]
    async fn fresh_stores_give_rooms_different_epochs() {
        let (first, second) = (fresh(), fresh());
        suite::fresh_stores_give_rooms_different_epochs(
            first.store.as_ref(),
            second.store.as_ref(),
        )
        .await;
    }

    #[tokio::test]
    async fn a_store_is_ready_until_dropped() {
        let fresh = fresh();
        assert!(fresh.store.ready().await);
    }
    #[tokio::test]
    async fn call_records_are_inserted_and_updated() {
        let fresh = fresh();
        suite::call_records_are_inserted_and_updated(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn documents_are_compared_and_set() {
        let fresh = fresh();
        suite::documents_are_compared_and_set(fresh.store.clone()).await;
    }

    #[tokio::test]
    async fn exported_events_restore_into_a_fresh_store() {
        let (source, target) = (fresh(), fresh());
        suite::exported_events_restore_into_a_fresh_store(
            source.store.as_ref(),
            target.store.as_ref(),
            &target.sink,
        )
        .await;
    }
}

mod redis_backend {
    //! The suite against [`RedisStore`], each test on its own fresh `redis-server`.
    //!
    //! The feed delivers events only for watched rooms, so the checks about the sink watch
    //! the rooms first and wait for the subscriptions. Afterwards, [`nothing_more`] appends
    //! one last event per room and waits for it: the feed delivers a room's events in order,
    //! so a late duplicate would have arrived before it.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{Recorder, SINK_DEADLINE, msg, person, room, suite};
    use crate::store::redis::RedisStore;
    use crate::store::redis::testing::RedisProcess;
    use crate::store::{NoSink, Seq, SharedStore, Store};

    /// A store on a fresh server. The store is declared first so it closes before the
    /// server is killed.
    struct Fresh {
        store: Arc<RedisStore>,
        sink: Arc<Recorder>,
        _redis: RedisProcess,
    }

    impl Fresh {
        fn shared(&self) -> SharedStore {
            self.store.clone()
        }
    }

    async fn fresh() -> Fresh {
        let redis = RedisProcess::start().await.expect("start redis-server");
        let sink = Arc::new(Recorder::default());
        let store = RedisStore::open(&redis.url, sink.clone())
            .await
            .expect("open the store");
        Fresh {
            store: Arc::new(store),
            sink,
            _redis: redis,
        }
    }

    /// A fresh store whose feed follows `rooms`.
    async fn watching(rooms: &[&str]) -> Fresh {
        let fresh = fresh().await;
        for id in rooms {
            fresh.store.watch_room(&room(id), true);
        }
        let settled = tokio::time::timeout(SINK_DEADLINE, fresh.store.watches_settled()).await;
        assert!(settled.is_ok(), "the watches did not settle");
        fresh
    }

    /// Appends one more message to each room and checks that the sink then holds exactly
    /// the room's events 1..=that one, in order.
    async fn nothing_more(fresh: &Fresh, rooms: &[&str]) {
        for id in rooms {
            let last = fresh
                .store
                .append_message(&room(id), &person("anna"), &msg("last"), "the last word")
                .await
                .expect("append the last message")
                .event
                .seq;
            let count = usize::try_from(last).expect("a small seq");
            fresh.sink.wait_for(&room(id), count).await;
            let expected: Vec<Seq> = (1..=last).collect();
            assert_eq!(fresh.sink.seqs_in(&room(id)), expected, "{id}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sequence_numbers_are_contiguous_under_concurrent_appends() {
        let fresh = watching(&["trio-1"]).await;
        suite::sequence_numbers_are_contiguous_under_concurrent_appends(
            fresh.shared(),
            fresh.sink.clone(),
        )
        .await;
        nothing_more(&fresh, &["trio-1"]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_sink_gets_every_new_event_once_in_order() {
        let fresh = watching(&["trio-1", "trio-2"]).await;
        suite::the_sink_gets_every_new_event_once_in_order(fresh.shared(), fresh.sink.clone())
            .await;
        nothing_more(&fresh, &["trio-1", "trio-2"]).await;
    }

    #[tokio::test]
    async fn a_retried_message_is_stored_once() {
        let fresh = watching(&["trio-1"]).await;
        suite::a_retried_message_is_stored_once(fresh.store.as_ref(), &fresh.sink).await;
        nothing_more(&fresh, &["trio-1"]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_retries_are_stored_once() {
        let fresh = fresh().await;
        suite::concurrent_retries_are_stored_once(fresh.shared()).await;
    }

    #[tokio::test]
    async fn the_same_client_msg_id_in_two_rooms_is_two_messages() {
        let fresh = fresh().await;
        suite::the_same_client_msg_id_in_two_rooms_is_two_messages(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn history_pages_both_ways() {
        let fresh = fresh().await;
        suite::history_pages_both_ways(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn an_unknown_room_is_refused() {
        let fresh = fresh().await;
        suite::an_unknown_room_is_refused(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn read_markers_only_move_forward() {
        let fresh = fresh().await;
        suite::read_markers_only_move_forward(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn the_programme_version_moves_with_the_programme() {
        let fresh = fresh().await;
        suite::the_programme_version_moves_with_the_programme(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn moderators_joining_and_leaving_are_announced_once() {
        let fresh = watching(&["trio-1", "trio-2"]).await;
        suite::moderators_joining_and_leaving_are_announced_once(fresh.store.as_ref(), &fresh.sink)
            .await;
        nothing_more(&fresh, &["trio-1", "trio-2"]).await;
    }

    #[tokio::test]
    async fn the_programme_reads_back() {
        let fresh = fresh().await;
        suite::the_programme_reads_back(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn applying_the_programme_again_keeps_history_and_epoch() {
        let fresh = fresh().await;
        suite::applying_the_programme_again_keeps_history_and_epoch(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn data_survives_reopening() {
        let redis = RedisProcess::start().await.expect("start redis-server");
        let url = redis.url.as_str();
        suite::data_survives_reopening(move || async move {
            let store = RedisStore::open(url, Arc::new(NoSink))
                .await
                .expect("open the store");
            Arc::new(store) as SharedStore
        })
        .await;
    }

    /// The same, with Redis killed and restarted between the two stores: what was
    /// acknowledged was in the append-only file.
    #[tokio::test]
    async fn data_survives_a_redis_restart() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let redis = tokio::sync::Mutex::new(
            RedisProcess::start_with_aof(dir.path())
                .await
                .expect("start redis-server"),
        );
        let url = redis.lock().await.url.clone();
        let (redis, url, opened) = (&redis, url.as_str(), &AtomicUsize::new(0));
        suite::data_survives_reopening(move || async move {
            if opened.fetch_add(1, Ordering::SeqCst) > 0 {
                redis
                    .lock()
                    .await
                    .restart()
                    .await
                    .expect("restart redis-server");
            }
            let store = RedisStore::open(url, Arc::new(NoSink))
                .await
                .expect("open the store");
            Arc::new(store) as SharedStore
        })
        .await;
    }

    #[tokio::test]
    async fn fresh_stores_give_rooms_different_epochs() {
        let (first, second) = (fresh().await, fresh().await);
        suite::fresh_stores_give_rooms_different_epochs(
            first.store.as_ref(),
            second.store.as_ref(),
        )
        .await;
    }

    #[tokio::test]
    async fn call_records_are_inserted_and_updated() {
        let fresh = fresh().await;
        suite::call_records_are_inserted_and_updated(fresh.store.as_ref()).await;
    }

    #[tokio::test]
    async fn documents_are_compared_and_set() {
        let fresh = fresh().await;
        suite::documents_are_compared_and_set(fresh.shared()).await;
    }

    #[tokio::test]
    async fn exported_events_restore_into_a_fresh_store() {
        let (source, target) = (fresh().await, fresh().await);
        suite::exported_events_restore_into_a_fresh_store(
            source.store.as_ref(),
            target.store.as_ref(),
            &target.sink,
        )
        .await;
    }
}
