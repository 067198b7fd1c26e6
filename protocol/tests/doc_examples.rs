//! `docs/protocol.md` cannot drift: every `json client` block parses as a client frame,
//! every `json server` block as a server frame, every request and server message type has
//! an example, and every error code is in the table.

use std::collections::BTreeSet;

use triad_protocol::{ClientFrame, ErrorCode, Request, ServerFrame, ServerMessage};

fn document() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).expect("docs/protocol.md is readable")
}

/// The code blocks with the given info string.
fn blocks(doc: &str, info: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match &mut current {
            None if line.trim() == format!("```{info}") => current = Some(String::new()),
            Some(block) if line.trim() == "```" => {
                found.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    found
}

#[test]
fn every_client_example_parses_and_every_request_has_one() {
    let doc = document();
    let mut seen = BTreeSet::new();
    for block in blocks(&doc, "json client") {
        let frame: ClientFrame = serde_json::from_str(&block)
            .unwrap_or_else(|e| panic!("client example does not parse: {e}\n{block}"));
        seen.insert(frame.request.type_name());
    }
    let all: BTreeSet<_> = Request::TYPES.iter().copied().collect();
    assert_eq!(
        seen, all,
        "every request type has an example in docs/protocol.md"
    );
}

#[test]
fn every_server_example_parses_and_every_message_has_one() {
    let doc = document();
    let mut seen = BTreeSet::new();
    for block in blocks(&doc, "json server") {
        let frame: ServerFrame = serde_json::from_str(&block)
            .unwrap_or_else(|e| panic!("server example does not parse: {e}\n{block}"));
        // Round trip: what the server would send for it parses back the same.
        let again: ServerFrame =
            serde_json::from_str(&serde_json::to_string(&frame).unwrap()).unwrap();
        assert_eq!(again, frame);
        seen.insert(frame.message.type_name());
    }
    let all: BTreeSet<_> = ServerMessage::TYPES.iter().copied().collect();
    assert_eq!(
        seen, all,
        "every server message has an example in docs/protocol.md"
    );
}

#[test]
fn every_error_code_is_documented() {
    let doc = document();
    let codes = [
        ErrorCode::BadJson,
        ErrorCode::UnknownType,
        ErrorCode::InvalidRequest,
        ErrorCode::BinaryFrame,
        ErrorCode::NotAuthenticated,
        ErrorCode::AlreadyAuthenticated,
        ErrorCode::TokenExpired,
        ErrorCode::TokenInvalid,
        ErrorCode::UnknownPerson,
        ErrorCode::UnknownRoom,
        ErrorCode::NotAMember,
        ErrorCode::JoinRequired,
        ErrorCode::Forbidden,
        ErrorCode::BodyTooLong,
        ErrorCode::EmptyBody,
        ErrorCode::BadClientMsgId,
        ErrorCode::RateLimited,
        ErrorCode::PageTooLarge,
        ErrorCode::StoreUnavailable,
        ErrorCode::Internal,
        ErrorCode::NoCall,
        ErrorCode::NotInCall,
        ErrorCode::CallFull,
        ErrorCode::AlreadyInCall,
        ErrorCode::SignalTooLarge,
        ErrorCode::CoachingInPast,
        ErrorCode::CoachingOverlap,
        ErrorCode::UnknownTimeZone,
        ErrorCode::NoCoaching,
        ErrorCode::CoachingCancelled,
        ErrorCode::NoMessage,
        ErrorCode::InvitationInvalid,
        ErrorCode::InvitationUsed,
        ErrorCode::InvitationExpired,
        ErrorCode::TokenRevoked,
        ErrorCode::RosterInvalid,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::TooManyCoachings,
        ErrorCode::NotBookable,
        ErrorCode::RequestTimeout,
        ErrorCode::RequestTooLarge,
    ];
    for code in codes {
        // The serde name and `as_str` agree, and the table lists the code.
        assert_eq!(
            serde_json::to_string(&code).unwrap(),
            format!("\"{}\"", code.as_str())
        );
        assert!(
            doc.contains(&format!("| `{}` |", code.as_str())),
            "{code} is not in the error table"
        );
    }
}
