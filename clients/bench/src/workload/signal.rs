//! Call signalling relay (workload 5, Triad only): in each trio room the three heads start
//! and join the room's call, then negotiate pairwise as the protocol's offerer rule says
//! (the later joiner offers): on a schedule, each offerer sends an offer, the other side
//! answers as soon as it arrives, and both sides trickle a burst of ICE candidates. Every
//! signal's relay time (its send to its arrival) and each offer's time to its answer are
//! measured, over a warm-up and several runs; the median run is reported. Rounds stay under
//! the per-session signal limit (30 a second, 120 in a burst).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;
use tokio_tungstenite::tungstenite::Message;
use triad_protocol::{
    CallId, CallState, ClientFrame, Request, RoomId, ServerMessage, SessionId, Signal,
    decode_server,
};

use super::Timing;
use crate::clock::{instant_at, now_ns, secs_ns};
use crate::conn::Ws;
use crate::payload::Stamp;
use crate::procstat::{Snapshot, Usage};
use crate::record::{PhaseSummary, Recorder, median_by};
use crate::target::Running;
use crate::wire::triad::sign_in;

/// Settings of the signalling workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignalSettings {
    /// Calls (one per trio room, three participants each).
    pub calls: usize,
    /// Seconds between negotiation rounds of a pair.
    pub round_secs: f64,
    /// ICE candidates each side sends per round.
    pub candidates: usize,
    /// Bytes of each offer and answer SDP.
    pub sdp_bytes: usize,
}

/// The result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignalResult {
    /// The settings.
    pub settings: SignalSettings,
    /// The median run: `delivery` is each signal's relay time, `ack` an offer's time to
    /// its answer, `sent` the signals sent.
    pub median: PhaseSummary,
    /// Every run.
    pub runs: Vec<PhaseSummary>,
    /// Signals relayed per second in the median run.
    pub signals_per_second: f64,
    /// Error frames (e.g. `rate_limited`).
    pub errors: u64,
    /// Server CPU and memory over the measured time.
    pub usage: Vec<Usage>,
}

/// Reads the stamp's time back out of an SDP or a candidate line.
fn time_in(signal: &Signal) -> Option<(u64, Option<u64>)> {
    match signal {
        Signal::Offer { sdp, .. } | Signal::Answer { sdp } => {
            let line = sdp.lines().find(|l| l.starts_with("o=- "))?;
            let mut parts = line[4..].split(' ');
            let t = parts.next()?.parse().ok()?;
            let offered = parts.next().and_then(|p| p.parse().ok());
            Some((t, offered))
        }
        Signal::Candidate { candidate, .. } => {
            let rest = candidate.strip_prefix("candidate:")?;
            Some((rest.split(' ').next()?.parse().ok()?, None))
        }
    }
}

fn sdp(t: u64, offered: Option<u64>, bytes: usize) -> String {
    let mut s = format!(
        "v=0\r\no=- {t} {} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
        offered.unwrap_or(2)
    );
    while s.len() + 30 < bytes {
        s.push_str("a=x-bench:padding-padding\r\n");
    }
    s
}

fn candidate(t: u64, k: usize) -> Signal {
    Signal::Candidate {
        candidate: format!(
            "candidate:{t} 1 udp 2130706431 127.0.0.1 {} typ host",
            50000 + k
        ),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    }
}

struct Participant {
    ws: Ws,
    position: usize,
    call: CallId,
    state: CallState,
    next_id: u64,
}

impl Participant {
    async fn send(&mut self, request: Request) -> anyhow::Result<()> {
        self.next_id += 1;
        let frame = ClientFrame::new(self.next_id, request);
        self.ws
            .send(Message::text(serde_json::to_string(&frame)?))
            .await?;
        Ok(())
    }

    async fn signal(&mut self, to: SessionId, signal: Signal) -> anyhow::Result<()> {
        let call = self.call.clone();
        self.send(Request::CallSignal { call, to, signal }).await
    }
}

/// Waits for the answer to a call request, keeping the latest call state.
async fn call_joined(ws: &mut Ws) -> anyhow::Result<(CallState, SessionId)> {
    loop {
        let Some(message) = ws.next().await else {
            anyhow::bail!("closed while joining the call");
        };
        let message = message?;
        let Ok(frame) = decode_server(message.to_text().unwrap_or("")) else {
            continue;
        };
        match frame.message {
            ServerMessage::CallJoined { call, session, .. } => return Ok((call, session)),
            ServerMessage::Error { code, message, .. } => {
                anyhow::bail!("call refused: {code}: {message}")
            }
            _ => {}
        }
    }
}

/// Runs the signalling workload.
pub async fn run(
    target: &Running,
    settings: &SignalSettings,
    timing: &Timing,
) -> anyhow::Result<SignalResult> {
    // Sign in three heads per room, start the call with the first, join with the others.
    let mut participants: Vec<Participant> = Vec::new();
    for trio in 0..settings.calls {
        let room = RoomId::new(target.trios[trio].room.as_str())?;
        let mut call: Option<CallId> = None;
        for slot in 0..3 {
            let who = target.identity(trio, slot)?;
            let mut ws = sign_in(&target.url, &who.token, Vec::new(), None).await?.ws;
            let request = match &call {
                None => Request::CallStart { room: room.clone() },
                Some(id) => Request::CallJoin {
                    call: id.clone(),
                    resume: false,
                },
            };
            let frame = ClientFrame::new(1, request);
            ws.send(Message::text(serde_json::to_string(&frame)?))
                .await?;
            let (state, _session) = call_joined(&mut ws).await?;
            call = Some(state.id.clone());
            participants.push(Participant {
                ws,
                position: slot,
                call: state.id.clone(),
                state,
                next_id: 1,
            });
        }
    }
    eprintln!("  {} calls of three set up", settings.calls);
    let start = now_ns() + 1_000_000_000;
    let recorder = Arc::new(Recorder::new(
        start,
        secs_ns(timing.warmup_secs),
        timing.runs,
        secs_ns(timing.run_secs),
    ));
    let errors = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(participants.len() + 1));
    let mut tasks = Vec::new();
    let round_ns = secs_ns(settings.round_secs);
    let calls = settings.calls.max(1) as u64;
    for (i, mut p) in participants.into_iter().enumerate() {
        let recorder = recorder.clone();
        let errors = errors.clone();
        let barrier = barrier.clone();
        let settings = settings.clone();
        // Calls start their rounds spread over the interval.
        let offset = round_ns * (i as u64 / 3) / calls;
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let end = recorder.end();
            let mut next_round = start + offset;
            let drain_until = end + 2_000_000_000;
            loop {
                let deadline = if next_round < end {
                    next_round
                } else {
                    drain_until
                };
                let frame = tokio::select! {
                    () = tokio::time::sleep_until(instant_at(deadline)) => None,
                    frame = p.ws.next() => Some(frame),
                };
                let Some(frame) = frame else {
                    if now_ns() >= drain_until {
                        return Ok::<_, anyhow::Error>(());
                    }
                    // A round: offer to every participant who joined before this one.
                    let t = next_round;
                    next_round += round_ns;
                    let earlier: Vec<SessionId> = p.state.participants[..p.position]
                        .iter()
                        .map(|x| x.session.clone())
                        .collect();
                    for to in earlier {
                        let offer = Signal::Offer {
                            sdp: sdp(t, None, settings.sdp_bytes),
                            ice_restart: false,
                        };
                        recorder.sent(&Stamp { sender: 0, n: 0, t });
                        p.signal(to.clone(), offer).await?;
                        for k in 0..settings.candidates {
                            let t = now_ns();
                            recorder.sent(&Stamp { sender: 0, n: 0, t });
                            p.signal(to.clone(), candidate(t, k)).await?;
                        }
                    }
                    continue;
                };
                let Some(Ok(message)) = frame else {
                    anyhow::bail!("a participant's connection closed");
                };
                let Ok(frame) = decode_server(message.to_text().unwrap_or("")) else {
                    continue;
                };
                match frame.message {
                    ServerMessage::CallSignal { from, signal, .. } => {
                        let now = now_ns();
                        if let Some((t, offered)) = time_in(&signal) {
                            recorder.delivered(&Stamp { sender: 0, n: 0, t }, now);
                            if let (Signal::Answer { .. }, Some(offered)) = (&signal, offered) {
                                recorder.acked(
                                    &Stamp {
                                        sender: 0,
                                        n: 0,
                                        t: offered,
                                    },
                                    now,
                                );
                            }
                        }
                        if let Signal::Offer { .. } = signal {
                            let offered = time_in(&signal).map(|(t, _)| t);
                            let t = now_ns();
                            recorder.sent(&Stamp { sender: 0, n: 0, t });
                            let answer = Signal::Answer {
                                sdp: sdp(t, offered, settings.sdp_bytes),
                            };
                            p.signal(from.clone(), answer).await?;
                            for k in 0..settings.candidates {
                                let t = now_ns();
                                recorder.sent(&Stamp { sender: 0, n: 0, t });
                                p.signal(from.clone(), candidate(t, k)).await?;
                            }
                        }
                    }
                    ServerMessage::CallState { call } => p.state = call,
                    ServerMessage::Error { code, message, .. }
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 =>
                    {
                        eprintln!("  server error: {code}: {message}");
                    }
                    _ => {}
                }
            }
        }));
    }
    let before = Snapshot::take(&target.watched);
    barrier.wait().await;
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("  a participant stopped: {err:#}"),
            Err(err) => eprintln!("  a participant failed: {err}"),
        }
    }
    let usage = Snapshot::take(&target.watched).since(&before);
    let runs = recorder.runs(1);
    let median = runs[median_by(&runs, |r| r.delivery.p99_ms)].clone();
    let errors = errors.load(Ordering::Relaxed);
    eprintln!(
        "  {:.0} signals/s: relay p50 {:.2} p99 {:.2} ms; offer to answer p50 {:.2} p99 {:.2} ms; lost {}, errors {errors}",
        median.deliveries_per_second,
        median.delivery.p50_ms,
        median.delivery.p99_ms,
        median.ack.p50_ms,
        median.ack.p99_ms,
        median.lost
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(SignalResult {
        settings: settings.clone(),
        signals_per_second: median.deliveries_per_second,
        median,
        runs,
        errors,
        usage,
    })
}
