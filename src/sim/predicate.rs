//! Application invariants: `left OP right` over sums of Candid query
//! results and integer literals, or a single query that answers a `bool`.
//! A query is `canister.method(candid args)`, called as the scenario's
//! user; it must answer one number (`nat`, `nat64`, `int`, ...) or `bool`.
//! Examples: `ledger.total_supply() <= minter.deposited()`,
//! `ledger.balance_of(principal "$wallet") + wallet.requested() >= 1000000`.

use std::collections::BTreeMap;

use candid::Principal;

use crate::replica::Replica;

#[derive(Clone, Debug, PartialEq)]
pub struct Predicate {
    left: Vec<(i8, Term)>,
    op: Option<(Op, Vec<(i8, Term)>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Ge,
    Le,
    Gt,
    Lt,
    Eq,
    Ne,
}

#[derive(Clone, Debug, PartialEq)]
enum Term {
    Number(i128),
    Query { canister: String, method: String, args: String },
}

impl Predicate {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let left = p.sum()?;
        p.space();
        let op = if p.i < p.s.len() {
            let op = p.op()?;
            Some((op, p.sum()?))
        } else {
            None
        };
        p.space();
        if p.i < p.s.len() {
            return Err(format!("unexpected {:?} at byte {}", &text[p.i..], p.i));
        }
        if op.is_none() && (left.len() != 1 || !matches!(left[0].1, Term::Query { .. })) {
            return Err("a check without a comparison must be one query answering a bool".into());
        }
        Ok(Self { left, op })
    }

    /// Evaluates the predicate; `Err` when a query fails or answers
    /// something else than a number (or a bool).
    pub fn holds(&self, replicas: &[Replica], ids: &BTreeMap<String, Principal>, caller: Principal) -> Result<(bool, String), String> {
        let mut shown = Vec::new();
        let sum = |terms: &[(i8, Term)], shown: &mut Vec<String>| -> Result<Value, String> {
            let mut total: i128 = 0;
            for (sign, term) in terms {
                match eval(term, replicas, ids, caller)? {
                    Value::Bool(b) if terms.len() == 1 => return Ok(Value::Bool(b)),
                    Value::Bool(_) => return Err("a bool cannot be added".into()),
                    Value::Int(v) => {
                        if let Term::Query { canister, method, .. } = term {
                            shown.push(format!("{canister}.{method} = {v}"));
                        }
                        total = total.saturating_add(i128::from(*sign) * v);
                    }
                }
            }
            Ok(Value::Int(total))
        };
        let left = sum(&self.left, &mut shown)?;
        let result = match (&self.op, left) {
            (None, Value::Bool(b)) => b,
            (None, Value::Int(_)) => return Err("the check answers a number, not a bool".into()),
            (Some((op, right)), Value::Int(l)) => {
                let Value::Int(r) = sum(right, &mut shown)? else { return Err("a bool cannot be compared".into()) };
                match op {
                    Op::Ge => l >= r,
                    Op::Le => l <= r,
                    Op::Gt => l > r,
                    Op::Lt => l < r,
                    Op::Eq => l == r,
                    Op::Ne => l != r,
                }
            }
            (Some(_), Value::Bool(_)) => return Err("a bool cannot be compared".into()),
        };
        Ok((result, shown.join(", ")))
    }
}

enum Value {
    Int(i128),
    Bool(bool),
}

fn eval(term: &Term, replicas: &[Replica], ids: &BTreeMap<String, Principal>, caller: Principal) -> Result<Value, String> {
    let (canister, method, args) = match term {
        Term::Number(n) => return Ok(Value::Int(*n)),
        Term::Query { canister, method, args } => (canister, method, args),
    };
    let id = *ids.get(canister).ok_or_else(|| format!("no canister is called {canister:?}"))?;
    // Several nodes: the node hosting the canister answers.
    let replica = replicas.iter().find(|r| r.hosts(&id)).or(replicas.first()).ok_or("no replica")?;
    let text = super::scenario::substitute(args, ids);
    let idl = candid_parser::parse_idl_args(&text).map_err(|e| format!("{canister}.{method}: bad Candid arguments: {e}"))?;
    let types = replica.candid_interface(&id).and_then(|did| crate::candid_args::method_types(&did, Some(method)).ok());
    let bytes = match &types {
        Some((env, args, _)) => crate::candid_args::typed_bytes(idl, env, args),
        None => idl.to_bytes(),
    }
    .map_err(|e| format!("{canister}.{method}: cannot encode the arguments: {e}"))?;
    let reply = replica.sim_query(caller, id, method, bytes).map_err(|r| format!("{canister}.{method} failed: {r}"))?;
    let values = match &types {
        Some((env, _, rets)) => candid::IDLArgs::from_bytes_with_types(&reply, env, rets),
        None => candid::IDLArgs::from_bytes(&reply),
    }
    .map_err(|e| format!("{canister}.{method}: cannot decode the answer: {e}"))?;
    use candid::IDLValue as V;
    match values.args.as_slice() {
        [V::Bool(b)] => Ok(Value::Bool(*b)),
        [V::Nat(n)] => n.0.to_string().parse().map(Value::Int).map_err(|_| format!("{canister}.{method}: {n} is too large")),
        [V::Int(n)] => n.0.to_string().parse().map(Value::Int).map_err(|_| format!("{canister}.{method}: {n} is too large")),
        [V::Nat64(n)] => Ok(Value::Int(i128::from(*n))),
        [V::Nat32(n)] => Ok(Value::Int(i128::from(*n))),
        [V::Nat16(n)] => Ok(Value::Int(i128::from(*n))),
        [V::Nat8(n)] => Ok(Value::Int(i128::from(*n))),
        [V::Int64(n)] => Ok(Value::Int(i128::from(*n))),
        [V::Int32(n)] => Ok(Value::Int(i128::from(*n))),
        other => Err(format!("{canister}.{method} answered {}, not one number or bool", candid::IDLArgs { args: other.to_vec() })),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn sum(&mut self) -> Result<Vec<(i8, Term)>, String> {
        let mut terms = vec![(1, self.term()?)];
        loop {
            self.space();
            match self.s.get(self.i) {
                Some(b'+') => {
                    self.i += 1;
                    terms.push((1, self.term()?));
                }
                Some(b'-') => {
                    self.i += 1;
                    terms.push((-1, self.term()?));
                }
                _ => return Ok(terms),
            }
        }
    }

    fn op(&mut self) -> Result<Op, String> {
        let rest = &self.s[self.i..];
        let (op, len) = match rest {
            [b'>', b'=', ..] => (Op::Ge, 2),
            [b'<', b'=', ..] => (Op::Le, 2),
            [b'=', b'=', ..] => (Op::Eq, 2),
            [b'!', b'=', ..] => (Op::Ne, 2),
            [b'>', ..] => (Op::Gt, 1),
            [b'<', ..] => (Op::Lt, 1),
            _ => return Err(format!("expected a comparison (>=, <=, ==, !=, >, <) at byte {}", self.i)),
        };
        self.i += len;
        Ok(op)
    }

    fn term(&mut self) -> Result<Term, String> {
        self.space();
        let start = self.i;
        if self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            while self.s.get(self.i).is_some_and(|c| c.is_ascii_digit() || *c == b'_') {
                self.i += 1;
            }
            let digits: String = self.s[start..self.i].iter().filter(|c| **c != b'_').map(|c| *c as char).collect();
            return digits.parse().map(Term::Number).map_err(|_| format!("{digits} is too large"));
        }
        let ident = |p: &mut Self| -> String {
            let from = p.i;
            while p.s.get(p.i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-') {
                p.i += 1;
            }
            String::from_utf8_lossy(&p.s[from..p.i]).into_owned()
        };
        let canister = ident(self);
        if canister.is_empty() || self.s.get(self.i) != Some(&b'.') {
            return Err(format!("expected a number or canister.method(...) at byte {start}"));
        }
        self.i += 1;
        let method = ident(self);
        if method.is_empty() || self.s.get(self.i) != Some(&b'(') {
            return Err(format!("expected {canister}.method(...) at byte {start}"));
        }
        // The arguments run to the matching parenthesis (strings may hold any).
        let open = self.i;
        let mut depth = 0usize;
        let mut in_string = false;
        while self.i < self.s.len() {
            let c = self.s[self.i];
            self.i += 1;
            match c {
                b'"' => in_string = !in_string,
                b'\\' if in_string => self.i += 1,
                b'(' if !in_string => depth += 1,
                b')' if !in_string => {
                    depth -= 1;
                    if depth == 0 {
                        let args = String::from_utf8_lossy(&self.s[open..self.i]).into_owned();
                        return Ok(Term::Query { canister, method, args });
                    }
                }
                _ => {}
            }
        }
        Err(format!("unclosed parenthesis after {canister}.{method}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sums_and_comparisons() {
        let p = Predicate::parse(r#"ledger.balance_of(principal "$wallet") + wallet.requested() >= 1_000_000"#).unwrap();
        assert_eq!(p.left.len(), 2);
        assert!(matches!(&p.left[0].1, Term::Query { canister, method, args } if canister == "ledger" && method == "balance_of" && args == r#"(principal "$wallet")"#));
        let (op, right) = p.op.unwrap();
        assert_eq!(op, Op::Ge);
        assert_eq!(right, vec![(1, Term::Number(1_000_000))]);
        assert!(Predicate::parse("a.ok()").is_ok());
        assert!(Predicate::parse("a.total() - b.x(\")\") < 3").is_ok());
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        assert!(Predicate::parse("5").is_err());
        assert!(Predicate::parse("a.b( >= 1").is_err());
        assert!(Predicate::parse("a.b() => 1").is_err());
        assert!(Predicate::parse("a.b() >= ").is_err());
        assert!(Predicate::parse("a.b() >= 1 trailing").is_err());
    }
}
