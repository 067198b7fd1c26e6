//! One peer connection to another participant: building it (ICE servers, relay-only,
//! loopback candidates), the `triad` data channel with its ping and pong, and the events
//! its callbacks report to the agent.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::mpsc;
use triad_protocol::{IceServer, PersonId};
use webrtc::api::APIBuilder;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::policy::ice_transport_policy::RTCIceTransportPolicy;

/// The label of the data channel the agent opens to every peer.
pub const CHANNEL_LABEL: &str = "triad";

/// Which peer connection an event is about: the remote person, and which of the
/// connections made to them (a new one replaces the old after a fresh join).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerKey {
    /// The remote person.
    pub person: PersonId,
    /// The connection's number, unique within the agent.
    pub generation: u64,
}

/// What a peer connection's callbacks report.
pub enum PeerEvent {
    /// A local ICE candidate to send to the peer.
    Candidate(PeerKey, RTCIceCandidateInit),
    /// The connection's state changed.
    State(PeerKey, RTCPeerConnectionState),
    /// The data channel is open.
    ChannelOpen(PeerKey, Arc<RTCDataChannel>),
    /// A text message on the data channel.
    Message(PeerKey, String),
}

/// How peer connections are made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSettings {
    /// Use only relayed (TURN) candidates.
    pub relay_only: bool,
    /// Gather only loopback host candidates (peers on one machine, as in tests).
    pub loopback: bool,
}

fn ice_servers(servers: &[IceServer]) -> Vec<RTCIceServer> {
    servers
        .iter()
        .map(|server| RTCIceServer {
            urls: server.urls.clone(),
            username: server.username.clone().unwrap_or_default(),
            credential: server.credential.clone().unwrap_or_default(),
        })
        .collect()
}

/// The configuration of a peer connection with these servers.
pub fn configuration(servers: &[IceServer], network: &NetworkSettings) -> RTCConfiguration {
    RTCConfiguration {
        ice_servers: ice_servers(servers),
        ice_transport_policy: if network.relay_only {
            RTCIceTransportPolicy::Relay
        } else {
            RTCIceTransportPolicy::All
        },
        ..RTCConfiguration::default()
    }
}

/// Creates a peer connection whose callbacks report to `events` under `key`. The offering
/// side creates the data channel; the answering side gets it from the offer.
pub async fn connect(
    key: PeerKey,
    servers: &[IceServer],
    network: &NetworkSettings,
    offerer: bool,
    events: mpsc::UnboundedSender<PeerEvent>,
) -> Result<Arc<RTCPeerConnection>, webrtc::Error> {
    let mut settings = SettingEngine::default();
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    if network.loopback {
        settings.set_include_loopback_candidate(true);
        settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
        settings.set_network_types(vec![NetworkType::Udp4]);
    }
    let api = APIBuilder::new().with_setting_engine(settings).build();
    let pc = Arc::new(
        api.new_peer_connection(configuration(servers, network))
            .await?,
    );

    let tx = events.clone();
    let k = key.clone();
    pc.on_ice_candidate(Box::new(move |candidate| {
        let (tx, k) = (tx.clone(), k.clone());
        Box::pin(async move {
            if let Some(candidate) = candidate {
                match candidate.to_json() {
                    Ok(init) => report(&tx, PeerEvent::Candidate(k, init)),
                    Err(err) => tracing::warn!(error = %err, "a local candidate cannot be encoded"),
                }
            }
        })
    }));
    let tx = events.clone();
    let k = key.clone();
    pc.on_peer_connection_state_change(Box::new(move |state| {
        report(&tx, PeerEvent::State(k.clone(), state));
        Box::pin(async {})
    }));
    if offerer {
        let channel = pc.create_data_channel(CHANNEL_LABEL, None).await?;
        watch_channel(&key, channel, &events);
    } else {
        let tx = events.clone();
        let k = key.clone();
        pc.on_data_channel(Box::new(move |channel| {
            // Handlers are attached here, before the channel delivers its first message.
            watch_channel(&k, channel, &tx);
            Box::pin(async {})
        }));
    }
    Ok(pc)
}

/// Reports the channel's opening and its text messages.
fn watch_channel(
    key: &PeerKey,
    channel: Arc<RTCDataChannel>,
    events: &mpsc::UnboundedSender<PeerEvent>,
) {
    let tx = events.clone();
    let k = key.clone();
    channel.on_message(Box::new(move |message| {
        if message.is_string {
            let text = String::from_utf8_lossy(&message.data).into_owned();
            report(&tx, PeerEvent::Message(k.clone(), text));
        }
        Box::pin(async {})
    }));
    let tx = events.clone();
    let k = key.clone();
    let opened = channel.clone();
    channel.on_open(Box::new(move || {
        report(&tx, PeerEvent::ChannelOpen(k, opened));
        Box::pin(async {})
    }));
}

fn report(events: &mpsc::UnboundedSender<PeerEvent>, event: PeerEvent) {
    // After the agent stops, nobody listens: the event has no one to matter to.
    if events.send(event).is_err() {
        tracing::trace!("a peer event after the agent stopped");
    }
}
