use clap::Parser;
use query_api::{Application, Config};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init("query-api");
    let app = Application::build(Config::parse()).await?;
    let stopped = app.run_until_stopped().await;
    service_kit::telemetry::shutdown();
    stopped
}
