//! include/facerecon.h checked mechanically against the Rust definitions:
//!
//! * every `#[repr(C)]` struct: size, alignment, and each field's offset and size, as C `_Static_assert`s
//!   generated from `size_of` / `offset_of!` and compiled against the header by the C compiler
//!   tests/c_example.rs uses (`$CC`, else `cc`);
//! * every status and fit value, and `FACERECON_ABI_VERSION`, the same way;
//! * the field and constant *names* both ways: the Rust lists are exhaustive (a field or variant added
//!   in Rust only does not compile until it is listed here), and the header's structs and enums are
//!   parsed and compared with them (one added in C only fails the test, even where it would fit in
//!   tail padding and leave the size unchanged).
//!
//! Also the `struct_size` rule of `facerecon_options`.

use std::{
    ffi::CString,
    mem::{align_of, offset_of, size_of},
    path::{Path, PathBuf},
    process::Command,
};

use facerecon::{
    facerecon_abi_version, facerecon_batch_size, facerecon_close, facerecon_last_error, facerecon_last_error_code,
    facerecon_open, Fit, Frame, HoleBox, Options, Status, ABI_VERSION,
};

/// A `#[repr(C)]` struct as Rust lays it out.
struct StructLayout {
    c_name: &'static str,
    size: usize,
    align: usize,
    /// (name, offset, size) in declaration order.
    fields: Vec<(&'static str, usize, usize)>,
}

/// The size of the field `get` reads, without a value of the struct.
fn field_size<T, F>(_get: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

macro_rules! layout {
    ($c_name:literal, $t:ident { $($f:ident),* $(,)? }) => {{
        // Exhaustive: a field added to the Rust struct but not listed here is a compile error (rustc words
        // it "pattern requires `..` due to inaccessible fields", pointing here).
        #[allow(dead_code)]
        fn exhaustive(v: $t) {
            let $t { $($f: _),* } = v;
        }
        StructLayout {
            c_name: $c_name,
            size: size_of::<$t>(),
            align: align_of::<$t>(),
            fields: vec![$((stringify!($f), offset_of!($t, $f), field_size(|v: &$t| &v.$f))),*],
        }
    }};
}

fn structs() -> Vec<StructLayout> {
    vec![
        layout!(
            "facerecon_options",
            Options {
                struct_size,
                threads,
                device_id,
                batch_size,
                fit,
                ort_library,
                feather,
            }
        ),
        layout!(
            "facerecon_frame",
            Frame {
                rgb,
                width,
                height,
                stride_bytes,
                mask,
                mask_stride,
                out_rgb,
                out_stride,
            }
        ),
        layout!("facerecon_box", HoleBox { x, y, width, height }),
    ]
}

/// The C name of each status (exhaustive: a new Rust status does not compile until it is named here).
fn status_name(s: Status) -> &'static str {
    match s {
        Status::Ok => "FACERECON_OK",
        Status::InvalidArgument => "FACERECON_INVALID_ARGUMENT",
        Status::Model => "FACERECON_MODEL",
        Status::Inference => "FACERECON_INFERENCE",
        Status::OrtLibrary => "FACERECON_ORT_LIBRARY",
        Status::Provider => "FACERECON_PROVIDER",
        Status::Image => "FACERECON_IMAGE",
        Status::Internal => "FACERECON_INTERNAL",
        Status::InvalidHandle => "FACERECON_INVALID_HANDLE",
    }
}

const STATUSES: [Status; 9] = [
    Status::Ok,
    Status::InvalidArgument,
    Status::Model,
    Status::Inference,
    Status::OrtLibrary,
    Status::Provider,
    Status::Image,
    Status::Internal,
    Status::InvalidHandle,
];

fn fit_name(f: Fit) -> &'static str {
    match f {
        Fit::Auto => "FACERECON_FIT_AUTO",
        Fit::Whole => "FACERECON_FIT_WHOLE",
        Fit::Crop => "FACERECON_FIT_CROP",
    }
}

const FITS: [Fit; 3] = [Fit::Auto, Fit::Whole, Fit::Crop];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn header_text() -> String {
    std::fs::read_to_string(repo_root().join("include/facerecon.h")).expect("read include/facerecon.h")
}

/// The header without its comments.
fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("unterminated comment") + start + 2;
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The body of `typedef <kind> <name> { ... } <name>;`.
fn c_body<'a>(code: &'a str, kind: &str, name: &str) -> &'a str {
    let open = format!("typedef {kind} {name} {{");
    let start = code
        .find(&open)
        .unwrap_or_else(|| panic!("include/facerecon.h has no `{open}`"))
        + open.len();
    let len = code[start..].find('}').expect("unterminated body");
    &code[start..start + len]
}

/// The field names of a C struct, in order (the last identifier of each declaration).
fn c_fields(code: &str, name: &str) -> Vec<String> {
    c_body(code, "struct", name)
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .find(|w| !w.is_empty())
                .unwrap_or_else(|| panic!("cannot read the declaration `{d}` of {name}"))
                .to_string()
        })
        .collect()
}

/// The constant names of a C enum, in order.
fn c_enumerators(code: &str, name: &str) -> Vec<String> {
    c_body(code, "enum", name)
        .split(',')
        .map(|e| e.split('=').next().unwrap_or("").trim().to_string())
        .filter(|e| !e.is_empty())
        .collect()
}

/// The C file of static assertions: every number Rust knows about the ABI, as the header must say it.
fn assertions() -> String {
    let mut c = String::from("#include <stddef.h>\n#include \"facerecon.h\"\n\n");
    let mut check = |expr: String, value: usize| {
        c.push_str(&format!(
            "_Static_assert({expr} == {value}, \"{expr} is {value} in Rust\");\n"
        ));
    };
    for s in structs() {
        let t = s.c_name;
        check(format!("sizeof({t})"), s.size);
        check(format!("_Alignof({t})"), s.align);
        for (f, offset, size) in &s.fields {
            check(format!("offsetof({t}, {f})"), *offset);
            check(format!("sizeof((({t} *)0)->{f})"), *size);
        }
    }
    check("sizeof(facerecon_status)".into(), size_of::<Status>());
    for s in STATUSES {
        check(status_name(s).into(), s as usize);
    }
    for f in FITS {
        check(fit_name(f).into(), f as usize);
    }
    check("FACERECON_ABI_VERSION".into(), ABI_VERSION as usize);
    c
}

#[test]
fn header_layouts_and_values_match_rust() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("facerecon_abi_check.c");
    std::fs::write(&file, assertions()).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only"])
        .arg("-I")
        .arg(repo_root().join("include"))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(
        out.status.success(),
        "include/facerecon.h disagrees with the Rust definitions ({cc}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn header_names_every_field_and_constant_rust_has_and_no_other() {
    let code = strip_comments(&header_text());
    for s in structs() {
        let rust: Vec<&str> = s.fields.iter().map(|f| f.0).collect();
        assert_eq!(
            c_fields(&code, s.c_name),
            rust,
            "fields of {} (header vs Rust)",
            s.c_name
        );
    }
    let statuses: Vec<&str> = STATUSES.iter().map(|s| status_name(*s)).collect();
    assert_eq!(
        c_enumerators(&code, "facerecon_status"),
        statuses,
        "facerecon_status (header vs Rust)"
    );
    let fits: Vec<&str> = FITS.iter().map(|f| fit_name(*f)).collect();
    assert_eq!(
        c_enumerators(&code, "facerecon_fit"),
        fits,
        "facerecon_fit (header vs Rust)"
    );
    assert!(code.contains("uint32_t facerecon_abi_version(void);"));
    assert_eq!(facerecon_abi_version(), ABI_VERSION);
}

fn last_error() -> String {
    // SAFETY: the library's message pointer is valid until this thread's next call.
    unsafe { std::ffi::CStr::from_ptr(facerecon_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A zeroed struct (struct_size 0) or one shorter than the first versioned layout is refused before
/// anything is loaded.
#[test]
fn options_without_a_valid_struct_size_are_refused() {
    let path = CString::new("/nonexistent/model.onnx").unwrap();
    let min = offset_of!(Options, feather) + size_of::<u32>();
    for size in [0, 8, min - 1] {
        let opts = Options {
            struct_size: size,
            ..Options::default()
        };
        // SAFETY: valid string and options.
        let m = unsafe { facerecon_open(path.as_ptr(), &opts) };
        assert!(m.is_null());
        assert_eq!(
            facerecon_last_error_code(),
            Status::InvalidArgument as i32,
            "size {size}"
        );
        assert!(last_error().contains("struct_size"), "{}", last_error());
    }
}

/// A caller compiled against a later header passes a longer struct: the library reads its own fields
/// and ignores the rest. The shortest accepted size (ending at `feather`) opens too. Needs ONNX Runtime.
#[test]
fn options_from_a_longer_or_minimal_struct_are_read_up_to_the_library_size() {
    #[repr(C)]
    struct Newer {
        base: Options,
        later_field: u64,
    }
    let lib = CString::new(std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH (make test sets it)")).unwrap();
    let path = CString::new(
        repo_root()
            .join("crates/facerecon-runtime/tests/data/identity.onnx")
            .to_str()
            .unwrap(),
    )
    .unwrap();
    let base = Options {
        threads: 1,
        batch_size: 3,
        ort_library: lib.as_ptr(),
        ..Options::default()
    };
    let newer = Newer {
        base: Options {
            struct_size: size_of::<Newer>(),
            ..base
        },
        later_field: u64::MAX,
    };
    let minimal = Options {
        struct_size: offset_of!(Options, feather) + size_of::<u32>(),
        ..base
    };
    for opts in [&newer.base, &minimal] {
        // SAFETY: valid strings; `opts` is readable for its struct_size bytes.
        let m = unsafe { facerecon_open(path.as_ptr(), opts) };
        assert!(!m.is_null(), "struct_size {}: {}", opts.struct_size, last_error());
        // SAFETY: an open handle.
        assert_eq!(unsafe { facerecon_batch_size(m) }, 3);
        // SAFETY: an open handle, closed once.
        assert_eq!(unsafe { facerecon_close(m) }, 0);
    }
}
