//! The role canisters (`guests/canisters/{app,minimal,scale,...}`) on the
//! replica, without booting a node: each is installed with the Canic init
//! record, reports it through `canic_env`/`canic_ready`, writes stable state,
//! is upgraded (same module, new version) and still has that state, with
//! `upgrades = 1` and the installed role, root and parent kept.

mod common;

use std::time::Duration;

use candid::{CandidType, Decode, Deserialize, Encode, Principal};
use serde_bytes::ByteBuf;
use ww::replica::install::prepare_module;
use ww::replica::{InstallMode, RejectCode, Replica, ReplicaConfig};

fn admin() -> Principal {
    Principal::self_authenticating(b"ww-test-admin")
}

/// Stand-ins for root and parent canisters (nothing calls them).
fn root() -> Principal {
    Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 0xF0, 1, 1])
}

fn parent() -> Principal {
    Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 0xF0, 2, 1])
}

/// `role-common`'s install and upgrade argument.
#[derive(CandidType, Deserialize, Clone, Debug)]
struct InitArgs {
    role: String,
    root: Principal,
    parent: Principal,
    version: String,
}

/// What `canic_env` returns.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
struct CanicEnv {
    role: String,
    root: Principal,
    parent: Principal,
    version: String,
    installed_at: u64,
    upgrades: u32,
}

fn replica() -> Replica {
    common::canister_replica(ReplicaConfig::default())
}

fn no_args() -> Vec<u8> {
    Encode!().unwrap()
}

/// One installed role canister.
struct Role<'r> {
    r: &'r Replica,
    name: &'static str,
    id: Principal,
}

impl<'r> Role<'r> {
    /// Installs role `name` (version 0.1.0, parent [`parent`]) and checks
    /// `canic_ready` and `canic_env`.
    async fn install(r: &'r Replica, name: &'static str) -> Self {
        Self::install_with_parent(r, name, parent()).await
    }

    async fn install_with_parent(r: &'r Replica, name: &'static str, parent: Principal) -> Self {
        let id = r.create_canister(vec![admin()]);
        let args = InitArgs { role: name.to_owned(), root: root(), parent, version: "0.1.0".to_owned() };
        Self::install_code(r, id, name, InstallMode::Install, &args).await;
        let role = Self { r, name, id };
        assert!(role.query::<bool>("canic_ready", no_args()).await, "{name}: not ready after init");
        let env = role.env().await;
        assert_eq!(
            (env.role.as_str(), env.root, env.parent, env.version.as_str(), env.upgrades),
            (name, root(), parent, "0.1.0", 0),
            "{name}: canic_env after install"
        );
        assert!(env.installed_at > 0 && env.installed_at <= r.time(), "{name}: installed_at {}", env.installed_at);
        role
    }

    async fn install_code(r: &Replica, id: Principal, name: &str, mode: InstallMode, args: &InitArgs) {
        let wasm = std::fs::read(common::guest(name)).unwrap();
        let m = prepare_module(r, &id, &wasm).unwrap_or_else(|e| panic!("{name}: {e}"));
        r.install(admin(), id, mode, m, Encode!(args).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{name}: install ({mode:?}): {e}"));
    }

    async fn env(&self) -> CanicEnv {
        self.query("canic_env", no_args()).await
    }

    /// Upgrades to the same module as version 0.2.0 (the argument names
    /// another root and parent, which must not replace the installed ones)
    /// and checks `canic_env`.
    async fn upgrade(&self) {
        let before = self.env().await;
        self.r.advance_time(Duration::from_secs(60));
        let args = InitArgs {
            role: self.name.to_owned(),
            root: Principal::anonymous(),
            parent: Principal::anonymous(),
            version: "0.2.0".to_owned(),
        };
        Self::install_code(self.r, self.id, self.name, InstallMode::Upgrade, &args).await;
        assert!(self.query::<bool>("canic_ready", no_args()).await);
        let after = self.env().await;
        assert_eq!(
            after,
            CanicEnv { version: "0.2.0".to_owned(), upgrades: 1, ..before },
            "{}: canic_env after the upgrade",
            self.name
        );
    }

    async fn update<T: CandidType + for<'de> Deserialize<'de>>(&self, method: &str, arg: Vec<u8>) -> T {
        self.update_as(admin(), method, arg).await
    }

    async fn update_as<T: CandidType + for<'de> Deserialize<'de>>(&self, caller: Principal, method: &str, arg: Vec<u8>) -> T {
        let bytes = self.r.call(caller, self.id, method, arg).await.unwrap_or_else(|e| panic!("{}.{method}: {e}", self.name));
        Decode!(&bytes, T).unwrap_or_else(|e| panic!("{}.{method}: {e}", self.name))
    }

    async fn query<T: CandidType + for<'de> Deserialize<'de>>(&self, method: &str, arg: Vec<u8>) -> T {
        let bytes = self.r.query(admin(), self.id, method, arg).await.unwrap_or_else(|e| panic!("{}.{method}: {e}", self.name));
        Decode!(&bytes, T).unwrap_or_else(|e| panic!("{}.{method}: {e}", self.name))
    }
}

#[tokio::test]
async fn app_keeps_its_settings_across_upgrades() {
    #[derive(CandidType, Deserialize, Debug)]
    struct Setting {
        key: String,
        value: String,
        updated_by: Principal,
    }
    let r = replica();
    let app = Role::install(&r, "app").await;
    let set = |k: &str, v: &str| Encode!(&k, &v).unwrap();
    assert_eq!(app.update::<Result<u64, String>>("set_setting", set("theme", "dark")).await, Ok(1));
    assert_eq!(app.update::<Result<u64, String>>("set_setting", set("locale", "en")).await, Ok(2));
    let err = app.update::<Result<u64, String>>("set_setting", set("Bad Key", "x")).await.unwrap_err();
    assert!(err.contains("keys use"), "{err}");
    let err = app.update_as::<Result<u64, String>>(Principal::anonymous(), "set_setting", set("theme", "light")).await.unwrap_err();
    assert!(err.contains("not allowed"), "{err}");

    app.upgrade().await;
    let theme: Option<Setting> = app.query("get_setting", Encode!(&"theme").unwrap()).await;
    let theme = theme.expect("the setting survived the upgrade");
    assert_eq!((theme.key.as_str(), theme.value.as_str(), theme.updated_by), ("theme", "dark", admin()));
    let all: Vec<Setting> = app.query("list_settings", no_args()).await;
    assert_eq!(all.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(), ["locale", "theme"]);
    assert_eq!(app.query::<u64>("revision", no_args()).await, 2);
    assert_eq!(app.update::<Result<bool, String>>("delete_setting", Encode!(&"locale").unwrap()).await, Ok(true));
    assert_eq!(app.query::<u64>("revision", no_args()).await, 3);
}

#[tokio::test]
async fn minimal_keeps_its_pings_across_upgrades() {
    #[derive(CandidType, Deserialize, Debug)]
    struct Pings {
        count: u64,
        last_caller: Option<Principal>,
    }
    let r = replica();
    let minimal = Role::install(&r, "minimal").await;
    assert_eq!(minimal.update::<u64>("ping", no_args()).await, 1);
    assert_eq!(minimal.update::<u64>("ping", no_args()).await, 2);
    minimal.upgrade().await;
    let pings: Pings = minimal.query("pings", no_args()).await;
    assert_eq!((pings.count, pings.last_caller), (2, Some(admin())));
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
struct JobReceipt {
    id: u64,
    checksum: u64,
}

#[derive(CandidType, Deserialize, Debug)]
struct KindCount {
    kind: String,
    count: u64,
}

#[derive(CandidType, Deserialize, Debug)]
struct WorkerStats {
    accepted: u64,
    bytes: u64,
    retained: u64,
    by_kind: Vec<KindCount>,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct JobRequest {
    kind: String,
    payload: ByteBuf,
}

fn job(kind: &str, payload: &[u8]) -> Vec<u8> {
    Encode!(&JobRequest { kind: kind.to_owned(), payload: ByteBuf::from(payload) }).unwrap()
}

#[tokio::test]
async fn scale_keeps_its_jobs_across_upgrades() {
    #[derive(CandidType, Deserialize, Debug)]
    struct Job {
        id: u64,
        kind: String,
        size: u64,
        checksum: u64,
        submitted_by: Principal,
    }
    let r = replica();
    let scale = Role::install(&r, "scale").await;
    let receipt = scale.update::<Result<JobReceipt, String>>("submit_job", job("resize", b"an image")).await.unwrap();
    assert_eq!(receipt.id, 1);
    scale.update::<Result<JobReceipt, String>>("submit_job", job("resize", b"another")).await.unwrap();
    scale.update::<Result<JobReceipt, String>>("submit_job", job("encode", b"")).await.unwrap();
    let err = scale.update_as::<Result<JobReceipt, String>>(Principal::anonymous(), "submit_job", job("x", b"")).await.unwrap_err();
    assert!(err.contains("not allowed"), "{err}");

    scale.upgrade().await;
    let first: Option<Job> = scale.query("job", Encode!(&1u64).unwrap()).await;
    let first = first.expect("job 1 survived the upgrade");
    assert_eq!((first.id, first.kind.as_str(), first.size, first.checksum, first.submitted_by), (1, "resize", 8, receipt.checksum, admin()));
    let stats: WorkerStats = scale.query("stats", no_args()).await;
    assert_eq!((stats.accepted, stats.bytes, stats.retained), (3, 15, 3));
    let by_kind: Vec<(&str, u64)> = stats.by_kind.iter().map(|k| (k.kind.as_str(), k.count)).collect();
    assert_eq!(by_kind, [("encode", 1), ("resize", 2)]);
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct Worker {
    id: Principal,
    weight: u32,
    dispatched: u64,
}

#[tokio::test]
async fn scale_hub_keeps_its_workers_across_upgrades() {
    let r = replica();
    let hub = Role::install(&r, "scale_hub").await;
    let (a, b) = (Principal::from_slice(&[1, 0xA]), Principal::from_slice(&[1, 0xB]));
    assert_eq!(hub.update::<Result<(), String>>("register_worker", Encode!(&a, &1u32).unwrap()).await, Ok(()));
    assert_eq!(hub.update::<Result<(), String>>("register_worker", Encode!(&b, &3u32).unwrap()).await, Ok(()));
    let err = hub.update::<Result<(), String>>("register_worker", Encode!(&b, &0u32).unwrap()).await.unwrap_err();
    assert!(err.contains("weight"), "{err}");

    hub.upgrade().await;
    let workers: Vec<Worker> = hub.query("workers", no_args()).await;
    let summary: Vec<(Principal, u32)> = workers.iter().map(|w| (w.id, w.weight)).collect();
    assert_eq!(summary, [(a, 1), (b, 3)]);
    assert_eq!(hub.query::<Option<Principal>>("next_worker", no_args()).await, Some(a));
    assert_eq!(hub.update::<Result<bool, String>>("remove_worker", Encode!(&a).unwrap()).await, Ok(true));
    assert_eq!(hub.query::<Option<Principal>>("next_worker", no_args()).await, Some(b));
}

/// The hub spreads jobs over real workers (installed with the hub as their
/// parent, so they accept its calls) by weight.
#[tokio::test]
async fn scale_hub_dispatches_jobs_to_its_workers_by_weight() {
    #[derive(CandidType, Deserialize, Debug)]
    struct Dispatched {
        worker: Principal,
        job_id: u64,
        checksum: u64,
    }
    let r = replica();
    let hub = Role::install(&r, "scale_hub").await;
    let light = Role::install_with_parent(&r, "scale", hub.id).await;
    let heavy = Role::install_with_parent(&r, "scale", hub.id).await;
    hub.update::<Result<(), String>>("register_worker", Encode!(&light.id, &1u32).unwrap()).await.unwrap();
    hub.update::<Result<(), String>>("register_worker", Encode!(&heavy.id, &2u32).unwrap()).await.unwrap();

    let err = hub.update::<Result<Dispatched, String>>("dispatch", job("", b"x")).await.unwrap_err();
    assert!(err.contains("refused") && err.contains("empty"), "{err}");
    let mut sent = Vec::new();
    for i in 0..6u8 {
        let d = hub.update::<Result<Dispatched, String>>("dispatch", job("render", &[i; 10])).await.unwrap();
        sent.push((d.worker, d.job_id, d.checksum));
    }
    let to = |w: Principal| sent.iter().filter(|(p, ..)| *p == w).count() as u64;
    // Round-robin positions 1 to 6 (the refused job took position 0) over a
    // total weight of 3: each worker gets its weight's share, in either order.
    assert_eq!((to(light.id), to(heavy.id)), (2, 4), "{sent:?}");
    assert!(sent.windows(2).all(|w| w[0].0 != w[1].0 || w[0].1 < w[1].1), "job ids grow per worker: {sent:?}");
    for worker in [&light, &heavy] {
        let stats: WorkerStats = worker.query("stats", no_args()).await;
        assert_eq!(stats.accepted, to(worker.id), "jobs the worker counted");
    }
    let workers: Vec<Worker> = hub.query("workers", no_args()).await;
    for w in workers {
        assert_eq!(w.dispatched, to(w.id), "the hub's dispatch count for {}", w.id);
    }
}

#[tokio::test]
async fn shard_keeps_its_records_across_upgrades() {
    #[derive(CandidType, Deserialize, Debug)]
    struct ShardStats {
        records: u64,
        bytes: u64,
    }
    let r = replica();
    let shard = Role::install(&r, "shard").await;
    let put = |k: &str, v: &[u8]| Encode!(&k, &ByteBuf::from(v)).unwrap();
    assert_eq!(shard.update::<Result<bool, String>>("put", put("user/1", b"ada")).await, Ok(true));
    assert_eq!(shard.update::<Result<bool, String>>("put", put("user/2", b"grace")).await, Ok(true));
    assert_eq!(shard.update::<Result<bool, String>>("put", put("user/1", b"ada l.")).await, Ok(false));
    let err = shard.update_as::<Result<bool, String>>(Principal::anonymous(), "put", put("k", b"v")).await.unwrap_err();
    assert!(err.contains("not allowed"), "{err}");

    shard.upgrade().await;
    let got: Option<ByteBuf> = shard.query("get", Encode!(&"user/1").unwrap()).await;
    assert_eq!(got.as_deref().map(Vec::as_slice), Some(&b"ada l."[..]));
    let keys: Vec<String> = shard.query("list", Encode!(&Some("user/1"), &10u32).unwrap()).await;
    assert_eq!(keys, ["user/2"]);
    let stats: ShardStats = shard.query("shard_stats", no_args()).await;
    assert_eq!((stats.records, stats.bytes), (2, 11));
    assert_eq!(shard.update::<Result<bool, String>>("remove", Encode!(&"user/2").unwrap()).await, Ok(true));
    let stats: ShardStats = shard.query("shard_stats", no_args()).await;
    assert_eq!((stats.records, stats.bytes), (1, 6));
}

#[tokio::test]
async fn shard_hub_keeps_its_assignments_across_upgrades() {
    let r = replica();
    let hub = Role::install(&r, "shard_hub").await;
    let shards: Vec<Principal> = (0..3u8).map(|i| Principal::from_slice(&[2, i])).collect();
    for s in &shards[..2] {
        hub.update::<Result<u32, String>>("add_shard", Encode!(s).unwrap()).await.unwrap();
    }
    let keys: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
    let mut assigned = Vec::new();
    for key in &keys {
        let preview: Option<Principal> = hub.query("preview", Encode!(key).unwrap()).await;
        let shard = hub.update::<Result<Principal, String>>("assign", Encode!(key).unwrap()).await.unwrap();
        assert_eq!(preview, Some(shard), "preview and assign agree for {key}");
        assigned.push(shard);
    }
    assert!(shards[..2].iter().all(|s| assigned.contains(s)), "20 keys hash onto both shards: {assigned:?}");

    hub.upgrade().await;
    // A new shard moves no pinned key.
    assert_eq!(hub.update::<Result<u32, String>>("add_shard", Encode!(&shards[2]).unwrap()).await, Ok(3));
    for (key, shard) in keys.iter().zip(&assigned) {
        assert_eq!(hub.query::<Option<Principal>>("lookup", Encode!(key).unwrap()).await, Some(*shard), "{key}");
        assert_eq!(hub.update::<Result<Principal, String>>("assign", Encode!(key).unwrap()).await, Ok(*shard), "{key}");
    }
    assert_eq!(hub.query::<u64>("assignment_count", no_args()).await, 20);
}

#[tokio::test]
async fn test_role_echoes_traps_and_keeps_its_counter_across_upgrades() {
    let r = replica();
    let test = Role::install(&r, "test").await;
    assert_eq!(test.query::<String>("echo", Encode!(&"hello").unwrap()).await, "hello");
    assert_eq!(test.update::<u64>("increment", Encode!(&5u64).unwrap()).await, 5);
    let err = r.call(admin(), test.id, "increment_then_trap", Encode!(&3u64).unwrap()).await.unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError, "{err}");
    assert!(err.message.contains("trapped after incrementing the counter to 8"), "{err}");
    let err = r.call(admin(), test.id, "trap", Encode!(&"on demand").unwrap()).await.unwrap_err();
    assert!(err.message.contains("on demand"), "{err}");
    assert_eq!(test.query::<u64>("counter", no_args()).await, 5, "the trapped increment was rolled back");
    assert_eq!(test.update::<Result<u64, String>>("note", Encode!(&"first").unwrap()).await, Ok(0));

    test.upgrade().await;
    assert_eq!(test.query::<u64>("counter", no_args()).await, 5);
    assert_eq!(test.query::<Vec<String>>("notes", no_args()).await, ["first"]);
    assert_eq!(test.update::<u64>("increment", Encode!(&1u64).unwrap()).await, 6);
    assert_eq!(test.query::<Principal>("whoami", no_args()).await, admin());
}

#[tokio::test]
async fn user_hub_keeps_its_users_across_upgrades() {
    #[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
    struct Profile {
        user: Principal,
        name: String,
        shard: Principal,
        registered_at: u64,
    }
    #[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
    struct UserShard {
        shard: Principal,
        users: u64,
    }
    let r = replica();
    let hub = Role::install(&r, "user_hub").await;
    let err = hub.update::<Result<Profile, String>>("register", Encode!(&"Ada").unwrap()).await.unwrap_err();
    assert!(err.contains("no user shard"), "{err}");
    let (s1, s2) = (Principal::from_slice(&[3, 1]), Principal::from_slice(&[3, 2]));
    for s in [s1, s2] {
        assert_eq!(hub.update::<Result<(), String>>("add_user_shard", Encode!(&s).unwrap()).await, Ok(()));
    }
    let ada = hub.update::<Result<Profile, String>>("register", Encode!(&"Ada").unwrap()).await.unwrap();
    assert_eq!((ada.user, ada.name.as_str(), ada.shard), (admin(), "Ada", s1));
    let grace = Principal::self_authenticating(b"grace");
    let g = hub.update_as::<Result<Profile, String>>(grace, "register", Encode!(&"Grace").unwrap()).await.unwrap();
    assert_eq!(g.shard, s2, "the least-loaded shard");
    let err = hub.update_as::<Result<Profile, String>>(Principal::anonymous(), "register", Encode!(&"Anon").unwrap()).await.unwrap_err();
    assert!(err.contains("anonymous"), "{err}");
    let err = hub.update::<Result<Profile, String>>("register", Encode!(&"Ada again").unwrap()).await.unwrap_err();
    assert!(err.contains("already registered"), "{err}");

    hub.upgrade().await;
    assert_eq!(hub.query::<Option<Profile>>("profile", Encode!(&admin()).unwrap()).await, Some(ada));
    assert_eq!(hub.query::<u64>("user_count", no_args()).await, 2);
    let shards: Vec<UserShard> = hub.query("user_shards", no_args()).await;
    assert_eq!(shards, [UserShard { shard: s1, users: 1 }, UserShard { shard: s2, users: 1 }]);
    let renamed = hub.update::<Result<Profile, String>>("rename", Encode!(&"Ada L.").unwrap()).await.unwrap();
    assert_eq!(renamed.name, "Ada L.");
}

#[tokio::test]
async fn user_shard_keeps_each_users_data_across_upgrades() {
    #[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
    struct Usage {
        entries: u64,
        bytes: u64,
    }
    #[derive(CandidType, Deserialize, Debug, PartialEq, Eq)]
    struct ShardTotals {
        users: u64,
        entries: u64,
        bytes: u64,
    }
    let r = replica();
    let shard = Role::install(&r, "user_shard").await;
    let other = Principal::self_authenticating(b"other user");
    let put = |k: &str, v: &[u8]| Encode!(&k, &ByteBuf::from(v)).unwrap();
    assert_eq!(shard.update::<Result<Usage, String>>("put", put("avatar", b"png")).await, Ok(Usage { entries: 1, bytes: 3 }));
    assert_eq!(shard.update::<Result<Usage, String>>("put", put("bio", b"hello")).await, Ok(Usage { entries: 2, bytes: 8 }));
    assert_eq!(shard.update_as::<Result<Usage, String>>(other, "put", put("avatar", b"gif!")).await, Ok(Usage { entries: 1, bytes: 4 }));

    shard.upgrade().await;
    let avatar: Option<ByteBuf> = shard.query("get", Encode!(&"avatar").unwrap()).await;
    assert_eq!(avatar.as_deref().map(Vec::as_slice), Some(&b"png"[..]), "each user sees their own value");
    assert_eq!(shard.query::<Vec<String>>("keys", no_args()).await, ["avatar", "bio"]);
    assert_eq!(shard.query::<ShardTotals>("totals", no_args()).await, ShardTotals { users: 2, entries: 3, bytes: 12 });
    assert_eq!(shard.update::<Result<Usage, String>>("delete", Encode!(&"bio").unwrap()).await, Ok(Usage { entries: 1, bytes: 3 }));
}
