//! The calls a run sends: one tool with its arguments (`--tool`/`--args`) or a weighted mix
//! from a scenario file, pre-rendered so a call costs one id formatted into a copied template.
//!
//! The mix is walked as a fixed "wheel" (smooth weighted round-robin), so every run sends the
//! exact proportions asked for, interleaved, with no random numbers on the hot path.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

/// Longest wheel (sum of weights after dividing by their gcd).
const MAX_WHEEL: u64 = 100_000;

/// `{"jsonrpc":"2.0","id":` — then the id, then the call's suffix.
const BODY_PREFIX: &[u8] = br#"{"jsonrpc":"2.0","id":"#;

/// One kind of `tools/call` in the mix.
#[derive(Debug, Clone)]
pub struct Call {
    pub tool: String,
    /// The `arguments` object, serialized.
    pub args: String,
    pub weight: u64,
    /// `,"method":"tools/call","params":{...}}`
    suffix: Vec<u8>,
}

impl Call {
    fn new(tool: String, args: &Value, weight: u64) -> Result<Call, String> {
        if !args.is_object() {
            return Err(format!("arguments for {tool:?} must be a JSON object"));
        }
        let args = args.to_string();
        let mut call = Call {
            tool,
            args,
            weight,
            suffix: Vec::new(),
        };
        call.render();
        Ok(call)
    }

    fn render(&mut self) {
        let mut s = Vec::with_capacity(self.args.len() + self.tool.len() + 64);
        s.extend_from_slice(br#","method":"tools/call","params":{"name":"#);
        s.extend_from_slice(Value::String(self.tool.clone()).to_string().as_bytes());
        s.extend_from_slice(br#","arguments":"#);
        s.extend_from_slice(self.args.as_bytes());
        s.extend_from_slice(b"}}");
        self.suffix = s;
    }
}

/// The calls of a run and the order they are sent in.
#[derive(Debug, Clone)]
pub struct Mix {
    calls: Vec<Call>,
    /// Indexes into `calls`, in sending order.
    wheel: Vec<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    calls: Vec<ScenarioCall>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioCall {
    tool: String,
    #[serde(default)]
    args: Option<Value>,
    /// Adds (or replaces) a `message` argument of this many bytes.
    #[serde(default)]
    args_bytes: Option<usize>,
    #[serde(default = "one")]
    weight: u64,
}

fn one() -> u64 {
    1
}

impl Mix {
    /// One tool, `args` a JSON object.
    pub fn single(tool: &str, args: &str) -> Result<Mix, String> {
        let args: Value =
            serde_json::from_str(args).map_err(|e| format!("--args is not JSON: {e}"))?;
        Mix::new(vec![Call::new(tool.to_owned(), &args, 1)?])
    }

    /// Reads a scenario file: `{"calls": [{"tool", "args"?, "args_bytes"?, "weight"?}, ...]}`.
    pub fn from_file(path: &Path) -> Result<Mix, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read scenario {}: {e}", path.display()))?;
        Mix::from_scenario(&text).map_err(|e| format!("scenario {}: {e}", path.display()))
    }

    pub fn from_scenario(text: &str) -> Result<Mix, String> {
        let file: ScenarioFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut calls = Vec::with_capacity(file.calls.len());
        for (i, c) in file.calls.into_iter().enumerate() {
            let mut args = c.args.unwrap_or_else(|| Value::Object(Map::new()));
            if let Some(n) = c.args_bytes {
                let Some(obj) = args.as_object_mut() else {
                    return Err(format!("calls[{i}].args must be a JSON object"));
                };
                obj.insert("message".into(), Value::String("x".repeat(n)));
            }
            calls.push(Call::new(c.tool, &args, c.weight).map_err(|e| format!("calls[{i}]: {e}"))?);
        }
        Mix::new(calls)
    }

    fn new(calls: Vec<Call>) -> Result<Mix, String> {
        if calls.is_empty() {
            return Err("the mix has no calls".into());
        }
        if let Some(c) = calls.iter().find(|c| c.weight == 0) {
            return Err(format!("the weight of {:?} must be at least 1", c.tool));
        }
        let wheel = build_wheel(&calls.iter().map(|c| c.weight).collect::<Vec<_>>())?;
        Ok(Mix { calls, wheel })
    }

    /// The same mix with every tool renamed (e.g. given the gateway's `<server>__` prefix).
    pub fn renamed(&self, rename: impl Fn(&str) -> String) -> Mix {
        let mut mix = self.clone();
        for c in &mut mix.calls {
            c.tool = rename(&c.tool);
            c.render();
        }
        mix
    }

    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// Positions on the wheel; a connection walks it from its own starting point.
    pub fn wheel_len(&self) -> usize {
        self.wheel.len()
    }

    /// Writes the request for wheel position `pos` with JSON-RPC id `id` into `out` (cleared).
    pub fn write_request(&self, pos: usize, id: u64, out: &mut Vec<u8>) {
        let call = &self.calls[self.wheel[pos % self.wheel.len()] as usize];
        out.clear();
        out.extend_from_slice(BODY_PREFIX);
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        out.extend_from_slice(&call.suffix);
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Smooth weighted round-robin (as nginx balances upstreams): weights 3,1 give `0 0 1 0`
/// rather than `0 0 0 1`, so a short run still sees the mix.
fn build_wheel(weights: &[u64]) -> Result<Vec<u32>, String> {
    let g = weights.iter().fold(0, |acc, &w| gcd(acc, w)).max(1);
    let reduced: Vec<u64> = weights.iter().map(|w| w / g).collect();
    let total = reduced
        .iter()
        .try_fold(0u64, |acc, &w| acc.checked_add(w))
        .filter(|&t| t <= MAX_WHEEL)
        .ok_or_else(|| {
            format!("the weights, divided by their common divisor, must sum to at most {MAX_WHEEL}")
        })?;
    let mut current = vec![0i64; reduced.len()];
    let mut wheel = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&reduced) {
            *c += *w as i64;
        }
        let (best, _) = current
            .iter()
            .enumerate()
            .max_by_key(|&(i, c)| (*c, std::cmp::Reverse(i)))
            .unwrap_or((0, &0));
        current[best] -= total as i64;
        wheel.push(best as u32);
    }
    Ok(wheel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(mix: &Mix, pos: usize, id: u64) -> Value {
        let mut out = Vec::new();
        mix.write_request(pos, id, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn single_call_renders_a_tools_call() {
        let mix = Mix::single("echo", r#"{"message":"hi \"there\""}"#).unwrap();
        let v = body(&mix, 5, 42);
        assert_eq!(v["id"], 42);
        assert_eq!(v["method"], "tools/call");
        assert_eq!(v["params"]["name"], "echo");
        assert_eq!(v["params"]["arguments"]["message"], "hi \"there\"");
        assert!(Mix::single("echo", "[1]").is_err());
        assert!(Mix::single("echo", "{").is_err());
    }

    #[test]
    fn scenario_weights_and_sizes() {
        let mix = Mix::from_scenario(
            r#"{"calls": [{"tool": "echo", "args": {"message": "hi"}, "weight": 3},
                          {"tool": "tool_0001", "weight": 1},
                          {"tool": "big", "args_bytes": 1000, "weight": 2}]}"#,
        )
        .unwrap();
        assert_eq!(mix.wheel_len(), 6);
        let names: Vec<String> = (0..6)
            .map(|p| {
                body(&mix, p, 1)["params"]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(names.iter().filter(|n| *n == "echo").count(), 3);
        assert_eq!(names.iter().filter(|n| *n == "big").count(), 2);
        let big = (0..6)
            .map(|p| body(&mix, p, 1))
            .find(|v| v["params"]["name"] == "big")
            .unwrap();
        assert_eq!(
            big["params"]["arguments"]["message"]
                .as_str()
                .unwrap()
                .len(),
            1000
        );
        assert!(Mix::from_scenario(r#"{"calls": []}"#).is_err());
        assert!(Mix::from_scenario(r#"{"calls": [{"tool": "a", "weight": 0}]}"#).is_err());
        assert!(Mix::from_scenario(r#"{"calls": [{"tool": "a", "wieght": 2}]}"#).is_err());
    }

    #[test]
    fn wheel_is_smooth_and_reduced() {
        assert_eq!(build_wheel(&[3, 1]).unwrap(), vec![0, 0, 1, 0]);
        assert_eq!(build_wheel(&[300, 100]).unwrap().len(), 4);
        assert!(build_wheel(&[MAX_WHEEL, 1]).is_err());
    }

    #[test]
    fn renaming_keeps_arguments() {
        let mix = Mix::single("echo", r#"{"message":"x"}"#)
            .unwrap()
            .renamed(|t| format!("mock__{t}"));
        let v = body(&mix, 0, 7);
        assert_eq!(v["params"]["name"], "mock__echo");
        assert_eq!(v["params"]["arguments"]["message"], "x");
    }
}
