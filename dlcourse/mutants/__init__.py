"""Mutation testing of the hidden tests: `python -m dlcourse mutants WS`.

`operators` makes mutants of each exercise's reference answer (mutmut's operator set plus a
few of ours), `run` grades each one in a Jupyter kernel with the same probes and verdict code
as grading, and `report` writes benchmarks/mutants.md. `benchmarks/mutants-equivalent.toml`
is the committed triage: mutants that behave exactly like the reference, each with the reason
(kept with the course, not in this package, because its entries quote the solutions).
"""
