//! What an outcall costs, as the IC prices it (`rs/https_outcalls/pricing`):
//! the legacy fee (pricing version 1, all up front from the largest
//! response allowed) and pay-as-you-go (version 2, always for flexible
//! outcalls): a base fee up front; what each node spends (download, round
//! trip, transform, and in the gossiping modes — non-replicated and
//! flexible — sending its transformed response to every node); and the
//! consensus fee of putting the delivered response(s) into a block. `n` is
//! the calling subnet's node count; unlike other fees these formulas use
//! it directly rather than scaling a 13-node figure.

use super::Replication;

/// The legacy fee: `(3M + 60k·n + 400·request + 800·max_response)·n`.
pub fn legacy_fee(nodes: u32, request_bytes: u64, max_response_bytes: u64) -> u128 {
    let n = u128::from(nodes);
    (3_000_000 + 60_000 * n + 400 * u128::from(request_bytes) + 800 * u128::from(max_response_bytes)) * n
}

/// Pay-as-you-go's base fee of an `http_request`, charged up front.
pub fn base_fee(nodes: u32, request_bytes: u64, replicated: bool) -> u128 {
    base_fee_of(nodes, request_bytes, if replicated { Replication::FullyReplicated } else { Replication::NonReplicated })
}

/// Pay-as-you-go's base fee, charged up front: fully replicated
/// `(1M + 50·req + 140k·n + 800·n²)·n`; flexible
/// `(1M + 50·req + 90k·n + 2k·n·min + 100k·min)·n`, a non-replicated
/// outcall priced as a flexible one with `min = 1`.
pub fn base_fee_of(nodes: u32, request_bytes: u64, replication: Replication) -> u128 {
    let n = u128::from(nodes);
    let req = u128::from(request_bytes);
    let gossiping = |min: u32| {
        let min = u128::from(min);
        (1_000_000 + 50 * req + 90_000 * n + 2_000 * n * min + 100_000 * min) * n
    };
    match replication {
        Replication::FullyReplicated => (1_000_000 + 50 * req + 140_000 * n + 800 * n * n) * n,
        Replication::NonReplicated => gossiping(1),
        Replication::Flexible { min_responses, .. } => gossiping(min_responses),
    }
}

/// What one node uses of an outcall under pay-as-you-go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub roundtrip_ms: u64,
    pub raw_response_bytes: u64,
    pub transformed_response_bytes: u64,
    pub transform_instructions: u64,
}

/// Whether the nodes send their own transformed responses to every node
/// (non-replicated and flexible outcalls), which they pay for.
fn gossips(replication: Replication) -> bool {
    !matches!(replication, Replication::FullyReplicated)
}

/// What one node spends: `50·downloaded + 300·ms + instructions/13`, plus
/// `50·transformed·n` when it gossips.
pub fn node_spend(nodes: u32, replication: Replication, usage: Usage) -> u128 {
    let gossip = if gossips(replication) { 50 * u128::from(usage.transformed_response_bytes) * u128::from(nodes) } else { 0 };
    50 * u128::from(usage.raw_response_bytes) + 300 * u128::from(usage.roundtrip_ms) + u128::from(usage.transform_instructions) / 13 + gossip
}

/// Putting `bytes` of responses into a block: `n·(10·n + 600)` per byte.
pub fn consensus_fee(nodes: u32, bytes: u128) -> u128 {
    let n = u128::from(nodes);
    n * (10 * n + 600) * bytes
}

/// What each response of a flexible outcall adds to its size in a block.
pub const FLEXIBLE_RESPONSE_OVERHEAD: u128 = 181;

/// The surcharge for each flexible response delivered beyond `min_responses`
/// (the base fee paid for those): `(2k·n + 100k)·n` each.
pub fn flexible_extra_response_fee(nodes: u32, extra: u32) -> u128 {
    let n = u128::from(nodes);
    (2_000 * n + 100_000) * n * u128::from(extra)
}

/// The consensus fee of delivering flexible responses of `sizes` bytes
/// when `min_responses` were asked for.
pub fn flexible_delivery_fee(nodes: u32, sizes: &[u64], min_responses: u32) -> u128 {
    let bytes: u128 = sizes.iter().map(|s| FLEXIBLE_RESPONSE_OVERHEAD + u128::from(*s)).sum();
    let extra = u32::try_from(sizes.len()).unwrap_or(u32::MAX).saturating_sub(min_responses);
    consensus_fee(nodes, bytes) + flexible_extra_response_fee(nodes, extra)
}

/// What an `http_request` under pay-as-you-go is charged beyond its base
/// fee, given what each responding node used: every responding node's
/// spend plus the consensus fee of the delivered response.
pub fn usage_fee(nodes: u32, replicated: bool, usage: Usage) -> u128 {
    let replication = if replicated { Replication::FullyReplicated } else { Replication::NonReplicated };
    u128::from(replication.committee(nodes)) * node_spend(nodes, replication, usage) + consensus_fee(nodes, u128::from(usage.transformed_response_bytes))
}

/// The least size a delivered response is priced at when reserving: a
/// reject of the largest message may be delivered in its place.
const RESERVED_RESPONSE_BYTES: u64 = super::MAX_REJECT_MESSAGE as u64;

/// How many equal responses a fully replicated outcall needs: `n − f`.
fn threshold(nodes: u32) -> u128 {
    u128::from(nodes - nodes.saturating_sub(1) / 3).max(1)
}

/// The consensus fee the attached cycles must reserve for delivering the
/// response(s), each `transformed` bytes (at least a full reject): a fully
/// replicated one scaled by `n / threshold` (only `threshold` nodes pay
/// it), a flexible one for `total_requests` responses (each node's share).
fn reserved_consensus_fee(nodes: u32, replication: Replication, transformed: u64) -> u128 {
    let bytes = u128::from(transformed.max(RESERVED_RESPONSE_BYTES));
    match replication {
        Replication::NonReplicated => consensus_fee(nodes, bytes),
        Replication::FullyReplicated => consensus_fee(nodes, bytes).div_ceil(threshold(nodes)) * u128::from(nodes),
        Replication::Flexible { max_responses: 0, .. } => 0,
        Replication::Flexible { total_requests, min_responses, .. } => {
            consensus_fee(nodes, u128::from(total_requests) * (FLEXIBLE_RESPONSE_OVERHEAD + bytes))
                + flexible_extra_response_fee(nodes, total_requests.saturating_sub(min_responses))
        }
    }
}

/// What to attach, beyond the base fee, for an outcall whose every node
/// uses `usage`: each node's spend (its gossip priced for at least a full
/// reject) and its share of the reserved consensus fee, for every node of
/// the committee.
fn reserved_usage_fee(nodes: u32, replication: Replication, usage: Usage) -> u128 {
    let replicas = u128::from(replication.committee(nodes).max(1));
    let gossiped = Usage { transformed_response_bytes: usage.transformed_response_bytes.max(RESERVED_RESPONSE_BYTES), ..usage };
    let per_replica = node_spend(nodes, replication, gossiped);
    let consensus = reserved_consensus_fee(nodes, replication, usage.transformed_response_bytes);
    (per_replica + consensus.div_ceil(replicas)) * replicas
}

/// `ic0.cost_http_request_v2`'s argument.
#[derive(candid::CandidType, serde::Deserialize, Debug)]
pub struct CostV2Args {
    pub request_bytes: u64,
    pub http_roundtrip_time_ms: u64,
    pub raw_response_bytes: u64,
    pub transformed_response_bytes: u64,
    pub transform_instructions: u64,
    pub outcall_type: Option<OutcallType>,
}

#[derive(candid::CandidType, serde::Deserialize, Debug)]
pub enum OutcallType {
    #[serde(rename = "fully_replicated")]
    FullyReplicated(candid::Reserved),
    #[serde(rename = "non_replicated")]
    NonReplicated(candid::Reserved),
    #[serde(rename = "flexible")]
    Flexible(Option<ReplicationCounts>),
}

/// A flexible outcall's committee and how many responses it delivers.
#[derive(candid::CandidType, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicationCounts {
    pub min_responses: u32,
    pub max_responses: u32,
    pub total_requests: u32,
}

impl ReplicationCounts {
    /// What `flexible_http_request` uses when the caller gives no counts:
    /// every node asked, `floor(2n/3) + 1` to `n` responses delivered.
    pub fn defaults(nodes: u32) -> Self {
        Self { total_requests: nodes, min_responses: 2 * nodes / 3 + 1, max_responses: nodes }
    }

    pub fn replication(self) -> Replication {
        Replication::Flexible { total_requests: self.total_requests, min_responses: self.min_responses, max_responses: self.max_responses }
    }
}

/// `ic0.cost_http_request_v2`: what to attach for an outcall whose every
/// node uses exactly the resources given (the base fee, then the nodes'
/// spends and the consensus fee the payment must reserve). `None` when the
/// argument is not the record the system API defines.
pub fn cost_v2(nodes: u32, arg: &[u8]) -> Option<u128> {
    let args: CostV2Args = candid::decode_one(arg).ok()?;
    let replication = match args.outcall_type {
        None | Some(OutcallType::FullyReplicated(_)) => Replication::FullyReplicated,
        Some(OutcallType::NonReplicated(_)) => Replication::NonReplicated,
        Some(OutcallType::Flexible(counts)) => counts.unwrap_or_else(|| ReplicationCounts::defaults(nodes)).replication(),
    };
    let usage = Usage {
        roundtrip_ms: args.http_roundtrip_time_ms,
        raw_response_bytes: args.raw_response_bytes,
        transformed_response_bytes: args.transformed_response_bytes,
        transform_instructions: args.transform_instructions,
    };
    Some(base_fee_of(nodes, args.request_bytes, replication) + reserved_usage_fee(nodes, replication, usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_on_13_nodes_matches_the_published_table() {
        // 49_140_000 base, 5_200 per request byte, 10_400 per response byte.
        assert_eq!(legacy_fee(13, 0, 0), 49_140_000);
        assert_eq!(legacy_fee(13, 1, 0) - legacy_fee(13, 0, 0), 5_200);
        assert_eq!(legacy_fee(13, 0, 1) - legacy_fee(13, 0, 0), 10_400);
        // 34 nodes: 171_360_000, 13_600 and 27_200.
        assert_eq!(legacy_fee(34, 0, 0), 171_360_000);
        assert_eq!(legacy_fee(34, 1, 1) - legacy_fee(34, 0, 0), 13_600 + 27_200);
    }

    #[test]
    fn base_fees_by_hand() {
        // Fully replicated, 13 nodes, 100 request bytes:
        // (1_000_000 + 5_000 + 1_820_000 + 135_200) · 13.
        assert_eq!(base_fee(13, 100, true), 38_482_600);
        // Flexible with min 9: (1_000_000 + 5_000 + 1_170_000 + 234_000 + 900_000) · 13.
        let flexible = Replication::Flexible { total_requests: 13, min_responses: 9, max_responses: 13 };
        assert_eq!(base_fee_of(13, 100, flexible), 43_017_000);
        // Non-replicated is flexible with min 1: (1_005_000 + 1_170_000 + 26_000 + 100_000) · 13.
        assert_eq!(base_fee(13, 100, false), 29_913_000);
        let one = Replication::Flexible { total_requests: 4, min_responses: 1, max_responses: 2 };
        assert_eq!(base_fee_of(13, 100, one), base_fee(13, 100, false));
    }

    #[test]
    fn only_gossiping_nodes_pay_for_their_transformed_response() {
        let usage = Usage { roundtrip_ms: 10, raw_response_bytes: 1_000, transformed_response_bytes: 500, transform_instructions: 1_300 };
        // 50 · 1000 + 300 · 10 + 1300 / 13.
        assert_eq!(node_spend(13, Replication::FullyReplicated, usage), 53_100);
        // Plus 50 · 500 · 13.
        assert_eq!(node_spend(13, Replication::NonReplicated, usage), 53_100 + 325_000);
    }

    #[test]
    fn flexible_delivery_counts_the_overhead_and_the_extra_responses() {
        // K = 3 of min 1 on 13 nodes: 9_490 · ((181+10) + (181+20) + (181+30))
        // + 13 · (2_000 · 13 · 2 + 100_000 · 2).
        assert_eq!(flexible_delivery_fee(13, &[10, 20, 30], 1), 5_722_470 + 3_276_000);
        assert_eq!(flexible_delivery_fee(13, &[10, 20], 2), 3_720_080);
    }

    #[test]
    fn cost_v2_reserves_the_consensus_fee() {
        let arg = |outcall_type| {
            candid::encode_one(CostV2Args {
                request_bytes: 100,
                http_roundtrip_time_ms: 10,
                raw_response_bytes: 1000,
                transformed_response_bytes: 500,
                transform_instructions: 1300,
                outcall_type,
            })
            .expect("encodes")
        };
        // Fully replicated: base 38_482_600; each of 13 nodes 53_100 plus its
        // share of ceil(9_490 · 1024 / 9) · 13 = 14_036_776.
        assert_eq!(cost_v2(13, &arg(None)), Some(38_482_600 + (53_100 + 1_079_752) * 13));
        // Flexible 2 of 3 on 13 nodes: base (1_005_000 + 1_170_000 + 52_000 + 200_000) · 13;
        // each of 3 nodes 53_100 + 50 · 1024 · 13, and its share of
        // 9_490 · 3 · (181 + 1024) + 13 · (26_000 + 100_000).
        let counts = ReplicationCounts { min_responses: 2, max_responses: 3, total_requests: 3 };
        let consensus: u128 = 9_490 * 3 * 1_205 + 13 * 126_000;
        let expected = 2_427_000 * 13 + (53_100 + 665_600 + consensus.div_ceil(3)) * 3;
        assert_eq!(cost_v2(13, &arg(Some(OutcallType::Flexible(Some(counts))))), Some(expected));
        // No counts: the defaults, 9 to 13 of 13.
        let defaults = ReplicationCounts { min_responses: 9, max_responses: 13, total_requests: 13 };
        assert_eq!(cost_v2(13, &arg(Some(OutcallType::Flexible(None)))), cost_v2(13, &arg(Some(OutcallType::Flexible(Some(defaults))))));
        assert_eq!(cost_v2(13, b"nonsense"), None);
    }
}
