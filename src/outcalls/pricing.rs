//! What an outcall costs, as the IC prices it: the legacy fee (pricing
//! version 1, all up front from the largest response allowed) and
//! pay-as-you-go (version 2: a base fee up front, then what the nodes
//! used). `n` is the calling subnet's node count; unlike other fees these
//! formulas use it directly rather than scaling a 13-node figure.

/// The legacy fee: `(3M + 60k·n + 400·request + 800·max_response)·n`.
pub fn legacy_fee(nodes: u32, request_bytes: u64, max_response_bytes: u64) -> u128 {
    let n = u128::from(nodes);
    (3_000_000 + 60_000 * n + 400 * u128::from(request_bytes) + 800 * u128::from(max_response_bytes)) * n
}

/// Pay-as-you-go's base fee, charged up front.
pub fn base_fee(nodes: u32, request_bytes: u64, replicated: bool) -> u128 {
    let n = u128::from(nodes);
    let req = u128::from(request_bytes);
    if replicated {
        (1_000_000 + 50 * req + 140_000 * n + 800 * n * n) * n
    } else {
        // A non-replicated outcall is priced as a flexible one with one response.
        let min = 1;
        (1_000_000 + 50 * req + 90_000 * n + 2_000 * n * min + 100_000 * min) * n
    }
}

/// What the nodes use under pay-as-you-go, beyond the base fee.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub roundtrip_ms: u64,
    pub raw_response_bytes: u64,
    pub transformed_response_bytes: u64,
    pub transform_instructions: u64,
}

/// The usage charge: every responding node's download, time and transform
/// (and, replicated, gossiping its transformed response to the others),
/// plus delivering the response through consensus.
pub fn usage_fee(nodes: u32, replicated: bool, usage: Usage) -> u128 {
    let n = u128::from(nodes);
    let responders = if replicated { n } else { 1 };
    let transformed = u128::from(usage.transformed_response_bytes);
    let gossip = if replicated { 50 * transformed * n } else { 0 };
    let per_node = 50 * u128::from(usage.raw_response_bytes)
        + 300 * u128::from(usage.roundtrip_ms)
        + u128::from(usage.transform_instructions) / 13
        + gossip;
    responders * per_node + n * (10 * n + 600) * transformed
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
    Flexible(Option<candid::Reserved>),
}

/// `ic0.cost_http_request_v2`: what to attach for an outcall using exactly
/// the resources given (base fee plus usage). `None` when the argument is
/// not the record the system API defines.
pub fn cost_v2(nodes: u32, arg: &[u8]) -> Option<u128> {
    let args: CostV2Args = candid::decode_one(arg).ok()?;
    let replicated = !matches!(args.outcall_type, Some(OutcallType::NonReplicated(_)) | Some(OutcallType::Flexible(_)));
    let usage = Usage {
        roundtrip_ms: args.http_roundtrip_time_ms,
        raw_response_bytes: args.raw_response_bytes,
        transformed_response_bytes: args.transformed_response_bytes,
        transform_instructions: args.transform_instructions,
    };
    Some(base_fee(nodes, args.request_bytes, replicated) + usage_fee(nodes, replicated, usage))
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
    fn cost_v2_is_base_plus_usage() {
        let arg = candid::encode_one(CostV2Args {
            request_bytes: 100,
            http_roundtrip_time_ms: 10,
            raw_response_bytes: 1000,
            transformed_response_bytes: 500,
            transform_instructions: 1300,
            outcall_type: None,
        })
        .expect("encodes");
        let usage = Usage { roundtrip_ms: 10, raw_response_bytes: 1000, transformed_response_bytes: 500, transform_instructions: 1300 };
        assert_eq!(cost_v2(13, &arg), Some(base_fee(13, 100, true) + usage_fee(13, true, usage)));
        assert_eq!(cost_v2(13, b"nonsense"), None);
    }
}
