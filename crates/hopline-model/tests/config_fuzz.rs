//! Whatever text a config file holds, loading it returns a config or an error; it never panics,
//! and every error names a place.

use hopline_model::PipelineConfig;
use proptest::prelude::*;

const GOOD: &str = "app: demo\nscenario: s\nruntime:\n  profile: memory\n  batch_size: 64\nsource: {kind: ndjson, path: a}\nsink:\n  kind: ndjson\n  path: '-'\nnodes:\n  - kind: parse\n  - kind: limit\n    params: {max: 3, list: [1, 2], nested: {a: &x 1, b: *x}}\n";

const GOOD_MP: &str = "app: demo\nscenario: s\nruntime:\n  profile: multiprocess\n  process_groups:\n    - name: a\n      nodes: [parse]\n    - {name: b, nodes: [limit]}\n  heartbeat_interval: 1s\n  transport: {key: {env: K}, replay_window: 64}\nsource: {kind: ndjson, path: a, group: a}\nsink:\n  kind: ndjson\n  path: '-'\n  group: b\nnodes:\n  - kind: parse\n  - kind: limit\n    params: {max: 3}\n";

#[test]
fn the_configs_mutated_below_read() {
    assert!(PipelineConfig::from_yaml("good.yml", GOOD).unwrap().runtime.multiprocess.is_none());
    let mp = PipelineConfig::from_yaml("good_mp.yml", GOOD_MP).unwrap().runtime.multiprocess.unwrap();
    assert_eq!(mp.groups.len(), 2);
}

/// `text` with up to `cut` characters from `at` replaced by `insert`.
fn mutate(text: &str, at: usize, cut: usize, insert: &str) -> String {
    let mut text = text.to_string();
    let at = text.char_indices().map(|(i, _)| i).nth(at % text.chars().count()).unwrap_or(0);
    let end = text[at..].char_indices().map(|(i, _)| at + i).nth(cut).unwrap_or(text.len());
    text.replace_range(at..end, insert);
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = PipelineConfig::from_yaml("fuzz.yml", &text);
    }

    #[test]
    fn mutated_configs_never_panic_and_errors_name_a_line(at in 0usize..400, cut in 0usize..8, insert in "[ :\\-\\[\\]{}&*!|>'\"#%@`,?a-z0-9\\n\\t]{0,6}") {
        let text = mutate(GOOD, at, cut, &insert);
        if let Err(e) = PipelineConfig::from_yaml("fuzz.yml", &text) {
            let shown = e.to_string();
            prop_assert!(shown.starts_with("fuzz.yml"), "{shown}");
            prop_assert!(e.pos.is_some() || e.message.contains("end of YAML"), "no place: {shown}");
        }
    }

    #[test]
    fn mutated_multiprocess_configs_never_panic_and_errors_name_a_line(at in 0usize..400, cut in 0usize..8, insert in "[ :\\-\\[\\]{}&*!|>'\"#%@`,?a-z0-9\\n\\t]{0,6}") {
        let text = mutate(GOOD_MP, at, cut, &insert);
        match PipelineConfig::from_yaml("fuzz.yml", &text) {
            Ok(config) => {
                // A config that reads is either memory (no groups) or placed whole and in order.
                if let Some(mp) = &config.runtime.multiprocess {
                    for n in 0..config.nodes.len() {
                        prop_assert!(mp.group_of_node(n).nodes.contains(&n));
                    }
                    prop_assert!(mp.groups[0].source && mp.groups[mp.groups.len() - 1].sink);
                }
            }
            Err(e) => {
                let shown = e.to_string();
                prop_assert!(shown.starts_with("fuzz.yml"), "{shown}");
                prop_assert!(e.pos.is_some() || e.message.contains("end of YAML"), "no place: {shown}");
            }
        }
    }
}
