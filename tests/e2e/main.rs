//! End-to-end tests across processes: real `triad-node` server processes (the
//! `triad-server` program), started, killed and restarted, with clients on `triad-client`.

mod backup;
mod balancer;
mod cluster;
mod demo;
mod deploy;
mod drain;
mod harness;
mod nodes;
mod scrape;
mod trio;
