//! The reflection service every provider hosts next to its own services (see
//! [`crate::reflection`] for what it answers).

use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use super::{BoxFuture, Router, Service};
use crate::reflection::{
    FileDescriptorSetRequest, FileDescriptorSetResponse, ListServicesResponse, ServiceInfo,
    METHODS, SERVICE_NAME,
};
use crate::{Body, Request, Status};

/// The reflection service of one provider.
pub(crate) struct Reflection {
    services: Arc<Vec<(ServiceInfo, &'static [u8])>>,
}

impl Reflection {
    pub(crate) fn new(router: &Router) -> Reflection {
        let mut services: Vec<(ServiceInfo, &'static [u8])> = router
            .services()
            .map(|s| {
                let info = ServiceInfo {
                    name: s.name().to_owned(),
                    methods: s.methods().iter().map(|m| (*m).to_owned()).collect(),
                };
                (info, s.file_descriptor_set())
            })
            .collect();
        services.push((
            ServiceInfo {
                name: SERVICE_NAME.to_owned(),
                methods: METHODS.iter().map(|m| (*m).to_owned()).collect(),
            },
            &[],
        ));
        services.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Reflection {
            services: Arc::new(services),
        }
    }
}

impl Service for Reflection {
    fn name(&self) -> &'static str {
        SERVICE_NAME
    }

    fn methods(&self) -> &'static [&'static str] {
        METHODS
    }

    fn call(&self, method: &str, request: Request<Body>) -> BoxFuture<Result<Body, Status>> {
        let services = self.services.clone();
        let reply = match method {
            "ListServices" => Ok(ListServicesResponse {
                services: services.iter().map(|(info, _)| info.clone()).collect(),
            }
            .encode_to_vec()),
            "GetFileDescriptorSet" => {
                FileDescriptorSetRequest::decode(request.into_inner().into_bytes())
                    .map_err(|e| Status::invalid_argument(format!("bad request: {e}")))
                    .and_then(|req| {
                        let (_, fds) = services
                            .iter()
                            .find(|(info, _)| info.name == req.service)
                            .ok_or_else(|| {
                            Status::not_found(format!(
                                "no service `{}` on this provider",
                                req.service
                            ))
                        })?;
                        if fds.is_empty() {
                            return Err(Status::not_found(format!(
                                "service `{}` was built without descriptors",
                                req.service
                            )));
                        }
                        Ok(FileDescriptorSetResponse {
                            file_descriptor_set: Bytes::from_static(fds),
                        }
                        .encode_to_vec())
                    })
            }
            other => Err(Status::unimplemented(format!(
                "service `{SERVICE_NAME}` has no method `{other}`"
            ))),
        };
        Box::pin(std::future::ready(reply.map(Body::from)))
    }
}
