use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn loopback(port: u16) -> Guard {
    Guard::new(SocketAddr::from(([127, 0, 0, 1], port)), Access::default())
}

#[test]
fn host_must_be_the_listen_address() {
    let g = loopback(8787);
    for ok in ["127.0.0.1:8787", "localhost:8787", "LOCALHOST:8787"] {
        assert_eq!(g.check_host(&headers(&[("host", ok)])), Ok(()), "{ok}");
    }
    for bad in [
        "evil.example:8787",
        "evil.example",
        "127.0.0.1:8788",
        "127.0.0.1",
        "localhost.:8787",
        "127.0.0.1:8787@evil",
        "",
    ] {
        assert!(g.check_host(&headers(&[("host", bad)])).is_err(), "{bad}");
    }
    assert!(g.check_host(&HeaderMap::new()).is_err());
    let v6 = Guard::new("[::1]:9000".parse().unwrap(), Access::default());
    assert_eq!(v6.check_host(&headers(&[("host", "[::1]:9000")])), Ok(()));
    let port80 = loopback(80);
    assert_eq!(
        port80.check_host(&headers(&[("host", "localhost")])),
        Ok(())
    );
}

#[test]
fn an_unspecified_listen_accepts_ip_literals_not_names() {
    let g = Guard::new("0.0.0.0:8787".parse().unwrap(), Access::default());
    for ok in ["192.168.1.5:8787", "127.0.0.1:8787", "localhost:8787"] {
        assert_eq!(g.check_host(&headers(&[("host", ok)])), Ok(()), "{ok}");
    }
    assert!(
        g.check_host(&headers(&[("host", "evil.example:8787")]))
            .is_err()
    );
}

#[test]
fn origins_are_the_listen_address_or_allowed() {
    let access = Access::new(
        &[
            "http://localhost:3000/".into(),
            "HTTPS://App.Example.com".into(),
        ],
        None,
    )
    .unwrap();
    assert_eq!(
        access.origins(),
        ["http://localhost:3000", "https://app.example.com"]
    );
    let g = Guard::new(SocketAddr::from(([127, 0, 0, 1], 8787)), access);
    let origin = |o: &str| g.check_origin(&headers(&[("origin", o)]));
    assert_eq!(g.check_origin(&HeaderMap::new()), Ok(None));
    assert_eq!(origin("http://127.0.0.1:8787"), Ok(None));
    assert_eq!(origin("http://localhost:8787"), Ok(None));
    assert!(origin("http://localhost:3000").unwrap().is_some());
    assert!(origin("https://app.example.com:443").unwrap().is_some());
    for bad in [
        "null",
        "http://evil.example",
        "https://127.0.0.1:8787",
        "http://localhost:3001",
        "http://app.example.com",
        "http://127.0.0.1:8787/path",
        "garbage",
    ] {
        assert!(origin(bad).is_err(), "{bad}");
    }
    // A dev server proxying with the Host kept.
    assert_eq!(
        g.check_host(&headers(&[("host", "localhost:3000")])),
        Ok(())
    );
}

#[test]
fn bad_allow_origins_are_refused() {
    for (given, broad) in [
        ("null", true),
        ("*", true),
        ("localhost:3000", false),
        ("http://", false),
        ("http://a b", false),
        ("http://x:99999", false),
        ("http://x/path", false),
    ] {
        let err = Access::new(&[given.into()], None).unwrap_err();
        assert_eq!(
            matches!(err, AccessError::TooBroad(_)),
            broad,
            "{given}: {err}"
        );
    }
}

#[test]
fn the_token_is_checked_and_never_shown() {
    let token = ServeToken::new("s3cret-Token").unwrap();
    assert_eq!(format!("{token:?}"), "ServeToken(<redacted>)");
    let g = Guard::new(
        SocketAddr::from(([127, 0, 0, 1], 1)),
        Access::new(&[], Some(token)).unwrap(),
    );
    let auth = |v: &str| g.check_token(&headers(&[("authorization", v)]));
    assert_eq!(auth("Bearer s3cret-Token"), Ok(()));
    assert_eq!(auth("bearer  s3cret-Token "), Ok(()));
    assert!(auth("Bearer s3cret-token").is_err());
    assert!(auth("Bearer s3cret-Token2").is_err());
    assert!(auth("Basic s3cret-Token").is_err());
    assert!(auth("s3cret-Token").is_err());
    assert!(g.check_token(&HeaderMap::new()).is_err());
    assert!(ServeToken::new("").is_err());
    assert!(ServeToken::new("two words").is_err());
}

#[test]
fn only_json_is_accepted() {
    assert!(is_json(&headers(&[("content-type", "application/json")])));
    assert!(is_json(&headers(&[(
        "content-type",
        "Application/JSON; charset=utf-8"
    )])));
    for bad in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
    ] {
        assert!(!is_json(&headers(&[("content-type", bad)])), "{bad}");
    }
    assert!(!is_json(&HeaderMap::new()));
}
