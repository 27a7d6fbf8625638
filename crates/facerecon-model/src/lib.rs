//! facerecon-model
