//! Project chores as a library, so the end-to-end tests run the very code that
//! `cargo xtask` runs:
//! - [`cluster`]: the local cluster (`cargo xtask cluster up|down`): Redis, two server nodes,
//!   nginx and coturn as processes on loopback, with the configuration files of `deploy/`.
//! - [`programs`]: the outside programs the tests and the cluster start, and how to install
//!   each.

pub mod cluster;
pub mod programs;
