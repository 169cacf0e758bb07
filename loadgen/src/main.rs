//! gonets load generator (built in the load-generator issue).

fn main() {
    eprintln!("gonets-loadgen: not built yet; see the load-generator issue");
    std::process::exit(2);
}
