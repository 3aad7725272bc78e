use clap::Parser;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init("projector");
    let stopped = projector::cli::Cli::parse().run().await;
    service_kit::telemetry::shutdown();
    stopped
}
