//! Attribute macros of `ww-cdk` (use them through `ww_cdk`, not directly).
//!
//! Each attribute keeps the function as written and adds, next to it, a
//! small entry function plus an [`inventory`](https://docs.rs/inventory)
//! registration that `ww_cdk`'s `entry` implementation finds at run time:
//!
//! - `#[update]`, `#[query]`: a public method. The entry decodes the Candid
//!   arguments from `msg-arg-data` (a decode failure traps with a message
//!   naming the method), calls the function (an `async fn` becomes a task of
//!   `ww_cdk`'s executor) and replies with the Candid-encoded result.
//!   Options: `name = "..."` (the exported name; default: the function's
//!   name) and `manual_reply = true` (the function replies itself, through
//!   `ww_cdk::api`; its return value is dropped).
//! - `#[init]`, `#[post_upgrade]`: may take Candid arguments (the install
//!   argument); empty argument bytes count as `()`, so `Option` arguments
//!   become `None`. `#[pre_upgrade]` takes none. These may not be `async`.
//! - `#[on_timer]` (alias `#[timer]`): the global timer fired; may be `async`.
//!
//! In builds with `debug_assertions` (the check is in the generated code,
//! so it follows the canister crate's profile), `#[update]`, `#[query]` and
//! `#[init]` also record their Candid signature (exported name, query or
//! not, argument and result types through `candid::CandidType`) for
//! `ww_cdk::export_candid!`. The result types are the function's declared
//! return type (none for `()`), also for `manual_reply` methods. Release
//! builds record nothing.
//!
//! The generated code refers to `::ww_cdk`, so a canister depends on
//! `ww-cdk` under that name.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Error, FnArg, ItemFn, LitBool, LitStr, Result, ReturnType, Type, parse_macro_input};

/// The kind of entry point an attribute declares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Update,
    Query,
    CompositeQuery,
    Init,
    PreUpgrade,
    PostUpgrade,
    Timer,
}

impl Kind {
    fn attr_name(self) -> &'static str {
        match self {
            Kind::Update => "update",
            Kind::Query => "query",
            Kind::CompositeQuery => "composite_query",
            Kind::Init => "init",
            Kind::PreUpgrade => "pre_upgrade",
            Kind::PostUpgrade => "post_upgrade",
            Kind::Timer => "on_timer",
        }
    }

    fn is_method(self) -> bool {
        matches!(self, Kind::Update | Kind::Query | Kind::CompositeQuery)
    }

    fn variant(self) -> TokenStream2 {
        match self {
            Kind::Update => quote!(Update),
            Kind::Query => quote!(Query),
            Kind::CompositeQuery => quote!(CompositeQuery),
            Kind::Init => quote!(Init),
            Kind::PreUpgrade => quote!(PreUpgrade),
            Kind::PostUpgrade => quote!(PostUpgrade),
            Kind::Timer => quote!(Timer),
        }
    }
}

/// Options of `#[update(...)]` / `#[query(...)]`.
#[derive(Default)]
struct Options {
    name: Option<LitStr>,
    manual_reply: bool,
}

fn parse_options(kind: Kind, attr: TokenStream) -> Result<Options> {
    let mut options = Options::default();
    if attr.is_empty() {
        return Ok(options);
    }
    if !kind.is_method() {
        return Err(Error::new(
            Span::call_site(),
            format!("#[{}] takes no options", kind.attr_name()),
        ));
    }
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            options.name = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("manual_reply") {
            options.manual_reply = meta.value()?.parse::<LitBool>()?.value;
            Ok(())
        } else {
            Err(meta.error("expected `name = \"...\"` or `manual_reply = true`"))
        }
    });
    syn::parse::Parser::parse(parser, attr)?;
    Ok(options)
}

fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = match parse_options(kind, attr) {
        Ok(options) => options,
        Err(e) => return e.to_compile_error().into(),
    };
    let func = parse_macro_input!(item as ItemFn);
    match expand_fn(kind, &options, &func) {
        Ok(tokens) => tokens.into(),
        Err(e) => {
            let mut tokens = e.to_compile_error();
            tokens.extend(quote!(#func));
            tokens.into()
        }
    }
}

fn expand_fn(kind: Kind, options: &Options, func: &ItemFn) -> Result<TokenStream2> {
    let sig = &func.sig;
    let attr = kind.attr_name();
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(Error::new(
            sig.generics.span(),
            format!("#[{attr}] functions cannot be generic"),
        ));
    }
    if sig.variadic.is_some() {
        return Err(Error::new(
            sig.span(),
            format!("#[{attr}] functions cannot be variadic"),
        ));
    }
    let is_async = sig.asyncness.is_some();
    if is_async && matches!(kind, Kind::Init | Kind::PreUpgrade | Kind::PostUpgrade) {
        return Err(Error::new(
            sig.asyncness.span(),
            format!("#[{attr}] functions cannot be async"),
        ));
    }

    let mut arg_types = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                return Err(Error::new(
                    r.span(),
                    format!("#[{attr}] functions cannot take `self`"),
                ));
            }
            FnArg::Typed(pat) => arg_types.push((*pat.ty).clone()),
        }
    }
    let takes_args = matches!(
        kind,
        Kind::Update | Kind::Query | Kind::CompositeQuery | Kind::Init | Kind::PostUpgrade
    );
    if !takes_args && !arg_types.is_empty() {
        return Err(Error::new(
            sig.inputs.span(),
            format!("#[{attr}] functions take no arguments"),
        ));
    }
    let returns_unit = match &sig.output {
        ReturnType::Default => true,
        ReturnType::Type(_, ty) => matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()),
    };
    if !kind.is_method() && !returns_unit {
        return Err(Error::new(
            sig.output.span(),
            format!("#[{attr}] functions return nothing"),
        ));
    }

    let ident = &sig.ident;
    let exported_name = match &options.name {
        Some(name) => name.value(),
        None => ident.unraw().to_string(),
    };
    let arg_names: Vec<_> = (0..arg_types.len())
        .map(|i| format_ident!("__ww_arg{i}"))
        .collect();
    let what = if kind.is_method() {
        format!("method `{exported_name}`")
    } else {
        format!("#[{attr}] `{ident}`")
    };
    let decode = if takes_args {
        quote! {
            let ( #(#arg_names,)* ): ( #(#arg_types,)* ) =
                ::ww_cdk::__private::decode_args::<( #(#arg_types,)* )>(#what);
        }
    } else {
        quote!()
    };
    let call = if is_async {
        quote!(#ident( #(#arg_names),* ).await)
    } else {
        quote!(#ident( #(#arg_names),* ))
    };
    let finish = if !kind.is_method() {
        quote!(let () = #call;)
    } else if options.manual_reply {
        quote!(let _ = #call;)
    } else if returns_unit {
        quote! {
            let () = #call;
            ::ww_cdk::__private::reply_unit();
        }
    } else {
        quote! {
            let __ww_result = #call;
            ::ww_cdk::__private::reply_one(&__ww_result);
        }
    };
    let body = if is_async {
        quote! {
            #decode
            ::ww_cdk::__private::spawn_entry(async move { #finish });
        }
    } else {
        quote! {
            #decode
            #finish
        }
    };
    let variant = kind.variant();
    let name_lit = LitStr::new(&exported_name, Span::call_site());
    let result_types: Vec<Type> = match &sig.output {
        ReturnType::Type(_, ty) if !returns_unit => vec![(**ty).clone()],
        _ => Vec::new(),
    };
    let signature = candid_signature(kind, &name_lit, &arg_types, &result_types);

    Ok(quote! {
        #func

        #signature

        #[doc(hidden)]
        const _: () = {
            fn __ww_cdk_entry() {
                #body
            }
            ::ww_cdk::__private::inventory::submit! {
                ::ww_cdk::__private::Entry {
                    kind: ::ww_cdk::__private::EntryKind::#variant,
                    name: #name_lit,
                    handler: __ww_cdk_entry,
                }
            }
        };
    })
}

/// The Candid signature record of a method or `#[init]` (nothing for the
/// other hooks), compiled only under `cfg(debug_assertions)`.
fn candid_signature(kind: Kind, name: &LitStr, args: &[Type], rets: &[Type]) -> TokenStream2 {
    let candid_kind = match kind {
        Kind::Update => quote!(Update),
        Kind::Query => quote!(Query),
        Kind::CompositeQuery => quote!(CompositeQuery),
        Kind::Init => quote!(Init),
        Kind::PreUpgrade | Kind::PostUpgrade | Kind::Timer => return quote!(),
    };
    quote! {
        #[cfg(debug_assertions)]
        #[doc(hidden)]
        const _: () = {
            fn __ww_cdk_candid_args(
                __ww_types: &mut ::ww_cdk::__private::TypeContainer,
            ) -> ::std::vec::Vec<::ww_cdk::__private::Type> {
                let _ = &__ww_types;
                ::std::vec![ #( __ww_types.add::<#args>() ),* ]
            }
            fn __ww_cdk_candid_rets(
                __ww_types: &mut ::ww_cdk::__private::TypeContainer,
            ) -> ::std::vec::Vec<::ww_cdk::__private::Type> {
                let _ = &__ww_types;
                ::std::vec![ #( __ww_types.add::<#rets>() ),* ]
            }
            ::ww_cdk::__private::inventory::submit! {
                ::ww_cdk::__private::CandidSignature {
                    kind: ::ww_cdk::__private::CandidKind::#candid_kind,
                    name: #name,
                    args: __ww_cdk_candid_args,
                    rets: __ww_cdk_candid_rets,
                }
            }
        };
    }
}

/// Declares an update method: `#[update]`, `#[update(name = "x")]`,
/// `#[update(manual_reply = true)]`. The function may be `async`.
#[proc_macro_attribute]
pub fn update(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Update, attr, item)
}

/// Declares a query method: `#[query]`, `#[query(name = "x")]`,
/// `#[query(manual_reply = true)]`. Its state changes are discarded by the host.
#[proc_macro_attribute]
pub fn query(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Query, attr, item)
}

/// Declares a composite query: `#[composite_query]` (same options as
/// `#[query]`). It runs only as a non-replicated query and may call queries
/// and composite queries of other canisters; nothing it changes is kept.
#[proc_macro_attribute]
pub fn composite_query(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::CompositeQuery, attr, item)
}

/// Declares the install hook; its arguments are decoded from the install argument.
#[proc_macro_attribute]
pub fn init(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Init, attr, item)
}

/// Declares the hook run before an upgrade (on the old code). Takes no arguments.
#[proc_macro_attribute]
pub fn pre_upgrade(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::PreUpgrade, attr, item)
}

/// Declares the hook run after an upgrade (on the new code); its arguments are
/// decoded from the upgrade argument.
#[proc_macro_attribute]
pub fn post_upgrade(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::PostUpgrade, attr, item)
}

/// Declares the global-timer handler (see `ww_cdk::api::set_global_timer`).
/// It may be `async`.
#[proc_macro_attribute]
pub fn on_timer(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Timer, attr, item)
}

/// Alias of [`macro@on_timer`].
#[proc_macro_attribute]
pub fn timer(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Timer, attr, item)
}
