use clap::Parser;
use command_api::{Application, Config};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init("command-api");
    let app = Application::build(Config::parse()).await?;
    app.run_until_stopped().await
}
