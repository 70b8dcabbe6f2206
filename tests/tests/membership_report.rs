//! A speaker missing from the membership is reported: the janitor puts an Event on the Node, `ferrolb status`
//! lists it as a problem, and both clear when the speaker is back. Real speakers in the lab, real SWIM.

use std::time::Duration;

use ferrolb_e2e::{DEMO_POOL_ON_EVERY_NODE, Lab, wait_for};

/// The grace before a missing speaker is reported is 10 s; the rest is slack for a loaded host.
const REPORTED: Duration = Duration::from_secs(60);
const SOON: Duration = Duration::from_secs(30);

/// `reason reportingInstance` of every events.k8s.io Event on Node `node`, one per line.
fn node_events(lab: &Lab, node: &str) -> anyhow::Result<String> {
    lab.kubectl(&[
        "get",
        "events.events.k8s.io",
        "-n",
        "default",
        "-o",
        &format!(
            "jsonpath={{range .items[?(@.regarding.name==\"{node}\")]}}{{.reason}} {{.reportingInstance}}{{\"\\n\"}}{{end}}"
        ),
    ])
}

#[tokio::test]
async fn a_stopped_speaker_is_listed_by_status_until_it_rejoins() -> anyhow::Result<()> {
    let lab = Lab::start(3, &[]).await?;
    lab.apply_yaml(DEMO_POOL_ON_EVERY_NODE)?;
    wait_for("all three speakers in the membership", SOON, || async {
        Ok((lab.speaker_metric("node-1", "ferrolb_speaker_membership_size")? == 3.0).then_some(()))
    })
    .await?;
    let text = lab.ferrolb_status()?;
    assert!(text.contains("No problems found."), "{text}");

    lab.lab(&["stop-speaker", "node-3"])?;
    let line = wait_for("ferrolb status listing node-3 as missing", REPORTED, || async {
        Ok(lab.ferrolb_status()?.lines().find(|l| l.starts_with("- node-3: ")).map(str::to_owned))
    })
    .await?;
    // node-1 is the janitor (first live member by name).
    assert!(
        line.starts_with(
            "- node-3: speaker not in the membership seen by node-1 (2 of 3 expected speakers present): \
             not running, UDP 7947 blocked, or another membership key (reported at "
        ),
        "{line}"
    );
    // One Event per change, from the janitor only, where `kubectl describe node` finds it.
    let events = node_events(&lab, "node-3")?;
    let warnings: Vec<&str> = events.lines().filter(|l| l.starts_with("SpeakerNotInMembership ")).collect();
    assert_eq!(warnings, ["SpeakerNotInMembership ferrolb-speaker-node-1"], "{events}");
    let described = lab.kubectl(&["describe", "node", "node-3"])?;
    assert!(described.contains("SpeakerNotInMembership"), "{described}");

    lab.lab(&["start-speaker", "node-3"])?;
    let text = wait_for("ferrolb status without node-3", SOON, || async {
        let text = lab.ferrolb_status()?;
        Ok((!text.contains("- node-3: ")).then_some(text))
    })
    .await?;
    assert!(text.contains("No problems found."), "{text}");
    let events = node_events(&lab, "node-3")?;
    assert!(events.contains("SpeakerJoinedMembership ferrolb-speaker-node-1"), "{events}");
    Ok(())
}
