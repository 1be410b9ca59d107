//! The `handmade` executable: parses flags, runs the frame loop (or `handmade new DIR` writes a
//! game crate), prints one line on failure.
//! Run with: cargo run --release -- --help

use clap::error::ErrorKind;
use clap::Parser;
use handmade::{Args, Command, Config};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .format_target(false)
        .init();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => e.exit(),
        Err(e) => {
            // clap's message is several lines with a usage hint; a user needs the first.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments").trim_start_matches("error: ");
            bad_flag(first);
        }
    };
    if let Some(Command::New { dir }) = &args.command {
        new_game(dir);
    }
    let config = Config::from_args(&args).unwrap_or_else(|e| bad_flag(&e));
    match handmade::run(&config) {
        Ok(report) => {
            if args.stats {
                println!("{}", report.stats_line);
            }
            if !report.exit_errors.is_empty() {
                std::process::exit(1);
            }
        }
        Err(error) => {
            eprintln!("handmade: {error}");
            std::process::exit(1);
        }
    }
}

/// `handmade new DIR`: the crate, then the one command that runs it.
fn new_game(dir: &std::path::Path) -> ! {
    match handmade::new_game(dir) {
        Ok(made) => {
            println!("created the game crate `{}` in {}", made.name, made.dir.display());
            println!("run it (rebuilt and reloaded on every save): handmade --game {}", made.dir.display());
            std::process::exit(0);
        }
        Err(error) => {
            eprintln!("handmade: {error}");
            std::process::exit(1);
        }
    }
}

fn bad_flag(message: &str) -> ! {
    eprintln!("handmade: {message} (see --help)");
    std::process::exit(2);
}
