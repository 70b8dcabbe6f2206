//! The `ferrolb` binary: one executable with a subcommand per role.
//!
//! `ferrolb controller` allocates external IPs, `ferrolb speaker` announces them, `ferrolb status` shows who
//! holds each IP, `ferrolb crds` prints the CRDs, `ferrolb migrate-from-metallb` converts MetalLB configuration.
//! This crate only wires things: command-line flags, logging, the metrics and health server, signals.
//! Decisions live in the library crates; the one exception is the MetalLB conversion (`migrate`), a pure
//! module that only this command uses.

#![forbid(unsafe_code)]

mod cli;
mod controller_cmd;
mod crds_cmd;
mod duration;
mod migrate;
mod migrate_cmd;
mod release_cmd;
mod server;
mod speaker_cmd;
mod status_cmd;
mod tasks;
mod telemetry;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Crds(args) => crds_cmd::run(&args),
        cli::Command::MigrateFromMetallb(args) => {
            if !migrate_cmd::run(&args)? {
                std::process::exit(migrate_cmd::EXIT_NOT_CONVERTED);
            }
            Ok(())
        }
        cli::Command::Controller(args) => {
            telemetry::init(&cli.log)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(controller_cmd::run(args))
        }
        cli::Command::ReleaseFinalizers(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(release_cmd::run(args))
        }
        cli::Command::Status(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(status_cmd::run(args))
        }
        cli::Command::Speaker(args) => {
            telemetry::init(&cli.log)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(speaker_cmd::run(args))
        }
    }
}
