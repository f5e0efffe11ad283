//! Candid text arguments encoded as a client means them: against the
//! method's declared types (as `dfx canister call` does), so `5` is whatever
//! number type the method wants, a variant's index and the type table come
//! from the declaration, and principal text stands for a service where one
//! is declared. Shared by `ww call` and the simulator's scenario files.

/// A method's (or, for `None`, the service's init) types in a Candid interface.
pub fn method_types(did: &str, method: Option<&str>) -> Result<(candid::types::TypeEnv, Vec<candid::types::Type>, Vec<candid::types::Type>), String> {
    let (env, actor) = candid_parser::utils::CandidSource::Text(did).load().map_err(|e| format!("bad Candid interface: {}", one_line(&e.to_string())))?;
    let actor = actor.ok_or_else(|| "the Candid interface has no service".to_string())?;
    match method {
        Some(m) => {
            let f = env.get_method(&actor, m).map_err(|_| format!("the Candid interface has no method {m:?}"))?.clone();
            Ok((env, f.args, f.rets))
        }
        None => match actor.as_ref() {
            candid::types::TypeInner::Class(args, _) => Ok((env, args.clone(), Vec::new())),
            _ => Ok((env, Vec::new(), Vec::new())),
        },
    }
}

/// Text on one line: its lines trimmed and joined with spaces (what error
/// messages from candid and toml need to fit one line).
pub fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Encodes Candid text arguments against declared types. The type
/// table is the declared one, so a service reference carries its service
/// type (a canister checks it: Motoko refuses `service {}` where it wants
/// `actor { inc : ... }`), and principal text is accepted where a service
/// is declared, as dfx accepts it.
pub fn typed_bytes(idl: candid::IDLArgs, env: &candid::types::TypeEnv, types: &[candid::types::Type]) -> candid::Result<Vec<u8>> {
    let args = idl
        .args
        .into_iter()
        .enumerate()
        .map(|(i, value)| match types.get(i) {
            Some(ty) => with_declared_references(value, env, ty),
            None => value,
        })
        .collect();
    candid::IDLArgs { args }.annotate_types(true, env, types).and_then(|typed| typed.to_bytes_with_types(env, types))
}

/// Whether a value holds a service or func reference (untyped, it would
/// be encoded with an empty service or function type).
pub fn holds_reference(value: &candid::IDLValue) -> bool {
    use candid::IDLValue as V;
    match value {
        V::Service(_) | V::Func(..) => true,
        V::Opt(v) => holds_reference(v),
        V::Vec(vs) => vs.iter().any(holds_reference),
        V::Record(fs) => fs.iter().any(|f| holds_reference(&f.val)),
        V::Variant(v) => holds_reference(&v.0.val),
        _ => false,
    }
}

/// `value` with principal text turned into a service reference wherever
/// `ty` declares one, at any depth (options, vectors, records, variants).
fn with_declared_references(value: candid::IDLValue, env: &candid::types::TypeEnv, ty: &candid::types::Type) -> candid::IDLValue {
    use candid::IDLValue as V;
    use candid::types::TypeInner as T;
    use candid::types::value::{IDLField, VariantValue};
    let Ok(ty) = env.trace_type(ty) else { return value };
    match (value, ty.as_ref()) {
        (V::Principal(id), T::Service(_)) => V::Service(id),
        (V::Opt(v), T::Opt(t)) => V::Opt(Box::new(with_declared_references(*v, env, t))),
        (v @ (V::None | V::Null | V::Reserved), T::Opt(_)) => v,
        // A value given for an `opt` without `opt` (Candid text allows it).
        (v, T::Opt(t)) => with_declared_references(v, env, t),
        (V::Vec(values), T::Vec(t)) => V::Vec(values.into_iter().map(|v| with_declared_references(v, env, t)).collect()),
        (V::Record(fields), T::Record(declared)) => V::Record(
            fields
                .into_iter()
                .map(|f| match declared.iter().find(|d| *d.id == f.id) {
                    Some(d) => IDLField { val: with_declared_references(f.val, env, &d.ty), id: f.id },
                    None => f,
                })
                .collect(),
        ),
        (V::Variant(VariantValue(f, index)), T::Variant(declared)) => {
            let f = *f;
            let f = match declared.iter().find(|d| *d.id == f.id) {
                Some(d) => IDLField { val: with_declared_references(f.val, env, &d.ty), id: f.id },
                None => f,
            };
            V::Variant(VariantValue(Box::new(f), index))
        }
        (v, _) => v,
    }
}

