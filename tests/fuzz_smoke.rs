//! A short, deterministic run of the fuzz checks on stable: each target's committed seeds,
//! then a few thousand mutations of them from a fixed-seed PRNG. cargo-fuzz (nightly) explores
//! far more (see fuzz/README.md); this keeps the checks compiling and catches regressions on
//! every `cargo test`.

#[path = "../fuzz/checks/mod.rs"]
mod checks;

use std::path::Path;

/// Mutated inputs per target.
const MUTATIONS: usize = 3000;

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes that steer text parsers into their branches.
const INTERESTING: &[u8] = b"\0\r\n \t:;,\"\\{}[]$`-0129aAfF%\x7f\xff\xc3";

/// One edit of `input`; `other` is another seed to splice from.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    let len = input.len();
    match rng.below(8) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        2 => {
            let i = rng.below(len + 1);
            input.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
        }
        3 if len > 0 => {
            let from = rng.below(len);
            let to = (from + 1 + rng.below(16)).min(len);
            input.drain(from..to);
        }
        4 if len > 0 => {
            // Repeat a slice: long lines, repeated headers, deep nesting.
            let from = rng.below(len);
            let to = (from + 1 + rng.below(32)).min(len);
            let piece = input[from..to].repeat(1 + rng.below(64));
            let at = rng.below(len + 1);
            input.splice(at..at, piece);
        }
        5 if !other.is_empty() => {
            let from = rng.below(other.len());
            let to = (from + 1 + rng.below(64)).min(other.len());
            let at = rng.below(len + 1);
            input.splice(at..at, other[from..to].iter().copied());
        }
        6 if len > 0 => input.truncate(rng.below(len)),
        _ => {
            let i = rng.below(len + 1);
            input.insert(i, rng.next() as u8);
        }
    }
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    // Sorted, so the mutations (and any failure) are the same on every machine.
    files.sort();
    let seeds: Vec<_> = files
        .iter()
        .map(|f| std::fs::read(f).expect("a seed file"))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// Runs `check` on every seed and on `MUTATIONS` mutants; a panic names the input.
fn run(target: &str, check: fn(&[u8])) {
    let seeds = seeds(target);
    let mut inputs = seeds.clone();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    for _ in 0..MUTATIONS {
        let mut input = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let other = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, &mut input, other);
        }
        inputs.push(input);
    }
    for input in inputs {
        let outcome = std::panic::catch_unwind(|| check(&input));
        if outcome.is_err() {
            panic!(
                "fuzz check {target} failed on input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}

#[test]
fn http_head() {
    run("http_head", checks::http_head::check);
}

#[test]
fn jsonrpc_envelope() {
    run("jsonrpc_envelope", checks::jsonrpc_envelope::check);
}

#[test]
fn config() {
    run("config", checks::config::check);
}

#[test]
fn sse() {
    run("sse", checks::sse::check);
}

#[test]
fn session_id() {
    run("session_id", checks::session_id::check);
}
