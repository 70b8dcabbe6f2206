//! The Kubernetes client every subcommand uses, built from the same places in the same order.

use std::path::{Path, PathBuf};

use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};

/// Why no client could be built; each variant has a static [`ClientError::label`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig named on the command line could not be read or parsed.
    #[error("reading kubeconfig {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: KubeconfigError,
    },
    /// The kubeconfig was read but does not describe a usable cluster.
    #[error("using kubeconfig {}: {source}", path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: KubeconfigError,
    },
    /// Neither in-cluster configuration nor `KUBECONFIG` / `~/.kube/config` was found.
    #[error("finding cluster configuration (in-cluster, KUBECONFIG, ~/.kube/config): {0}")]
    Infer(#[source] InferConfigError),
    /// The configuration was found but the client could not be built from it (TLS settings, say).
    #[error("building the Kubernetes client: {0}")]
    Build(#[source] kube::Error),
}

impl ClientError {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ClientError::Read { .. } => "kubeconfig_read",
            ClientError::Load { .. } => "kubeconfig_load",
            ClientError::Infer(_) => "infer",
            ClientError::Build(_) => "build",
        }
    }
}

/// Builds a client from `kubeconfig` if given, else in-cluster configuration, else `KUBECONFIG` or
/// `~/.kube/config`.
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let file =
                Kubeconfig::read_from(path).map_err(|source| ClientError::Read { path: path.to_owned(), source })?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|source| ClientError::Load { path: path.to_owned(), source })?
        }
        None => kube::Config::infer().await.map_err(ClientError::Infer)?,
    };
    kube::Client::try_from(config).map_err(ClientError::Build)
}
