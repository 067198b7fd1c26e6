//! The agent's loop: an actor that owns the peer connections. It takes what the server
//! pushes (call state, signals, ICE servers, reconnects), what the peer connections report
//! (candidates, states, data channel messages), a ping tick and the handle's commands, and
//! publishes an [`AgentStatus`] after each.
//!
//! The offerer rule is the protocol's: for each pair, the participant listed later in the
//! call state makes the offer. Peers are known by person (one participant per person); a
//! new `joined_at` for a person means a fresh participant, and a new connection is made; a
//! new session with the same `joined_at` is the same participant after a reconnect, and
//! only the address of its signals changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use triad_client::{CallJoined, Client, ClientEvent, Events};
use triad_protocol::{
    CallEndReason, CallId, CallState, IceServer, PersonId, SessionId, Signal, Timestamp,
};
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;

use crate::peer::{self, NetworkSettings, PeerEvent, PeerKey};
use crate::status::{AgentStatus, PeerStatus};

/// What the handle asks of the loop.
#[derive(Debug)]
pub enum Command {
    /// Leave the call, close every connection, stop.
    Leave(oneshot::Sender<()>),
    /// Restart ICE with every peer this agent offers to.
    RestartIce,
}

/// One remote participant.
struct Peer {
    key: PeerKey,
    session: SessionId,
    joined_at: Timestamp,
    offerer: bool,
    pc: Option<Arc<RTCPeerConnection>>,
    channel: Option<Arc<RTCDataChannel>>,
    /// Candidates that came before the remote description.
    pending: Vec<RTCIceCandidateInit>,
    has_remote: bool,
    /// Pings sent and not yet answered, by number.
    pings: HashMap<u64, Instant>,
    next_ping: u64,
    status: PeerStatus,
}

/// The loop's state.
pub struct Agent {
    pub(crate) client: Client,
    pub(crate) events: Events,
    pub(crate) call: CallId,
    pub(crate) me: SessionId,
    pub(crate) ice: Vec<IceServer>,
    /// ICE servers to use instead of the server's (tests, diagnosis).
    pub(crate) ice_override: Option<Vec<IceServer>>,
    pub(crate) network: NetworkSettings,
    pub(crate) ping_every: Duration,
    pub(crate) commands: mpsc::Receiver<Command>,
    /// Where the status is published, whole, after each change.
    pub(crate) status: watch::Sender<AgentStatus>,
    /// What is published besides the peers (written by the loop only).
    known: AgentStatus,
    peers: BTreeMap<PersonId, Peer>,
    generation: u64,
    peer_events: mpsc::UnboundedReceiver<PeerEvent>,
    peer_tx: mpsc::UnboundedSender<PeerEvent>,
    signals: mpsc::UnboundedSender<(SessionId, Signal)>,
}

impl Agent {
    /// The loop for a call just joined.
    pub(crate) fn new(
        client: Client,
        events: Events,
        joined: CallJoined,
        settings: crate::AgentSettings,
        commands: mpsc::Receiver<Command>,
        status: watch::Sender<AgentStatus>,
    ) -> (Self, CallState) {
        let (peer_tx, peer_events) = mpsc::unbounded_channel();
        let signals = spawn_signal_sender(client.clone(), joined.call.id.clone());
        let known = status.borrow().clone();
        let agent = Self {
            known,
            client,
            events,
            call: joined.call.id.clone(),
            me: joined.session,
            ice: joined.ice_servers.servers,
            ice_override: settings.ice_override,
            network: settings.network,
            ping_every: settings.ping_every,
            commands,
            status,
            peers: BTreeMap::new(),
            generation: 0,
            peer_events,
            peer_tx,
            signals,
        };
        (agent, joined.call)
    }

    fn servers(&self) -> &[IceServer] {
        self.ice_override.as_deref().unwrap_or(&self.ice)
    }

    /// Runs until the agent leaves, the call ends or the client stops.
    pub(crate) async fn run(mut self, first: CallState) {
        self.on_state(first).await;
        self.publish();
        let mut tick = tokio::time::interval(self.ping_every);
        let mut connected_once = false;
        loop {
            tokio::select! {
                event = self.events.next() => {
                    let Some(event) = event else { break };
                    if !self.on_client_event(event, &mut connected_once).await {
                        break;
                    }
                }
                Some(event) = self.peer_events.recv() => self.on_peer_event(event).await,
                command = self.commands.recv() => match command {
                    Some(Command::Leave(done)) => {
                        if let Err(err) = self.client.call_leave(&self.call).await {
                            tracing::warn!(error = %err, "leaving the call failed");
                        }
                        self.close_all().await;
                        self.publish();
                        // The handle may have stopped waiting.
                        done.send(()).ok();
                        return;
                    }
                    Some(Command::RestartIce) => self.restart_ice().await,
                    None => break,
                },
                _ = tick.tick() => self.ping().await,
            }
            self.publish();
        }
        self.close_all().await;
        self.publish();
    }

    /// Publishes everything at once, so no one sees a change half made.
    fn publish(&mut self) {
        self.known.session = self.me.clone();
        self.known.peers = self
            .peers
            .iter()
            .map(|(person, peer)| (person.clone(), peer.status.clone()))
            .collect();
        self.status.send_replace(self.known.clone());
    }

    /// Returns false when the loop should stop.
    async fn on_client_event(&mut self, event: ClientEvent, connected_once: &mut bool) -> bool {
        match event {
            ClientEvent::CallState(state) if state.id == self.call => self.on_state(state).await,
            ClientEvent::CallSignal {
                call,
                from,
                person,
                signal,
            } if call == self.call => self.on_signal(from, person, signal).await,
            ClientEvent::IceServers(servers) if servers.call == self.call => {
                self.ice = servers.servers;
                self.known.ice_refreshes += 1;
                let config = peer::configuration(self.servers(), &self.network);
                for peer in self.peers.values() {
                    if let Some(pc) = &peer.pc
                        && let Err(err) = pc.set_configuration(config.clone()).await
                    {
                        tracing::debug!(error = %err, "new ICE servers not applied");
                    }
                }
            }
            ClientEvent::CallEnded { call, reason, .. } if call == self.call => {
                self.known.ended = Some(reason);
                return false;
            }
            ClientEvent::Connected(_) if !*connected_once => *connected_once = true,
            ClientEvent::Connected(welcome) => {
                // A new session after a reconnect: take our place in the call back.
                tracing::info!(session = %welcome.session, "reconnected; rejoining the call");
                match self.client.call_join(&self.call, true).await {
                    Ok(joined) => {
                        self.me = joined.session;
                        self.ice = joined.ice_servers.servers;
                        self.known.rejoins += 1;
                        self.on_state(joined.call).await;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "could not rejoin the call");
                        if err.code() == Some(triad_protocol::ErrorCode::NoCall) {
                            self.known.ended = Some(CallEndReason::Ended);
                            return false;
                        }
                    }
                }
            }
            ClientEvent::Closed { reason, .. } => {
                tracing::warn!(%reason, "the connection to the server closed");
                return false;
            }
            _ => {}
        }
        true
    }

    /// Brings the peers in line with the call's participants.
    async fn on_state(&mut self, state: CallState) {
        let before: Vec<PersonId> = self.known.participants();
        let departed = before
            .into_iter()
            .filter(|person| !state.participants.iter().any(|p| &p.person == person));
        self.known.departures.extend(departed);
        self.known.call = Some(state.clone());
        let Some(mine) = state.participants.iter().position(|p| p.session == self.me) else {
            // Not (or no longer) in the call through this session.
            return;
        };
        let gone: Vec<PersonId> = self
            .peers
            .keys()
            .filter(|person| !state.participants.iter().any(|p| &p.person == *person))
            .cloned()
            .collect();
        for person in gone {
            if let Some(peer) = self.peers.remove(&person) {
                close(peer).await;
            }
        }
        for (position, participant) in state.participants.iter().enumerate() {
            if position == mine {
                continue;
            }
            let offerer = mine > position;
            if let Some(peer) = self.peers.get_mut(&participant.person) {
                if peer.joined_at == participant.joined_at {
                    // The same participant, perhaps through a new session.
                    peer.session = participant.session.clone();
                    peer.status.session = participant.session.clone();
                    continue;
                }
                if let Some(old) = self.peers.remove(&participant.person) {
                    close(old).await;
                }
            }
            self.add_peer(
                participant.person.clone(),
                participant.session.clone(),
                participant.joined_at,
                offerer,
            )
            .await;
        }
    }

    async fn add_peer(
        &mut self,
        person: PersonId,
        session: SessionId,
        joined_at: Timestamp,
        offerer: bool,
    ) {
        self.generation += 1;
        let key = PeerKey {
            person: person.clone(),
            generation: self.generation,
        };
        let mut peer = Peer {
            key,
            session: session.clone(),
            joined_at,
            offerer,
            pc: None,
            channel: None,
            pending: Vec::new(),
            has_remote: false,
            pings: HashMap::new(),
            next_ping: 0,
            status: PeerStatus::new(session, offerer),
        };
        if offerer {
            match self.offer(&mut peer, false).await {
                Ok(()) => {}
                Err(err) => self.failed(&mut peer, "offer", &err),
            }
        }
        self.peers.insert(person, peer);
    }

    fn failed(&self, peer: &mut Peer, what: &str, err: &webrtc::Error) {
        tracing::warn!(person = %peer.key.person, error = %err, "{what} failed");
        peer.status.error = Some(format!("{what}: {err}"));
    }

    async fn ensure_pc(&self, peer: &mut Peer) -> Result<Arc<RTCPeerConnection>, webrtc::Error> {
        if let Some(pc) = &peer.pc {
            return Ok(pc.clone());
        }
        let pc = peer::connect(
            peer.key.clone(),
            self.servers(),
            &self.network,
            peer.offerer,
            self.peer_tx.clone(),
        )
        .await?;
        peer.pc = Some(pc.clone());
        Ok(pc)
    }

    async fn offer(&self, peer: &mut Peer, ice_restart: bool) -> Result<(), webrtc::Error> {
        let pc = self.ensure_pc(peer).await?;
        let options = RTCOfferOptions {
            ice_restart,
            ..RTCOfferOptions::default()
        };
        let offer = pc.create_offer(Some(options)).await?;
        pc.set_local_description(offer.clone()).await?;
        self.send(
            &peer.session,
            Signal::Offer {
                sdp: offer.sdp,
                ice_restart,
            },
        );
        Ok(())
    }

    fn send(&self, to: &SessionId, signal: Signal) {
        if self.signals.send((to.clone(), signal)).is_err() {
            tracing::debug!("the signal sender has stopped");
        }
    }

    async fn on_signal(&mut self, from: SessionId, person: PersonId, signal: Signal) {
        let Some(mut peer) = self.peers.remove(&person) else {
            tracing::debug!(%person, kind = signal.kind(), "a signal from someone not (yet) in the call state");
            return;
        };
        peer.session = from;
        if let Err(err) = self.apply_signal(&mut peer, signal).await {
            self.failed(&mut peer, "signalling", &err);
        }
        self.peers.insert(person, peer);
    }

    async fn apply_signal(&mut self, peer: &mut Peer, signal: Signal) -> Result<(), webrtc::Error> {
        match signal {
            Signal::Offer { sdp, .. } => {
                let pc = self.ensure_pc(peer).await?;
                pc.set_remote_description(RTCSessionDescription::offer(sdp)?)
                    .await?;
                peer.has_remote = true;
                let answer = pc.create_answer(None).await?;
                pc.set_local_description(answer.clone()).await?;
                self.send(&peer.session, Signal::Answer { sdp: answer.sdp });
                self.flush_candidates(peer, &pc).await;
            }
            Signal::Answer { sdp } => {
                let Some(pc) = peer.pc.clone() else {
                    return Ok(());
                };
                pc.set_remote_description(RTCSessionDescription::answer(sdp)?)
                    .await?;
                peer.has_remote = true;
                self.flush_candidates(peer, &pc).await;
            }
            Signal::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                let init = RTCIceCandidateInit {
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                    username_fragment: None,
                };
                match (&peer.pc, peer.has_remote) {
                    (Some(pc), true) => pc.add_ice_candidate(init).await?,
                    _ => peer.pending.push(init),
                }
            }
        }
        Ok(())
    }

    async fn flush_candidates(&self, peer: &mut Peer, pc: &RTCPeerConnection) {
        for init in std::mem::take(&mut peer.pending) {
            if let Err(err) = pc.add_ice_candidate(init).await {
                tracing::debug!(error = %err, "a remote candidate was not added");
            }
        }
    }

    async fn on_peer_event(&mut self, event: PeerEvent) {
        let key = match &event {
            PeerEvent::Candidate(key, _)
            | PeerEvent::State(key, _)
            | PeerEvent::ChannelOpen(key, _)
            | PeerEvent::Message(key, _) => key.clone(),
        };
        let Some(peer) = self.peers.get_mut(&key.person) else {
            return;
        };
        if peer.key != key {
            // From a connection that was replaced.
            return;
        }
        match event {
            PeerEvent::Candidate(_, init) => {
                let signal = Signal::Candidate {
                    candidate: init.candidate,
                    sdp_mid: init.sdp_mid,
                    sdp_mline_index: init.sdp_mline_index,
                };
                let to = peer.session.clone();
                self.send(&to, signal);
            }
            PeerEvent::State(_, state) => {
                tracing::info!(person = %key.person, %state, "peer connection state");
                peer.status.state = state;
                if state == RTCPeerConnectionState::Connected && peer.status.connected_at.is_none()
                {
                    peer.status.connected_at = Some(Instant::now());
                }
            }
            PeerEvent::ChannelOpen(_, channel) => {
                peer.channel = Some(channel);
                peer.status.channel_open = true;
            }
            PeerEvent::Message(_, text) => {
                if let Some(n) = text.strip_prefix("ping ") {
                    if let Some(channel) = peer.channel.clone()
                        && let Err(err) = channel.send_text(format!("pong {n}")).await
                    {
                        tracing::debug!(error = %err, "pong not sent");
                    }
                } else if let Some(n) = text.strip_prefix("pong ")
                    && let Ok(n) = n.parse::<u64>()
                    && let Some(sent) = peer.pings.remove(&n)
                {
                    peer.status.round_trips += 1;
                    peer.status.last_rtt = Some(sent.elapsed());
                }
            }
        }
    }

    /// Sends a ping on every open data channel.
    async fn ping(&mut self) {
        for peer in self.peers.values_mut() {
            let Some(channel) = peer.channel.clone() else {
                continue;
            };
            peer.next_ping += 1;
            let n = peer.next_ping;
            // Pings that were never answered are forgotten after a while.
            peer.pings
                .retain(|_, sent| sent.elapsed() < Duration::from_secs(30));
            peer.pings.insert(n, Instant::now());
            if let Err(err) = channel.send_text(format!("ping {n}")).await {
                tracing::debug!(error = %err, "ping not sent");
            }
        }
    }

    async fn restart_ice(&mut self) {
        let persons: Vec<PersonId> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.offerer)
            .map(|(person, _)| person.clone())
            .collect();
        for person in persons {
            if let Some(mut peer) = self.peers.remove(&person) {
                if let Err(err) = self.offer(&mut peer, true).await {
                    self.failed(&mut peer, "ICE restart", &err);
                }
                self.peers.insert(person, peer);
            }
        }
    }

    async fn close_all(&mut self) {
        for (_, peer) in std::mem::take(&mut self.peers) {
            close(peer).await;
        }
    }
}

async fn close(peer: Peer) {
    if let Some(pc) = peer.pc
        && let Err(err) = pc.close().await
    {
        tracing::debug!(error = %err, "closing a peer connection failed");
    }
}

/// Sends signals in the order they were made (an offer before its candidates).
fn spawn_signal_sender(client: Client, call: CallId) -> mpsc::UnboundedSender<(SessionId, Signal)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(SessionId, Signal)>();
    tokio::spawn(async move {
        while let Some((to, signal)) = rx.recv().await {
            let kind = signal.kind();
            if let Err(err) = client.call_signal(&call, &to, signal).await {
                tracing::warn!(%to, kind, error = %err, "a signal was not relayed");
            }
        }
    });
    tx
}
