"""
The benchmark suite (`make bench`) and the bounded load test (`make load`). See BENCHMARKS.md.

Nothing in the apps imports this package; it drives them from outside, through the test client,
their public services, and gunicorn.
"""
