//! The `handmade` executable: parses flags, runs the frame loop, prints one line on failure.
//! Run with: cargo run --release -- --help

use clap::error::ErrorKind;
use clap::Parser;
use handmade::cli::Args;

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
            eprintln!("handmade: {first} (see --help)");
            std::process::exit(2);
        }
    };
    match handmade::frame_loop::run(&args) {
        Ok(report) => {
            if args.stats {
                println!("{}", report.stats_line);
            }
        }
        Err(error) => {
            eprintln!("handmade: {error}");
            std::process::exit(1);
        }
    }
}
