//! The Secrets behind BGPPeers' `passwordSecret`: which ones this speaker may read (the names it is given,
//! which the chart's RBAC grants by name), what each holds, and the TCP MD5 key a peer gets from it, or
//! exactly why it gets none. MetalLB's rules: type `kubernetes.io/basic-auth`, the key under `password`.
//!
//! Nothing here logs or formats a key: the messages name Secrets and keys, never their contents.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrolb_api::k8s::Secret;
use ferrolb_api::{PASSWORD_SECRET_KEY, PASSWORD_SECRET_TYPE, SecretReference};
use ferrolb_md5sig::Md5Key;

use crate::bgp::Password;

/// The Secrets this speaker may read, as its watches last saw them.
#[derive(Default)]
pub(crate) struct PasswordSecrets {
    /// The namespace the speaker runs in, the only one it reads.
    namespace: String,
    /// By name: every Secret the speaker may read, `None` while it does not exist.
    readable: BTreeMap<String, Option<Arc<Secret>>>,
}

impl PasswordSecrets {
    /// The Secrets `readable` (by name; `None`: absent) in `namespace`.
    pub(crate) fn new(namespace: &str, readable: BTreeMap<String, Option<Arc<Secret>>>) -> PasswordSecrets {
        PasswordSecrets { namespace: namespace.to_owned(), readable }
    }

    /// The key a BGPPeer's `passwordSecret` gives, or why it gives none.
    pub(crate) fn password(&self, reference: &SecretReference) -> Password {
        let name = &reference.name;
        let namespace = &self.namespace;
        if let Some(other) = reference.namespace.as_deref().filter(|ns| *ns != namespace) {
            return Password::Unusable(format!(
                "passwordSecret names namespace {other}, but the speakers read Secrets only in their own namespace \
                 {namespace}: put Secret {name} there and leave passwordSecret.namespace out"
            ));
        }
        let Some(found) = self.readable.get(name) else {
            return Password::Unusable(format!(
                "the speakers may not read Secret {namespace}/{name}: list it in the chart value \
                 speaker.bgpPasswordSecrets (the speaker's --bgp-password-secrets)"
            ));
        };
        let Some(secret) = found else {
            return Password::Unusable(format!("Secret {namespace}/{name} (passwordSecret) does not exist"));
        };
        match key_in(secret) {
            Ok(key) => Password::Key(key),
            Err(why) => Password::Unusable(format!("Secret {namespace}/{name}: {why}")),
        }
    }
}

/// The TCP MD5 key in `secret`, or what is wrong with it.
fn key_in(secret: &Secret) -> Result<Md5Key, String> {
    let kind = secret.type_.as_deref().unwrap_or("Opaque");
    if kind != PASSWORD_SECRET_TYPE {
        return Err(format!("type {kind}; passwordSecret needs type {PASSWORD_SECRET_TYPE}"));
    }
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(PASSWORD_SECRET_KEY)) else {
        return Err(format!("no key {PASSWORD_SECRET_KEY:?}"));
    };
    let bytes = &bytes.0;
    if bytes.iter().any(|b| matches!(b, b'\n' | b'\r')) {
        // MetalLB refuses these too; here they would silently make a key the router does not share.
        return Err(format!(
            "key {PASSWORD_SECRET_KEY:?} contains a line break (a trailing newline from a file?); TCP MD5 keys \
             are compared byte for byte"
        ));
    }
    Md5Key::new(bytes).map_err(|e| format!("key {PASSWORD_SECRET_KEY:?}: {e}"))
}

#[cfg(test)]
mod tests;
