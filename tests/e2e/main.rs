//! End-to-end tests across processes: real `triad-node` server processes (the
//! `triad-server` program), started, killed and restarted, with clients on `triad-client`.

mod api;
mod backup;
mod balancer;
mod calls;
mod cluster;
mod demo;
mod deploy;
mod drain;
mod harness;
mod nodes;
mod programme;
mod scrape;
mod trio;
