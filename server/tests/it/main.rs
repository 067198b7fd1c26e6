//! Integration tests of triad-server: a real server on port 0 with its embedded store in a
//! temporary folder, driven over real websockets. One test binary for the crate.

mod bad_input;
mod calendar;
mod calls;
mod chat;
mod coachings;
mod delivery;
mod drain;
mod harness;
mod http_limits;
mod large;
mod mail;
mod pins;
mod programme;
mod refusals;
mod report;
mod signin;
mod smtp_sink;
mod store_outage;
