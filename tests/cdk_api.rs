//! ww-cdk is a public SDK: its public enums can gain variants without
//! breaking canisters (`#[non_exhaustive]`), and its version has a
//! CHANGELOG entry that says what broke and how to migrate.

use std::path::{Path, PathBuf};

fn cdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/cdk")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_public_enum_of_ww_cdk_is_non_exhaustive() {
    let mut files = Vec::new();
    rust_files(&cdk().join("src"), &mut files);
    let mut enums = 0;
    let mut open = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.trim_start().starts_with("pub enum ") {
                continue;
            }
            enums += 1;
            // The attributes right above the enum (doc comments and derives between).
            let attrs = lines[..i].iter().rev().take_while(|l| {
                let l = l.trim_start();
                l.starts_with("#[") || l.starts_with("///")
            });
            if !attrs.into_iter().any(|l| l.trim() == "#[non_exhaustive]") {
                open.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(enums >= 7, "found only {enums} public enums: is guests/cdk/src where ww-cdk lives?");
    assert!(open.is_empty(), "public enums without #[non_exhaustive]:\n{}", open.join("\n"));
}

#[test]
fn the_changelog_has_an_entry_for_this_version() {
    let manifest = std::fs::read_to_string(cdk().join("Cargo.toml")).unwrap();
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("ww-cdk's Cargo.toml sets its own version");
    let changelog = std::fs::read_to_string(cdk().join("CHANGELOG.md")).expect("guests/cdk/CHANGELOG.md");
    let entry = changelog
        .split("\n## ")
        .find(|section| section.starts_with(version))
        .unwrap_or_else(|| panic!("CHANGELOG.md has no `## {version}` entry"));
    assert!(entry.contains("### Breaking"), "the {version} entry lists what broke");
    assert!(entry.contains("*Migrate:*"), "the {version} entry says how to migrate");
}
