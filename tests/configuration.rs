//! `AgentAuth::build`: every problem of a configuration reported at once, as typed values; a
//! configuration that builds never fails later.

use agent_auth::{AgentAuth, ConfigProblem, Issuer, UrlProblem};

/// The problems `auth` cannot be built for, one short line each.
fn problems(auth: AgentAuth) -> Vec<String> {
    let error = auth.build().expect_err("the configuration cannot work");
    error
        .problems()
        .iter()
        .map(|problem| match problem {
            ConfigProblem::BadUrl { setting, value, .. } => format!("bad_url {setting} {value}"),
            ConfigProblem::NoAudience { issuer } => format!("no_audience {issuer}"),
            ConfigProblem::DuplicateIssuer { issuer } => format!("duplicate {issuer}"),
            ConfigProblem::Zero { setting } => format!("zero {setting}"),
            ConfigProblem::NoAlgorithm => "no_algorithm".to_owned(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn every_problem_is_reported_at_once() {
    let auth = AgentAuth::new("not a url")
        .algorithms([])
        .max_token_bytes(0)
        .resource_metadata("/relative")
        .issuer(Issuer::new("https://b.example").jwks_uri("ftp://b.example/jwks"))
        .issuer(Issuer::new("https://b.example").audience("https://api"));
    assert_eq!(
        problems(auth),
        [
            "no_algorithm",
            "zero max_token_bytes",
            "bad_url resource_metadata /relative",
            "no_audience not a url",
            "bad_url issuer not a url",
            "no_audience https://b.example",
            "bad_url jwks_uri ftp://b.example/jwks",
            "duplicate https://b.example",
        ]
    );
}

#[test]
fn the_error_names_every_problem_and_its_cause() {
    let error = AgentAuth::new("ftp://issuer.example")
        .algorithms([])
        .build()
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("no accepted algorithm"), "{message}");
    assert!(
        message.contains("no audience for issuer ftp://issuer.example"),
        "{message}"
    );
    assert!(
        message.contains("issuer is not an absolute http(s) URL: ftp://issuer.example"),
        "{message}"
    );
    let bad_url = error
        .problems()
        .iter()
        .find_map(|problem| match problem {
            ConfigProblem::BadUrl { reason, .. } => Some(reason),
            _ => None,
        })
        .unwrap();
    assert!(matches!(bad_url, UrlProblem::NotHttp));
    let unparsable = AgentAuth::new("http://").audience("a").build().unwrap_err();
    assert!(matches!(
        &unparsable.problems()[0],
        ConfigProblem::BadUrl {
            reason: UrlProblem::Parse(_),
            ..
        }
    ));
}

#[test]
fn an_issuer_with_its_own_audience_needs_no_shared_one() {
    let built = AgentAuth::for_issuer(Issuer::new("https://a.example").audience("https://api"))
        .issuer(Issuer::new("https://b.example").audience("https://api/b"))
        .build();
    assert!(built.is_ok(), "{:?}", built.err());
    // Without any audience for the second issuer, it is refused by name.
    let problems = problems(
        AgentAuth::for_issuer(Issuer::new("https://a.example").audience("https://api"))
            .issuer(Issuer::new("https://b.example")),
    );
    assert_eq!(problems, ["no_audience https://b.example"]);
}

#[test]
fn a_good_configuration_builds_and_describes_every_issuer() {
    let layer = AgentAuth::new("https://a.example")
        .audience("https://api.example.com")
        .issuer(Issuer::new("https://b.example"))
        .build()
        .unwrap();
    let metadata = layer.protected_resource_metadata();
    assert_eq!(metadata.resource, "https://api.example.com");
    assert_eq!(
        metadata.authorization_servers,
        ["https://a.example", "https://b.example"]
    );
    let readiness = layer.readiness();
    assert!(!readiness.is_ready(), "nothing fetched yet");
    assert_eq!(readiness.issuers.len(), 2);
    assert_eq!(readiness.issuers[1].issuer, "https://b.example");
    assert_eq!(readiness.issuers[1].keys, 0);
    assert_eq!(readiness.issuers[1].age, None);
}
