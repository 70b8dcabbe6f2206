//! Every way a `passwordSecret` can fail says what is missing; a good one gives its key.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrolb_api::SecretReference;
use ferrolb_api::k8s::{ByteString, ObjectMeta, Secret};
use ferrolb_md5sig::Md5Key;

use super::PasswordSecrets;
use crate::bgp::Password;

fn secret(kind: Option<&str>, data: &[(&str, &[u8])]) -> Arc<Secret> {
    Arc::new(Secret {
        metadata: ObjectMeta {
            name: Some("tor-md5".into()),
            namespace: Some("ferrolb-system".into()),
            ..Default::default()
        },
        type_: kind.map(Into::into),
        data: Some(data.iter().map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec()))).collect()),
        ..Default::default()
    })
}

fn reference(name: &str, namespace: Option<&str>) -> SecretReference {
    SecretReference { name: name.into(), namespace: namespace.map(Into::into) }
}

fn secrets(held: Option<Arc<Secret>>) -> PasswordSecrets {
    PasswordSecrets::new("ferrolb-system", BTreeMap::from([("tor-md5".to_owned(), held)]))
}

fn unusable(p: Password) -> String {
    match p {
        Password::Unusable(why) => why,
        Password::Key(_) => panic!("a key"),
    }
}

#[test]
fn a_basic_auth_secret_gives_its_password_as_the_key() {
    let good = secrets(Some(secret(Some("kubernetes.io/basic-auth"), &[("username", b"x"), ("password", b"s3cret")])));
    for namespace in [None, Some("ferrolb-system")] {
        match good.password(&reference("tor-md5", namespace)) {
            Password::Key(key) => assert_eq!(key, Md5Key::new(b"s3cret").unwrap()),
            Password::Unusable(why) => panic!("{why}"),
        }
    }
}

#[test]
fn what_is_missing_or_wrong_is_said_exactly() {
    let basic = Some("kubernetes.io/basic-auth");
    let long = [b'k'; 81];
    let cases: Vec<(PasswordSecrets, SecretReference, &str)> = vec![
        (
            secrets(None),
            reference("tor-md5", Some("metallb-system")),
            "passwordSecret names namespace metallb-system, but the speakers read Secrets only in their own namespace ferrolb-system: put Secret tor-md5 there and leave passwordSecret.namespace out",
        ),
        (
            secrets(None),
            reference("other", None),
            "the speakers may not read Secret ferrolb-system/other: list it in the chart value speaker.bgpPasswordSecrets (the speaker's --bgp-password-secrets)",
        ),
        (secrets(None), reference("tor-md5", None), "Secret ferrolb-system/tor-md5 (passwordSecret) does not exist"),
        (
            secrets(Some(secret(None, &[("password", b"k")]))),
            reference("tor-md5", None),
            "Secret ferrolb-system/tor-md5: type Opaque; passwordSecret needs type kubernetes.io/basic-auth",
        ),
        (
            secrets(Some(secret(basic, &[("username", b"k")]))),
            reference("tor-md5", None),
            "Secret ferrolb-system/tor-md5: no key \"password\"",
        ),
        (
            secrets(Some(secret(basic, &[("password", b"")]))),
            reference("tor-md5", None),
            "Secret ferrolb-system/tor-md5: key \"password\": a TCP MD5 key cannot be empty",
        ),
        (
            secrets(Some(secret(basic, &[("password", &long)]))),
            reference("tor-md5", None),
            "Secret ferrolb-system/tor-md5: key \"password\": a TCP MD5 key is at most 80 bytes; this one is 81",
        ),
        (
            secrets(Some(secret(basic, &[("password", b"s3cret\n")]))),
            reference("tor-md5", None),
            "Secret ferrolb-system/tor-md5: key \"password\" contains a line break (a trailing newline from a file?); TCP MD5 keys are compared byte for byte",
        ),
    ];
    for (secrets, reference, expected) in cases {
        let why = unusable(secrets.password(&reference));
        assert_eq!(why, expected);
        assert!(!why.contains("s3cret"), "a message must never show the key: {why}");
    }
}
