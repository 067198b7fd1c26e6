//! `triad-node`: the `triad-server` program under another name, so the end-to-end tests
//! in this crate can start, kill and restart real server processes.

fn main() -> anyhow::Result<()> {
    triad_server::cli::main()
}
