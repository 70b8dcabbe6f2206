//! Every CRD ferrolb defines, in the order they are printed and installed.

use kube::CustomResourceExt;

use crate::k8s::CustomResourceDefinition;
use crate::{
    AddressConflict, BFDProfile, BGPAdvertisement, BGPPeer, BGPSession, IPAddressPool, L2Advertisement, L2Announcement,
};

/// The CRDs of ferrolb, with their file stems under `crds/` (`ferrolb.io_<plural>`).
pub fn all_crds() -> Vec<(String, CustomResourceDefinition)> {
    [
        IPAddressPool::crd(),
        L2Advertisement::crd(),
        L2Announcement::crd(),
        AddressConflict::crd(),
        BGPPeer::crd(),
        BGPAdvertisement::crd(),
        BGPSession::crd(),
        BFDProfile::crd(),
    ]
    .into_iter()
    .map(|crd| (format!("ferrolb.io_{}", crd.spec.names.plural), crd))
    .collect()
}
