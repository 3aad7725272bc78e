// `sqlx::migrate!` embeds the migrations when service-kit compiles; on stable Rust it cannot tell
// cargo to watch the folder, so a new migration would otherwise be missed until something else
// changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
