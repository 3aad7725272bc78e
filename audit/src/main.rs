use clap::Parser;

fn main() {
    service_kit::telemetry::init("rsvp-audit");
    let cli = audit::cli::Cli::parse();
    match audit::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("rsvp-audit: {e:#}");
            std::process::exit(2);
        }
    }
}
