use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use onemap::{
    commands,
    settings::{Cli, Command, Settings},
    App,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let serve = match &cli.command {
        Command::Serve(args) => Some(args.as_ref()),
        _ => None,
    };
    let settings = match Settings::resolve(&cli, serve) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("onemap: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_new(&settings.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let outcome = match &cli.command {
        Command::Serve(_) => serve_with(settings).await,
        Command::Migrate => commands::migrate(&settings)
            .await
            .map(|()| {
                eprintln!(
                    "onemap: schema of {} is up to date",
                    settings.redacted().database
                )
            })
            .map_err(|e| e.to_string()),
        Command::Import(args) => commands::import(&settings, args)
            .await
            .map(|done| {
                for (src, n) in &done.columns.renamed {
                    eprintln!("onemap: column `{src}` read as a property ({n} features)");
                }
                for (col, n) in &done.columns.dropped {
                    eprintln!("onemap: dropped column `{col}` ({n} features)");
                }
                if done.columns.dropped_other > 0 {
                    eprintln!(
                        "onemap: dropped {} more values of other columns",
                        done.columns.dropped_other
                    );
                }
                eprintln!(
                    "onemap: imported {} features into {}",
                    done.count, args.layer
                )
            })
            .map_err(|e| e.to_string()),
        Command::Basemap(args) => commands::basemap(&settings, args)
            .await
            .map(|n| {
                eprintln!(
                    "onemap: wrote {n} basemap tiles to {}",
                    args.output.display()
                )
            })
            .map_err(|e| e.to_string()),
        Command::Token(command) => commands::token(&settings, command)
            .await
            .map(|text| print!("{text}"))
            .map_err(|e| e.to_string()),
        Command::Copy(args) => commands::copy(&settings, args)
            .await
            .map(|done| {
                eprintln!(
                    "onemap: copied {} features, {} changes, {} tokens and {} scenarios",
                    done.features, done.changes, done.tokens, done.scenarios
                )
            })
            .map_err(|e| e.to_string()),
        Command::Export(args) => commands::export(&settings, args)
            .await
            .map(|n| eprintln!("onemap: exported {n} features of {}", args.layer))
            .map_err(|e| e.to_string()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("onemap: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_with(settings: Settings) -> Result<(), String> {
    let effective = serde_json::to_string(&settings.redacted()).unwrap_or_default();
    tracing::info!(settings = %effective, "effective settings");
    let app = App::build(settings).await.map_err(|e| e.to_string())?;
    tracing::info!("listening on http://{}", app.local_addr());
    app.serve().await.map_err(|e| e.to_string())
}
