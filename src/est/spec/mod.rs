//! Text to syntax tree: `.est` source → [`Ast`], or the first syntax error as a [`Diagnostic`].
//! Only this module knows pest; nothing it returns mentions grammar rules.

pub mod ast;
mod parser;

pub use ast::*;
pub use parser::parse;
