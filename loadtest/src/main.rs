//! `ringcast-load` binary entry point: parse the command line, run the workload, print
//! the summary and exit non-zero if the run was not clean.

fn main() {}
