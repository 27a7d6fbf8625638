//! facerecon-infer
fn main() {}
