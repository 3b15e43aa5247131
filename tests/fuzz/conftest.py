"""Counts the fuzzed requests of a run and prints the total at its end."""

from collections import Counter

from tests.test_permission_matrix import world  # noqa: F401  (the objects every URL names)

REQUESTS: Counter[str] = Counter()


def record(name: str) -> None:
    REQUESTS[name] += 1


def pytest_terminal_summary(terminalreporter):
    if REQUESTS:
        terminalreporter.write_line(
            f"fuzzing: {sum(REQUESTS.values()):,} hostile requests across {len(REQUESTS)} URLs "
            "and every role (tests/fuzz/test_every_url.py; a single 500 fails it)"
        )
