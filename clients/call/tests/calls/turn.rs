//! Relayed calls through a real coturn: two agents restricted to relay candidates connect
//! with the credentials Triad issues, and never connect with expired ones.

use std::time::Duration;

use triad_call::{CallAgent, PeerState};
use triad_protocol::IceServer;
use triad_server::calls::turn;
use triad_server::store::now_ms;

use crate::coturn::Coturn;
use crate::harness::{PATIENCE, TestServer, person};

/// How long an agent with bad credentials is given to (not) connect.
const NO_CONNECTION_WITHIN: Duration = Duration::from_secs(8);

async fn relay_agent(server: &TestServer, who: &str, ice: Option<Vec<IceServer>>) -> CallAgent {
    let mut settings = server.settings(who, "trio-1");
    settings.network.relay_only = true;
    settings.network.loopback = false;
    settings.ice_override = ice;
    CallAgent::start(settings).await.unwrap()
}

async fn server_for(coturn: &Coturn) -> TestServer {
    let (url, secret) = (coturn.url(), coturn.secret.clone());
    TestServer::start_with(move |c| {
        c.ice_urls = vec![url];
        c.turn_secret = Some(secret);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_agents_connect_through_coturn_with_issued_credentials() {
    let coturn = Coturn::start();
    let server = server_for(&coturn).await;
    let anna = relay_agent(&server, "anna.jensen", None).await;
    let marco = relay_agent(&server, "marco.rossi", None).await;
    for agent in [&anna, &marco] {
        agent
            .wait_for("a relayed connection", PATIENCE, |s| {
                s.peers.len() == 1 && s.full_mesh(2)
            })
            .await
            .unwrap_or_else(|e| panic!("{e}\ncoturn:\n{}", coturn.log()));
    }
    anna.leave().await;
    marco.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_credentials_never_connect() {
    let coturn = Coturn::start();
    let server = server_for(&coturn).await;
    // Credentials in Triad's scheme, valid in every way but time: they expired a minute ago.
    let expired = |who: &str| {
        let expiry = now_ms() / 1000 - 60;
        let (username, credential) = turn::credentials(&coturn.secret, &person(who), expiry);
        vec![IceServer {
            urls: vec![coturn.url()],
            username: Some(username),
            credential: Some(credential),
        }]
    };
    let anna = relay_agent(&server, "anna.jensen", Some(expired("anna.jensen"))).await;
    let marco = relay_agent(&server, "marco.rossi", Some(expired("marco.rossi"))).await;
    let connected = anna
        .wait_for("a connection (none expected)", NO_CONNECTION_WITHIN, |s| {
            s.peers
                .values()
                .any(|p| p.connected_at.is_some() || p.state == PeerState::Connected)
        })
        .await;
    assert!(
        connected.is_err(),
        "expired TURN credentials gave a connection: {connected:?}"
    );
    let status = marco.status();
    assert_eq!(status.peers.len(), 1, "the peers did negotiate: {status:?}");
    assert!(status.peers.values().all(|p| p.connected_at.is_none()));
    anna.leave().await;
    marco.leave().await;
}
