"""API tests through `chalice.test.Client`: the HTTP contract of SPEC §2."""
