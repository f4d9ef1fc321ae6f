"""The conformance tests, one module per area of the specification."""
