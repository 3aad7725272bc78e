use clap::Parser;

/// The writer builds and folds millions of small objects at start: mimalloc does that faster
/// than the system allocator (see `benches/restart.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use command_api::{Application, Config};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init("command-api");
    let app = Application::build(Config::parse()).await?;
    let stopped = app.run_until_stopped().await;
    service_kit::telemetry::shutdown();
    stopped
}
