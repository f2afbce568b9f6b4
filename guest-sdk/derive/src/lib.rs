//! `weir-guest-derive`: `#[derive(Output)]` for the `weir-guest` SDK.
//!
//! Use it through the SDK (`use weir_guest::prelude::*;` brings both the trait and the
//! derive), not directly: the generated code names `::weir_guest`, so the plugin crate must
//! depend on `weir-guest` under that name. The SDK's documentation shows the derive in use.
//!
//! On a struct with named fields it implements `weir_guest::Output`: the fields, in order,
//! are the plugin's output columns (name, type from the field's type, nullable when it is
//! an `Option`), and a value of the struct becomes a `weir_guest::Row` in that order. A
//! field may be renamed with `#[output(name = "...")]`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::ext::IdentExt as _;
use syn::{Data, DeriveInput, Fields, LitStr, parse_macro_input};

/// Implements `weir_guest::Output` (and `From<Self> for weir_guest::Row`) for a struct
/// with named fields of the types `weir_guest::OutputValue` supports: `i64`, `f64`,
/// `bool`, `String` and `Option` of each.
///
/// Attributes: `#[output(name = "column")]` on a field names its column (default: the
/// field's name).
#[proc_macro_derive(Output, attributes(output))]
pub fn derive_output(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The expansion, on `proc_macro2` tokens so that it can be unit-tested.
fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "`#[derive(Output)]` needs a struct without generic parameters: \
             every output column has one fixed type",
        ));
    }
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => &named.named,
            _ => {
                return Err(syn::Error::new(
                    Span::call_site(),
                    "`#[derive(Output)]` needs a struct with named fields: \
                     the field names are the output column names",
                ));
            }
        },
        Data::Enum(data) => {
            return Err(syn::Error::new_spanned(
                data.enum_token,
                "`#[derive(Output)]` works on structs only: one field per output column",
            ));
        }
        Data::Union(data) => {
            return Err(syn::Error::new_spanned(
                data.union_token,
                "`#[derive(Output)]` works on structs only: one field per output column",
            ));
        }
    };

    let mut columns: Vec<String> = Vec::with_capacity(fields.len());
    let mut idents = Vec::with_capacity(fields.len());
    let mut types = Vec::with_capacity(fields.len());
    for field in fields {
        let Some(ident) = field.ident.as_ref() else {
            continue;
        };
        let mut column = ident.unraw().to_string();
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("output")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    let value: LitStr = meta.value()?.parse()?;
                    if value.value().is_empty() {
                        return Err(syn::Error::new_spanned(
                            &value,
                            "an output column name cannot be empty",
                        ));
                    }
                    column = value.value();
                    Ok(())
                } else {
                    Err(meta.error("unknown `output` option; the only one is `name = \"...\"`"))
                }
            })?;
        }
        if columns.contains(&column) {
            return Err(syn::Error::new_spanned(
                ident,
                format!("output column `{column}` is declared twice"),
            ));
        }
        columns.push(column);
        idents.push(ident);
        types.push(&field.ty);
    }

    Ok(quote! {
        impl ::weir_guest::Output for #name {
            const FIELDS: &'static [::weir_guest::OutputField] = &[
                #(
                    ::weir_guest::OutputField {
                        name: #columns,
                        ty: <#types as ::weir_guest::OutputValue>::TYPE,
                        nullable: <#types as ::weir_guest::OutputValue>::NULLABLE,
                    },
                )*
            ];

            fn into_row(self) -> ::weir_guest::Row {
                let #name { #(#idents),* } = self;
                ::weir_guest::Row::from(::std::vec![
                    #(
                        (
                            ::std::string::String::from(#columns),
                            ::weir_guest::OutputValue::into_value(#idents),
                        ),
                    )*
                ])
            }
        }

        impl ::core::convert::From<#name> for ::weir_guest::Row {
            fn from(output: #name) -> Self {
                ::weir_guest::Output::into_row(output)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(source: &str) -> String {
        let input: DeriveInput = syn::parse_str(source).expect("test input parses");
        match expand(&input) {
            Ok(tokens) => panic!("expected an error, got {tokens}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn columns_follow_field_order_and_renames() {
        let input: DeriveInput =
            syn::parse_str("struct Out { count: i64, #[output(name = \"p95\")] r#p: Option<f64> }")
                .expect("test input parses");
        let tokens = expand(&input).expect("expands").to_string();
        let count = tokens.find("\"count\"").expect("count is a column");
        let p95 = tokens
            .find("\"p95\"")
            .expect("the rename is the column name");
        assert!(count < p95, "{tokens}");
        assert!(!tokens.contains("\"p\""), "{tokens}");
    }

    #[test]
    fn shapes_without_named_fields_are_refused() {
        assert!(error_of("struct Out(i64);").contains("named fields"));
        assert!(error_of("struct Out;").contains("named fields"));
        assert!(error_of("enum Out { A }").contains("structs only"));
        assert!(error_of("struct Out<T> { v: T }").contains("generic"));
    }

    #[test]
    fn bad_attributes_and_duplicate_columns_are_refused() {
        assert!(
            error_of("struct Out { #[output(rename = \"x\")] a: i64 }")
                .contains("unknown `output` option")
        );
        assert!(error_of("struct Out { #[output(name = \"\")] a: i64 }").contains("empty"));
        assert_eq!(
            error_of("struct Out { a: i64, #[output(name = \"a\")] b: i64 }"),
            "output column `a` is declared twice"
        );
    }
}
