//! `streamlake schema check OLD NEW...`: compatibility of JSON Schema versions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{json, Value};
use streamlake_config::Compatibility;
use streamlake_schema::compat::{self, Change};

use crate::args::SchemaCommand;

pub(crate) fn run(cmd: &SchemaCommand) -> anyhow::Result<ExitCode> {
    let SchemaCommand::Check {
        files,
        compatibility,
        json,
    } = cmd;
    let schemas = files
        .iter()
        .map(|f| read(f).map(|v| (f, v)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Both directions are shown whatever the mode, which decides the exit code.
    let pairs: Vec<Pair<'_>> = compat::pairs(*compatibility, schemas.len())
        .map(|(o, n)| {
            let ((old_file, old), (new_file, new)) = (&schemas[o], &schemas[n]);
            Pair {
                old: old_file,
                new: new_file,
                backward: compat::backward(old, new),
                forward: compat::forward(old, new),
            }
        })
        .collect();
    let broken = pairs.iter().any(|p| p.breaks(*compatibility));
    if *json {
        let checked: Vec<Value> = pairs.iter().map(Pair::to_json).collect();
        let out = json!({
            "compatibility": compatibility.name(),
            "compatible": !broken,
            "pairs": checked,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for p in &pairs {
            println!("{} -> {}", p.old.display(), p.new.display());
            for (direction, changes) in [("backward", &p.backward), ("forward", &p.forward)] {
                if changes.is_empty() {
                    println!("  {direction:<9} compatible");
                } else {
                    println!("  {direction:<9} incompatible");
                    for c in changes {
                        println!("    {c}");
                    }
                }
            }
            let full = if p.backward.is_empty() && p.forward.is_empty() {
                "compatible"
            } else {
                "incompatible"
            };
            println!("  {:<9} {full}", "full");
        }
        println!(
            "compatibility {}: {}",
            compatibility.name(),
            if broken { "broken" } else { "kept" }
        );
    }
    Ok(if broken {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

struct Pair<'a> {
    old: &'a PathBuf,
    new: &'a PathBuf,
    backward: Vec<Change>,
    forward: Vec<Change>,
}

impl Pair<'_> {
    fn breaks(&self, mode: Compatibility) -> bool {
        (mode.backward() && !self.backward.is_empty())
            || (mode.forward() && !self.forward.is_empty())
    }

    fn to_json(&self) -> Value {
        let changes = |cs: &[Change]| -> Vec<Value> {
            cs.iter()
                .map(|c| json!({"path": c.path, "rule": c.rule, "detail": c.detail}))
                .collect()
        };
        json!({
            "old": self.old.display().to_string(),
            "new": self.new.display().to_string(),
            "backward": changes(&self.backward),
            "forward": changes(&self.forward),
        })
    }
}

fn read(file: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let value: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not valid JSON", file.display()))?;
    // Compiling it says where a schema that is JSON but not a JSON Schema goes wrong.
    streamlake_schema::check_schema(&value)
        .map_err(|e| anyhow::anyhow!("{} is not a valid JSON Schema: {e}", file.display()))?;
    Ok(value)
}
