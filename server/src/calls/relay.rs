//! Signalling relay: the checks a signal passes before it is handed on (sizes here; who may
//! signal whom in [`super::Calls::signal`]) and [`deliver`], the one way a call frame
//! reaches a single participant session, on this node or another.

use triad_protocol::{ErrorCode, ServerFrame, Signal, limits};

use super::CallError;
use super::state::{Endpoint, Participant, SessionAddr};
use super::wire::CallMessage;
use crate::hub::{Hub, Outgoing, encode};

/// Checks a signal's sizes: SDP, candidate line and media section id.
pub fn check_signal(signal: &Signal) -> Result<(), CallError> {
    let too_large = |what: &str, len: usize, limit: usize| {
        Err(CallError::new(
            ErrorCode::SignalTooLarge,
            format!("the {what} is {len} bytes; the limit is {limit}"),
        ))
    };
    match signal {
        Signal::Offer { sdp, .. } | Signal::Answer { sdp } => {
            if sdp.len() > limits::MAX_SDP_BYTES {
                return too_large("SDP", sdp.len(), limits::MAX_SDP_BYTES);
            }
            if sdp.trim().is_empty() {
                return Err(CallError::new(
                    ErrorCode::InvalidRequest,
                    "the SDP is empty",
                ));
            }
        }
        Signal::Candidate {
            candidate, sdp_mid, ..
        } => {
            if candidate.len() > limits::MAX_CANDIDATE_BYTES {
                return too_large("candidate", candidate.len(), limits::MAX_CANDIDATE_BYTES);
            }
            if let Some(mid) = sdp_mid
                && mid.len() > limits::MAX_SDP_MID_BYTES
            {
                return too_large("sdp_mid", mid.len(), limits::MAX_SDP_MID_BYTES);
            }
        }
    }
    Ok(())
}

/// Hands a frame to one participant session: to its outbox if it is on this node, over
/// the bus to its node otherwise (where [`deliver_here`] finishes the job). Returns whether
/// the frame was queued (not whether a session on another node still exists).
pub fn deliver(hub: &Hub, to: &Participant, frame: &ServerFrame) -> bool {
    match (&to.endpoint, &to.key) {
        (Some(Endpoint::Local(outbox)), _) => outbox.push(Outgoing::Frame(encode(frame))),
        (Some(Endpoint::Remote), SessionAddr::Remote { node, key }) => {
            let message = CallMessage::Frame {
                key: *key,
                person: to.person.clone(),
                frame: encode(frame).to_string(),
            };
            hub.send_call(Some(node), message);
            true
        }
        _ => false,
    }
}

/// Hands a frame that another node sent for one of this node's sessions to its outbox.
pub fn deliver_here(
    hub: &Hub,
    person: &triad_protocol::PersonId,
    key: crate::hub::SessionKey,
    frame: String,
) -> bool {
    match hub.presence.outbox(person, key) {
        Some(outbox) => outbox.push(Outgoing::Frame(frame.into())),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        let offer = |sdp: String| Signal::Offer {
            sdp,
            ice_restart: false,
        };
        assert!(check_signal(&offer("v=0\r\n".into())).is_ok());
        let big = check_signal(&offer("a".repeat(limits::MAX_SDP_BYTES + 1))).unwrap_err();
        assert_eq!(big.code, ErrorCode::SignalTooLarge);
        let empty = check_signal(&Signal::Answer { sdp: " ".into() }).unwrap_err();
        assert_eq!(empty.code, ErrorCode::InvalidRequest);
        let candidate = |candidate: String, mid: &str| Signal::Candidate {
            candidate,
            sdp_mid: Some(mid.into()),
            sdp_mline_index: Some(0),
        };
        assert!(
            check_signal(&candidate(
                "candidate:1 1 udp 1 10.0.0.1 9 typ host".into(),
                "0"
            ))
            .is_ok()
        );
        let long = candidate("c".repeat(limits::MAX_CANDIDATE_BYTES + 1), "0");
        assert_eq!(
            check_signal(&long).unwrap_err().code,
            ErrorCode::SignalTooLarge
        );
        let mid = candidate("candidate:1".into(), &"m".repeat(65));
        assert_eq!(
            check_signal(&mid).unwrap_err().code,
            ErrorCode::SignalTooLarge
        );
    }
}
