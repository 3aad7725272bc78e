use clap::Parser;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init("projector");
    projector::cli::Cli::parse().run().await
}
