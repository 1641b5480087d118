//! Whether a URI is an expansion of an RFC 6570 URI template, so a resource URI that no server
//! listed can still be routed to the server whose template produced it.
//!
//! Owns: parsing a template into literals and expressions, and matching. Matching is
//! deliberately loose about values (it never decodes or binds variables; the server does that
//! when it reads the resource) and strict about literals. Must never: take more than linear time
//! per expression in the URI's length, since URIs come from clients.
//!
//! What an expression matches:
//! - `{var}`: one or more characters other than `/`;
//! - `{+var}`: one or more characters of any kind;
//! - `{#var}`, `{.var}`, `{/var}`, `{;var}`, `{?var}`, `{&var}`: nothing (every variable
//!   undefined), or the operator's character followed by characters that cannot end its part of
//!   the URI (`#…` anything; `.…` and `;…` no `/`; `/…` no `?` or `#`; `?…` and `&…` no `#`).

/// Longest URI matched against templates; longer ones are routed only by prefix or listing.
pub const MAX_MATCHED_URI: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Simple,
    Reserved,
    Fragment,
    Label,
    Path,
    PathParameter,
    Query,
    QueryContinuation,
}

impl Operator {
    fn from_first(c: u8) -> Option<Operator> {
        Some(match c {
            b'+' => Operator::Reserved,
            b'#' => Operator::Fragment,
            b'.' => Operator::Label,
            b'/' => Operator::Path,
            b';' => Operator::PathParameter,
            b'?' => Operator::Query,
            b'&' => Operator::QueryContinuation,
            _ => return None,
        })
    }

    /// The character an expansion starts with, if any (`None`: it may not be empty).
    fn lead(self) -> Option<u8> {
        match self {
            Operator::Simple | Operator::Reserved => None,
            Operator::Fragment => Some(b'#'),
            Operator::Label => Some(b'.'),
            Operator::Path => Some(b'/'),
            Operator::PathParameter => Some(b';'),
            Operator::Query => Some(b'?'),
            Operator::QueryContinuation => Some(b'&'),
        }
    }

    /// Bytes an expansion of this operator cannot contain after its lead.
    fn stops(self) -> &'static [u8] {
        match self {
            Operator::Simple | Operator::Label | Operator::PathParameter => b"/",
            Operator::Reserved | Operator::Fragment => b"",
            Operator::Path => b"?#",
            Operator::Query | Operator::QueryContinuation => b"#",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Expression(Operator),
}

/// A parsed URI template.
#[derive(Debug, Clone)]
pub struct UriTemplate {
    parts: Vec<Part>,
}

impl UriTemplate {
    /// Parses `template`; `None` when it is not a level 1–3 template (unclosed or empty
    /// expression, reserved operator).
    pub fn parse(template: &str) -> Option<UriTemplate> {
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let close = rest.find('}')?;
                    let body = &rest.as_bytes()[1..close];
                    if body.contains(&b'{') {
                        return None;
                    }
                    let (&first, _) = body.split_first()?;
                    let operator = match Operator::from_first(first) {
                        Some(op) => op,
                        None if first.is_ascii_alphanumeric() || first == b'_' || first == b'%' => {
                            Operator::Simple
                        }
                        None => return None,
                    };
                    parts.push(Part::Expression(operator));
                    rest = &rest[close + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    if rest[..end].contains('}') {
                        return None;
                    }
                    parts.push(Part::Literal(rest[..end].to_owned()));
                    rest = &rest[end..];
                }
            }
        }
        Some(UriTemplate { parts })
    }

    /// Whether `uri` could be an expansion of this template.
    pub fn matches(&self, uri: &str) -> bool {
        let bytes = uri.as_bytes();
        if bytes.len() > MAX_MATCHED_URI {
            return false;
        }
        // reach[i]: the parts so far can produce exactly bytes[..i].
        let mut reach = vec![false; bytes.len() + 1];
        reach[0] = true;
        for part in &self.parts {
            reach = match part {
                Part::Literal(literal) => {
                    let mut next = vec![false; bytes.len() + 1];
                    for start in (0..=bytes.len()).filter(|&i| reach[i]) {
                        if bytes[start..].starts_with(literal.as_bytes()) {
                            next[start + literal.len()] = true;
                        }
                    }
                    next
                }
                Part::Expression(op) => expand(bytes, &reach, *op),
            };
            if !reach.contains(&true) {
                return false;
            }
        }
        reach[bytes.len()]
    }
}

/// Where an expression of `op` can end when it starts at any reachable position: one sweep
/// over the URI, so it stays linear however many starts there are.
fn expand(bytes: &[u8], reach: &[bool], op: Operator) -> Vec<bool> {
    let n = bytes.len();
    let stops = op.stops();
    let allowed = |i: usize| !stops.contains(&bytes[i]);
    // Where the expansion's value starts: right at a reachable position, or after the lead.
    let mut value_starts = vec![false; n + 1];
    match op.lead() {
        None => value_starts.copy_from_slice(reach),
        Some(lead) => {
            for i in (0..n).filter(|&i| reach[i] && bytes[i] == lead) {
                value_starts[i + 1] = true;
            }
        }
    }
    let mut out = vec![false; n + 1];
    // open: some value start at or before i reaches i through allowed bytes only.
    let mut open = false;
    for i in 0..=n {
        let carried = i > 0 && open && allowed(i - 1);
        open = value_starts[i] || carried;
        out[i] = match op.lead() {
            // A lead-less expression needs at least one character.
            None => carried,
            // A lead alone, or lead and value; or nothing at all (variables undefined).
            Some(_) => open || reach[i],
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(template: &str, uri: &str) -> bool {
        UriTemplate::parse(template)
            .unwrap_or_else(|| panic!("{template} should parse"))
            .matches(uri)
    }

    #[test]
    fn simple_variables_match_one_segment() {
        let t = "demo://resource/dynamic/text/{resourceId}";
        assert!(matches(t, "demo://resource/dynamic/text/1"));
        assert!(matches(t, "demo://resource/dynamic/text/abc%2Fdef"));
        assert!(!matches(t, "demo://resource/dynamic/text/"));
        assert!(!matches(t, "demo://resource/dynamic/text/1/2"));
        assert!(!matches(t, "demo://resource/dynamic/blob/1"));
        assert!(!matches(t, "xdemo://resource/dynamic/text/1"));
        assert!(matches("users/{id}/posts/{post}", "users/7/posts/9"));
        assert!(!matches("users/{id}/posts/{post}", "users/7/posts"));
        assert!(matches("{a}{b}", "xy"));
        assert!(!matches("{a}{b}", "x"));
    }

    #[test]
    fn reserved_expansion_crosses_slashes() {
        assert!(matches("file:///{+path}", "file:///etc/hosts"));
        assert!(!matches("file:///{+path}", "file:///"));
        assert!(matches("file:///{+path}.txt", "file:///a/b.txt"));
        assert!(!matches("file:///{+path}.txt", "file:///a/b.md"));
    }

    #[test]
    fn prefixed_operators_may_expand_to_nothing() {
        assert!(matches("api://items{/id}", "api://items/3"));
        assert!(matches("api://items{/id}", "api://items"));
        assert!(matches("api://items{/a,b}", "api://items/3/4"));
        assert!(!matches("api://items{/id}", "api://items?x"));
        assert!(matches("api://search{?q,n}", "api://search?q=a&n=2"));
        assert!(matches("api://search{?q}{&n}", "api://search?q=a&n=2"));
        assert!(matches("api://doc{#section}", "api://doc#intro/part"));
        assert!(matches("api://host{.ext}", "api://host.json"));
        assert!(!matches("api://host{.ext}", "api://host.a/b"));
        assert!(matches("api://m{;x}", "api://m;x=1"));
    }

    #[test]
    fn templates_without_expressions_match_themselves() {
        assert!(matches("demo://fixed", "demo://fixed"));
        assert!(!matches("demo://fixed", "demo://fixed2"));
        assert!(matches("", ""));
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in ["a{b", "a{}", "a{b{c}", "a}b", "a{=b}", "a{!b}"] {
            assert!(UriTemplate::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn long_uris_are_not_matched() {
        let uri = format!("x://{}", "a".repeat(MAX_MATCHED_URI));
        assert!(!matches("x://{+rest}", &uri));
        assert!(matches("x://{+rest}", &uri[..MAX_MATCHED_URI]));
    }
}
