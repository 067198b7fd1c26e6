//! The `triad-bench` program; see `triad_bench::cli`.

fn main() -> std::process::ExitCode {
    triad_bench::cli::main()
}
