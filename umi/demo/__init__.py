"""The demo: deterministic tools over synthetic data (and, later, the corpus and tiny models)."""
