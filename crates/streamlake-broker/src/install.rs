//! Where the Java runtime and the Kafka jars are: configured paths first, then the places
//! `scripts/setup.sh` and Debian put them. Checked before anything is started, so a missing
//! install is one clear error rather than a broker log full of class-loading failures.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use streamlake_config::BrokerConfig;

use crate::{BrokerError, KAFKA_VERSION};

/// The oldest Java a Kafka 4 broker runs on.
pub const MIN_JAVA: u32 = 17;

/// A Java runtime and a Kafka installation to run nodes with.
#[derive(Debug, Clone)]
pub struct KafkaInstall {
    /// The `java` executable.
    pub java: PathBuf,
    /// Directory of the Kafka jars (the class path is `libs/*`).
    pub libs: PathBuf,
}

impl KafkaInstall {
    /// Finds Java (`broker.java`, `$JAVA_HOME/bin/java`, `$PATH`) and the Kafka jars
    /// (`broker.kafka_libs`, else [`default_libs_dir`]), and checks Java's version.
    pub fn locate(cfg: &BrokerConfig) -> Result<Self, BrokerError> {
        let libs = cfg.kafka_libs.clone().unwrap_or_else(default_libs_dir);
        check_libs(&libs)?;
        let java = find_java(
            cfg.java.as_deref(),
            std::env::var_os("JAVA_HOME").as_deref(),
            std::env::var_os("PATH").as_deref(),
        )?;
        check_java_version(&java)?;
        Ok(Self { java, libs })
    }

    /// The `-cp` argument.
    pub fn class_path(&self) -> String {
        format!("{}/*", self.libs.display())
    }
}

/// `${STREAMLAKE_TOOLS_DIR:-$HOME/.cache/streamlake}/kafka-4.4.0/libs`.
pub fn default_libs_dir() -> PathBuf {
    let base = std::env::var_os("STREAMLAKE_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/streamlake")))
        .unwrap_or_else(|| PathBuf::from(".streamlake-tools"));
    base.join(format!("kafka-{KAFKA_VERSION}")).join("libs")
}

fn check_libs(libs: &Path) -> Result<(), BrokerError> {
    let jar = format!("kafka_2.13-{KAFKA_VERSION}.jar");
    if libs.join(&jar).is_file() {
        Ok(())
    } else {
        Err(BrokerError::KafkaMissing {
            dir: libs.to_path_buf(),
            jar,
        })
    }
}

fn find_java(
    configured: Option<&Path>,
    java_home: Option<&OsStr>,
    path: Option<&OsStr>,
) -> Result<PathBuf, BrokerError> {
    if let Some(java) = configured {
        return if java.is_file() {
            Ok(java.to_path_buf())
        } else {
            Err(BrokerError::Java {
                problem: format!("broker.java {} does not exist", java.display()),
            })
        };
    }
    let mut looked = Vec::new();
    if let Some(home) = java_home.filter(|h| !h.is_empty()) {
        let java = Path::new(home).join("bin/java");
        if java.is_file() {
            return Ok(java);
        }
        looked.push(java.display().to_string());
    }
    if let Some(found) = path
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("java"))
        .find(|c| c.is_file())
    {
        return Ok(found);
    }
    looked.push("`java` on $PATH".to_owned());
    Err(BrokerError::Java {
        problem: format!("none found (looked at {})", looked.join(", ")),
    })
}

fn check_java_version(java: &Path) -> Result<(), BrokerError> {
    let out = Command::new(java)
        .arg("-version")
        .output()
        .map_err(|e| BrokerError::Java {
            problem: format!("{} did not run: {e}", java.display()),
        })?;
    let text = String::from_utf8_lossy(&out.stderr);
    match java_major(&text) {
        Some(v) if v >= MIN_JAVA => Ok(()),
        Some(v) => Err(BrokerError::Java {
            problem: format!("{} is Java {v}", java.display()),
        }),
        None => Err(BrokerError::Java {
            problem: format!(
                "cannot tell the version of {} from {:?}",
                java.display(),
                text.lines().next().unwrap_or_default()
            ),
        }),
    }
}

/// The major version in `java -version`'s first line: `openjdk version "17.0.15"` → 17,
/// `java version "1.8.0_392"` → 8.
fn java_major(version_output: &str) -> Option<u32> {
    let quoted = version_output.split('"').nth(1)?;
    let mut parts = quoted.split(['.', '-', '+', '_']);
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        parts.next()?.parse().ok()
    } else {
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_versions_are_read_from_both_numbering_schemes() {
        assert_eq!(
            java_major("openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime"),
            Some(17)
        );
        assert_eq!(java_major("java version \"1.8.0_392\""), Some(8));
        assert_eq!(java_major("openjdk version \"21-ea\" 2023-09-19"), Some(21));
        assert_eq!(java_major("no version here"), None);
    }

    #[test]
    fn a_missing_java_says_where_it_looked_and_what_to_install() {
        let empty = tempfile::tempdir().unwrap();
        let err = find_java(
            None,
            Some(OsStr::new("/nonexistent/jdk")),
            Some(empty.path().as_os_str()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/jdk/bin/java"), "{err}");
        assert!(err.contains("openjdk-17-jre-headless"), "{err}");
        assert!(err.contains("kafka.bootstrap_servers"), "{err}");
    }

    #[test]
    fn java_home_wins_over_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("jdk");
        std::fs::create_dir_all(home.join("bin")).unwrap();
        std::fs::write(home.join("bin/java"), "").unwrap();
        let on_path = dir.path().join("bin");
        std::fs::create_dir(&on_path).unwrap();
        std::fs::write(on_path.join("java"), "").unwrap();
        let found = find_java(None, Some(home.as_os_str()), Some(on_path.as_os_str())).unwrap();
        assert_eq!(found, home.join("bin/java"));
        let found = find_java(None, None, Some(on_path.as_os_str())).unwrap();
        assert_eq!(found, on_path.join("java"));
    }

    #[test]
    fn missing_kafka_jars_name_the_directory_and_the_setup_script() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_libs(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(err.contains("kafka_2.13-4.4.0.jar"), "{err}");
        assert!(err.contains("scripts/setup.sh"), "{err}");
    }
}
