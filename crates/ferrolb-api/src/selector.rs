//! Kubernetes label selectors converted to the allocator's plain-data selector, shared by the controller and
//! the speaker.

use ferrolb_ipam::{LabelSelector, Requirement};

use crate::k8s::LabelSelector as K8sSelector;

/// A selector ferrolb cannot evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A match expression with an operator Kubernetes does not define.
    #[error("selector operator {0:?} is not one of In, NotIn, Exists, DoesNotExist")]
    UnknownOperator(String),
}

impl SelectorError {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            SelectorError::UnknownOperator(_) => "unknown_operator",
        }
    }
}

/// Converts a Kubernetes label selector; an unknown operator is an error with a message for a condition.
pub fn selector_from_k8s(selector: &K8sSelector) -> Result<LabelSelector, SelectorError> {
    let mut requirements = Vec::new();
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.clone().unwrap_or_default().into_iter().collect();
        let key = expr.key.clone();
        requirements.push(match expr.operator.as_str() {
            "In" => Requirement::In(key, values),
            "NotIn" => Requirement::NotIn(key, values),
            "Exists" => Requirement::Exists(key),
            "DoesNotExist" => Requirement::DoesNotExist(key),
            other => return Err(SelectorError::UnknownOperator(other.to_owned())),
        });
    }
    Ok(LabelSelector { match_labels: selector.match_labels.clone().unwrap_or_default(), requirements })
}
