//! README's console key table is generated from the keymap; this keeps them equal.
//! Regenerate with: `D1OPS_WRITE_README_KEYS=1 cargo test --test readme_keys`.

const START: &str = "<!-- keymap:start -->\n";
const END: &str = "<!-- keymap:end -->";

#[test]
fn readme_key_table_matches_the_keymap() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let table = d1ops::console::keymap_markdown();
    let (Some(a), Some(b)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md lacks the {START:?} … {END:?} markers");
    };
    let current = &readme[a + START.len()..b];
    if std::env::var_os("D1OPS_WRITE_README_KEYS").is_some() {
        let updated = format!("{}{START}{table}{}", &readme[..a], &readme[b..]);
        std::fs::write(&path, updated).expect("write README.md");
        return;
    }
    assert_eq!(
        current, table,
        "README's key table is stale; regenerate it (see this file's header)"
    );
}
