// `sqlx::migrate!` embeds the migrations at compile time but does not ask
// to be rebuilt when one is added: without this, a new migration file is
// silently missing from a build that was up to date before it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
