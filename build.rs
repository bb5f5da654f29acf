//! Lets what links libtorch run without LD_LIBRARY_PATH, and keeps CUDA reachable.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // torch-sys (`links = "tch"`) exports its library folder to crates that depend on it directly.
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    for target in ["bin=est-torch", "tests"] {
        println!("cargo:rustc-link-arg-{target}=-Wl,-rpath,{lib}");
    }
    // The linker drops libtorch_cuda as unneeded (nothing names its symbols), which leaves CUDA
    // unavailable at run time even on a GPU machine; keep it where it exists.
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg-bin=est-torch=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
