//! The workloads, and what they share: connecting a fleet of clients with bounded
//! concurrency, and the traffic engine (one open-loop scheduler, a reader per connection
//! that records every delivery and ack).
//!
//! - [`idle`]: memory and CPU per idle authenticated connection (workload 1).
//! - [`sweep`]: room fan-out latency and durable messages per second over a ladder of
//!   rates (workloads 2 and 3).
//! - [`storm`]: thousands of clients drop and resume at once (workload 4).
//! - [`signal`]: call signalling relay (workload 5).
//! - [`setup`]: connection setup rate while connections are held (workload 6).

pub mod idle;
pub mod setup;
pub mod signal;
pub mod storm;
pub mod sweep;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::Context;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::clock::{instant_at, now_ns, secs_ns};
use crate::conn::{self, Outbound, Ws, WsStream};
use crate::payload::Stamp;
use crate::record::{Latency, Recorder, Sequence, histogram, record_ns};
use crate::target::Running;
use crate::wire::{Dialect, Inbound};

/// Timing shared by the measured workloads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    /// Seconds of warm-up before the measured runs (not counted).
    pub warmup_secs: f64,
    /// Seconds per measured run.
    pub run_secs: f64,
    /// Measured runs; the median one is reported.
    pub runs: usize,
    /// Seconds to wait after the last send for outstanding deliveries and acks.
    pub drain_secs: f64,
    /// Connections being set up at once.
    pub concurrency: usize,
}

/// How a fleet's connection setup went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupStats {
    /// Connections set up (each an upgrade, sign-in and room entry).
    pub connections: usize,
    /// Set up at once.
    pub concurrency: usize,
    /// Wall time for all of them.
    pub seconds: f64,
    /// Connections set up per second.
    pub per_second: f64,
    /// Time per connection, from the start of its TCP connect to being in its room.
    pub latency: Latency,
}

/// Member `i` of a fleet: trio `i / 4 % trios`, slot `i % 4` (the fourth the moderator).
pub fn member(i: usize, trios: usize) -> (usize, usize) {
    ((i / 4) % trios, i % 4)
}

/// Connects `count` clients of `target`, `concurrency` at a time, in member order.
pub async fn connect_fleet(
    target: &Running,
    dialect: Dialect,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<(Vec<Ws>, SetupStats)> {
    let trios = target.trios.len();
    let mut identities = Vec::with_capacity(count);
    for i in 0..count {
        let (trio, slot) = member(i, trios);
        identities.push(target.identity(trio, slot)?);
    }
    connect_identities(target, dialect, identities, concurrency).await
}

/// Connects one client per identity, `concurrency` at a time, in order.
pub async fn connect_identities(
    target: &Running,
    dialect: Dialect,
    identities: Vec<crate::wire::Identity>,
    concurrency: usize,
) -> anyhow::Result<(Vec<Ws>, SetupStats)> {
    let count = identities.len();
    let started = Instant::now();
    let url = target.url.clone();
    let results: Vec<anyhow::Result<(Ws, u64)>> = futures_util::stream::iter(identities)
        .map(|who| {
            let url = url.clone();
            async move {
                let t0 = now_ns();
                let ws = dialect
                    .connect(&url, &who)
                    .await
                    .with_context(|| format!("connecting {} to {}", who.person, who.room))?;
                Ok((ws, now_ns() - t0))
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut h = histogram();
    let mut sockets = Vec::with_capacity(count);
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok((ws, ns)) => {
                record_ns(&mut h, ns);
                sockets.push(ws);
            }
            Err(err) => failures.push(format!("{err:#}")),
        }
    }
    if let Some(first) = failures.first() {
        anyhow::bail!(
            "{} of {count} connections failed; the first: {first}",
            failures.len()
        );
    }
    Ok((
        sockets,
        SetupStats {
            connections: count,
            concurrency,
            seconds,
            per_second: count as f64 / seconds,
            latency: Latency::of(&h),
        },
    ))
}

/// One connection of a running fleet.
pub struct Member {
    /// Its index: the stamp's sender.
    pub index: u32,
    /// Its room.
    pub room: String,
    /// Its writer.
    pub out: Outbound,
}

/// What every reader of a fleet shares.
pub struct Shared {
    /// Where deliveries and acks are recorded now (replaced per rate).
    pub recorder: RwLock<Arc<Recorder>>,
    /// The room (trio index) of each sender, so a receiver counts only its own room.
    pub room_of: Vec<u32>,
    /// Connections that closed or failed while the fleet ran.
    pub closed: AtomicU64,
}

impl Shared {
    fn recorder(&self) -> Arc<Recorder> {
        self.recorder
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts recording into `recorder`.
    pub fn set_recorder(&self, recorder: Arc<Recorder>) {
        *self.recorder.write().unwrap_or_else(|e| e.into_inner()) = recorder;
    }
}

/// A fleet of connections with their readers running.
pub struct Fleet {
    /// The connections.
    pub members: Vec<Member>,
    /// What the readers share.
    pub shared: Arc<Shared>,
    /// The protocol.
    pub dialect: Dialect,
    /// Per member, the next counter to stamp.
    counters: Vec<u64>,
    /// Members of the fleet each message must reach besides its sender.
    fanout: u64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    /// Starts a reader and a writer for each socket (member order as in [`connect_fleet`]).
    pub fn start(target: &Running, dialect: Dialect, sockets: Vec<Ws>) -> Self {
        let trios = target.trios.len();
        let room_of: Vec<u32> = (0..sockets.len())
            .map(|i| member(i, trios).0 as u32)
            .collect();
        Self::with_rooms(target, dialect, sockets, room_of, 3)
    }

    /// Starts a fleet whose socket `i` is in trio `room_of[i]`; each message must reach
    /// `fanout` other members of the fleet.
    pub fn with_rooms(
        target: &Running,
        dialect: Dialect,
        sockets: Vec<Ws>,
        room_of: Vec<u32>,
        fanout: u64,
    ) -> Self {
        let shared = Arc::new(Shared {
            recorder: RwLock::new(Arc::new(Recorder::new(0, 0, 0, 0))),
            room_of,
            closed: AtomicU64::new(0),
        });
        let mut members = Vec::with_capacity(sockets.len());
        let mut tasks = Vec::with_capacity(sockets.len() * 2);
        for (i, ws) in sockets.into_iter().enumerate() {
            let (out, stream, writer) = conn::split(ws);
            let trio = shared.room_of[i] as usize;
            tasks.push(writer);
            tasks.push(tokio::spawn(read_loop(
                i as u32,
                dialect,
                stream,
                out.clone(),
                shared.clone(),
            )));
            members.push(Member {
                index: i as u32,
                room: target.trios[trio].room.clone(),
                out,
            });
        }
        let counters = vec![0; members.len()];
        Self {
            members,
            shared,
            dialect,
            counters,
            fanout,
            tasks,
        }
    }

    /// Sends `rate` messages a second in total, spread evenly over every member, open loop,
    /// through the warm-up and the runs; then waits up to the drain time for what is
    /// outstanding. Returns the recorder and the largest lag of a send behind its intended
    /// time (a sign the generator itself was short of CPU).
    pub async fn drive(&mut self, rate: f64, timing: &Timing) -> (Arc<Recorder>, f64) {
        let start = now_ns() + 200_000_000;
        let recorder = Arc::new(Recorder::new(
            start,
            secs_ns(timing.warmup_secs),
            timing.runs,
            secs_ns(timing.run_secs),
        ));
        self.shared.set_recorder(recorder.clone());
        let end = recorder.end();
        let senders = self.members.len() as u64;
        let interval = 1e9 / rate;
        let mut lag = 0u64;
        let mut j: u64 = 0;
        loop {
            let t = start + (j as f64 * interval) as u64;
            if t >= end {
                break;
            }
            let now = now_ns();
            if t > now + 500_000 {
                tokio::time::sleep_until(instant_at(t)).await;
            } else {
                lag = lag.max(now.saturating_sub(t));
            }
            let s = (j % senders) as usize;
            let stamp = Stamp {
                sender: self.members[s].index,
                n: self.counters[s],
                t,
            };
            self.counters[s] += 1;
            recorder.sent(&stamp);
            self.dialect
                .send(&self.members[s].out, &self.members[s].room, &stamp);
            j += 1;
            if j.is_multiple_of(256) {
                tokio::task::yield_now().await;
            }
        }
        let deadline = now_ns() + secs_ns(timing.drain_secs);
        let fanout = self.fanout;
        while now_ns() < deadline {
            let complete = recorder.phases.iter().all(|p| {
                let sent = p.sent.load(Ordering::Relaxed);
                p.delivered.load(Ordering::Relaxed) >= sent * fanout
                    && p.acked.load(Ordering::Relaxed) >= sent
            });
            if complete {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        (recorder, lag as f64 / 1e6)
    }

    /// Closes every connection.
    pub async fn close(self) {
        for m in &self.members {
            m.out.close();
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        for task in self.tasks {
            task.abort();
        }
    }
}

async fn read_loop(
    me: u32,
    dialect: Dialect,
    mut stream: WsStream,
    out: Outbound,
    shared: Arc<Shared>,
) {
    let my_room = shared.room_of[me as usize];
    let mut sequence = Sequence::default();
    loop {
        let text = match conn::next_text(&mut stream).await {
            Some(Ok(text)) => text,
            Some(Err(_)) | None => {
                shared.closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        match dialect.decode(&text) {
            Inbound::Delivery(stamp) => {
                let theirs = shared.room_of.get(stamp.sender as usize).copied();
                if stamp.sender != me && theirs == Some(my_room) {
                    let recorder = shared.recorder();
                    if sequence.see(&stamp, &recorder) {
                        recorder.delivered(&stamp, now_ns());
                    }
                }
            }
            Inbound::Ack(t) => {
                let stamp = Stamp {
                    sender: me,
                    n: 0,
                    t,
                };
                shared.recorder().acked(&stamp, now_ns());
            }
            Inbound::Reply(text) => {
                out.text(text);
            }
            Inbound::Error(message) => {
                let recorder = shared.recorder();
                if recorder.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("  server error: {message}");
                }
            }
            Inbound::Other => {}
        }
    }
}
