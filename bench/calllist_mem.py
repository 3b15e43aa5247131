"""
Child process of the suite: times the call-list check and measures its memory from a fresh
process, whose idle size is not inflated by the benchmarks that ran before it. Prints one JSON
line. Run by bench.suite.call_list with the benchmark's environment.
"""

import argparse
import json
import os


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--user", type=int, required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from django.test import override_settings

    from accounts.models import User
    from bench.suite import measure_call_list

    user = User.objects.get(pk=args.user)
    with override_settings(ROOT_URLCONF="bench.urls"):
        data = measure_call_list(user, args.rows, args.iterations)
    print(json.dumps(data))


if __name__ == "__main__":
    main()
