fn main() {
    std::process::exit(est::cli::main());
}
