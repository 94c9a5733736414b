//! `streamlake config check FILE`.

use std::process::ExitCode;

use crate::args::ConfigCommand;

pub(crate) fn run(cmd: &ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::Check { file } => match streamlake_config::load(file, super::COMPONENTS) {
            Ok(config) => {
                // Each dataset's schema versions compile and keep its compatibility mode.
                if let Err(errors) = streamlake_schema::SchemaRegistry::from_config(&config) {
                    for e in errors {
                        eprintln!("{}: {e}", file.display());
                    }
                    return ExitCode::FAILURE;
                }
                let topics = config.declared_topics().len();
                let datasets: usize = config.tenants.values().map(|t| t.datasets.len()).sum();
                println!(
                    "{}: ok ({} tenants, {datasets} datasets, {topics} topics, {})",
                    file.display(),
                    config.tenants.len(),
                    if config.uses_embedded_broker() {
                        "managed Kafka broker".to_owned()
                    } else {
                        format!(
                            "Kafka at {}",
                            config
                                .kafka
                                .bootstrap_servers
                                .as_deref()
                                .unwrap_or_default()
                        )
                    }
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprint!("{errors}");
                ExitCode::FAILURE
            }
        },
    }
}
