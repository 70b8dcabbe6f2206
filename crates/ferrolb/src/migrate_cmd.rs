//! `ferrolb migrate-from-metallb FILE...`: reads MetalLB YAML, prints ferrolb's on stdout and one line per
//! object it could not convert on stderr. The conversion itself is [`crate::migrate`].

use std::io::{Read as _, Write as _};

use anyhow::Context;

use crate::cli::MigrateArgs;
use crate::migrate::{self, Conversion, Object};

/// Exit status when something was not converted (what did convert is still printed).
pub const EXIT_NOT_CONVERTED: i32 = 2;

/// The comment at the top of the output.
pub const HEADER: &str = "\
# Converted from MetalLB by `ferrolb migrate-from-metallb`.
# ferrolb pools and L2Advertisements are cluster-scoped: the MetalLB namespace was dropped.
# Services need no change: ferrolb reads the annotations address-pool, loadBalancerIPs and allow-shared-ip
# under metallb.io/ and metallb.universe.tf/ as they are (its own ferrolb.io/ keys win when both are set),
# and spec.loadBalancerIP. Services without a loadBalancerClass are handled unless ferrolb runs with
# --ignore-unclassed; a Service whose class is MetalLB's needs ferrolb's --load-balancer-class set to it.
";

/// Runs the subcommand. `Ok(true)` when everything converted; `Ok(false)` when something was reported on
/// stderr. Fails on an unreadable file or invalid YAML, naming the file and the document.
pub fn run(args: &MigrateArgs) -> anyhow::Result<bool> {
    let mut inputs = Vec::new();
    for file in &args.files {
        let (label, text) = read(file)?;
        let documents = migrate::parse_documents(&text)
            .map_err(|e| anyhow::anyhow!("{label}: {e}: {}; nothing was converted", e.source))?;
        inputs.push((label, documents));
    }
    let mut conversions: Vec<Conversion> = inputs.iter().map(|(_, documents)| migrate::convert(documents)).collect();
    migrate::remove_duplicates(&mut conversions);
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let mut all_converted = true;
    stdout.write_all(HEADER.as_bytes())?;
    for ((label, _), conversion) in inputs.iter().zip(&conversions) {
        stdout.write_all(render(conversion)?.as_bytes())?;
        for problem in &conversion.problems {
            writeln!(stderr, "{label}: {problem}")?;
            all_converted = false;
        }
    }
    stdout.flush()?;
    Ok(all_converted)
}

/// The converted objects as a YAML stream, each preceded by `---` and its notes as comments.
pub fn render(conversion: &Conversion) -> anyhow::Result<String> {
    let mut out = String::new();
    for converted in &conversion.objects {
        out.push_str("---\n");
        for note in &converted.notes {
            out.push_str(&format!("# {note}\n"));
        }
        let yaml = match &converted.object {
            Object::Pool(pool) => serde_yaml::to_string(pool),
            Object::L2Advertisement(l2) => serde_yaml::to_string(l2),
            Object::BgpPeer(p) => serde_yaml::to_string(p),
            Object::BgpAdvertisement(a) => serde_yaml::to_string(a),
            Object::BfdProfile(b) => serde_yaml::to_string(b),
        }
        .context("serializing a converted object")?;
        out.push_str(&yaml);
    }
    Ok(out)
}

fn read(file: &str) -> anyhow::Result<(String, String)> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading stdin")?;
        return Ok(("stdin".to_owned(), text));
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    Ok((file.to_owned(), text))
}

#[cfg(test)]
mod tests {
    use ferrolb_api::{IPAddressPool, L2Advertisement};

    use crate::migrate;

    /// The printed stream reads back as ferrolb's own typed objects, cluster-scoped, with the notes as comments.
    #[test]
    fn rendered_output_reads_back_as_ferrolb_objects() {
        let yaml = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: m}\n\
                    spec: {addresses: [10.0.0.1/30]}\n---\n\
                    apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l, namespace: m}\n";
        let conversion = migrate::convert(&migrate::parse_documents(yaml).unwrap());
        let out = super::render(&conversion).unwrap();
        assert!(out.contains("# \"10.0.0.1/30\" written as \"10.0.0.0/30\""), "{out}");
        let documents = migrate::parse_documents(&out).unwrap();
        assert_eq!(documents.len(), 2);
        for document in &documents {
            assert_eq!(document["apiVersion"].as_str(), Some("ferrolb.io/v1alpha1"));
            assert!(document["metadata"].get("namespace").is_none());
            assert!(document.get("status").is_none());
        }
        let pool: IPAddressPool = serde_yaml::from_value(documents[0].clone()).unwrap();
        assert_eq!(pool.spec.addresses, ["10.0.0.0/30"]);
        let l2: L2Advertisement = serde_yaml::from_value(documents[1].clone()).unwrap();
        assert_eq!(l2.metadata.name.as_deref(), Some("l"));
    }
}
