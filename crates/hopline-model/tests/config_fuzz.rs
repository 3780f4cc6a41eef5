//! Whatever text a config file holds, loading it returns a config or an error; it never panics,
//! and every error names a place.

use hopline_model::PipelineConfig;
use proptest::prelude::*;

const GOOD: &str = "app: demo\nscenario: s\nruntime:\n  profile: memory\n  batch_size: 64\nsource: {kind: ndjson, path: a}\nsink:\n  kind: ndjson\n  path: '-'\nnodes:\n  - kind: parse\n  - kind: limit\n    params: {max: 3, list: [1, 2], nested: {a: &x 1, b: *x}}\n";

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = PipelineConfig::from_yaml("fuzz.yml", &text);
    }

    #[test]
    fn mutated_configs_never_panic_and_errors_name_a_line(at in 0usize..400, cut in 0usize..8, insert in "[ :\\-\\[\\]{}&*!|>'\"#%@`,?a-z0-9\\n\\t]{0,6}") {
        let mut text = GOOD.to_string();
        let at = text.char_indices().map(|(i, _)| i).nth(at % text.chars().count()).unwrap_or(0);
        let end = text[at..].char_indices().map(|(i, _)| at + i).nth(cut).unwrap_or(text.len());
        text.replace_range(at..end, &insert);
        if let Err(e) = PipelineConfig::from_yaml("fuzz.yml", &text) {
            let shown = e.to_string();
            prop_assert!(shown.starts_with("fuzz.yml"), "{shown}");
            prop_assert!(e.pos.is_some() || e.message.contains("end of YAML"), "no place: {shown}");
        }
    }
}
