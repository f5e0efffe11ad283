//! The JSON strings below are written from the client's types
//! (`pocket-ic` 13.0.0 `common/rest.rs`, `lib.rs`), not from these
//! serializers.

use super::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// `rwlgt-iiaaa-aaaaa-aaaaa-cai`: bytes 0,0,0,0,0,0,0,0,1,1.
const CANISTER_B64: &str = "AAAAAAAAAAABAQ==";
const CANISTER_TEXT: &str = "rwlgt-iiaaa-aaaaa-aaaaa-cai";
/// A 29-byte subnet id (every byte 42).
const SUBNET_TEXT: &str = "3dx3t-srkfi-vcukr-kfivc-ukrkf-ivcuk-rkfiv-cukrk-fivcu-krkfi-vcu";
const SUBNET_B64: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// Parses `json` as `T`, serializes it again and compares as JSON
/// values (key order and whitespace aside).
fn round_trip<T: Serialize + DeserializeOwned>(json: &str) -> T {
    let value: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("parse {json}: {e}"));
    let back = serde_json::to_value(&value).expect("serialize");
    let want: Value = serde_json::from_str(json).expect("test JSON");
    assert_eq!(back, want, "round trip of {json}");
    value
}

#[test]
fn submit_reply_round_trips() {
    let json = format!(r#"{{"Ok":{{"effective_principal":{{"CanisterId":"{CANISTER_B64}"}},"message_id":"AQID"}}}}"#);
    let r: Result<RawMessageId, RejectResponse> = round_trip(&json);
    let id = r.expect("Ok");
    assert_eq!(id.message_id, vec![1, 2, 3]);
    assert_eq!(id.effective_principal.principal().unwrap().unwrap().to_text(), CANISTER_TEXT);
    round_trip::<RawEffectivePrincipal>(r#""None""#);
    round_trip::<RawEffectivePrincipal>(&format!(r#"{{"SubnetId":"{SUBNET_B64}"}}"#));
}

#[test]
fn canister_call_reads_the_sender_info_of_newer_clients() {
    let json = format!(
        r#"{{"sender":"BA==","canister_id":"{CANISTER_B64}","effective_principal":{{"CanisterId":"{CANISTER_B64}"}},"method":"greet","payload":"RElETAAA"}}"#
    );
    let call: RawCanisterCall = round_trip(&json);
    assert_eq!(call.sender_principal().unwrap(), Principal::anonymous());
    assert_eq!(call.canister_principal().unwrap().to_text(), CANISTER_TEXT);
    assert_eq!(call.payload, b"DIDL\0\0");
    assert_eq!(call.caller_info(), None, "13's calls carry no sender info");
    let newer = format!(
        r#"{{"sender":"BA==","canister_id":"{CANISTER_B64}","effective_principal":"None","method":"m","payload":"","sender_info":{{"info":"AQID","signer":"{CANISTER_B64}"}},"later":1}}"#
    );
    let call: RawCanisterCall = round_trip(&newer.replace(r#","later":1"#, ""));
    assert_eq!(call.effective_principal, RawEffectivePrincipal::None);
    assert!(call.payload.is_empty());
    let info = call.caller_info().expect("16.1's sender_info");
    assert_eq!(info.data, vec![1, 2, 3]);
    assert_eq!(Principal::from_slice(&info.signer).to_text(), CANISTER_TEXT);
    let call: RawCanisterCall = serde_json::from_str(&newer).expect("unknown fields are ignored");
    assert!(call.sender_info.is_some());
}

#[test]
fn bad_base64_and_oversized_principals_are_errors() {
    assert!(serde_json::from_str::<RawCanisterId>(r#"{"canister_id":"not base64!"}"#).is_err());
    let long = b64::encode(&[1u8; MAX_PRINCIPAL_BYTES + 1]);
    let id: RawCanisterId = serde_json::from_str(&format!(r#"{{"canister_id":"{long}"}}"#)).unwrap();
    assert!(id.principal().is_err());
    // Unpadded input is accepted; output is padded.
    let id: RawCanisterId = serde_json::from_str(r#"{"canister_id":"AAAAAAAAAAABAQ"}"#).unwrap();
    assert_eq!(serde_json::to_string(&id).unwrap(), format!(r#"{{"canister_id":"{CANISTER_B64}"}}"#));
}

#[test]
fn canister_results_round_trip() {
    let ok: RawCanisterResult = round_trip(r#"{"Ok":"RElETAAA"}"#);
    assert_eq!(ok, RawCanisterResult::Ok(b"DIDL\0\0".to_vec()));
    let err: RawCanisterResult = round_trip(
        r#"{"Err":{"reject_code":"CanisterError","reject_message":"Error from Canister rwlgt-iiaaa-aaaaa-aaaaa-cai: Canister called `ic0.trap` with message: 'boom'","error_code":"CanisterCalledTrap","certified":true}}"#,
    );
    let RawCanisterResult::Err(r) = err else { panic!("Err") };
    assert_eq!(r.error_code, ErrorCode::CanisterCalledTrap);
    assert_eq!(r.error_code.code(), 503);
    // ingress_status: null while unknown.
    assert_eq!(round_trip::<Option<RawCanisterResult>>("null"), None);
    round_trip::<Option<RawCanisterResult>>(r#"{"Ok":""}"#);
}

#[test]
fn topology_round_trips() {
    let seed: Vec<String> = (0..32).map(|i| i.to_string()).collect();
    let json = format!(
        r#"{{"subnet_configs":{{"{SUBNET_TEXT}":{{"subnet_kind":"Application","subnet_admins":null,"cost_schedule":"Normal","subnet_seed":[{}],"instruction_config":"Production","canister_ranges":[{{"start":{{"canister_id":"//////+QAAABAQ=="}},"end":{{"canister_id":"//////+f//8BAQ=="}}}}]}}}},"default_effective_canister_id":{{"canister_id":"//////+QAAABAQ=="}}}}"#,
        seed.join(",")
    );
    let topo: Topology = round_trip(&json);
    let subnet = Principal::from_text(SUBNET_TEXT).unwrap();
    let config = &topo.subnet_configs[&subnet];
    assert_eq!(config.subnet_kind, SubnetKind::Application);
    assert_eq!(config.subnet_seed[31], 31);
    assert_eq!(config.canister_ranges[0].start.principal().unwrap().to_text(), "uqqxf-5h777-77774-qaaaa-cai");
    assert_eq!(config.canister_ranges[0].end.principal().unwrap().to_text(), "i3wno-op777-77774-7777q-cai");
}

#[test]
fn create_instance_response_round_trips() {
    let seed = ["0"; 32].join(",");
    let json = format!(
        r#"{{"Created":{{"instance_id":0,"topology":{{"subnet_configs":{{"{SUBNET_TEXT}":{{"subnet_kind":"NNS","subnet_admins":[{{"principal_id":"BA=="}}],"cost_schedule":"Free","subnet_seed":[{seed}],"instruction_config":"Benchmarking","canister_ranges":[]}}}},"default_effective_canister_id":{{"canister_id":"{CANISTER_B64}"}}}},"http_gateway_info":null}}}}"#
    );
    let CreateInstanceResponse::Created { instance_id, topology, http_gateway_info } = round_trip(&json) else {
        panic!("Created")
    };
    assert_eq!(instance_id, 0);
    assert!(http_gateway_info.is_none());
    assert_eq!(topology.subnet_configs.len(), 1);
    round_trip::<CreateInstanceResponse>(r#"{"Error":{"message":"no"}}"#);
}

#[test]
fn instance_config_as_the_client_sends_it() {
    // `PocketIc::new()`: one application subnet, the ICP features object
    // with every feature null, and null for every other option.
    let json = r#"{"subnet_config_set":{"nns":null,"sns":null,"ii":null,"fiduciary":null,"bitcoin":null,"system":[],"application":[{"state_config":"New","instruction_config":"Production","subnet_admins":null,"cost_schedule":"Normal"}],"cloud_engine":[],"verified_application":[]},"http_gateway_config":null,"state_dir":null,"icp_config":{"beta_features":null,"function_name_length_limits":null,"canister_execution_rate_limiting":null},"log_level":null,"bitcoind_addr":null,"dogecoind_addr":null,"icp_features":{"registry":null,"cycles_minting":null,"icp_token":null,"cycles_token":null,"nns_governance":null,"sns":null,"ii":null,"nns_ui":null,"bitcoin":null,"dogecoin":null,"canister_migration":null},"incomplete_state":null,"initial_time":{"Timestamp":{"nanos_since_epoch":1620328630000000000}},"mainnet_nns_subnet_id":null}"#;
    let config: InstanceConfig = round_trip(json);
    let subnets = config.subnet_config_set.subnets();
    assert_eq!(subnets.len(), 1);
    assert_eq!(subnets[0].0, SubnetKind::Application);
    assert_eq!(subnets[0].1, &SubnetSpec::default());
    assert!(config.icp_features_requested().is_empty());
    assert_eq!(config.initial_time, Some(InitialTime::Timestamp(RawTime { nanos_since_epoch: 1620328630000000000 })));

    // Older and newer shapes: fields missing, unknown fields present.
    let sparse = r#"{"subnet_config_set":{"nns":{"state_config":{"FromPath":"/tmp/s"},"instruction_config":"Benchmarking","subnet_admins":null},"application":[{"state_config":"New","instruction_config":"Production","subnet_admins":null}]},"icp_features":{"ii":"DefaultConfig"},"initial_time":{"AutoProgress":{"artificial_delay_ms":null}},"future_field":1}"#;
    let config: InstanceConfig = serde_json::from_str(sparse).expect("sparse config");
    let subnets = config.subnet_config_set.subnets();
    assert_eq!(subnets.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [SubnetKind::NNS, SubnetKind::Application]);
    assert_eq!(subnets[0].1.state_config, SubnetStateConfig::FromPath("/tmp/s".into()));
    assert_eq!(subnets[0].1.cost_schedule, CanisterCyclesCostSchedule::Normal);
    assert_eq!(config.icp_features_requested(), ["ii"]);
    assert_eq!(config.initial_time, Some(InitialTime::AutoProgress(AutoProgressConfig::default())));
}

/// Exact text round trip, for bodies whose numbers exceed what
/// `serde_json::Value` holds exactly (u128 above 2^64 becomes a float
/// there: serialize such bodies straight to text, never via `Value`).
fn round_trip_text<T: Serialize + DeserializeOwned>(json: &str) -> T {
    let value: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("parse {json}: {e}"));
    assert_eq!(serde_json::to_string(&value).expect("serialize"), json);
    value
}

#[test]
fn cycles_are_u128_numbers() {
    let big = u128::MAX;
    let add: RawAddCycles = round_trip_text(&format!(r#"{{"canister_id":"{CANISTER_B64}","amount":{big}}}"#));
    assert_eq!(add.amount, big);
    let cycles: RawCycles = round_trip_text(r#"{"cycles":340282366920938463463374607431768211455}"#);
    assert_eq!(cycles.cycles, big);
    let small: RawCycles = round_trip_text(r#"{"cycles":100000000000000}"#);
    assert_eq!(small.cycles, 100_000_000_000_000);
}

#[test]
fn small_bodies_round_trip() {
    round_trip::<RawTime>(r#"{"nanos_since_epoch":1620328630000000000}"#);
    round_trip::<AutoProgressConfig>(r#"{"artificial_delay_ms":10}"#);
    round_trip::<RawTickConfigs>(r#"{"blockmakers":null}"#);
    round_trip::<RawTickConfigs>(&format!(
        r#"{{"blockmakers":[{{"subnet":{{"subnet_id":"{SUBNET_B64}"}},"blockmaker":{{"node_id":"AQ=="}},"failed_blockmakers":[{{"node_id":"Ag=="}}]}}]}}"#
    ));
    round_trip::<RawPrincipalId>(r#"{"principal_id":"BA=="}"#);
    round_trip::<Vec<RawPrincipalId>>(r#"[{"principal_id":"BA=="},{"principal_id":"AAAAAAAAAAABAQ=="}]"#);
    round_trip::<RawSubnetId>(&format!(r#"{{"subnet_id":"{SUBNET_B64}"}}"#));
    round_trip::<RawSetStableMemory>(&format!(r#"{{"canister_id":"{CANISTER_B64}","blob_id":"q80="}}"#));
    round_trip::<RawStableMemory>(r#"{"blob":"AAAA"}"#);
    round_trip::<BlobId>(r#""q80=""#);
    round_trip::<RawIngressStatusArgs>(
        r#"{"raw_message_id":{"effective_principal":"None","message_id":"AQID"},"raw_caller":{"principal_id":"BA=="}}"#,
    );
    round_trip::<RawVerifyCanisterSigArg>(r#"{"msg":"AQ==","sig":"Ag==","pubkey":"Aw==","root_pubkey":"BA=="}"#);
    round_trip::<ApiError>(r#"{"message":"Instance not found"}"#);
    round_trip::<StartedOrBusyResponse>(r#"{"state_label":"a","op_id":"b"}"#);
    // `read/pub_key` replies a plain byte array, not base64.
    assert_eq!(serde_json::to_string(&vec![1u8, 2]).unwrap(), "[1,2]");
}

#[test]
fn http_outcall_bodies_round_trip() {
    round_trip::<Vec<RawCanisterHttpRequest>>(&format!(
        r#"[{{"subnet_id":{{"subnet_id":"{SUBNET_B64}"}},"request_id":0,"http_method":"GET","url":"https://example.com/","headers":[{{"name":"Accept","value":"*/*"}}],"body":"","max_response_bytes":null,"replication":"FullyReplicated","pricing_version":"Legacy"}}]"#
    ));
    round_trip::<RawMockCanisterHttpResponse>(&format!(
        r#"{{"subnet_id":{{"subnet_id":"{SUBNET_B64}"}},"request_id":0,"response":{{"CanisterHttpReply":{{"status":200,"headers":[],"body":"aGk="}}}},"additional_responses":[{{"CanisterHttpReject":{{"reject_code":2,"message":"down"}}}}]}}"#
    ));
    // 16.x: a flexible outcall and its mock.
    round_trip::<Vec<RawCanisterHttpRequest>>(&format!(
        r#"[{{"subnet_id":{{"subnet_id":"{SUBNET_B64}"}},"request_id":3,"http_method":"PUT","url":"https://example.com/","headers":[],"body":"","max_response_bytes":4000,"replication":{{"Flexible":{{"total_requests":4,"min_responses":2,"max_responses":3}}}},"pricing_version":"PayAsYouGo"}}]"#
    ));
    round_trip::<RawMockFlexibleCanisterHttpResponse>(&format!(
        r#"{{"subnet_id":{{"subnet_id":"{SUBNET_B64}"}},"request_id":3,"responses":[{{"CanisterHttpReply":{{"status":200,"headers":[],"body":"aGk="}}}},{{"CanisterHttpReject":{{"reject_code":2,"message":"down"}}}}]}}"#
    ));
}

#[test]
fn snapshot_bodies_round_trip() {
    round_trip::<RawCanisterSnapshotDownload>(&format!(
        r#"{{"sender":{{"principal_id":"BA=="}},"canister_id":{{"canister_id":"{CANISTER_B64}"}},"snapshot_id":"AQ==","snapshot_dir":"/tmp/snap"}}"#
    ));
    round_trip::<RawCanisterSnapshotUpload>(&format!(
        r#"{{"sender":{{"principal_id":"BA=="}},"canister_id":{{"canister_id":"{CANISTER_B64}"}},"replace_snapshot":{{"snapshot_id":"AQ=="}},"snapshot_dir":"/tmp/snap"}}"#
    ));
}

/// The v13 client's `ErrorCode` variant names, copied by hand from
/// `pocket-ic` 13.0.0 `lib.rs` (independent of the enum above).
const V13_ERROR_CODE_NAMES: [&str; 60] = [
    "SubnetOversubscribed",
    "MaxNumberOfCanistersReached",
    "CanisterQueueFull",
    "IngressMessageTimeout",
    "CanisterQueueNotEmpty",
    "IngressHistoryFull",
    "CanisterIdAlreadyExists",
    "StopCanisterRequestTimeout",
    "CanisterOutOfCycles",
    "CertifiedStateUnavailable",
    "CanisterInstallCodeRateLimited",
    "CanisterHeapDeltaRateLimited",
    "CanisterNotFound",
    "CanisterSnapshotNotFound",
    "InsufficientMemoryAllocation",
    "InsufficientCyclesForCreateCanister",
    "SubnetNotFound",
    "CanisterNotHostedBySubnet",
    "CanisterRejectedMessage",
    "UnknownManagementMessage",
    "InvalidManagementPayload",
    "CanisterSnapshotImmutable",
    "InvalidSubnetAdmin",
    "CanisterTrapped",
    "CanisterCalledTrap",
    "CanisterContractViolation",
    "CanisterInvalidWasm",
    "CanisterDidNotReply",
    "CanisterOutOfMemory",
    "CanisterStopped",
    "CanisterStopping",
    "CanisterNotStopped",
    "CanisterStoppingCancelled",
    "CanisterInvalidController",
    "CanisterFunctionNotFound",
    "CanisterNonEmpty",
    "QueryCallGraphLoopDetected",
    "InsufficientCyclesInCall",
    "CanisterWasmEngineError",
    "CanisterInstructionLimitExceeded",
    "CanisterMemoryAccessLimitExceeded",
    "QueryCallGraphTooDeep",
    "QueryCallGraphTotalInstructionLimitExceeded",
    "CompositeQueryCalledInReplicatedMode",
    "QueryTimeLimitExceeded",
    "QueryCallGraphInternal",
    "InsufficientCyclesInComputeAllocation",
    "InsufficientCyclesInMemoryAllocation",
    "InsufficientCyclesInMemoryGrow",
    "ReservedCyclesLimitExceededInMemoryAllocation",
    "ReservedCyclesLimitExceededInMemoryGrow",
    "InsufficientCyclesInMessageMemoryGrow",
    "CanisterMethodNotFound",
    "CanisterWasmModuleNotFound",
    "CanisterAlreadyInstalled",
    "CanisterWasmMemoryLimitExceeded",
    "ReservedCyclesLimitIsTooLow",
    "CanisterInvalidControllerOrSubnetAdmin",
    "DeadlineExpired",
    "ResponseDropped",
];

/// Lists every variant of ww's `replica::ErrorCode` once; the `match`
/// stops compiling when a variant is added, so it cannot be missed here.
macro_rules! ours {
    ($($v:ident),* $(,)?) => {
        const OURS: &[replica::ErrorCode] = &[$(replica::ErrorCode::$v),*];
        #[allow(dead_code)]
        fn listed(code: replica::ErrorCode) {
            match code {
                $(replica::ErrorCode::$v)|* => {}
            }
        }
    };
}

ours![
    SubnetOversubscribed,
    MaxNumberOfCanistersReached,
    CanisterQueueFull,
    CanisterIdAlreadyExists,
    StopCanisterRequestTimeout,
    CanisterOutOfCycles,
    CanisterNotFound,
    CanisterSnapshotNotFound,
    CanisterTrapped,
    CanisterInvalidWasm,
    CanisterCalledTrap,
    CanisterContractViolation,
    CanisterDidNotReply,
    CanisterOutOfMemory,
    CanisterStopped,
    CanisterStopping,
    CanisterNotStopped,
    CanisterStoppingCancelled,
    CanisterInvalidController,
    InsufficientCyclesForCreateCanister,
    CanisterNotHostedBySubnet,
    CanisterRejectedMessage,
    InvalidManagementPayload,
    CanisterSnapshotImmutable,
    InsufficientCyclesInCall,
    CanisterInstructionLimitExceeded,
    CanisterMethodNotFound,
    CanisterWasmModuleNotFound,
    CanisterAlreadyInstalled,
    QueryCallGraphTooDeep,
    QueryCallGraphTotalInstructionLimitExceeded,
    CompositeQueryCalledInReplicatedMode,
    CanisterWasmMemoryLimitExceeded,
    DeadlineExpired,
];

#[test]
fn every_ww_error_code_is_a_v13_name() {
    for &ours in OURS {
        let name = format!("{ours:?}");
        assert!(V13_ERROR_CODE_NAMES.contains(&name.as_str()), "{name} is not in the v13 client's ErrorCode");
        let wire = ErrorCode::from(ours);
        assert_eq!(wire.name(), name);
        assert_eq!(wire.code(), ours as u32, "{name}: the IC number differs");
        assert_eq!(serde_json::to_string(&wire).unwrap(), format!("\"{name}\""));
    }
}

#[test]
fn wire_error_codes_are_the_v13_list() {
    let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(names, V13_ERROR_CODE_NAMES);
    for &code in ErrorCode::ALL {
        let json = format!("\"{}\"", code.name());
        assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        assert_eq!(ErrorCode::from_name(code.name()), Some(code));
    }
    for (name, n) in [("SysFatal", 1), ("SysTransient", 2), ("DestinationInvalid", 3), ("CanisterReject", 4), ("CanisterError", 5), ("SysUnknown", 6)] {
        let code: RejectCode = serde_json::from_str(&format!("\"{name}\"")).unwrap();
        assert_eq!(code as u32, n);
        let ours = replica::RejectCode::from_u32(n).unwrap();
        assert_eq!(RejectCode::from(ours), code);
    }
}

#[test]
fn system_rejects_keep_codes_and_lose_the_prefix() {
    let reject = replica::Reject::system(replica::ErrorCode::CanisterMethodNotFound, "Canister has no update method 'nope'");
    assert!(reject.message.starts_with("IC0536: "));
    let r = reject_to_response(&reject, true);
    let json = serde_json::to_value(&r).unwrap();
    let want: Value = serde_json::from_str(
        r#"{"reject_code":"CanisterError","reject_message":"Canister has no update method 'nope'","error_code":"CanisterMethodNotFound","certified":true}"#,
    )
    .unwrap();
    assert_eq!(json, want);
    let r = reject_response(replica::RejectCode::DestinationInvalid, Some(replica::ErrorCode::CanisterNotFound), "no prefix here", false);
    assert_eq!(r.reject_message, "no prefix here");
    assert_eq!(r.reject_code, RejectCode::DestinationInvalid);
    assert!(!r.certified);
    assert_eq!(strip_error_code_prefix("IC05: x"), "IC05: x");
    assert_eq!(strip_error_code_prefix("IC0503:x"), "IC0503:x");
    assert_eq!(strip_error_code_prefix("IC0503: "), "");
}

#[test]
fn canister_rejects_are_canister_rejected_message() {
    let r = reject_response(replica::RejectCode::CanisterReject, None, "IC0503: my own words", true);
    let json = serde_json::to_value(&r).unwrap();
    let want: Value = serde_json::from_str(
        r#"{"reject_code":"CanisterReject","reject_message":"IC0503: my own words","error_code":"CanisterRejectedMessage","certified":true}"#,
    )
    .unwrap();
    assert_eq!(json, want);
    let result = RawCanisterResult::from_replica(Err(r_to_reject("nope")), false);
    assert_eq!(
        serde_json::to_string(&result).unwrap(),
        r#"{"Err":{"reject_code":"CanisterReject","reject_message":"nope","error_code":"CanisterRejectedMessage","certified":false}}"#
    );
}

fn r_to_reject(message: &str) -> replica::Reject {
    replica::Reject { code: replica::RejectCode::CanisterReject, error_code: None, message: message.to_owned() }
}
