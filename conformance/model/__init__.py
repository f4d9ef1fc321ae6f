"""The executable model of the rules: pure functions with no I/O.

The suite's oracle and the reference server both call these functions, so
the reference is correct by construction and the model is tested on its own.
"""
