//! The scanner agrees with serde_json: on a corpus of tricky texts and on seeded mutations of
//! it, it accepts exactly what serde_json accepts, finds the same value spans, and decodes
//! strings to the same values.

use super::*;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

const CORPUS: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{}}}"#,
    r#"{"jsonrpc":"2.0","id":"a-1","result":{"content":[{"type":"text","text":"hi \" there"}],"isError":false}}"#,
    r#" [ 1 , -0 , 0.5 , -1.25e+3 , 1E-2 , 1e400 , 123456789012345678901234567890 ] "#,
    r#"{"a":{"b":[true,false,null,{"c":"\u00e9\n\t\\\/"}]}}"#,
    r#""\ud83d\ude00 surrogate pair""#,
    r#""é ü 😀 plain UTF-8""#,
    r#"{}"#,
    r#"[]"#,
    r#"[[],{},[{}]]"#,
    r#""""#,
    "\t\r\n 42 \n",
    r#"{"":0}"#,
    r#"{"k\"ey":"v"}"#,
    // Refused by both.
    r#"{"a":1,}"#,
    r#"[1,]"#,
    r#"[01]"#,
    r#"[1.]"#,
    r#"[.5]"#,
    r#"[1e]"#,
    r#"[-]"#,
    r#"[+1]"#,
    r#"{"a" 1}"#,
    r#"{a:1}"#,
    r#"["\x"]"#,
    r#"["\u12"]"#,
    r#"[tru]"#,
    r#"[nul]"#,
    r#"[True]"#,
    r#"{"a":1}}"#,
    r#"{"a":1} x"#,
    "[\"a\u{1}b\"]",
    r#"[1 2]"#,
    r#"{"a":1 "b":2}"#,
    r#"[}"#,
    r#"{]"#,
    r#"'single'"#,
    "",
    "   ",
    "[NaN]",
    "[Infinity]",
    "[0x10]",
];

fn serde_accepts(text: &[u8]) -> bool {
    std::str::from_utf8(text).is_ok_and(|t| serde_json::from_str::<IgnoredAny>(t).is_ok())
}

fn agree(text: &[u8]) {
    assert_eq!(
        validate(text).is_ok(),
        serde_accepts(text),
        "scanner and serde_json disagree on {:?} (scanner: {:?})",
        String::from_utf8_lossy(text),
        validate(text)
    );
}

/// A small deterministic generator, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const INTERESTING: &[u8] = b"{}[]\",:\\/ -+.0123456789eEtrufalsn\x00\x1f\x7f\xc3\xa9\xff\tu";

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = if v.is_empty() {
            0
        } else {
            rng.below(v.len() + 1)
        };
        let byte = INTERESTING[rng.below(INTERESTING.len())];
        match rng.below(4) {
            0 if at < v.len() => v[at] = byte,
            1 => v.insert(at, byte),
            2 if at < v.len() => {
                v.remove(at);
            }
            _ => v.truncate(at),
        }
    }
    v
}

#[test]
fn corpus_agrees_with_serde_json() {
    for text in CORPUS {
        agree(text.as_bytes());
    }
    agree(b"[\"\xff\"]");
    agree(b"[\"\xc3\"]");
    agree(b"\xef\xbb\xbf{}");
}

#[test]
fn mutations_agree_with_serde_json() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200_000 {
        let seed = CORPUS[rng.below(CORPUS.len())].as_bytes();
        agree(&mutate(&mut rng, seed));
    }
}

#[test]
fn nesting_is_tracked_to_the_limit_and_refused_beyond() {
    for depth in [1, 63, 64, 65, 127, 128, 129, 1000, MAX_DEPTH] {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        agree(arrays.as_bytes());
        let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        agree(objects.as_bytes());
        // Mixed, so a wrong bit for any level shows as a wrong closing bracket.
        let mixed: String = (0..depth)
            .map(|i| if i % 3 == 0 { "[" } else { r#"{"k":"# })
            .collect();
        let closing: String = (0..depth)
            .rev()
            .map(|i| if i % 3 == 0 { "]" } else { "}" })
            .collect();
        agree(format!("{mixed}0{closing}").as_bytes());
        let wrong: String = (0..depth)
            .rev()
            .map(|i| if i % 3 == 0 { "}" } else { "]" })
            .collect();
        assert!(validate(format!("{mixed}0{wrong}").as_bytes()).is_err());
    }
    // serde_json skips any depth; the scanner stops at its limit.
    let too_deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    assert_eq!(
        validate(too_deep.as_bytes()).map_err(|e| e.what),
        Err("nesting too deep")
    );
    assert_eq!(
        validate("[".repeat(100_000).as_bytes()).map_err(|e| e.what),
        Err("nesting too deep")
    );
}

#[test]
fn value_spans_match_raw_values() {
    let text = r#"[ {"a" : [1, 2]} , "s\"x" ,-1.5e3, true ,null,[] ]"#;
    let expected: Vec<&RawValue> = serde_json::from_str(text).unwrap();
    let mut s = Scanner::new(text.as_bytes());
    s.expect(b'[', "array").unwrap();
    let mut got = Vec::new();
    loop {
        got.push(s.value().unwrap());
        if s.peek() == Some(b']') {
            break;
        }
        s.expect(b',', "comma").unwrap();
    }
    let expected: Vec<&str> = expected.iter().map(|r| r.get()).collect();
    assert_eq!(got, expected);
}

#[test]
fn strings_decode_like_serde_json() {
    for text in [
        r#""plain""#,
        r#""tab\there \"quoted\" back\\slash \/ \b\f\n\r""#,
        r#""\u00e9\u0041\uD83D\uDE00\u20ac""#,
        r#""é😀 raw""#,
        r#""""#,
    ] {
        let mut s = Scanner::new(text.as_bytes());
        let decoded = s.string().unwrap().decode().unwrap();
        let expected: String = serde_json::from_str(text).unwrap();
        assert_eq!(decoded, expected, "{text}");
    }
    for lone in [r#""\ud800""#, r#""\udc00""#, r#""\ud800\u0041""#] {
        let mut s = Scanner::new(lone.as_bytes());
        assert!(s.string().unwrap().decode().is_err(), "{lone}");
        assert!(serde_json::from_str::<String>(lone).is_err(), "{lone}");
    }
}

#[test]
fn objects_walk_members_in_order() {
    let text = br#"{ "a" : 1 , "b\u0063" : {"x":[1]} , "d":"e" }"#;
    let mut s = Scanner::new(text);
    let mut seen = Vec::new();
    s.object(|key, s| {
        seen.push((key.decode().unwrap().into_owned(), s.value()?.to_owned()));
        Ok(())
    })
    .unwrap();
    s.end().unwrap();
    assert_eq!(
        seen,
        [
            ("a".to_owned(), "1".to_owned()),
            ("bc".to_owned(), r#"{"x":[1]}"#.to_owned()),
            ("d".to_owned(), r#""e""#.to_owned()),
        ]
    );
    let err = Scanner::new(br#"{"a":1 "b":2}"#)
        .object(|_, s| s.value().map(drop))
        .unwrap_err();
    assert_eq!((err.what, err.at), ("expected `,` or `}`", 7));
}

#[test]
fn long_strings_stop_at_every_special_byte_wherever_it_falls() {
    // The eight-byte fast path must notice a special byte at any offset of its word.
    for len in 0..40 {
        for at in 0..len {
            for special in [
                "\"", "\\n", "\\u0041", "\u{1}", "\u{1f}", "\u{7f}", "é", "😀", " ",
            ] {
                let mut body: String = "a".repeat(len);
                body.replace_range(at..at + 1, special);
                let text = format!("[\"{body}\",1]");
                agree(text.as_bytes());
                if let Ok(expected) = serde_json::from_str::<Vec<serde_json::Value>>(&text) {
                    let mut s = Scanner::new(text.as_bytes());
                    s.expect(b'[', "array").unwrap();
                    let got = s.string().unwrap().decode().unwrap();
                    assert_eq!(expected[0].as_str(), Some(got.as_ref()), "{text}");
                }
            }
        }
    }
    agree(b"[\"aaaaaaaaaaaaaaaa\xff\"]");
    agree(b"[\"aaaaaaa\xc3\xa9aaaaaaaa\"]");
    agree(b"[\"aaaaaaaaaaaaaaa\xc3\"]");
}
