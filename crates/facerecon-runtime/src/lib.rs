//! facerecon-runtime
