//! facerecon-export
