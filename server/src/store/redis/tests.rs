//! What only this backend can show: its feed across lost messages and lost connections,
//! and how it fails when Redis is gone or stalls. Each test runs its own `redis-server`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use triad_protocol::{ClientMsgId, PersonId, RoomId, RoomKind, Seq};

use super::keys::{RoomKeys, entry_id};
use super::records::event_without_position;
use super::testing::RedisProcess;
use super::{RedisOptions, RedisStore};
use crate::store::conformance::Recorder;
use crate::store::{NoSink, Programme, RoomRecord, Store, StoreError};

fn room(id: &str) -> RoomId {
    RoomId::new(id).expect("room id")
}

fn person(id: &str) -> PersonId {
    PersonId::new(id).expect("person id")
}

/// Short timings, so that failures show quickly.
fn options() -> RedisOptions {
    RedisOptions {
        command_timeout: Duration::from_millis(500),
        reconnect_delay_min: Duration::from_millis(300),
        reconnect_delay_max: Duration::from_millis(600),
        feed_ping_interval: Duration::from_millis(200),
    }
}

fn two_rooms() -> Programme {
    let trio = |id: &str| RoomRecord {
        id: room(id),
        kind: RoomKind::Trio,
        title: id.to_owned(),
        members: vec![person("anna"), person("ben")],
        moderators: Vec::new(),
        joined_moderators: Vec::new(),
    };
    Programme {
        people: Vec::new(),
        rooms: vec![trio("trio-1"), trio("trio-2")],
    }
}

async fn open(redis: &RedisProcess, sink: Arc<Recorder>) -> RedisStore {
    let store = RedisStore::open_with(&redis.url, sink, options())
        .await
        .expect("open the store");
    store
        .apply_programme(&two_rooms())
        .await
        .expect("apply the programme");
    store
}

async fn say(store: &RedisStore, room_id: &str, id: &str) -> Seq {
    store
        .append_message(
            &room(room_id),
            &person("anna"),
            &ClientMsgId(id.to_owned()),
            "hello",
        )
        .await
        .expect("append")
        .event
        .seq
}

/// A plain connection without a response timeout, for what a test does behind the
/// store's back.
async fn raw(redis: &RedisProcess) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    redis::Client::open(redis.url.as_str())
        .expect("client")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect")
}

#[tokio::test]
async fn an_event_missing_from_pub_sub_is_read_from_the_stream() {
    let redis = RedisProcess::start().await.expect("start redis-server");
    let sink = Arc::new(Recorder::default());
    let store = open(&redis, sink.clone()).await;
    store.watch_room(&room("trio-1"), true);
    store.watches_settled().await;
    assert_eq!(say(&store, "trio-1", "m-1").await, 1);

    // Event 2 is stored the way the append script stores it, but never published.
    let keys = RoomKeys::of(&room("trio-1"));
    let partial = event_without_position(
        &room("trio-1"),
        &person("ben"),
        triad_protocol::EventBody::ModeratorJoined,
    )
    .expect("encode");
    let json = format!("{{\"seq\":2,\"ts\":1,{}", &partial[1..]);
    let mut conn = raw(&redis).await;
    let () = redis::pipe()
        .cmd("XADD")
        .arg(&keys.events)
        .arg(entry_id(2))
        .arg("e")
        .arg(&json)
        .ignore()
        .cmd("HSET")
        .arg(&keys.state)
        .arg("last_seq")
        .arg(2)
        .ignore()
        .query_async(&mut conn)
        .await
        .expect("store an unpublished event");

    assert_eq!(say(&store, "trio-1", "m-3").await, 3);
    sink.wait_for(&room("trio-1"), 3).await;
    assert_eq!(sink.seqs_in(&room("trio-1")), vec![1, 2, 3]);
}

#[tokio::test]
async fn the_feed_catches_up_after_losing_its_connection() {
    let redis = RedisProcess::start().await.expect("start redis-server");
    let sink = Arc::new(Recorder::default());
    let store = open(&redis, sink.clone()).await;
    store.watch_room(&room("trio-1"), true);
    store.watches_settled().await;
    say(&store, "trio-1", "m-1").await;
    sink.wait_for(&room("trio-1"), 1).await;

    let mut conn = raw(&redis).await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .expect("kill the feed's connection");
    assert_eq!(killed, 1);
    // Published while the feed waits to reconnect: only the stream has them.
    for n in 2..=4 {
        say(&store, "trio-1", &format!("m-{n}")).await;
    }
    sink.wait_for(&room("trio-1"), 4).await;
    assert_eq!(say(&store, "trio-1", "m-5").await, 5);
    sink.wait_for(&room("trio-1"), 5).await;
    assert_eq!(sink.seqs_in(&room("trio-1")), vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn the_feed_and_the_store_come_back_after_redis_restarts() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut redis = RedisProcess::start_with_aof(dir.path())
        .await
        .expect("start redis-server");
    let sink = Arc::new(Recorder::default());
    let store = open(&redis, sink.clone()).await;
    store.watch_room(&room("trio-1"), true);
    store.watches_settled().await;
    say(&store, "trio-1", "m-1").await;
    sink.wait_for(&room("trio-1"), 1).await;

    redis.stop();
    let refused = store
        .append_message(
            &room("trio-1"),
            &person("anna"),
            &ClientMsgId("m-2".into()),
            "x",
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(!store.ready().await);

    redis.restart().await.expect("restart redis-server");
    // Another node appends as soon as Redis is back, before this feed has reconnected.
    let other = RedisStore::open_with(&redis.url, Arc::new(NoSink), options())
        .await
        .expect("open a second store");
    for n in 2..=3 {
        assert_eq!(say(&other, "trio-1", &format!("m-{n}")).await, n);
    }
    sink.wait_for(&room("trio-1"), 3).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.ready().await {
        assert!(Instant::now() < deadline, "the store did not reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(say(&store, "trio-1", "m-4").await, 4);
    sink.wait_for(&room("trio-1"), 4).await;
    assert_eq!(sink.seqs_in(&room("trio-1")), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn only_watched_rooms_reach_the_sink() {
    let redis = RedisProcess::start().await.expect("start redis-server");
    let sink = Arc::new(Recorder::default());
    let store = open(&redis, sink.clone()).await;
    store.watch_room(&room("trio-1"), true);
    store.watches_settled().await;
    say(&store, "trio-1", "m-1").await;
    say(&store, "trio-2", "m-1").await;
    sink.wait_for(&room("trio-1"), 1).await;

    store.watch_room(&room("trio-1"), false);
    store.watch_room(&room("trio-2"), true);
    store.watches_settled().await;
    say(&store, "trio-1", "m-2").await;
    say(&store, "trio-2", "m-2").await;
    sink.wait_for(&room("trio-2"), 1).await;
    // The feed handles messages in order, and trio-2's came last.
    assert_eq!(sink.seqs_in(&room("trio-2")), vec![2]);
    assert_eq!(sink.seqs_in(&room("trio-1")), vec![1]);
}

#[tokio::test]
async fn a_stalled_redis_gives_unavailable_within_the_timeout() {
    let redis = RedisProcess::start().await.expect("start redis-server");
    let store = open(&redis, Arc::new(Recorder::default())).await;
    let mut conn = raw(&redis).await;
    let sleeper = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(2)
            .query_async::<()>(&mut conn)
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let stalled = store.room_state(&room("trio-1")).await;
    assert!(
        matches!(stalled, Err(StoreError::Unavailable(_))),
        "{stalled:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert!(!store.ready().await);
    sleeper.await.expect("join").expect("DEBUG SLEEP");
    assert!(store.ready().await);
}

#[tokio::test]
async fn opening_an_unreachable_redis_fails() {
    let redis = RedisProcess::start().await.expect("start redis-server");
    let url = redis.url.clone();
    drop(redis);
    let started = Instant::now();
    let opened = RedisStore::open_with(&url, Arc::new(NoSink), options()).await;
    assert!(matches!(opened, Err(StoreError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(2));
    let invalid = RedisStore::open("not a url", Arc::new(NoSink)).await;
    assert!(matches!(invalid, Err(StoreError::Unavailable(_))));
}

#[tokio::test]
async fn the_feed_follows_a_room_whose_history_was_reset() {
    let redis = RedisProcess::start().await.expect("start redis-server");
    let sink = Arc::new(Recorder::default());
    let store = open(&redis, sink.clone()).await;
    store.watch_room(&room("trio-1"), true);
    store.watches_settled().await;
    say(&store, "trio-1", "old-1").await;
    say(&store, "trio-1", "old-2").await;
    sink.wait_for(&room("trio-1"), 2).await;
    let old_epoch = store
        .room_state(&room("trio-1"))
        .await
        .expect("state")
        .epoch;

    let mut conn = raw(&redis).await;
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("flush");
    // Epochs are milliseconds of the Redis clock: let it move on.
    tokio::time::sleep(Duration::from_millis(5)).await;
    store
        .apply_programme(&two_rooms())
        .await
        .expect("apply the programme again");
    let new_epoch = store
        .room_state(&room("trio-1"))
        .await
        .expect("state")
        .epoch;
    assert_ne!(new_epoch, old_epoch);
    assert_eq!(say(&store, "trio-1", "new-1").await, 1);
    assert_eq!(say(&store, "trio-1", "new-2").await, 2);
    sink.wait_for(&room("trio-1"), 4).await;
    let ids: Vec<String> = sink
        .events()
        .iter()
        .filter_map(|event| event.body.client_msg_id().map(|id| id.0.clone()))
        .collect();
    assert_eq!(ids, ["old-1", "old-2", "new-1", "new-2"]);
}
