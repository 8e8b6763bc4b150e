//! The embedded default registry: a fixed list of provider addresses per service.
//!
//! It is what the demo and most tests use, since it needs nothing installed. Providers do not
//! register anywhere (registration is accepted and ignored); consumers see the list from the
//! config file, which never changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::watch;

use super::{Instances, Registration, Registry, RegistryError, ServiceInstance};
use crate::future::BoxFuture;

/// A fixed list of provider addresses per fully qualified service name.
#[derive(Debug)]
pub struct StaticRegistry {
    services: HashMap<String, watch::Sender<Arc<Vec<ServiceInstance>>>>,
    /// Addresses for any service not listed, if set (see [`StaticRegistry::any`]).
    fallback: Option<Vec<String>>,
}

impl StaticRegistry {
    /// A registry with the given `service -> addresses` lists.
    pub fn new(services: BTreeMap<String, Vec<String>>) -> StaticRegistry {
        let services = services
            .into_iter()
            .map(|(service, addrs)| {
                let list = instances(&service, &addrs);
                (service, watch::Sender::new(list))
            })
            .collect();
        StaticRegistry {
            services,
            fallback: None,
        }
    }

    /// A registry that sends every service to the given addresses (talking straight to one
    /// provider, as tools and tests do).
    pub fn any(addresses: Vec<String>) -> StaticRegistry {
        StaticRegistry {
            services: HashMap::new(),
            fallback: Some(addresses),
        }
    }
}

fn instances(service: &str, addresses: &[String]) -> Arc<Vec<ServiceInstance>> {
    Arc::new(
        addresses
            .iter()
            .map(|a| ServiceInstance::new(service, a.clone()))
            .collect(),
    )
}

struct NoRegistration;

impl Registration for NoRegistration {
    fn deregister(self: Box<Self>) -> BoxFuture<Result<(), RegistryError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

impl Registry for StaticRegistry {
    fn register(
        &self,
        _instance: ServiceInstance,
    ) -> BoxFuture<Result<Box<dyn Registration>, RegistryError>> {
        Box::pin(std::future::ready(Ok(
            Box::new(NoRegistration) as Box<dyn Registration>
        )))
    }

    fn discover(&self, service: &str) -> BoxFuture<Result<Instances, RegistryError>> {
        let found = match (self.services.get(service), &self.fallback) {
            (Some(sender), _) => Ok(sender.subscribe()),
            (None, Some(addrs)) => {
                // The receiver keeps the value even after this sender is dropped.
                let (_tx, rx) = watch::channel(instances(service, addrs));
                Ok(rx)
            }
            (None, None) => Err(RegistryError::UnknownService(service.to_owned())),
        };
        Box::pin(std::future::ready(found))
    }

    fn services(&self) -> BoxFuture<Result<Vec<String>, RegistryError>> {
        let mut names: Vec<String> = self.services.keys().cloned().collect();
        names.sort();
        Box::pin(std::future::ready(Ok(names)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_what_it_was_given() {
        let mut map = BTreeMap::new();
        map.insert(
            "a.B".to_owned(),
            vec!["127.0.0.1:1".to_owned(), "127.0.0.1:2".to_owned()],
        );
        let reg = StaticRegistry::new(map);
        let rx = reg.discover("a.B").await.unwrap();
        let list = rx.borrow().clone();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].address, "127.0.0.1:2");
        assert!(matches!(
            reg.discover("a.C").await,
            Err(RegistryError::UnknownService(s)) if s == "a.C"
        ));
        let any = StaticRegistry::any(vec!["127.0.0.1:9".to_owned()]);
        assert_eq!(
            any.discover("x.Y").await.unwrap().borrow()[0].address,
            "127.0.0.1:9"
        );
    }
}
