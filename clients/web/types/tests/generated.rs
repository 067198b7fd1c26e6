//! `clients/web/protocol.d.ts` is what the protocol crate generates today. Set
//! `TRIAD_BLESS=1` to rewrite it after changing a wire type.

use triad_web_types::{output_path, typescript};

#[test]
fn protocol_d_ts_is_up_to_date() {
    let fresh = typescript();
    let path = output_path();
    if std::env::var_os("TRIAD_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("writing protocol.d.ts");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let line = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .map_or(committed.lines().count().min(fresh.lines().count()), |n| n)
            + 1;
        panic!(
            "clients/web/protocol.d.ts is stale (first difference at line {line}): \
             the protocol's wire types changed. Regenerate it with \
             `TRIAD_BLESS=1 cargo test -p triad-web-types` and commit the result."
        );
    }
}

#[test]
fn every_frame_type_is_declared() {
    let file = typescript();
    for name in [
        "ClientFrame",
        "Request",
        "ServerFrame",
        "ServerMessage",
        "RoomEvent",
        "EventBody",
        "Welcome",
        "RoomInfo",
        "ErrorCode",
        "CloseCode",
        "CallState",
        "Signal",
    ] {
        assert!(
            file.contains(&format!("export type {name} = ")),
            "{name} is not declared"
        );
    }
    assert!(file.contains("export type ProtocolVersion = \"triad.v1\";"));
    assert!(!file.contains("bigint"), "numbers are plain JSON numbers");
}
