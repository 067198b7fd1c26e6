//! Call tests: a real triad-server in this process, call agents negotiating real WebRTC
//! peer connections (webrtc-rs) through its signalling, and a real coturn for relayed
//! connections. One test binary for the crate.

mod coturn;
mod harness;
mod mesh;
mod turn;
