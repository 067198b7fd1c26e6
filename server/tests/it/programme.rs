//! The coordinator's JSON changes to the programme: one person, trio or cycle at a time,
//! each through the same validation as a whole roster; the roster file to download; a
//! person removed is disconnected at once and cannot sign in again.

use triad_protocol::ServerMessage;

use crate::calendar::http;
use crate::harness::TestServer;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn the_coordinator_changes_the_programme_one_piece_at_a_time() {
    let server = TestServer::start().await;
    let coordinator = server.token("david.coordinator");
    let addr = server.addr;

    // A new head, then a trio of two is refused with the field at fault.
    let person = r#"{"name":"Ffion Morgan","role":"head","region":"west-wales","school":"Ysgol y Preseli","time_zone":"Europe/London","email":"ffion@example.org"}"#;
    let (status, _, body) = http(
        addr,
        "PUT",
        "/api/people/ffion.morgan",
        Some(&coordinator),
        Some(person),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["people"], 9);
    let two = r#"{"heads":["anna.jensen","marco.rossi"],"moderators":["sara.moderator"]}"#;
    let (status, _, body) = http(
        addr,
        "PUT",
        "/api/trios/trio-1",
        Some(&coordinator),
        Some(two),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let refusal = json(&body);
    assert_eq!(refusal["code"], "roster_invalid");
    assert_eq!(
        refusal["problems"][0]["field"], "trios[0].heads",
        "{refusal}"
    );
    assert!(
        refusal["problems"][0].get("line").is_none(),
        "no line for a JSON change"
    );

    // Rhian is replaced in trio 1 by Ffion, then removed from the programme.
    let (mut rhian, _) = server.signed_in("rhian.evans").await;
    let three = r#"{"title":"Trio 1: Assessment for learning","heads":["anna.jensen","marco.rossi","ffion.morgan"],"moderators":["sara.moderator"]}"#;
    let (status, _, body) = http(
        addr,
        "PUT",
        "/api/trios/trio-1",
        Some(&coordinator),
        Some(three),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = http(
        addr,
        "DELETE",
        "/api/people/rhian.evans",
        Some(&coordinator),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["removed"], serde_json::json!(["rhian.evans"]));
    assert_eq!(
        rhian.closed().await,
        Some(4009),
        "a removed person is disconnected at once"
    );
    let mut again = server.raw().await;
    let answer = again
        .call(triad_protocol::Request::Hello {
            token: server.token("rhian.evans"),
            resume: vec![],
        })
        .await;
    assert!(
        matches!(&answer, ServerMessage::Error { code, .. } if code.as_str() == "token_revoked"),
        "a removed person's old token is revoked: {answer:?}"
    );
    assert_eq!(again.closed().await, Some(4001));

    // Ffion signs in to her trio.
    let (_ffion, welcome) = server.signed_in("ffion.morgan").await;
    assert!(welcome.rooms.iter().any(|r| r.id.as_str() == "trio-1"));

    // A cycle with an unknown host region is refused; a good one lands.
    let cycle =
        r#"{"name":"Cycle 2","starts":"2027-09-01","ends":"2028-04-30","host_region":"atlantis"}"#;
    let (status, _, body) = http(
        addr,
        "PUT",
        "/api/cycles/cycle-2",
        Some(&coordinator),
        Some(cycle),
    )
    .await;
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (422, Some("roster_invalid")),
        "{body}"
    );
    let cycle = cycle.replace("atlantis", "tuscany");
    let (status, _, body) = http(
        addr,
        "PUT",
        "/api/cycles/cycle-2",
        Some(&coordinator),
        Some(&cycle),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The roster file reflects it all, and applies as it is.
    let (status, _, file) = http(addr, "GET", "/api/roster", Some(&coordinator), None).await;
    assert_eq!(status, 200, "{file}");
    assert!(
        file.contains("ffion.morgan") && !file.contains("rhian.evans"),
        "{file}"
    );
    assert!(file.contains("host_region = \"tuscany\""), "{file}");
    let (status, _, body) = http(addr, "PUT", "/api/roster", Some(&coordinator), Some(&file)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["removed"], serde_json::json!([]));

    // Only the coordinator changes the programme.
    let (status, _, _) = http(
        addr,
        "PUT",
        "/api/regions/vejle",
        Some(&server.token("sara.moderator")),
        Some(r#"{"name":"Vejle"}"#),
    )
    .await;
    assert_eq!(status, 403);
}
