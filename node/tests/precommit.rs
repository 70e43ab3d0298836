//! The precommit bytes a receipt verifier rebuilds (`cachet_chain::receipt::precommit_bytes`)
//! are exactly what the node's validators sign.

use cachet_chain::crypto::SecretKey;
use cachet_chain::hash::Hash32;
use cachet_chain::ids::Height as ChainHeight;
use cachet_chain::receipt::precommit_bytes;
use cachet_node::context::{Address, BlockId, CachetContext, Height};
use malachite_app::types::core::{Context as _, NilOrVal, Round};

#[test]
fn receipt_precommit_bytes_match_the_nodes_votes() {
    for (h, r) in [(1u64, 0u32), (77, 3), (u64::MAX, u32::MAX)] {
        let key = SecretKey::dev("validator").public();
        let block = Hash32([0xab; 32]);
        let vote = CachetContext.new_precommit(
            Height(h),
            Round::new(r),
            NilOrVal::Val(BlockId(block)),
            Address(key),
        );
        assert_eq!(
            vote.sign_bytes(),
            precommit_bytes(ChainHeight(h), r, &block, &key)
        );
    }
}
