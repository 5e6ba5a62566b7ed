//! openapi.yaml describes exactly the routes the gateway serves: its paths and methods are the
//! local stack's Lambda routes and the SAM template's API routes, no more and no fewer.

use std::collections::BTreeSet;

const OPENAPI: &str = include_str!("../openapi.yaml");
const TEMPLATE: &str = include_str!("../infra/template.yaml");
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

/// "METHOD /path" for every operation under `paths:` (two-space path keys, four-space methods:
/// the document's own layout, which this reads without a YAML parser).
fn openapi_routes() -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    let mut path = None;
    for line in OPENAPI.lines().skip_while(|line| *line != "paths:").skip(1) {
        if line.chars().next().is_some_and(|c| !c.is_whitespace() && c != '#') {
            break;
        }
        if let Some(key) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')).filter(|k| k.starts_with('/')) {
            path = Some(key.trim_matches(['"', '\'']).to_owned());
        } else if let (Some(path), Some(key)) =
            (&path, line.strip_prefix("    ").and_then(|l| l.strip_suffix(':')).filter(|k| !k.starts_with(' ')))
            && METHODS.contains(&key)
        {
            routes.insert(format!("{} {path}", key.to_uppercase()));
        }
    }
    routes
}

fn template_routes() -> BTreeSet<String> {
    TEMPLATE
        .lines()
        .filter_map(|line| line.trim().strip_prefix("RouteKey: "))
        .map(|key| key.trim_matches('"').to_owned())
        .collect()
}

fn local_routes() -> BTreeSet<String> {
    local::lambda_routes().into_iter().map(|(method, path)| format!("{method} {path}")).collect()
}

#[test]
fn the_openapi_document_has_exactly_the_served_routes() {
    let documented = openapi_routes();
    assert_eq!(documented.len(), 10, "{documented:#?}");
    assert_eq!(documented, local_routes(), "openapi.yaml against the local stack's routes");
    assert_eq!(documented, template_routes(), "openapi.yaml against infra/template.yaml's RouteKeys");
}
