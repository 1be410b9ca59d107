//! `#[derive(StateLayout)]` for `handmade_api`: implements `StateLayout` with a fingerprint the
//! compiler computes from the type itself (see `handmade_api::layout`). Structs (named, tuple or
//! unit; lifetime, type and const parameters) mix their name, size, alignment and, per field,
//! its name, offset and the field type's own fingerprint; fieldless enums mix their name, size,
//! alignment and each variant's name and discriminant.
//!
//! Written against `proc_macro` alone (no syn/quote) so a fresh build of the game stays fast.
//! The generated code names `::handmade_api`, so the deriving crate must depend on it under
//! that name (the contract crate itself declares `extern crate self as handmade_api`).

use proc_macro::{Delimiter, Group, Spacing, TokenStream, TokenTree};

const TRAIT: &str = "::handmade_api::StateLayout";
const FNV: &str = "::handmade_api::layout::Fnv";

#[proc_macro_derive(StateLayout)]
pub fn derive_state_layout(input: TokenStream) -> TokenStream {
    let code = match Item::parse(input) {
        Ok(item) => item.expand(),
        Err(message) => format!("::core::compile_error!({message:?});"),
    };
    code.parse().expect("derive(StateLayout) generated code that does not parse")
}

/// One field of a struct or one variant of an enum: its `#[cfg]` attributes (repeated on the
/// code that mixes it), its name and what follows the name (a field's type).
struct Member {
    cfgs: Vec<String>,
    name: String,
    ty: String,
}

enum Body {
    Struct(Vec<Member>),
    Enum(Vec<Member>),
}

struct Item {
    name: String,
    /// Generic parameters as the impl declares them (bounds kept, defaults dropped).
    impl_params: Vec<String>,
    /// The same parameters as arguments of the type (`'a`, `T`, `N`).
    type_args: Vec<String>,
    /// Where-clause predicates: the item's own, then `T: StateLayout` for every type parameter.
    predicates: Vec<String>,
    body: Body,
}

impl Item {
    fn parse(input: TokenStream) -> Result<Item, String> {
        let tokens: Vec<TokenTree> = input.into_iter().collect();
        let mut at = skip_attributes_and_visibility(&tokens, 0, &mut Vec::new());
        let kind = ident_at(&tokens, at).ok_or("derive(StateLayout): expected `struct` or `enum`")?;
        let name = ident_at(&tokens, at + 1).ok_or("derive(StateLayout): expected the item's name")?;
        at += 2;
        let mut item = Item {
            name,
            impl_params: Vec::new(),
            type_args: Vec::new(),
            predicates: Vec::new(),
            body: Body::Enum(vec![]),
        };
        if is_punct(tokens.get(at), '<') {
            let end = matching_angle(&tokens, at)?;
            item.parse_generics(&tokens[at + 1..end])?;
            at = end + 1;
        }
        let (body, where_tokens) = split_body(&tokens[at..]);
        if let Some(predicates) = where_tokens {
            let own = split_top_level_commas(predicates);
            item.predicates.splice(0..0, own.iter().filter(|p| !p.is_empty()).map(|p| to_string(p)));
        }
        item.body = match (kind.as_str(), body) {
            ("struct", Some(group)) => Body::Struct(parse_fields(group)?),
            ("struct", None) => Body::Struct(Vec::new()),
            ("enum", Some(group)) => Body::Enum(parse_variants(group)?),
            _ => return Err(format!("derive(StateLayout) supports structs and fieldless enums, not `{kind}`")),
        };
        Ok(item)
    }

    /// Reads `'a: 'b, T: Copy = u8, const N: usize` into impl parameters and type arguments.
    fn parse_generics(&mut self, tokens: &[TokenTree]) -> Result<(), String> {
        for param in split_top_level_commas(tokens) {
            let at = skip_attributes_and_visibility(&param, 0, &mut Vec::new());
            let param = &param[at..];
            let without_default = &param[..find_top_level(param, '=').unwrap_or(param.len())];
            match param.first() {
                Some(TokenTree::Punct(p)) if p.as_char() == '\'' => {
                    let name = ident_at(param, 1).ok_or("derive(StateLayout): malformed lifetime")?;
                    self.type_args.push(format!("'{name}"));
                }
                Some(TokenTree::Ident(i)) if i.to_string() == "const" => {
                    self.type_args.push(ident_at(param, 1).ok_or("derive(StateLayout): malformed const parameter")?);
                }
                Some(TokenTree::Ident(i)) => {
                    self.type_args.push(i.to_string());
                    self.predicates.push(format!("{i}: {TRAIT}"));
                }
                _ => continue,
            }
            self.impl_params.push(to_string(without_default));
        }
        Ok(())
    }

    fn expand(&self) -> String {
        let mut code = format!(
            "let h = {FNV}::new().item({:?}, ::core::mem::size_of::<Self>(), ::core::mem::align_of::<Self>());\n",
            self.name
        );
        match &self.body {
            Body::Struct(fields) => {
                for f in fields {
                    code += &format!(
                        "{} let h = h.field({:?}, ::core::mem::offset_of!(Self, {}), <{} as {TRAIT}>::FINGERPRINT);\n",
                        f.cfgs.concat(),
                        f.name,
                        f.name,
                        f.ty
                    );
                }
            }
            Body::Enum(variants) => {
                for v in variants {
                    code += &format!("{} let h = h.variant({:?}, Self::{} as u64);\n", v.cfgs.concat(), v.name, v.name);
                }
            }
        }
        format!(
            "#[automatically_derived]\nunsafe impl<{}> {TRAIT} for {}<{}> where {} {{\n\
             const FINGERPRINT: u64 = {{ {code} h.finish() }};\n}}",
            self.impl_params.join(", "),
            self.name,
            self.type_args.join(", "),
            self.predicates.join(", ")
        )
    }
}

/// Named fields `{ a: T, pub b: U }`, tuple fields `(T, pub U)`.
fn parse_fields(group: &Group) -> Result<Vec<Member>, String> {
    let tokens: Vec<TokenTree> = group.stream().into_iter().collect();
    let mut fields = Vec::new();
    for (index, field) in split_top_level_commas(&tokens).into_iter().enumerate() {
        let mut cfgs = Vec::new();
        let at = skip_attributes_and_visibility(&field, 0, &mut cfgs);
        let field = &field[at..];
        if field.is_empty() {
            continue;
        }
        let member = if group.delimiter() == Delimiter::Parenthesis {
            Member { cfgs, name: index.to_string(), ty: to_string(field) }
        } else {
            let name = ident_at(field, 0).ok_or("derive(StateLayout): expected a field name")?;
            if !is_punct(field.get(1), ':') {
                return Err(format!("derive(StateLayout): expected `:` after field `{name}`"));
            }
            Member { cfgs, name, ty: to_string(&field[2..]) }
        };
        fields.push(member);
    }
    Ok(fields)
}

/// Variants of a fieldless enum: `A, B = 3`.
fn parse_variants(group: &Group) -> Result<Vec<Member>, String> {
    let tokens: Vec<TokenTree> = group.stream().into_iter().collect();
    let mut variants = Vec::new();
    for variant in split_top_level_commas(&tokens) {
        let mut cfgs = Vec::new();
        let at = skip_attributes_and_visibility(&variant, 0, &mut cfgs);
        let Some(name) = ident_at(&variant, at) else { continue };
        if let Some(TokenTree::Group(_)) = variant.get(at + 1) {
            return Err(format!("derive(StateLayout) supports fieldless enums only; variant `{name}` has fields"));
        }
        variants.push(Member { cfgs, name, ty: String::new() });
    }
    Ok(variants)
}

/// Skips `#[...]` attributes and `pub`/`pub(...)`, collecting `#[cfg(...)]` ones as text.
fn skip_attributes_and_visibility(tokens: &[TokenTree], mut at: usize, cfgs: &mut Vec<String>) -> usize {
    loop {
        match (tokens.get(at), tokens.get(at + 1)) {
            (Some(TokenTree::Punct(p)), Some(TokenTree::Group(g))) if p.as_char() == '#' => {
                if g.stream().into_iter().next().is_some_and(|t| t.to_string() == "cfg") {
                    cfgs.push(format!("#{g}"));
                }
                at += 2;
            }
            (Some(TokenTree::Ident(i)), next) if i.to_string() == "pub" => {
                let restricted = matches!(next, Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis);
                at += 1 + usize::from(restricted);
            }
            _ => return at,
        }
    }
}

/// The item's body (braces or parentheses) and its where-clause, wherever each appears
/// (`struct A<T> where T: X { .. }` and `struct A<T>(T) where T: X;`).
fn split_body(tokens: &[TokenTree]) -> (Option<&Group>, Option<&[TokenTree]>) {
    let body_at = tokens.iter().position(
        |t| matches!(t, TokenTree::Group(g) if matches!(g.delimiter(), Delimiter::Brace | Delimiter::Parenthesis)),
    );
    let where_at = tokens.iter().position(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "where"));
    let body = body_at.map(|i| match &tokens[i] {
        TokenTree::Group(g) => g,
        _ => unreachable!("position() matched a group"),
    });
    let where_clause = where_at.map(|w| {
        let end = match body_at {
            Some(b) if b > w => b,
            _ => tokens.iter().rposition(|t| is_punct(Some(t), ';')).filter(|&s| s > w).unwrap_or(tokens.len()),
        };
        &tokens[w + 1..end]
    });
    (body, where_clause)
}

/// Splits at commas outside `<...>` (groups already nest the other brackets).
fn split_top_level_commas(tokens: &[TokenTree]) -> Vec<Vec<TokenTree>> {
    let mut parts = vec![Vec::new()];
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        match t {
            TokenTree::Punct(p) if p.as_char() == ',' && depth == 0 => {
                parts.push(Vec::new());
                continue;
            }
            TokenTree::Punct(p) if p.as_char() == '<' => depth += 1,
            TokenTree::Punct(p) if p.as_char() == '>' && !is_arrow(tokens, i) => depth = depth.saturating_sub(1),
            _ => {}
        }
        parts.last_mut().expect("parts starts non-empty").push(t.clone());
    }
    parts
}

/// Position of the `>` closing the `<` at `open`.
fn matching_angle(tokens: &[TokenTree], open: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t {
            TokenTree::Punct(p) if p.as_char() == '<' => depth += 1,
            TokenTree::Punct(p) if p.as_char() == '>' && !is_arrow(tokens, i) => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
    }
    Err("derive(StateLayout): unclosed generic parameter list".into())
}

fn find_top_level(tokens: &[TokenTree], c: char) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        match t {
            TokenTree::Punct(p) if p.as_char() == '<' => depth += 1,
            TokenTree::Punct(p) if p.as_char() == '>' && !is_arrow(tokens, i) => depth = depth.saturating_sub(1),
            TokenTree::Punct(p) if p.as_char() == c && depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// The `>` of `->` (in `fn() -> T` types) closes no angle bracket.
fn is_arrow(tokens: &[TokenTree], i: usize) -> bool {
    i > 0 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '-' && p.spacing() == Spacing::Joint)
}

fn is_punct(token: Option<&TokenTree>, c: char) -> bool {
    matches!(token, Some(TokenTree::Punct(p)) if p.as_char() == c)
}

fn ident_at(tokens: &[TokenTree], at: usize) -> Option<String> {
    match tokens.get(at) {
        Some(TokenTree::Ident(i)) => Some(i.to_string()),
        _ => None,
    }
}

fn to_string(tokens: &[TokenTree]) -> String {
    tokens.iter().cloned().collect::<TokenStream>().to_string()
}
