//! triad-server: the Triad hub as a library, so tests and the binary start it the same way.
//!
//! Modules, one per concern:
//! - [`config`]: the one configuration struct: defaults, file, environment, flags.
//! - [`auth`]: JWT verification and minting, principals, per-room access.
//! - [`programme`]: regions, people, trios and rooms: roster import and the demo programme.
//! - [`schedule`]: coaching sessions: booking rules, reminders, the iCalendar feed, attendance.
//! - [`report`]: cycle reports per trio: sessions and attendance, activity, key learning.
//! - [`mail`]: e-mail: reminders of coaching sessions and digests of unread messages.
//! - [`store`]: history and state behind one trait; the embedded backend.
//! - [`hub`]: rooms, local fan-out, presence (across nodes too), typing, rate buckets.
//! - [`bus`]: delivery of ephemeral frames and presence between nodes.
//! - [`calls`]: video calls: call state, grace periods, signalling relay, TURN credentials.
//! - [`gateway`]: websocket sessions: hello, requests, the outbox writer.
//! - [`http`]: the router (websocket upgrade, health checks, the web page) and the accept loop.
//! - [`metrics`]: Prometheus metrics: every name, and one function per thing counted.
//! - [`server`]: wiring it all together and running until shutdown.
//! - [`backup`]: export and import of a whole store as JSON lines (backup, restore, migration).
//! - [`cli`]: the `triad-server` command line (serve, demo, token, import, export, import-data,
//!   config).
//! - [`throttle`]: rate limits keyed by peer address, person or room: bounded token buckets
//!   that say when to retry.

pub mod auth;
pub mod backup;
pub mod bus;
pub mod calls;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod http;
pub mod hub;
pub mod mail;
pub mod metrics;
pub mod programme;
pub mod report;
pub mod schedule;
pub mod server;
pub mod store;
pub mod throttle;
