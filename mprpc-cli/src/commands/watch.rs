//! `mprpc watch SERVICE`: the service's providers as the registry lists them now, then
//! every change as it happens, each line stamped with the time (UTC), until Ctrl-C or
//! `--count` changes.

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::bail;
use mprpc::registry::ServiceInstance;

use crate::target::Target;

/// Options of `mprpc watch`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Print a service's providers, then every change as it happens",
    long_about = "Print a service's providers as the registry lists them, then every \
        change as it happens, until Ctrl-C:\n\n\
        \x20 TIME + ADDR (weight W, version V)   a provider joined\n\
        \x20 TIME - ADDR                         a provider left\n\
        \x20 TIME ~ ADDR (weight W, version V)   a provider re-registered with other details\n\n\
        TIME is RFC 3339 in UTC, to the millisecond. Needs a registry (-i FILE); --addr makes \
        no sense here."
)]
pub(crate) struct Args {
    /// Fully qualified service name, e.g. fixbug.UserServiceRpc.
    pub service: String,
    /// Exit after this many changes (for scripts and tests).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// Runs `mprpc watch`.
pub(crate) async fn run(target: &Target, args: Args) -> anyhow::Result<()> {
    if target.addr().is_some() {
        bail!("`watch` follows the registry; it cannot be used with --addr");
    }
    let registry = target.registry()?;
    let mut instances = target.discover(&registry, &args.service).await?;
    let mut current = by_address(&instances.borrow_and_update());
    println!(
        "{} {}: {} provider{}",
        now(),
        args.service,
        current.len(),
        if current.len() == 1 { "" } else { "s" }
    );
    for instance in current.values() {
        println!("{}   {}", now(), describe(instance));
    }
    if args.count == Some(0) {
        return Ok(());
    }
    let mut changes = 0;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            changed = instances.changed() => {
                if changed.is_err() {
                    bail!("the registry stopped following `{}`", args.service);
                }
            }
            _ = &mut ctrl_c => return Ok(()),
        }
        let next = by_address(&instances.borrow_and_update());
        for line in diff(&current, &next) {
            println!("{} {line}", now());
            changes += 1;
            if args.count.is_some_and(|n| changes >= n) {
                return Ok(());
            }
        }
        current = next;
    }
}

fn by_address(list: &[ServiceInstance]) -> BTreeMap<String, ServiceInstance> {
    list.iter()
        .map(|i| (i.address.clone(), i.clone()))
        .collect()
}

/// The change lines from one list to the next: leavers first, then joiners and changes.
fn diff(
    old: &BTreeMap<String, ServiceInstance>,
    new: &BTreeMap<String, ServiceInstance>,
) -> Vec<String> {
    let mut lines: Vec<String> = old
        .keys()
        .filter(|a| !new.contains_key(*a))
        .map(|a| format!("- {a}"))
        .collect();
    for (address, instance) in new {
        match old.get(address) {
            None => lines.push(format!("+ {}", describe(instance))),
            Some(before) if before != instance => lines.push(format!("~ {}", describe(instance))),
            Some(_) => {}
        }
    }
    lines
}

fn describe(instance: &ServiceInstance) -> String {
    let version = if instance.version.is_empty() {
        "?"
    } else {
        &instance.version
    };
    format!(
        "{} (weight {}, version {version})",
        instance.address, instance.weight
    )
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_leavers_joiners_and_changes() {
        let a = ServiceInstance::new("s.S", "127.0.0.1:1");
        let b = ServiceInstance::new("s.S", "127.0.0.1:2");
        let mut b2 = b.clone();
        b2.weight = 50;
        let c = ServiceInstance::new("s.S", "127.0.0.1:3");
        let old = by_address(&[a, b]);
        let new = by_address(&[b2, c]);
        assert_eq!(
            diff(&old, &new),
            vec![
                "- 127.0.0.1:1".to_owned(),
                "~ 127.0.0.1:2 (weight 50, version ?)".to_owned(),
                "+ 127.0.0.1:3 (weight 100, version ?)".to_owned(),
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }
}
