//! GitHub's GraphQL schema (the vendored SDL) and validation of queries against it: unknown types, fields and
//! arguments, missing required arguments, selections on leaves, undeclared variables, bad enum literals.
//! Messages follow GitHub's (`Field 'x' doesn't exist on type 'Y'`).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use graphql_parser::query::{self as q, Definition, OperationDefinition, Selection, SelectionSet, TypeCondition};
use graphql_parser::schema::{self as sdl, TypeDefinition};

const SDL: &str = include_str!("../../fixtures/github/github-schema.graphql");

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Ty {
    Named(String),
    List(Box<Ty>),
    NonNull(Box<Ty>),
}

impl Ty {
    fn from_ast<'a>(t: &q::Type<'a, &'a str>) -> Ty {
        match t {
            q::Type::NamedType(n) => Ty::Named(n.to_string()),
            q::Type::ListType(t) => Ty::List(Box::new(Ty::from_ast(t))),
            q::Type::NonNullType(t) => Ty::NonNull(Box::new(Ty::from_ast(t))),
        }
    }

    pub fn base(&self) -> &str {
        match self {
            Ty::Named(n) => n,
            Ty::List(t) | Ty::NonNull(t) => t.base(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Kind {
    Object,
    Interface,
    Union,
    Enum,
    InputObject,
    Scalar,
}

pub(crate) struct Field {
    pub args: HashMap<String, (Ty, bool)>, // type, has a default
    pub ty: Ty,
}

pub(crate) struct TypeDef {
    pub kind: Kind,
    pub fields: HashMap<String, Field>,
    pub inputs: HashMap<String, (Ty, bool)>,
    pub values: HashSet<String>,
    pub members: Vec<String>,    // union members
    pub interfaces: Vec<String>, // implemented interfaces
}

pub(crate) struct Schema {
    pub types: HashMap<String, TypeDef>,
}

fn inputs<'a>(values: &[sdl::InputValue<'a, &'a str>]) -> HashMap<String, (Ty, bool)> {
    values.iter().map(|v| (v.name.to_string(), (Ty::from_ast(&v.value_type), v.default_value.is_some()))).collect()
}

fn fields<'a>(fields: &[sdl::Field<'a, &'a str>]) -> HashMap<String, Field> {
    fields
        .iter()
        .map(|f| (f.name.to_string(), Field { args: inputs(&f.arguments), ty: Ty::from_ast(&f.field_type) }))
        .collect()
}

pub(crate) fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let doc = sdl::parse_schema::<&str>(SDL).expect("the vendored GitHub schema parses");
        let mut types = HashMap::new();
        let blank = |kind| TypeDef {
            kind,
            fields: HashMap::new(),
            inputs: HashMap::new(),
            values: HashSet::new(),
            members: Vec::new(),
            interfaces: Vec::new(),
        };
        for name in ["String", "Int", "Float", "Boolean", "ID"] {
            types.insert(name.to_string(), blank(Kind::Scalar));
        }
        for def in &doc.definitions {
            let sdl::Definition::TypeDefinition(def) = def else { continue };
            let (name, t) = match def {
                TypeDefinition::Scalar(s) => (s.name, blank(Kind::Scalar)),
                TypeDefinition::Object(o) => (
                    o.name,
                    TypeDef {
                        fields: fields(&o.fields),
                        interfaces: o.implements_interfaces.iter().map(|i| i.to_string()).collect(),
                        ..blank(Kind::Object)
                    },
                ),
                TypeDefinition::Interface(i) => {
                    (i.name, TypeDef { fields: fields(&i.fields), ..blank(Kind::Interface) })
                }
                TypeDefinition::Union(u) => {
                    (u.name, TypeDef { members: u.types.iter().map(|t| t.to_string()).collect(), ..blank(Kind::Union) })
                }
                TypeDefinition::Enum(e) => (
                    e.name,
                    TypeDef { values: e.values.iter().map(|v| v.name.to_string()).collect(), ..blank(Kind::Enum) },
                ),
                TypeDefinition::InputObject(i) => {
                    (i.name, TypeDef { inputs: inputs(&i.fields), ..blank(Kind::InputObject) })
                }
            };
            types.insert(name.to_string(), t);
        }
        Schema { types }
    })
}

impl Schema {
    /// Whether an object of type `concrete` matches a fragment on `condition` (itself, an interface, a union).
    pub fn fits(&self, concrete: &str, condition: &str) -> bool {
        concrete == condition
            || self.types.get(concrete).is_some_and(|t| t.interfaces.iter().any(|i| i == condition))
            || self.types.get(condition).is_some_and(|t| t.members.iter().any(|m| m == concrete))
    }
}

pub(crate) type Doc<'a> = q::Document<'a, &'a str>;

struct Checker<'s, 'a> {
    schema: &'s Schema,
    doc: &'s Doc<'a>,
    variables: HashMap<String, Ty>,
    errors: Vec<String>,
    visiting: Vec<String>,
}

/// All validation errors of a document, empty if GitHub would run it.
pub(crate) fn validate(doc: &Doc<'_>) -> Vec<String> {
    let schema = schema();
    let mut checker = Checker { schema, doc, variables: HashMap::new(), errors: Vec::new(), visiting: Vec::new() };
    for def in &doc.definitions {
        let (root, vars, set) = match def {
            Definition::Operation(OperationDefinition::Query(op)) => {
                ("Query", &op.variable_definitions[..], &op.selection_set)
            }
            Definition::Operation(OperationDefinition::Mutation(op)) => {
                ("Mutation", &op.variable_definitions[..], &op.selection_set)
            }
            Definition::Operation(OperationDefinition::SelectionSet(set)) => ("Query", &[][..], set),
            Definition::Operation(OperationDefinition::Subscription(_)) => {
                checker.errors.push("Subscriptions are not supported".to_string());
                continue;
            }
            Definition::Fragment(_) => continue, // checked where spread
        };
        checker.variables.clear();
        for v in vars {
            let ty = Ty::from_ast(&v.var_type);
            match schema.types.get(ty.base()).map(|t| t.kind) {
                Some(Kind::Scalar | Kind::Enum | Kind::InputObject) => {}
                Some(_) => checker.errors.push(format!("${} is not a valid input type: {}", v.name, ty.base())),
                None => checker.errors.push(format!("{} isn't a defined input type (on ${})", ty.base(), v.name)),
            }
            checker.variables.insert(v.name.to_string(), ty);
        }
        checker.selection(root, set);
    }
    checker.errors
}

impl<'a> Checker<'_, 'a> {
    fn selection(&mut self, on: &str, set: &SelectionSet<'a, &'a str>) {
        let Some(t) = self.schema.types.get(on) else { return };
        for item in &set.items {
            match item {
                Selection::Field(f) => self.field(on, t, f),
                Selection::InlineFragment(frag) => match &frag.type_condition {
                    Some(TypeCondition::On(cond)) if !self.schema.types.contains_key(*cond) => {
                        self.errors.push(format!("No such type {cond}, so it can't be a fragment condition"))
                    }
                    Some(TypeCondition::On(cond)) => self.selection(cond, &frag.selection_set),
                    None => self.selection(on, &frag.selection_set),
                },
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name;
                    let found = self.doc.definitions.iter().find_map(|d| match d {
                        Definition::Fragment(f) if f.name == name => Some(f),
                        _ => None,
                    });
                    match found {
                        None => self.errors.push(format!("Fragment {name} was used, but not defined")),
                        Some(_) if self.visiting.iter().any(|v| v == name) => {
                            self.errors.push(format!("Fragment {name} contains an infinite loop"))
                        }
                        Some(f) => {
                            let TypeCondition::On(cond) = &f.type_condition;
                            self.visiting.push(name.to_string());
                            self.selection(cond, &f.selection_set);
                            self.visiting.pop();
                        }
                    }
                }
            }
        }
    }

    fn field(&mut self, on: &str, t: &TypeDef, f: &q::Field<'a, &'a str>) {
        if f.name == "__typename" {
            return;
        }
        let Some(def) = t.fields.get(f.name) else {
            self.errors.push(format!("Field '{}' doesn't exist on type '{on}'", f.name));
            return;
        };
        for (name, value) in &f.arguments {
            match def.args.get(*name) {
                Some((ty, _)) => self.value(ty, value, &format!("argument '{name}' on Field '{}'", f.name)),
                None => self.errors.push(format!("Field '{}' doesn't accept argument '{name}'", f.name)),
            }
        }
        let mut missing: Vec<&str> = def
            .args
            .iter()
            .filter(|(name, (ty, default))| {
                matches!(ty, Ty::NonNull(_)) && !default && !f.arguments.iter().any(|(n, _)| n == name)
            })
            .map(|(name, _)| name.as_str())
            .collect();
        missing.sort();
        if !missing.is_empty() {
            self.errors.push(format!("Field '{}' is missing required arguments: {}", f.name, missing.join(", ")));
        }
        let returns = def.ty.base();
        let leaf = self.schema.types.get(returns).is_some_and(|t| matches!(t.kind, Kind::Scalar | Kind::Enum));
        match (leaf, f.selection_set.items.is_empty()) {
            (true, false) => self.errors.push(format!(
                "Selections can't be made on scalars (field '{}' returns {returns} but has selections)",
                f.name
            )),
            (false, true) => self.errors.push(format!("Field '{}' returns {returns} but has no selections.", f.name)),
            (false, false) => self.selection(returns, &f.selection_set),
            (true, true) => {}
        }
    }

    fn value(&mut self, ty: &Ty, value: &q::Value<'a, &'a str>, at: &str) {
        use q::Value as V;
        match (ty, value) {
            (_, V::Variable(name)) => match self.variables.get(*name) {
                None => self.errors.push(format!("Variable ${name} is used by {at} but not declared")),
                Some(declared) if declared.base() != ty.base() => self.errors.push(format!(
                    "Type mismatch on variable ${name} and {at} (expected {}, got {})",
                    ty.base(),
                    declared.base()
                )),
                Some(_) => {}
            },
            (Ty::NonNull(_), V::Null) => self.errors.push(format!("{at} has an invalid value (null)")),
            (Ty::NonNull(inner), v) => self.value(inner, v, at),
            (_, V::Null) => {}
            (Ty::List(inner), V::List(items)) => items.iter().for_each(|i| self.value(inner, i, at)),
            (Ty::List(inner), v) => self.value(inner, v, at),
            (Ty::Named(name), v) => {
                let Some(t) = self.schema.types.get(name.as_str()) else { return };
                match (t.kind, v) {
                    (Kind::Enum, V::Enum(e)) if t.values.contains(*e) => {}
                    (Kind::Enum, _) => self.errors.push(format!("{at} has an invalid value: not a {name} enum value")),
                    (Kind::InputObject, V::Object(fields)) => {
                        for (key, item) in fields {
                            match t.inputs.get(*key) {
                                Some((ty, _)) => self.value(ty, item, &format!("{at} (field '{key}' of {name})")),
                                None => {
                                    self.errors.push(format!("InputObject '{name}' doesn't accept argument '{key}'"))
                                }
                            }
                        }
                        for (key, (ty, default)) in &t.inputs {
                            if matches!(ty, Ty::NonNull(_)) && !default && !fields.contains_key(key.as_str()) {
                                self.errors.push(format!("Argument '{key}' on InputObject '{name}' is required"));
                            }
                        }
                    }
                    (Kind::InputObject, _) => self.errors.push(format!("{at} has an invalid value: expected {name}")),
                    (Kind::Scalar, V::Object(_) | V::List(_) | V::Enum(_)) => {
                        self.errors.push(format!("{at} has an invalid value: expected {name}"))
                    }
                    _ => {}
                }
            }
        }
    }
}
