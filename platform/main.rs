//! The `handmade` executable: parses flags, runs the frame loop, prints one line on failure.
//! Run with: cargo run --release -- --help

use clap::error::ErrorKind;
use clap::Parser;
use handmade::{Args, Config};

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

fn bad_flag(message: &str) -> ! {
    eprintln!("handmade: {message} (see --help)");
    std::process::exit(2);
}
