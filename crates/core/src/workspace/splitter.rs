//! Migration files split into statements: the one splitter of `d1ops-sql`, in the shape the
//! workspace reads (statements with their lines and comments, errors naming the line).
pub use d1ops_sql::splitter::{Split, SplitError, Statement, split_statements};
