//! Integration tests of triad-server: a real server on port 0 with its embedded store in a
//! temporary folder, driven over real websockets. One test binary for the crate.

mod bad_input;
mod calls;
mod chat;
mod drain;
mod harness;
