//! Reconnect storm (workload 4, Triad only): thousands of clients in their trio rooms while
//! messages keep flowing (one extra sending session per room); then every client drops its
//! connection at the same moment and reconnects at once with `hello` resume points (the
//! last `seq` it holds per room). Measured: the time until every client has its rooms
//! `live` again, each client's resume time, and, per client, duplicate and missing events
//! of its trio room from before the drop to the end (both must be zero).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Barrier, watch};
use triad_protocol::{Epoch, ResumePoint, RoomId, Seq, ServerFrame, ServerMessage, decode_server};

use super::{Fleet, Timing, connect_identities, member};
use crate::clock::{now_ns, secs_ns};
use crate::record::{Latency, histogram, record_ns};
use crate::target::Running;
use crate::wire::Dialect;
use crate::wire::triad::sign_in;

/// The result of a storm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StormResult {
    /// Clients that dropped and resumed.
    pub clients: usize,
    /// Messages a second sent into the rooms throughout.
    pub rate: f64,
    /// From the drop to the last client having every room `live` again, seconds.
    pub all_resumed_secs: f64,
    /// Per client, from the drop to its rooms being `live` again.
    pub resume: Latency,
    /// Clients that failed to reconnect.
    pub failed: u64,
    /// Events replayed to resuming clients.
    pub replayed: u64,
    /// Events a client received twice (must be 0).
    pub duplicates: u64,
    /// Events a client never received (must be 0).
    pub gaps: u64,
    /// Messages sent in the rooms over the whole storm.
    pub sent: u64,
}

#[derive(Default)]
struct Totals {
    duplicates: AtomicU64,
    gaps: AtomicU64,
    replayed: AtomicU64,
    failed: AtomicU64,
}

/// Where one client stands in each of its rooms.
struct Positions {
    rooms: HashMap<RoomId, (Epoch, Seq)>,
}

impl Positions {
    fn see(&mut self, frame: &ServerFrame, totals: &Totals) {
        match &frame.message {
            ServerMessage::Event { event } => {
                if let Some((_, last)) = self.rooms.get_mut(&event.room) {
                    if event.seq <= *last {
                        totals.duplicates.fetch_add(1, Ordering::Relaxed);
                    } else {
                        if event.seq > *last + 1 {
                            totals
                                .gaps
                                .fetch_add(event.seq - *last - 1, Ordering::Relaxed);
                        }
                        *last = event.seq;
                    }
                }
            }
            ServerMessage::Live(live) => {
                self.rooms
                    .entry(live.room.clone())
                    .and_modify(|(epoch, _)| *epoch = live.epoch)
                    .or_insert((live.epoch, live.seq));
            }
            _ => {}
        }
    }

    fn resume(&self) -> Vec<ResumePoint> {
        self.rooms
            .iter()
            .map(|(room, (epoch, seq))| ResumePoint {
                room: room.clone(),
                epoch: *epoch,
                seq: *seq,
            })
            .collect()
    }
}

/// Runs a storm with `clients` clients (a multiple of four) and `rate` messages a second.
pub async fn run(
    target: &Running,
    clients: usize,
    rate: f64,
    timing: &Timing,
) -> anyhow::Result<StormResult> {
    let rooms = clients / 4;
    let totals = Arc::new(Totals::default());
    // The senders: a second session of each room's first head.
    let heads = (0..rooms)
        .map(|trio| target.identity(trio, 0))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (feeders, _) =
        connect_identities(target, Dialect::Triad, heads, timing.concurrency).await?;
    let room_of = (0..rooms as u32).collect();
    let mut feed = Fleet::with_rooms(target, Dialect::Triad, feeders, room_of, 0);

    // The clients, signed in with their positions known.
    let (drop_tx, drop_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = Arc::new(Barrier::new(clients + 1));
    let resumed = Arc::new(std::sync::Mutex::new(Vec::<Option<u64>>::new()));
    let drop_at = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(timing.concurrency.max(1)));
    for i in 0..clients {
        let (trio, slot) = member(i, rooms);
        let who = target.identity(trio, slot)?;
        let url = target.url.clone();
        let totals = totals.clone();
        let ready = ready.clone();
        let resumed = resumed.clone();
        let drop_at = drop_at.clone();
        let semaphore = semaphore.clone();
        let mut drop_rx = drop_rx.clone();
        let mut stop_rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let room = RoomId::new(who.room.as_str()).expect("valid room");
            let join = who.moderator.then_some(&room);
            let entered = {
                let _permit = semaphore.acquire().await;
                sign_in(&url, &who.token, Vec::new(), join).await
            };
            let Ok(entered) = entered else {
                totals.failed.fetch_add(1, Ordering::Relaxed);
                ready.wait().await;
                return None;
            };
            let mut positions = Positions {
                rooms: HashMap::new(),
            };
            for live in entered.live.values() {
                positions.see(
                    &ServerFrame::push(ServerMessage::Live(live.clone())),
                    &totals,
                );
            }
            let mut ws = entered.ws;
            ready.wait().await;
            // Read until the drop.
            loop {
                tokio::select! {
                    _ = drop_rx.changed() => break,
                    frame = ws.next() => match frame {
                        Some(Ok(message)) => {
                            if let Ok(frame) = decode_server(message.to_text().unwrap_or("")) {
                                positions.see(&frame, &totals);
                            }
                        }
                        _ => {
                            totals.failed.fetch_add(1, Ordering::Relaxed);
                            return None;
                        }
                    },
                }
            }
            drop(ws);
            let again = sign_in(&url, &who.token, positions.resume(), join).await;
            let Ok(again) = again else {
                totals.failed.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            let took = now_ns() - drop_at.load(Ordering::Relaxed);
            resumed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Some(took));
            for frame in &again.replay {
                if matches!(frame.message, ServerMessage::Event { .. }) {
                    totals.replayed.fetch_add(1, Ordering::Relaxed);
                }
                positions.see(frame, &totals);
            }
            let mut ws = again.ws;
            loop {
                tokio::select! {
                    _ = stop_rx.changed() => break,
                    frame = ws.next() => match frame {
                        Some(Ok(message)) => {
                            if let Ok(frame) = decode_server(message.to_text().unwrap_or("")) {
                                positions.see(&frame, &totals);
                            }
                        }
                        _ => return None,
                    },
                }
            }
            positions.rooms.get(&room).map(|(_, seq)| (trio, *seq))
        }));
    }
    ready.wait().await;
    eprintln!("  {clients} clients in; sending {rate} msg/s into {rooms} rooms");

    let total_secs = timing.warmup_secs + timing.run_secs;
    let driving = {
        let timing = Timing {
            warmup_secs: 0.0,
            run_secs: total_secs,
            runs: 1,
            drain_secs: 2.0,
            concurrency: timing.concurrency,
        };
        async move {
            let (recorder, _) = feed.drive(rate, &timing).await;
            let sent = recorder
                .phases
                .iter()
                .map(|p| p.sent.load(Ordering::Relaxed))
                .sum::<u64>();
            (feed, sent)
        }
    };
    let storm = async {
        tokio::time::sleep(Duration::from_secs_f64(timing.warmup_secs)).await;
        drop_at.store(now_ns(), Ordering::Relaxed);
        drop_tx.send_replace(true);
        let started = now_ns();
        let deadline = started + secs_ns(timing.run_secs.max(30.0));
        loop {
            let done = resumed.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
                + totals.failed.load(Ordering::Relaxed);
            if done >= clients as u64 || now_ns() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let ((feed, sent), ()) = tokio::join!(driving, storm);
    // Every message is stored and fanned out; give the last ones a moment, then stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_tx.send_replace(true);
    let mut last_seen: Vec<(usize, Seq)> = Vec::new();
    for task in tasks {
        if let Ok(Some(position)) = task.await {
            last_seen.push(position);
        }
    }
    feed.close().await;
    // Every client of a room must end at the room's last seq.
    let mut room_last: HashMap<usize, Seq> = HashMap::new();
    for (trio, seq) in &last_seen {
        let e = room_last.entry(*trio).or_default();
        *e = (*e).max(*seq);
    }
    for (trio, seq) in &last_seen {
        totals
            .gaps
            .fetch_add(room_last[trio] - seq, Ordering::Relaxed);
    }
    let times: Vec<u64> = resumed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .flatten()
        .copied()
        .collect();
    let mut h = histogram();
    for t in &times {
        record_ns(&mut h, *t);
    }
    let result = StormResult {
        clients,
        rate,
        all_resumed_secs: times.iter().copied().max().unwrap_or(0) as f64 / 1e9,
        resume: Latency::of(&h),
        failed: totals.failed.load(Ordering::Relaxed),
        replayed: totals.replayed.load(Ordering::Relaxed),
        duplicates: totals.duplicates.load(Ordering::Relaxed),
        gaps: totals.gaps.load(Ordering::Relaxed),
        sent,
    };
    eprintln!(
        "  all {} resumed in {:.2} s (p50 {:.0} ms, p99 {:.0} ms); replayed {}, duplicates {}, gaps {}, failed {}",
        result.clients,
        result.all_resumed_secs,
        result.resume.p50_ms,
        result.resume.p99_ms,
        result.replayed,
        result.duplicates,
        result.gaps,
        result.failed
    );
    Ok(result)
}
