//! The real `chimpsync` entry point, built inside the test package so the end-to-end tests can
//! spawn it (and SIGKILL it) through `CARGO_BIN_EXE_chimpsync-under-test`.

fn main() -> std::process::ExitCode {
    chimpsync::main()
}
