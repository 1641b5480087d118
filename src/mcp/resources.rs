//! `resources/read`, `resources/subscribe`, `resources/unsubscribe`: requests that name a
//! resource by URI, routed by the registry's URI routes and forwarded with the URI the server
//! knows.
//!
//! Owns: turning a URI into a server (or a -32602 that says the URI is unknown or ambiguous,
//! naming the candidates). Must never: pick one of several servers that could serve a URI.

use crate::jsonrpc::RawJson;

use super::forward::Forwarding;
use super::subscriptions;
use crate::registry::{Access, Unroutable, UriRoute};

/// Routes `params.uri` and forwards `method` to its server with the original URI.
pub async fn forward_by_uri(
    access: Access<'_>,
    method: &'static str,
    params: Option<RawJson<'_>>,
    fwd: &mut Forwarding<'_>,
) {
    let Some(obj) = fwd.params_object(method, params) else {
        return;
    };
    let Some(uri) = obj.get_str("uri") else {
        return fwd.invalid_params("Invalid params: params.uri must be a string");
    };
    fwd.observed.named(&uri);
    let Some(route) = route_uri(access, &uri, fwd) else {
        return;
    };
    let snapshot = access.snapshot();
    let mut upstream_params = Vec::with_capacity(params.map_or(0, |p| p.get().len()) + 8);
    obj.write_replacing(&mut upstream_params, "uri", route.original);
    let server = &snapshot.servers[route.server];
    // Kept before the server answers: its updates may come as soon as it has subscribed.
    match method {
        "resources/subscribe" => {
            subscriptions::subscribe(fwd.session, &server.name, route.original, &uri)
        }
        "resources/unsubscribe" => {
            subscriptions::unsubscribe(fwd.session, &server.name, route.original)
        }
        _ => {}
    }
    fwd.send(route.server, method, upstream_params).await
}

/// The route for `uri`; `None` (with the -32602 or -32003 reply written, and the request's
/// observation ended) when there is none or the caller may not reach it.
pub fn route_uri<'u>(
    access: Access<'_>,
    uri: &'u str,
    fwd: &mut Forwarding<'_>,
) -> Option<UriRoute<'u>> {
    let snapshot = access.snapshot();
    match snapshot.uri_routes.resolve(uri) {
        Ok(route) => {
            fwd.for_server(route.server);
            if access.allows_uri(route.server, route.original) {
                return Some(route);
            }
            fwd.denied(access, "resource", uri);
            None
        }
        Err(Unroutable::Unknown) => {
            fwd.unknown(&format!(
                "Unknown resource: no server lists {uri} or has a template matching it"
            ));
            None
        }
        Err(Unroutable::Ambiguous(servers)) => {
            let names: Vec<&str> = servers
                .iter()
                .filter_map(|&i| snapshot.servers.get(i).map(|s| s.name.as_str()))
                .collect();
            fwd.unknown(&format!(
                "Ambiguous resource: {uri} could be served by {}; prefix it with mcpgate://<server>/ to choose",
                names.join(", ")
            ));
            None
        }
    }
}
