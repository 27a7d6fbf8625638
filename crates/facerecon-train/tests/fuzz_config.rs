//! Property / fuzz tests of the config parser (issue 15, systematic part): the repository's configs,
//! mutated at random (numbers replaced by extreme values, lines dropped, duplicated or garbled,
//! keys misspelt), never make `Config::from_yaml` panic; each is an error naming the file or a
//! config that validates, whose model resolves and whose YAML round-trips.
//!
//! Cases: FACERECON_FUZZ_CASES (default small, for `make test`); `make fuzz` runs many. A failure
//! prints the minimised YAML: keep it as a regression case in the config tests.

use std::path::Path;

use facerecon_train::{Config, ConfigError};
use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("FACERECON_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn configs() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    names
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[derive(Debug, Clone)]
enum Edit {
    /// Replace the n-th number in the text.
    Number(usize, String),
    DropLine(usize),
    DupLine(usize),
    /// Insert a token at a char position.
    Insert(usize, String),
    /// Change one character of a key (a typo).
    Typo(usize, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    let number = prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("1e308".to_string()),
        Just("-1e308".to_string()),
        Just(".nan".to_string()),
        Just(".inf".to_string()),
        Just("18446744073709551615".to_string()),
        Just("4294967297".to_string()),
        Just("99999999999999999999999".to_string()),
        (0u64..5000).prop_map(|n| n.to_string()),
        (-10.0f64..10.0).prop_map(|f| f.to_string()),
    ];
    let token = prop_oneof![
        Just(": ".to_string()),
        Just("\n".to_string()),
        Just("- ".to_string()),
        Just("{".to_string()),
        Just("[".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!!binary ".to_string()),
        Just("\t".to_string()),
        Just("~".to_string()),
        "[ -~]{1,8}",
    ];
    prop_oneof![
        (any::<usize>(), number).prop_map(|(i, n)| Edit::Number(i, n)),
        any::<usize>().prop_map(Edit::DropLine),
        any::<usize>().prop_map(Edit::DupLine),
        (any::<usize>(), token).prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<usize>(), prop::char::range('a', 'z')).prop_map(|(i, c)| Edit::Typo(i, c)),
    ]
}

fn apply(text: &str, e: &Edit) -> String {
    match e {
        Edit::Number(i, n) => {
            // Spans of digits (with '.'): replace the i-th.
            let spans: Vec<(usize, usize)> = {
                let b = text.as_bytes();
                let mut v = Vec::new();
                let mut k = 0;
                while k < b.len() {
                    if b[k].is_ascii_digit() {
                        let s = k;
                        while k < b.len() && (b[k].is_ascii_digit() || b[k] == b'.' || b[k] == b'e' || b[k] == b'-') {
                            k += 1;
                        }
                        v.push((s, k));
                    } else {
                        k += 1;
                    }
                }
                v
            };
            if spans.is_empty() {
                return text.to_string();
            }
            let (s, t) = spans[i % spans.len()];
            format!("{}{}{}", &text[..s], n, &text[t..])
        }
        Edit::DropLine(i) | Edit::DupLine(i) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                return text.to_string();
            }
            let k = i % lines.len();
            if matches!(e, Edit::DropLine(_)) {
                lines.remove(k);
            } else {
                lines.insert(k, lines[k]);
            }
            lines.join("\n")
        }
        Edit::Insert(i, t) => {
            let chars: Vec<char> = text.chars().collect();
            let k = i % (chars.len() + 1);
            chars[..k].iter().collect::<String>() + t + &chars[k..].iter().collect::<String>()
        }
        Edit::Typo(i, c) => {
            let mut chars: Vec<char> = text.chars().collect();
            let letters: Vec<usize> = (0..chars.len()).filter(|&k| chars[k].is_ascii_lowercase()).collect();
            if let Some(&k) = letters.get(i % letters.len().max(1)) {
                chars[k] = *c;
            }
            chars.into_iter().collect()
        }
    }
}

fn check(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("fuzzed.yaml");
    match Config::from_yaml(text, path) {
        Ok(config) => {
            // Valid means usable: the model resolves and has a parameter count, and what a
            // checkpoint stores parses back to the same config.
            prop_assert!(config.model.resolve().is_ok());
            let _ = config.model.num_parameters();
            let back = Config::from_yaml(&config.to_yaml(), path);
            prop_assert!(back.is_ok(), "round trip: {:?}", back.err());
            prop_assert_eq!(back.unwrap().to_yaml(), config.to_yaml());
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(msg.contains("fuzzed.yaml"), "{}", msg);
            prop_assert!(
                matches!(e, ConfigError::Parse { .. } | ConfigError::Invalid { .. }),
                "{}",
                msg
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_configs_parse_or_are_refused(which in any::<usize>(), edits in prop::collection::vec(edit(), 1..5)) {
        let all = configs();
        let mut text = all[which % all.len()].clone();
        for e in &edits {
            text = apply(&text, e);
        }
        check(&text)?;
    }

    #[test]
    fn arbitrary_text_parses_or_is_refused(text in "[ -~\n]{0,200}") {
        check(&text)?;
    }
}
