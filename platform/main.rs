//! The `handmade` executable: parses flags, runs the frame loop, prints one line on failure.
//! Run with: cargo run --release -- --help

use clap::Parser;
use handmade::cli::Args;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .format_target(false)
        .init();
    let args = Args::parse();
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
