"""fleet-conformance: a conformance test suite for OpAMP and Elastic Fleet."""

__version__ = "0.1.0"
#: The OpAMP specification revision the requirement catalogue follows.
SPEC_VERSION = "opamp-spec v0.20.0 (specification.md, Beta)"
