//! facerecon-train
