//! Lets what links libtorch run without LD_LIBRARY_PATH, keeps CUDA reachable, and builds the
//! small C++ part that hands Rust memory to libtorch.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=lower/blob.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    // torch-sys (`links = "tch"`) exports its library folder to crates that depend on it directly.
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo::error=torch-sys did not say where libtorch is; source scripts/libtorch-env first");
        return;
    };
    // Every target: the library's own unit tests call libtorch too.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // The linker drops libtorch_cuda as unneeded (nothing names its symbols), which leaves CUDA
    // unavailable at run time even on a GPU machine; keep it where it exists.
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg-bin=est-torch=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    let include = std::path::Path::new(&lib).join("../include");
    // The ABI every libtorch from PyPI uses since torch 2.7; torch-sys assumes it too.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .std("c++17")
        .include(include)
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .warnings(false)
        .file("lower/blob.cpp")
        .compile("est_blob");
}
