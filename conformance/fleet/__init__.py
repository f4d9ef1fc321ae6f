"""Fleet REST API conformance: a bounded client, evidence and generated requests."""
