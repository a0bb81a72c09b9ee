//! Shared helpers: where the test data lives, the stock `age` tool, and a small organisation.

use std::path::PathBuf;
use std::process::Command;

use hearth_crypto::{
    DeviceKeys, EpochKey, KdfParams, LinkAction, OrgChain, Sha256Digest, TrustedState,
};

/// The crate's test data (`test_data/`, with its README).
pub fn test_data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_data")
}

/// The stock `age` tool, if installed. Under `HEARTH_REQUIRE_PEERS=1` its absence fails the test.
pub fn age_tool() -> Option<PathBuf> {
    let found = Command::new("age")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("age"));
    if found.is_none() {
        if std::env::var("HEARTH_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!(
                "the stock `age` tool is required (HEARTH_REQUIRE_PEERS=1): run scripts/install-age.sh"
            );
        }
        eprintln!("skipping: the stock `age` tool is not installed (scripts/install-age.sh)");
    }
    found
}

pub const NOW: i64 = 1_780_000_000;

pub fn fast() -> KdfParams {
    KdfParams::insecure_fast_for_tests()
}

/// An organisation: admin `ada` (founder), member `bob`, agents `g1` (restricted to pool "farm",
/// printer "mk4") and `g2` (restricted to pool "farm").
pub struct Org {
    pub chain: OrgChain,
    pub pinned: Sha256Digest,
    pub epoch: EpochKey,
    pub ada: DeviceKeys,
    pub bob: DeviceKeys,
    pub g1: DeviceKeys,
    pub g2: DeviceKeys,
}

impl Org {
    pub fn new() -> Org {
        let ada = DeviceKeys::generate();
        let bob = DeviceKeys::generate();
        let g1 = DeviceKeys::generate();
        let g2 = DeviceKeys::generate();
        let (mut chain, epoch) = OrgChain::create(&ada, "ada", "Acme", NOW);
        chain
            .append(
                &ada,
                LinkAction::AddDevice {
                    user: "bob".into(),
                    device: bob.public(),
                    admin: false,
                },
                NOW,
            )
            .unwrap();
        for (g, name) in [(&g1, "g1"), (&g2, "g2")] {
            chain
                .append(
                    &ada,
                    LinkAction::AddAgent {
                        name: name.into(),
                        pool: Some("farm".into()),
                        agent: g.public(),
                    },
                    NOW,
                )
                .unwrap();
        }
        let pinned = chain.genesis_hash();
        Org {
            chain,
            pinned,
            epoch,
            ada,
            bob,
            g1,
            g2,
        }
    }

    pub fn trusted(&self) -> TrustedState {
        self.chain.verify(&self.pinned).unwrap()
    }
}
