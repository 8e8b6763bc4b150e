//! `/status`: what a provider is doing, as an HTML page for people and as JSON for scripts.
//!
//! [`StatusView`] gathers everything once from the [`AdminState`] and a metrics snapshot;
//! serde turns it into JSON and [`render_html`] into a plain server-rendered page (no
//! scripts, a little inline CSS). Every string that came from outside the page's own text
//! (service and method names, addresses, versions) goes through [`escape_html`].

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

pub use super::text::escape_html;
use super::text::{codes_text, latency_text, uptime_text};
use super::AdminState;
use crate::metrics::{MethodSnapshot, Side};
use crate::reflection;

/// Everything `/status` shows.
#[derive(Clone, Debug, Serialize)]
pub struct StatusView {
    /// Where the provider listens for calls.
    pub rpc_address: String,
    /// Seconds since the provider's counters were created.
    pub uptime_seconds: f64,
    /// The registry's state: `connected`, `connecting`, `disconnected`, `static`, or `none`.
    pub registry: String,
    /// The hosted services, with the calls they served: by name, reflection last.
    pub services: Vec<ServiceView>,
    /// Calls this process made as a consumer, by service (empty for a pure provider).
    pub outgoing: Vec<ServiceView>,
    /// Calls refused before reaching a method (unknown service or method), by code name.
    pub rejected: BTreeMap<String, u64>,
    /// The adaptive concurrency limit now (`[server.adaptive_limit]`), or `null` without one.
    pub adaptive_limit: Option<u64>,
    /// Calls the adaptive limit refused (also in `rejected`, as `ResourceExhausted`).
    pub shed_calls: u64,
    /// Open connections.
    pub connections: ConnectionsView,
    /// Providers this process's channels know, by service.
    pub known_providers: Vec<ProvidersView>,
    /// Log lines dropped because the log writer could not keep up.
    pub dropped_log_lines: u64,
}

/// One service and its methods.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceView {
    /// Fully qualified name.
    pub name: String,
    /// Its methods, in declaration order for hosted services, sorted for outgoing calls.
    pub methods: Vec<MethodView>,
}

/// One method's counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MethodView {
    /// Method name.
    pub name: String,
    /// Calls finished.
    pub calls: u64,
    /// Calls finished with a code other than `Ok`.
    pub errors: u64,
    /// Calls running now.
    pub in_flight: u64,
    /// Finished calls by code name (`Ok` included).
    pub codes: BTreeMap<String, u64>,
    /// Median latency in milliseconds (`null` before the first call).
    pub p50_ms: Option<f64>,
    /// 90th percentile latency in milliseconds.
    pub p90_ms: Option<f64>,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: Option<f64>,
}

/// Open connections, both ways.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionsView {
    /// Connections to this provider.
    pub server: u64,
    /// Connections this process's channels hold to providers.
    pub client: u64,
}

/// The providers a consumer channel knows for one service.
#[derive(Clone, Debug, Serialize)]
pub struct ProvidersView {
    /// Fully qualified service name.
    pub service: String,
    /// Their addresses, `host:port`.
    pub addresses: Vec<String>,
    /// Those that outlier detection keeps out of the balancer now.
    pub ejected: Vec<String>,
}

impl StatusView {
    /// Reads `state`'s counters now.
    pub fn new(state: &AdminState) -> StatusView {
        let snapshot = state.metrics.snapshot();
        let served = |service: &str, method: &str| {
            snapshot
                .methods
                .iter()
                .find(|m| m.side == Side::Server && m.service == service && m.method == method)
        };
        let mut services: Vec<ServiceView> = state
            .services
            .iter()
            .map(|s| ServiceView {
                name: s.name.clone(),
                methods: s
                    .methods
                    .iter()
                    .map(|name| match served(&s.name, name) {
                        Some(m) => MethodView::from(m),
                        None => MethodView {
                            name: name.clone(),
                            ..MethodView::default()
                        },
                    })
                    .collect(),
            })
            .collect();
        // The application's services first, by name; the built-in reflection service last.
        services.sort_by(|a, b| {
            (a.name == reflection::SERVICE_NAME, &a.name)
                .cmp(&(b.name == reflection::SERVICE_NAME, &b.name))
        });
        let mut outgoing: Vec<ServiceView> = Vec::new();
        // The snapshot is sorted by side, service and method.
        for m in snapshot.methods.iter().filter(|m| m.side == Side::Client) {
            match outgoing.last_mut() {
                Some(last) if last.name == m.service => last.methods.push(MethodView::from(m)),
                _ => outgoing.push(ServiceView {
                    name: m.service.clone(),
                    methods: vec![MethodView::from(m)],
                }),
            }
        }
        StatusView {
            rpc_address: state.rpc_address.clone(),
            uptime_seconds: snapshot.uptime.as_secs_f64(),
            registry: state.registry_state().to_owned(),
            services,
            outgoing,
            rejected: snapshot
                .rejected
                .iter()
                .map(|(code, n)| (code.as_str().to_owned(), *n))
                .collect(),
            adaptive_limit: snapshot.adaptive_limit,
            shed_calls: snapshot.shed_calls,
            connections: ConnectionsView {
                server: snapshot.server_connections,
                client: snapshot.client_connections,
            },
            known_providers: snapshot
                .providers
                .iter()
                .map(|(service, instances)| ProvidersView {
                    service: service.clone(),
                    addresses: instances.iter().map(|i| i.address.clone()).collect(),
                    ejected: instances
                        .iter()
                        .filter(|i| {
                            snapshot
                                .provider_health
                                .get(&i.address)
                                .is_some_and(|h| h.ejected)
                        })
                        .map(|i| i.address.clone())
                        .collect(),
                })
                .collect(),
            dropped_log_lines: crate::logging::dropped_lines(),
        }
    }
}

impl From<&MethodSnapshot> for MethodView {
    fn from(m: &MethodSnapshot) -> MethodView {
        let ms = |q: f64| m.latency.quantile(q).map(|d| d.as_secs_f64() * 1e3);
        MethodView {
            name: m.method.clone(),
            calls: m.calls,
            errors: m.errors(),
            in_flight: m.in_flight,
            codes: m
                .by_code
                .iter()
                .map(|(code, n)| (code.as_str().to_owned(), *n))
                .collect(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
        }
    }
}

const STYLE: &str = "\
body { font-family: 'DejaVu Sans', system-ui, sans-serif; margin: 24px 32px; color: #1d232a; \
background: #fafbfc; font-size: 16px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h1 small { font-weight: normal; color: #5b6570; font-size: 18px; }
h2 { font-size: 19px; margin: 28px 0 8px; }
p.links { margin: 0 0 16px; color: #5b6570; font-size: 14px; }
a { color: #1f5fa8; }
table { border-collapse: collapse; background: #fff; border: 1px solid #d5dae0; }
th, td { padding: 6px 14px; border-bottom: 1px solid #e4e8ec; text-align: left; \
vertical-align: top; }
thead th { background: #eef1f4; font-size: 14px; text-transform: uppercase; \
letter-spacing: .03em; color: #47515c; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.service { font-weight: bold; }
table.summary th { background: #eef1f4; width: 11em; }
.bad { color: #b3261e; font-weight: bold; }
.good { color: #1e7b34; font-weight: bold; }
.muted { color: #7a848e; }
.codes { color: #5b6570; font-size: 13px; }
";

/// The page, from `view`.
pub fn render_html(view: &StatusView) -> String {
    let mut h = String::with_capacity(8192);
    let address = escape_html(&view.rpc_address);
    // Writing to a String cannot fail.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>mprpc provider {address}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <h1>mprpc provider <small>{address}</small></h1>\n\
         <p class=\"links\">Also: <a href=\"metrics\">metrics</a> (Prometheus) &middot; \
         <a href=\"status.json\">this page as JSON</a> &middot; <a href=\"health\">health</a></p>\n"
    );

    let registry_class = match view.registry.as_str() {
        "connected" | "static" => "good",
        "disconnected" => "bad",
        _ => "muted",
    };
    let rejected = if view.rejected.is_empty() {
        "0".to_owned()
    } else {
        codes_text(&view.rejected)
    };
    let adaptive = match view.adaptive_limit {
        Some(limit) => format!(
            "<tr><th>Adaptive limit</th><td id=\"adaptive-limit\">{limit} calls in flight, \
             {} shed</td></tr>\n",
            view.shed_calls
        ),
        None => String::new(),
    };
    let _ = write!(
        h,
        "<table class=\"summary\">\n\
         <tr><th>Address</th><td id=\"address\">{address}</td></tr>\n\
         <tr><th>Uptime</th><td id=\"uptime\">{}</td></tr>\n\
         <tr><th>Registry</th><td id=\"registry\" class=\"{registry_class}\">{}</td></tr>\n\
         <tr><th>Connections</th><td id=\"connections\">{} in, {} out</td></tr>\n\
         <tr><th>Rejected calls</th><td id=\"rejected\">{}</td></tr>\n\
         {adaptive}\
         <tr><th>Dropped log lines</th><td id=\"dropped\">{}</td></tr>\n\
         </table>\n",
        uptime_text(view.uptime_seconds),
        escape_html(&view.registry),
        view.connections.server,
        view.connections.client,
        escape_html(&rejected),
        view.dropped_log_lines,
    );

    h.push_str("<h2>Services</h2>\n");
    methods_table(&mut h, "services", &view.services);
    if !view.outgoing.is_empty() {
        h.push_str("<h2>Outgoing calls</h2>\n");
        methods_table(&mut h, "outgoing", &view.outgoing);
    }

    h.push_str("<h2>Known providers</h2>\n");
    if view.known_providers.is_empty() {
        h.push_str("<p class=\"muted\">None: this process has no consumer channels.</p>\n");
    } else {
        h.push_str(
            "<table id=\"providers\">\n<thead><tr><th>Service</th><th>Providers</th></tr></thead>\n\
             <tbody>\n",
        );
        for p in &view.known_providers {
            let addresses = if p.addresses.is_empty() {
                "<span class=\"bad\">none</span>".to_owned()
            } else {
                p.addresses
                    .iter()
                    .map(|a| match p.ejected.contains(a) {
                        true => format!("{} <span class=\"bad\">ejected</span>", escape_html(a)),
                        false => escape_html(a),
                    })
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let _ = writeln!(
                h,
                "<tr><td class=\"service\">{}</td><td>{addresses}</td></tr>",
                escape_html(&p.service)
            );
        }
        h.push_str("</tbody>\n</table>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// A table of services and their methods, one row per method.
fn methods_table(h: &mut String, id: &str, services: &[ServiceView]) {
    let _ = write!(
        h,
        "<table id=\"{id}\">\n<thead><tr><th>Service</th><th>Method</th>\
         <th class=\"num\">Calls</th><th class=\"num\">Errors</th>\
         <th class=\"num\">In flight</th><th class=\"num\">p50</th><th class=\"num\">p90</th>\
         <th class=\"num\">p99</th></tr></thead>\n<tbody>\n"
    );
    for s in services {
        let service = escape_html(&s.name);
        if s.methods.is_empty() {
            let _ = writeln!(
                h,
                "<tr><td class=\"service\">{service}</td>\
                 <td class=\"muted\" colspan=\"7\">no methods</td></tr>"
            );
        }
        for (i, m) in s.methods.iter().enumerate() {
            let method = escape_html(&m.name);
            let _ = write!(
                h,
                "<tr data-service=\"{service}\" data-method=\"{method}\">"
            );
            if i == 0 {
                let _ = write!(
                    h,
                    "<td class=\"service\" rowspan=\"{}\">{service}</td>",
                    s.methods.len()
                );
            }
            let errors = if m.errors == 0 {
                "0".to_owned()
            } else {
                let failed: BTreeMap<String, u64> = m
                    .codes
                    .iter()
                    .filter(|(code, _)| *code != "Ok")
                    .map(|(code, n)| (code.clone(), *n))
                    .collect();
                format!(
                    "<span class=\"bad\">{}</span><br><span class=\"codes\">{}</span>",
                    m.errors,
                    escape_html(&codes_text(&failed))
                )
            };
            let _ = writeln!(
                h,
                "<td class=\"method\">{method}</td><td class=\"num calls\">{}</td>\
                 <td class=\"num errors\">{errors}</td><td class=\"num in-flight\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                m.calls,
                m.in_flight,
                latency_text(m.p50_ms),
                latency_text(m.p90_ms),
                latency_text(m.p99_ms),
            );
        }
    }
    h.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::reflection::ServiceInfo;
    use crate::registry::{ServiceInstance, StaticRegistry};
    use crate::Code;

    fn state(service: &str, method: &str) -> AdminState {
        let metrics = Metrics::new();
        let m = metrics.method(Side::Server, service, method);
        m.start().finish(Code::Ok);
        m.start().finish(Code::NotFound);
        metrics
            .method(Side::Client, "up.Stream", "Get")
            .start()
            .finish(Code::Ok);
        metrics.set_providers(
            "up.Stream",
            &[ServiceInstance::new("up.Stream", "10.0.0.1:80")],
        );
        AdminState {
            metrics,
            services: vec![
                ServiceInfo {
                    name: reflection::SERVICE_NAME.to_owned(),
                    methods: vec!["ListServices".to_owned()],
                },
                ServiceInfo {
                    name: service.to_owned(),
                    methods: vec![method.to_owned(), "Idle".to_owned()],
                },
            ],
            registry: Some(Arc::new(StaticRegistry::new(BTreeMap::new()))),
            rpc_address: "127.0.0.1:8000".to_owned(),
        }
    }

    #[test]
    fn view_joins_hosted_methods_with_their_counters() {
        let view = StatusView::new(&state("a.B", "Call"));
        assert_eq!(view.registry, "static");
        let names: Vec<&str> = view.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a.B", reflection::SERVICE_NAME], "reflection last");
        let call = &view.services[0].methods[0];
        assert_eq!((call.calls, call.errors, call.in_flight), (2, 1, 0));
        assert_eq!(call.codes["NotFound"], 1);
        assert!(call.p50_ms.is_some());
        let idle = &view.services[0].methods[1];
        assert_eq!(
            (idle.name.as_str(), idle.calls, idle.p99_ms),
            ("Idle", 0, None)
        );
        assert_eq!(view.outgoing[0].name, "up.Stream");
        assert_eq!(view.known_providers[0].addresses, ["10.0.0.1:80"]);
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["services"][0]["methods"][0]["codes"]["Ok"], 1);
    }

    #[test]
    fn page_escapes_every_name() {
        let html = render_html(&StatusView::new(&state("<b>evil</b>", "M&M")));
        assert!(!html.contains("<b>evil</b>"), "{html}");
        assert!(html.contains("&lt;b&gt;evil&lt;/b&gt;"));
        assert!(html.contains("data-method=\"M&amp;M\""));
        assert!(html.contains("<td class=\"method\">Idle</td>"));
        assert!(html.contains("NotFound 1"));
        assert!(html.contains("10.0.0.1:80"));
    }

    #[test]
    fn the_adaptive_limit_shows_when_there_is_one() {
        let plain = state("a.B", "Call");
        assert!(!render_html(&StatusView::new(&plain)).contains("adaptive-limit"));
        let gauge = plain.metrics.track_adaptive_limit(24);
        gauge.shed();
        let view = StatusView::new(&plain);
        assert_eq!((view.adaptive_limit, view.shed_calls), (Some(24), 1));
        let row = "<td id=\"adaptive-limit\">24 calls in flight, 1 shed</td>";
        assert!(render_html(&view).contains(row));
    }
}
