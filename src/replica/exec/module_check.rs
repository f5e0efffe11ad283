//! Core module checks and instrumentation, at install: the IC's module
//! requirements (at most one memory, imports only from `ic0`, entry points
//! by export name and type, size limits) and the exports ww adds so the
//! host can reach what it must roll back: the memory, the function table
//! (callbacks) and every mutable global.
//!
//! Errors are one line naming the reason; the install turns them into
//! IC0505 (invalid module).

use std::collections::HashMap;

use wasmparser::{CompositeInnerType, ExternalKind, Parser, Payload, TypeRef};

use super::MethodKind;
use super::ic0_raw::is_ic0_function;

/// The export names ww adds.
pub const MEMORY_EXPORT: &str = "__ww_memory";
pub const TABLE_EXPORT: &str = "__ww_table";
pub const GLOBAL_EXPORT_PREFIX: &str = "__ww_global_";

/// The IC's limits on a module.
pub const MAX_METHODS: usize = 1_000;
pub const MAX_METHOD_NAME_BYTES: usize = 20_000;
pub const MAX_GLOBALS: usize = 1_000;
pub const MAX_FUNCTIONS: usize = 50_000;
pub const MAX_CUSTOM_SECTIONS: usize = 16;
pub const MAX_CUSTOM_SECTION_BYTES: usize = 1 << 20;

/// Entry points a module may export besides its methods.
const SYSTEM_EXPORTS: &[&str] = &[
    "canister_init",
    "canister_pre_upgrade",
    "canister_post_upgrade",
    "canister_inspect_message",
    "canister_heartbeat",
    "canister_global_timer",
    "canister_on_low_wasm_memory",
];

/// A checked module, instrumented and ready to compile.
#[derive(Debug)]
pub struct CheckedModule {
    /// The module with ww's exports added.
    pub bytes: Vec<u8>,
    pub memory64: bool,
    pub has_memory: bool,
    pub has_table: bool,
    pub methods: HashMap<String, MethodKind>,
    /// The system entry points it exports (`canister_init`, ...).
    pub system_exports: Vec<String>,
    /// Export names of its mutable globals, in index order.
    pub globals: Vec<String>,
    /// It declares enhanced orthogonal persistence (Motoko): its heap may
    /// be kept across upgrades.
    pub enhanced_orthogonal_persistence: bool,
}

/// Checks `wasm` (uncompressed) as the IC checks a canister module and
/// instruments it.
pub fn check_core_module(wasm: &[u8]) -> Result<CheckedModule, String> {
    let mut func_types: Vec<bool> = Vec::new(); // per type index: is `() -> ()`
    let mut functions: Vec<u32> = Vec::new(); // type index per function index
    let mut imports = Vec::new();
    let mut memories = Vec::new();
    let mut tables = 0u32;
    let mut mutable_globals = Vec::new();
    let mut global_count = 0usize;
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();
    let mut had_exports = false;
    let mut custom = (0usize, 0usize);
    let mut eop = false;
    let mut sections: Vec<(u8, std::ops::Range<usize>)> = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| format!("not a valid WebAssembly module: {e}"))?;
        if let Some((id, range)) = payload.as_section() {
            sections.push((id, range));
        }
        match payload {
            Payload::Version { encoding, .. } => {
                if encoding != wasmparser::Encoding::Module {
                    return Err("a component, not a core module".into());
                }
            }
            Payload::TypeSection(r) => {
                for group in r {
                    let group = group.map_err(|e| format!("type section: {e}"))?;
                    for ty in group.into_types() {
                        func_types.push(match &ty.composite_type.inner {
                            CompositeInnerType::Func(f) => f.params().is_empty() && f.results().is_empty(),
                            _ => false,
                        });
                    }
                }
            }
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    let import = import.map_err(|e| format!("import section: {e}"))?;
                    if let TypeRef::Func(t) = import.ty {
                        functions.push(t);
                    }
                    imports.push((import.module.to_string(), import.name.to_string(), import.ty));
                }
            }
            Payload::FunctionSection(r) => {
                for f in r {
                    functions.push(f.map_err(|e| format!("function section: {e}"))?);
                }
            }
            Payload::TableSection(r) => tables += r.count(),
            Payload::MemorySection(r) => {
                for m in r {
                    memories.push(m.map_err(|e| format!("memory section: {e}"))?);
                }
            }
            Payload::GlobalSection(r) => {
                for g in r {
                    let g = g.map_err(|e| format!("global section: {e}"))?;
                    if g.ty.mutable {
                        mutable_globals.push(global_count as u32);
                    }
                    global_count += 1;
                }
            }
            Payload::ExportSection(r) => {
                had_exports = true;
                for e in r {
                    let e = e.map_err(|e| format!("export section: {e}"))?;
                    exports.push((e.name.to_string(), e.kind, e.index));
                }
            }
            Payload::CustomSection(c) => {
                let name = c.name();
                if name.starts_with("icp:public ") || name.starts_with("icp:private ") {
                    custom.0 += 1;
                    custom.1 += c.data().len() + name.len();
                } else if name.starts_with("icp:") {
                    return Err(format!("custom section `{name}`: icp sections must be named `icp:public <name>` or `icp:private <name>`"));
                }
                if name.ends_with("enhanced-orthogonal-persistence") {
                    eop = true;
                }
            }
            _ => {}
        }
    }
    if memories.len() > 1 {
        return Err(format!("the module declares {} memories; a canister may declare at most one", memories.len()));
    }
    let memory64 = memories.first().is_some_and(|m| m.memory64);
    for (module, name, ty) in &imports {
        match ty {
            TypeRef::Func(_) if module == "ic0" && is_ic0_function(name, memory64) => {}
            TypeRef::Func(_) if module == "ic0" => {
                return Err(format!("imports `ic0.{name}`, which is not a function of the IC system API"));
            }
            TypeRef::Func(_) => return Err(format!("imports `{module}.{name}`; a canister may import only functions of the IC system API (`ic0`)")),
            _ => return Err(format!("imports `{module}.{name}`, which is not a function; a canister may import only `ic0` functions")),
        }
    }
    if functions.len() > MAX_FUNCTIONS {
        return Err(format!("the module has {} functions; at most {MAX_FUNCTIONS} are allowed", functions.len()));
    }
    if global_count > MAX_GLOBALS {
        return Err(format!("the module has {global_count} globals; at most {MAX_GLOBALS} are allowed"));
    }
    if custom.0 > MAX_CUSTOM_SECTIONS {
        return Err(format!("the module has {} icp custom sections; at most {MAX_CUSTOM_SECTIONS} are allowed", custom.0));
    }
    if custom.1 > MAX_CUSTOM_SECTION_BYTES {
        return Err(format!("the module's icp custom sections take {} bytes; at most {MAX_CUSTOM_SECTION_BYTES} are allowed", custom.1));
    }
    let mut methods = HashMap::new();
    let mut system_exports = Vec::new();
    let mut name_bytes = 0;
    for (name, kind, index) in &exports {
        if name.starts_with("__ww_") {
            return Err(format!("exports `{name}`; names starting with `__ww_` are reserved for ww"));
        }
        if !name.starts_with("canister_") {
            continue;
        }
        let method = [("canister_update ", MethodKind::Update), ("canister_query ", MethodKind::Query), ("canister_composite_query ", MethodKind::CompositeQuery)]
            .into_iter()
            .find_map(|(prefix, k)| name.strip_prefix(prefix).map(|m| (m, k)));
        if method.is_none() && !SYSTEM_EXPORTS.contains(&name.as_str()) {
            return Err(format!("exports `{name}`, which is not a canister entry point (other exports may not start with `canister_`)"));
        }
        let unit = *kind == ExternalKind::Func
            && functions.get(*index as usize).and_then(|t| func_types.get(*t as usize)).copied().unwrap_or(false);
        if !unit {
            return Err(format!("exports `{name}`, which is not a function of type `() -> ()`"));
        }
        match method {
            Some((m, k)) => {
                name_bytes += m.len();
                if let Some(other) = methods.insert(m.to_string(), k)
                    && other != k
                {
                    return Err(format!("method `{m}` is exported as both {} and {}", kind_name(other), kind_name(k)));
                }
            }
            None => system_exports.push(name.clone()),
        }
    }
    if methods.len() > MAX_METHODS {
        return Err(format!("the module exports {} methods; at most {MAX_METHODS} are allowed", methods.len()));
    }
    if name_bytes > MAX_METHOD_NAME_BYTES {
        return Err(format!("the module's method names take {name_bytes} bytes; at most {MAX_METHOD_NAME_BYTES} are allowed"));
    }
    // ww's exports: the memory, table 0 and every mutable global.
    let mut added = Vec::new();
    if !memories.is_empty() {
        added.push((MEMORY_EXPORT.to_string(), wasm_encoder::ExportKind::Memory, 0));
    }
    if tables > 0 {
        added.push((TABLE_EXPORT.to_string(), wasm_encoder::ExportKind::Table, 0));
    }
    let globals: Vec<String> = mutable_globals.iter().map(|i| format!("{GLOBAL_EXPORT_PREFIX}{i}")).collect();
    for (name, i) in globals.iter().zip(&mutable_globals) {
        added.push((name.clone(), wasm_encoder::ExportKind::Global, *i));
    }
    let bytes = add_exports(wasm, &sections, had_exports, &exports, &added)?;
    Ok(CheckedModule {
        bytes,
        memory64,
        has_memory: !memories.is_empty(),
        has_table: tables > 0,
        methods,
        system_exports,
        globals,
        enhanced_orthogonal_persistence: eop,
    })
}

fn kind_name(k: MethodKind) -> &'static str {
    match k {
        MethodKind::Update => "an update",
        MethodKind::Query => "a query",
        MethodKind::CompositeQuery => "a composite query",
    }
}

/// Where a section goes in a module (custom sections excepted).
fn rank(id: u8) -> u8 {
    match id {
        1..=5 => id,
        13 => 6,
        6 => 7,
        7 => 8,
        8 => 9,
        9 => 10,
        12 => 11,
        10 => 12,
        11 => 13,
        _ => 0,
    }
}

/// Re-encodes the module with its export section extended by `added`
/// (every other section is copied byte for byte).
fn add_exports(
    wasm: &[u8],
    sections: &[(u8, std::ops::Range<usize>)],
    had_exports: bool,
    exports: &[(String, ExternalKind, u32)],
    added: &[(String, wasm_encoder::ExportKind, u32)],
) -> Result<Vec<u8>, String> {
    let mut section = wasm_encoder::ExportSection::new();
    for (name, kind, index) in exports {
        let kind = match kind {
            ExternalKind::Func | ExternalKind::FuncExact => wasm_encoder::ExportKind::Func,
            ExternalKind::Table => wasm_encoder::ExportKind::Table,
            ExternalKind::Memory => wasm_encoder::ExportKind::Memory,
            ExternalKind::Global => wasm_encoder::ExportKind::Global,
            ExternalKind::Tag => wasm_encoder::ExportKind::Tag,
        };
        section.export(name, kind, *index);
    }
    for (name, kind, index) in added {
        section.export(name, *kind, *index);
    }
    let mut module = wasm_encoder::Module::new();
    let mut placed = false;
    for (id, range) in sections {
        let data = wasm.get(range.clone()).ok_or("a section runs past the end of the module")?;
        if *id == 7 {
            module.section(&section);
            placed = true;
            continue;
        }
        if !had_exports && !placed && *id != 0 && rank(*id) > rank(7) {
            module.section(&section);
            placed = true;
        }
        module.section(&wasm_encoder::RawSection { id: *id, data });
    }
    if !placed {
        module.section(&section);
    }
    Ok(module.finish())
}

/// Checks that every core module in the component has at most one mutable
/// global (the stack pointer, which is back at its initial value at every
/// message boundary). Other mutable globals would not be rolled back with the
/// heap, so such a canister is refused.
pub fn check_component_globals(bytes: &[u8]) -> Result<(), super::InstallError> {
    use wasmparser::{Parser, Payload};
    let mut memories = 0u32;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| super::InstallError::Invalid(format!("invalid component: {e}")))?;
        match payload {
            Payload::GlobalSection(globals) => {
                let mut mutable = 0;
                for g in globals {
                    let g = g.map_err(|e| super::InstallError::Invalid(format!("invalid component: {e}")))?;
                    if g.ty.mutable {
                        mutable += 1;
                    }
                }
                if mutable > 1 {
                    return Err(super::InstallError::Invalid(format!(
                        "a core module has {mutable} mutable globals; ww canisters may only have the stack pointer (build without threads or the preview1 adapter)"
                    )));
                }
            }
            Payload::MemorySection(mems) => memories += mems.count(),
            _ => {}
        }
    }
    if memories > 1 {
        return Err(super::InstallError::Invalid(format!(
            "the component defines {memories} memories; a canister may declare at most one"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{
        CodeSection, EntityType, ExportKind, ExportSection, Function, FunctionSection, GlobalSection, GlobalType, ImportSection, Instruction,
        MemorySection, MemoryType, Module, TypeSection, ValType,
    };

    /// A module with `exports` (all `() -> ()` functions), `memories`
    /// memories, a mutable global, and imports of `imports`.
    fn module(exports: &[&str], memories: u32, imports: &[(&str, &str)]) -> Vec<u8> {
        let mut m = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], []);
        m.section(&types);
        let mut imp = ImportSection::new();
        for (module, name) in imports {
            imp.import(module, name, EntityType::Function(0));
        }
        if !imports.is_empty() {
            m.section(&imp);
        }
        let mut funcs = FunctionSection::new();
        funcs.function(0);
        m.section(&funcs);
        let mut mems = MemorySection::new();
        for _ in 0..memories {
            mems.memory(MemoryType { minimum: 1, maximum: None, memory64: false, shared: false, page_size_log2: None });
        }
        if memories > 0 {
            m.section(&mems);
        }
        let mut globals = GlobalSection::new();
        globals.global(GlobalType { val_type: ValType::I32, mutable: true, shared: false }, &wasm_encoder::ConstExpr::i32_const(7));
        m.section(&globals);
        let mut ex = ExportSection::new();
        for name in exports {
            ex.export(name, ExportKind::Func, imports.len() as u32);
        }
        m.section(&ex);
        let mut code = CodeSection::new();
        let mut f = Function::new([]);
        f.instruction(&Instruction::End);
        code.function(&f);
        m.section(&code);
        m.finish()
    }

    #[test]
    fn accepts_entry_points_and_adds_exports() {
        let checked = check_core_module(&module(&["canister_init", "canister_update inc", "canister_query get", "other"], 1, &[("ic0", "msg_reply")])).unwrap();
        assert_eq!(checked.methods.get("inc"), Some(&MethodKind::Update));
        assert_eq!(checked.methods.get("get"), Some(&MethodKind::Query));
        assert_eq!(checked.system_exports, vec!["canister_init".to_string()]);
        assert_eq!(checked.globals, vec![format!("{GLOBAL_EXPORT_PREFIX}0")]);
        // The instrumented module parses and exports what ww needs.
        let names: Vec<String> = Parser::new(0)
            .parse_all(&checked.bytes)
            .filter_map(|p| match p.unwrap() {
                Payload::ExportSection(r) => Some(r.into_iter().map(|e| e.unwrap().name.to_string()).collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(names.contains(&MEMORY_EXPORT.to_string()) && names.contains(&format!("{GLOBAL_EXPORT_PREFIX}0")), "{names:?}");
        wasmparser::Validator::new().validate_all(&checked.bytes).unwrap();
    }

    #[test]
    fn refuses_what_the_ic_refuses() {
        let err = |m: Vec<u8>| check_core_module(&m).unwrap_err();
        assert!(err(module(&[], 2, &[])).contains("2 memories"));
        assert!(err(module(&["canister_foo"], 1, &[])).contains("`canister_foo`"));
        assert!(err(module(&[], 1, &[("env", "foo")])).contains("`env.foo`"));
        assert!(err(module(&[], 1, &[("ic0", "no_such_call")])).contains("`ic0.no_such_call`"));
        assert!(err(module(&["canister_update x", "canister_query x"], 1, &[])).contains("both"));
        assert!(err(b"\0asm\x01\0\0\0\x01\xff".to_vec()).contains("not a valid WebAssembly module"));
    }
}
