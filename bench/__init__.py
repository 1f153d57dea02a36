"""`make bench`: one run of the local stack measuring the figures the issues ask for.

`python -m bench` prints one Markdown table (metric | measured | target | ok?) and the estimated
AWS cost per 1,000 grant lifecycles, and rewrites `docs/performance.md` with the same (pass
`--no-write` to only print). It is not part of `make test`: its figures depend on the machine.
"""
