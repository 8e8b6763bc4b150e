//! `mprpc list`: every service in the registry with its providers, or, with `--addr`, the
//! services (and methods) that one provider hosts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mprpc::client::reflection;
use mprpc::registry::ServiceInstance;

use crate::target::Target;

/// Options of `mprpc list`.
#[derive(Debug, clap::Args)]
#[command(
    about = "List services and their providers (with --addr: the services one provider hosts)",
    long_about = "List services and their providers.\n\n\
        From the registry of the config file (-i FILE): one line per provider of every \
        service, with its address, weight, version and uptime (`?` when the provider did not \
        say when it started). With --addr HOST:PORT: the services and methods that provider \
        hosts, asked from its reflection service."
)]
pub(crate) struct Args {}

/// Runs `mprpc list`.
pub(crate) async fn run(target: &Target, _args: Args) -> anyhow::Result<()> {
    match target.addr() {
        Some(addr) => list_provider(target, addr).await,
        None => list_registry(target).await,
    }
}

async fn list_provider(target: &Target, addr: &str) -> anyhow::Result<()> {
    let services = reflection::list_services(&target.channel_to(addr)).await?;
    println!("provider {addr} hosts {} services:", services.len());
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| vec![s.name.clone(), s.methods.join(", ")])
        .collect();
    print_table(&["SERVICE", "METHODS"], &rows);
    Ok(())
}

async fn list_registry(target: &Target) -> anyhow::Result<()> {
    let registry = target.registry()?;
    let services = target
        .registry_op("list the registry's services", registry.services())
        .await?;
    if services.is_empty() {
        println!("no services in the registry");
        return Ok(());
    }
    let now = SystemTime::now();
    let mut rows = Vec::new();
    for service in services {
        let instances = target.discover(&registry, &service).await?;
        let instances = instances.borrow().clone();
        if instances.is_empty() {
            rows.push(vec![
                service.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for instance in instances.iter() {
            rows.push(vec![
                service.clone(),
                instance.address.clone(),
                instance.weight.to_string(),
                if instance.version.is_empty() {
                    "?".to_owned()
                } else {
                    instance.version.clone()
                },
                uptime(instance, now),
            ]);
        }
    }
    print_table(
        &["SERVICE", "ADDRESS", "WEIGHT", "VERSION", "UPTIME"],
        &rows,
    );
    Ok(())
}

/// How long the provider has been registered, to the second; `?` when unknown.
fn uptime(instance: &ServiceInstance, now: SystemTime) -> String {
    if instance.start_time_ms == 0 {
        return "?".to_owned();
    }
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let secs = now_ms.saturating_sub(instance.start_time_ms) / 1000;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// Prints rows under a header, each column as wide as its widest cell.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i == last {
                    (*cell).to_owned()
                } else {
                    format!("{cell:<width$}", width = widths[i])
                }
            })
            .collect();
        println!("{}", text.join("  "));
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_rounded_to_seconds_and_unknown_is_a_question_mark() {
        let now = UNIX_EPOCH + Duration::from_millis(1_000_000_000);
        let mut instance = ServiceInstance::new("a.B", "127.0.0.1:1");
        assert_eq!(uptime(&instance, now), "?");
        instance.start_time_ms = 1_000_000_000 - 3_723_400;
        assert_eq!(uptime(&instance, now), "1h 2m 3s");
        instance.start_time_ms = 2_000_000_000;
        assert_eq!(uptime(&instance, now), "0s");
    }
}
