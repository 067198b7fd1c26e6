//! The `triad-server` binary: see [`triad_server::cli`].

fn main() -> anyhow::Result<()> {
    triad_server::cli::main()
}
