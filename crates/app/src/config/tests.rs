//! Invariants of the key tables.

use std::collections::HashMap;

use super::engine::EngineConfig;
use super::executor::ExecutorConfig;
use super::reference::{markdown, markers};
use super::schema::{Schema, Target, env_form};

fn env_forms_are_unambiguous<C: Schema>() {
    let table = C::table();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, key) in table.keys.iter().enumerate() {
        for name in &key.names {
            if let Some(prev) = seen.insert(env_form(name), i) {
                assert_eq!(
                    prev,
                    i,
                    "{name} shares its variable with {}",
                    table.keys[prev].canonical()
                );
            }
        }
    }
}

fn every_key_resolves_to_itself<C: Schema>() {
    let table = C::table();
    for (i, key) in table.keys.iter().enumerate() {
        for name in &key.names {
            assert_eq!(table.resolve(name), Some(Target::Key(i)), "{name}");
            let (target, _) = table
                .resolve_env(&env_form(name))
                .expect("env form resolves");
            assert_eq!(target, Target::Key(i), "{name}");
        }
    }
}

/// Printing a default value and loading it back must give the default again, or the output
/// of `config check` could not be pasted into a file.
fn printed_defaults_load_back<C: Schema + PartialEq + std::fmt::Debug>() {
    let table = C::table();
    let default = C::default();
    for key in &table.keys {
        if let Some(shown) = (key.get)(&default) {
            let mut c = C::default();
            (key.set)(&mut c, &shown)
                .unwrap_or_else(|e| panic!("{} = {shown}: {e}", key.canonical()));
            assert_eq!(c, default, "{} = {shown}", key.canonical());
        }
    }
}

#[test]
fn executor_table_is_consistent() {
    env_forms_are_unambiguous::<ExecutorConfig>();
    every_key_resolves_to_itself::<ExecutorConfig>();
    printed_defaults_load_back::<ExecutorConfig>();
}

#[test]
fn engine_table_is_consistent() {
    env_forms_are_unambiguous::<EngineConfig>();
    every_key_resolves_to_itself::<EngineConfig>();
    printed_defaults_load_back::<EngineConfig>();
}

#[test]
fn every_key_is_in_its_namespace_or_quarkus() {
    for key in ExecutorConfig::table().keys.iter().flat_map(|k| &k.names) {
        assert!(
            key.starts_with("gamelan.executor.") || key.starts_with("quarkus."),
            "{key}"
        );
    }
    for key in EngineConfig::table().keys.iter().flat_map(|k| &k.names) {
        assert!(
            key.starts_with("gamelan.engine.") || key.starts_with("quarkus."),
            "{key}"
        );
    }
}

/// README.md's configuration reference is the rendering of the key tables; after changing a
/// key, paste the table this test prints between the markers.
#[test]
fn readme_reference_matches_the_key_tables() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md is readable");
    for (name, rendered) in [
        ("executor", markdown::<ExecutorConfig>()),
        ("engine", markdown::<EngineConfig>()),
    ] {
        let (start, end) = markers(name);
        let documented = readme
            .split_once(&start)
            .and_then(|(_, rest)| rest.split_once(&end))
            .map(|(table, _)| table);
        assert_eq!(
            documented,
            Some(rendered.as_str()),
            "README.md's {name} table (between {start:?} and {end:?}) should be:\n{rendered}"
        );
    }
}
