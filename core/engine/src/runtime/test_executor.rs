//! A glommio executor for a unit test's body (tests only).

/// Runs the future `f` makes on a fresh local executor and waits for it.
pub(crate) fn run_local<F: std::future::Future<Output = ()> + 'static>(
    f: impl FnOnce() -> F + Send + 'static,
) {
    glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(f)
        .expect("executor")
        .join()
        .expect("test body");
}
