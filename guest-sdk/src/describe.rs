//! [`Describe`]: what a configured plugin reads, writes and whether it
//! filters. The plugin's name and version are added by
//! [`export_plugin!`](crate::export_plugin).

use crate::{Output, Type};

/// A plugin's inputs, outputs and whether it filters, as configured.
///
/// ```
/// use weir_guest::{Describe, Type};
///
/// let d = Describe::new()
///     .input("fare", Type::F64)
///     .output("trips", Type::I64)
///     .output("fare_sum", Type::F64)
///     .with_filter();
/// assert_eq!(d.inputs(), &[("fare".to_string(), Type::F64)]);
/// assert_eq!(d.outputs().len(), 2);
/// assert!(d.has_filter());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Describe {
    inputs: Vec<(String, Type)>,
    outputs: Vec<(String, Type)>,
    filter: bool,
}

impl Describe {
    /// No inputs, no outputs, no filter.
    pub fn new() -> Self {
        Describe::default()
    }

    /// Declares an input field. The host checks it against the pipeline
    /// schema at deploy time and passes only declared columns.
    #[must_use]
    pub fn input(mut self, name: impl Into<String>, ty: Type) -> Self {
        self.inputs.push((name.into(), ty));
        self
    }

    /// Declares the next output field; rows hold outputs in declaration order.
    #[must_use]
    pub fn output(mut self, name: impl Into<String>, ty: Type) -> Self {
        self.outputs.push((name.into(), ty));
        self
    }

    /// Declares the columns of a struct deriving [`Output`], in field order,
    /// after any outputs declared before.
    ///
    /// ```
    /// use weir_guest::prelude::*;
    ///
    /// #[derive(Output)]
    /// struct Out {
    ///     trips: i64,
    ///     fare: Option<f64>,
    /// }
    ///
    /// let d = Describe::new().input("fare", Type::F64).outputs_of::<Out>();
    /// assert_eq!(d.outputs(), &[("trips".to_string(), Type::I64), ("fare".to_string(), Type::F64)]);
    /// ```
    #[must_use]
    pub fn outputs_of<O: Output>(mut self) -> Self {
        self.outputs
            .extend(O::FIELDS.iter().map(|f| (f.name.to_string(), f.ty)));
        self
    }

    /// Says that [`Plugin::filter`](crate::Plugin::filter) is implemented;
    /// without it the host never calls `filter`.
    #[must_use]
    pub fn with_filter(mut self) -> Self {
        self.filter = true;
        self
    }

    /// The declared inputs, in order.
    pub fn inputs(&self) -> &[(String, Type)] {
        &self.inputs
    }

    /// The declared outputs, in order.
    pub fn outputs(&self) -> &[(String, Type)] {
        &self.outputs
    }

    /// Whether the plugin filters.
    pub fn has_filter(&self) -> bool {
        self.filter
    }
}
