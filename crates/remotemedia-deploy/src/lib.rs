//! Nothing to link: this crate holds the checks of the Kubernetes manifests under
//! `deploy/kubernetes/` (`tests/manifests.rs`), kept out of the other crates so that
//! their builds do not compile the Kubernetes API types.
