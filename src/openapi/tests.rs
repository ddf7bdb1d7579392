//! The document against the router, and every field described.

use super::*;
use crate::router::{Access, ROUTES};
use std::collections::BTreeSet;

/// `/a/:b/c` -> `/a/{b}/c`.
fn openapi_path(template: &str) -> String {
    template
        .split('/')
        .map(|s| match s.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn documented() -> BTreeSet<(String, String)> {
    let doc = document();
    let mut set = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            set.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    set
}

#[test]
fn router_and_document_are_equal() {
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|r| {
            r.access != Access::Dashboard
                && r.path != "/favicon.ico"
                && !r.path.starts_with("/assets/")
        })
        .map(|r| (r.method.as_str().to_string(), openapi_path(r.path)))
        .collect();
    let documented = documented();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
    assert!(extra.is_empty(), "documented but not served: {extra:?}");
}

/// Every property of every object schema in `schema`, recursively,
/// as (where, property schema).
fn properties<'a>(where_: &str, schema: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let here = format!("{where_}.{name}");
            out.push((here.clone(), prop));
            properties(&here, prop, out);
        }
    }
    for key in ["items"] {
        if let Some(inner) = schema.get(key) {
            properties(&format!("{where_}[]"), inner, out);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for inner in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            properties(where_, inner, out);
        }
    }
}

#[test]
fn every_operation_parameter_and_field_is_described() {
    let doc = document();
    let described = |v: &Value| {
        v["description"]
            .as_str()
            .is_some_and(|s| !s.trim().is_empty())
    };
    let mut fields = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            assert!(described(op), "{at} has no description");
            for p in op["parameters"].as_array().into_iter().flatten() {
                assert!(
                    described(p),
                    "{at}: parameter {} has no description",
                    p["name"]
                );
            }
            if let Some(content) = op["requestBody"]["content"].as_object() {
                for media in content.values() {
                    properties(&format!("{at} body"), &media["schema"], &mut fields);
                }
            }
            for (code, r) in op["responses"].as_object().unwrap() {
                assert!(described(r), "{at} {code} has no description");
                for media in r["content"]
                    .as_object()
                    .into_iter()
                    .flat_map(|c| c.values())
                {
                    properties(&format!("{at} {code}"), &media["schema"], &mut fields);
                }
            }
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        assert!(described(schema), "schema {name} has no description");
        properties(name, schema, &mut fields);
    }
    assert!(fields.len() > 100, "only {} fields found", fields.len());
    for (at, field) in fields {
        assert!(described(field), "{at} has no description");
    }
}

#[test]
fn every_path_parameter_is_declared() {
    let doc = document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let names: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            for name in &names {
                let declared = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["in"] == "path" && p["name"] == *name);
                assert!(declared, "{method} {path} does not declare {name}");
            }
        }
    }
}
