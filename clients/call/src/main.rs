//! `triad-call`.
fn main() {}
