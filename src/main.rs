//! The `d1ops` binary: a thin clap face over the library (see `cli`).
fn main() {
    std::process::exit(d1ops::cli::main_with_args());
}
