//! Reading one service's provider nodes into a list of instances, for its follower
//! ([`super::follow`]), and vetting them.
//!
//! A node this process cannot read is skipped, not a reason to give up the whole reading: a
//! stranger's unreadable node under an open `providers` node must not freeze the list.
//!
//! In a **protected** registry a node is also refused if its ACL lets `world:anyone` change it
//! (write, create, delete or administer), or if it sits under a `providers` node that anyone
//! may change (then anyone could have made it, with any ACL). ACLs are read only when a node
//! is new or changed: each verdict is kept with the node's `czxid` and ACL version, and the
//! `providers` node's with its ACL version; a reading otherwise costs what it did
//! (one listing, one read per node), and a call costs nothing. Each refusal is logged as a
//! warning and counted (`mprpc_registry_refused_nodes_total`) once per version of a node.

use std::collections::HashMap;

use futures_util::future::join_all;
use zookeeper_client::{Client, Error as ZkError, Permission, Stat};

use super::access::world_may_change;
use crate::metrics::Metrics;
use crate::registry::{ServiceInstance, LEGACY_PROTOCOL, PROTOCOL_KEY};

/// Why a provider node was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// Its ACL lets anyone change it.
    WorldWritable(Permission),
    /// It sits under a `providers` node that anyone may change.
    OpenParent(Permission),
    /// This process may not read it.
    Unreadable,
}

impl Refusal {
    /// The `reason` label of the counter.
    fn label(self) -> &'static str {
        match self {
            Refusal::WorldWritable(_) => "world_writable",
            Refusal::OpenParent(_) => "open_parent",
            Refusal::Unreadable => "unreadable",
        }
    }

    fn describe(self, parent: &str) -> String {
        match self {
            Refusal::WorldWritable(p) => format!("its ACL lets anyone change it (world:anyone may {p})"),
            Refusal::OpenParent(p) => format!(
                "{parent} lets anyone change it (world:anyone may {p}), so anyone could have made this node"
            ),
            Refusal::Unreadable => "this process may not read it (NoAuth)".to_owned(),
        }
    }
}

/// What was decided about one node, and for which version of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Verdict {
    /// `(czxid, aversion)` of the node judged; `None` for a node that could not be read.
    version: Option<(i64, i32)>,
    refused: Option<Refusal>,
}

/// One read of a node: its instance and version, or why it was skipped.
enum Read {
    Node(Box<ServiceInstance>, Stat),
    Gone,
    Unreadable,
}

/// Reads the providers under one path, remembering what it decided about each node.
#[derive(Debug)]
pub(super) struct Listing {
    path: String,
    protected: bool,
    /// The `providers` node's ACL version, and what anyone may change there.
    parent: Option<(i32, Option<Permission>)>,
    /// By node name.
    verdicts: HashMap<String, Verdict>,
    /// Whether the last reading was refused by the path's ACL (`NoAuth`).
    denied: bool,
    /// For the original's layout: the service's full name.
    legacy: Option<String>,
}

impl Listing {
    /// A listing of `path`: a `providers` node, or with `legacy` (the service's full name)
    /// the original C++ mprpc's `/{Service}`, whose children are methods holding `ip:port`.
    pub(super) fn new(path: String, protected: bool, legacy: Option<String>) -> Listing {
        Listing {
            path,
            protected,
            legacy,
            parent: None,
            verdicts: HashMap::new(),
            denied: false,
        }
    }

    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// Whether the last reading was refused by the path's ACL (`NoAuth`).
    pub(super) fn denied(&self) -> bool {
        self.denied
    }

    /// The providers, sorted by address; `None` if ZooKeeper could not be read.
    pub(super) async fn read(&mut self, client: &Client) -> Option<Vec<ServiceInstance>> {
        let path = self.path.clone();
        let path = path.as_str();
        self.denied = false;
        let (children, stat) = match client.get_children(path).await {
            Ok(listed) => listed,
            Err(ZkError::NoAuth) => {
                self.denied = true;
                return None;
            }
            Err(ZkError::NoNode) => {
                self.verdicts.clear();
                return Some(Vec::new());
            }
            Err(e) => {
                tracing::debug!(%path, "cannot list providers: {e}");
                return None;
            }
        };
        let open_parent = self.vet_parent(client, &stat).await?;
        let legacy = self.legacy.as_deref();
        let reads = children
            .iter()
            .map(|child| read_node(client, path, child, legacy));
        let reads: Vec<Read> = join_all(reads).await.into_iter().collect::<Option<_>>()?;
        let this = &*self;
        let judged = children.iter().zip(reads).map(|(child, read)| async move {
            let verdict = this.judge(client, child, &read, open_parent).await;
            (child, read, verdict)
        });
        let judged = join_all(judged).await;
        let mut verdicts = HashMap::with_capacity(judged.len());
        let mut list = Vec::with_capacity(judged.len());
        for (child, read, verdict) in judged {
            let Some(verdict) = verdict else { continue };
            if let Some(refusal) = verdict.refused {
                if self.verdicts.get(child) != Some(&verdict) {
                    let reason = refusal.describe(path);
                    tracing::warn!(node = %format!("{path}/{child}"), "refusing a provider node: {reason}");
                    Metrics::global().registry_refused(refusal.label());
                }
            } else if let Read::Node(instance, _) = read {
                list.push(*instance);
            }
            verdicts.insert(child.clone(), verdict);
        }
        self.verdicts = verdicts;
        if self.legacy.is_some() {
            list = by_address(list);
        }
        list.sort_by(|a, b| a.address.cmp(&b.address));
        Some(list)
    }

    /// In a protected registry, what anyone may change on the `providers` node (read again
    /// only when its ACL version changed); `None` if it could not be read.
    async fn vet_parent(&mut self, client: &Client, stat: &Stat) -> Option<Option<Permission>> {
        if !self.protected {
            return Some(None);
        }
        match self.parent {
            Some((aversion, open)) if aversion == stat.aversion => return Some(open),
            _ => {}
        }
        let (acls, stat) = match client.get_acl(&self.path).await {
            Ok(read) => read,
            Err(e) => {
                tracing::debug!(path = %self.path, "cannot read the ACL: {e}");
                return None;
            }
        };
        let open = world_may_change(&acls);
        self.parent = Some((stat.aversion, open));
        Some(open)
    }

    /// The verdict on one node (reading its ACL only if it is new or changed); `None` if it
    /// is gone.
    async fn judge(
        &self,
        client: &Client,
        child: &str,
        read: &Read,
        open_parent: Option<Permission>,
    ) -> Option<Verdict> {
        let stat = match read {
            Read::Gone => return None,
            Read::Unreadable => {
                let refused = Some(Refusal::Unreadable);
                return Some(Verdict {
                    version: None,
                    refused,
                });
            }
            Read::Node(_, stat) => stat,
        };
        let version = Some((stat.czxid, stat.aversion));
        if !self.protected {
            return Some(Verdict {
                version,
                refused: None,
            });
        }
        if let Some(p) = open_parent {
            let refused = Some(Refusal::OpenParent(p));
            return Some(Verdict { version, refused });
        }
        if let Some(known) = self.verdicts.get(child) {
            // Only a verdict on the node's own ACL holds for as long as its version does.
            let own = matches!(known.refused, None | Some(Refusal::WorldWritable(_)));
            if own && known.version == version {
                return Some(*known);
            }
        }
        let refused = match client.get_acl(&format!("{}/{child}", self.path)).await {
            Ok((acls, _)) => world_may_change(&acls).map(Refusal::WorldWritable),
            Err(ZkError::NoNode) => return None,
            // Read but not its ACL: as good as unreadable.
            Err(e) => {
                tracing::debug!(path = %self.path, %child, "cannot read the ACL: {e}");
                Some(Refusal::Unreadable)
            }
        };
        Some(Verdict { version, refused })
    }
}

/// Reads one node; `None` if ZooKeeper could not be read.
async fn read_node(client: &Client, path: &str, child: &str, legacy: Option<&str>) -> Option<Read> {
    match client.get_data(&format!("{path}/{child}")).await {
        Ok((data, stat)) => {
            let instance = match legacy {
                Some(service) => legacy_instance(service, child, &data),
                None => instance(path, child, &data),
            };
            Some(Read::Node(Box::new(instance), stat))
        }
        // Gone between the listing and the read.
        Err(ZkError::NoNode) => Some(Read::Gone),
        Err(ZkError::NoAuth) => Some(Read::Unreadable),
        Err(e) => {
            tracing::debug!(%path, "cannot read a provider: {e}");
            None
        }
    }
}

/// The instance a node describes: its JSON, or, for a node written by someone else (the
/// original mprpc writes a bare "ip:port"), one at the node's name.
fn instance(path: &str, child: &str, data: &[u8]) -> ServiceInstance {
    match serde_json::from_slice::<ServiceInstance>(data) {
        Ok(mut instance) => {
            if instance.address.is_empty() {
                instance.address = child.to_owned();
            }
            instance
        }
        Err(_) => ServiceInstance::new(path.rsplit('/').nth(1).unwrap_or_default(), child),
    }
}

/// The instance a node of the original's layout names: method `child` of `service` at the
/// address the node holds (`ip:port`, as text).
fn legacy_instance(service: &str, child: &str, data: &[u8]) -> ServiceInstance {
    let address = String::from_utf8_lossy(data).trim().to_owned();
    let mut instance = ServiceInstance::new(service, address);
    instance.methods = vec![child.to_owned()];
    instance
        .metadata
        .insert(PROTOCOL_KEY.to_owned(), LEGACY_PROTOCOL.to_owned());
    instance
}

/// One instance per address, with the methods of every node that names it (the original's
/// layout has a node per method). A node whose data is not an address is dropped.
fn by_address(nodes: Vec<ServiceInstance>) -> Vec<ServiceInstance> {
    let mut merged: Vec<ServiceInstance> = Vec::new();
    for node in nodes {
        if crate::config::check_host_port(&node.address, false).is_err() {
            tracing::debug!(address = %node.address, "a node of the original's layout holds no address");
            continue;
        }
        match merged.iter_mut().find(|i| i.address == node.address) {
            Some(instance) => instance.methods.extend(node.methods),
            None => merged.push(node),
        }
    }
    merged
}
