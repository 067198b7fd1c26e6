//! End-to-end tests across processes: real `triad-node` server processes (the
//! `triad-server` program), started, killed and restarted, with clients on `triad-client`.

mod balancer;
mod demo;
mod harness;
mod nodes;
mod trio;
