use clap::Parser;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init("dispatcher");
    let stopped = dispatcher::run(dispatcher::config::Config::parse()).await;
    service_kit::telemetry::shutdown();
    stopped
}
