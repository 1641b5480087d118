//! `completion/complete`: routed by `params.ref` — a prompt reference to the prompt's server
//! with the prompt's original name, a resource reference like a resource URI (see
//! `resources`) with the original URI.
//!
//! Owns: rewriting the one member of the reference that names the item. Must never: change
//! the rest of the request (`argument`, `context`, `_meta` pass through byte for byte).

use crate::jsonrpc::RawJson;

use super::forward::Forwarding;
use super::resources::route_uri;
use crate::jsonrpc::RawObject;
use crate::registry::{Access, CatalogKind};

const METHOD: &str = "completion/complete";

/// Forwards a completion request to the server of the prompt or resource it refers to.
pub async fn complete(access: Access<'_>, params: Option<RawJson<'_>>, fwd: &mut Forwarding<'_>) {
    let Some(obj) = fwd.params_object(METHOD, params) else {
        return;
    };
    let snapshot = access.snapshot();
    let Some(reference) = obj.get("ref").and_then(|r| RawObject::parse(r.get()).ok()) else {
        return fwd.invalid_params("Invalid params: params.ref must be an object");
    };
    if let Some(argument) = obj.get("argument") {
        fwd.observed.arguments(argument.get());
    }
    let mut upstream_ref = Vec::with_capacity(obj.get("ref").map_or(0, |r| r.get().len()) + 8);
    let server = match reference.get_str("type").as_deref() {
        Some("ref/prompt") => {
            let Some(name) = reference.get_str("name") else {
                return fwd.invalid_params("Invalid params: params.ref.name must be a string");
            };
            let Some((index, prompt)) = snapshot.prompts.find(&name) else {
                return fwd.unknown_name(snapshot, "prompt", &name);
            };
            fwd.for_server(prompt.server);
            fwd.observed.item(&prompt.shared_original);
            if !access.allows_item(CatalogKind::Prompts, index) {
                return fwd.denied(access, "prompt", &name);
            }
            reference.write_replacing(&mut upstream_ref, "name", &prompt.original);
            prompt.server
        }
        Some("ref/resource") => {
            let Some(uri) = reference.get_str("uri") else {
                return fwd.invalid_params("Invalid params: params.ref.uri must be a string");
            };
            fwd.observed.named(&uri);
            let Some(route) = route_uri(access, &uri, fwd) else {
                return;
            };
            reference.write_replacing(&mut upstream_ref, "uri", route.original);
            route.server
        }
        Some(other) => {
            return fwd.invalid_params(&format!(
                "Invalid params: unknown reference type {other:?} (expected ref/prompt or ref/resource)"
            ))
        }
        None => return fwd.invalid_params("Invalid params: params.ref.type must be a string"),
    };
    let mut upstream_params = Vec::with_capacity(upstream_ref.len() + 64);
    obj.write_replacing_raw(&mut upstream_params, "ref", &upstream_ref);
    fwd.send(server, METHOD, upstream_params).await
}
