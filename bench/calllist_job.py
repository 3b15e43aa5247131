"""
`make bench-calllist`: a large call list checked as a job by real Celery workers on the
extra-large set, the way production runs it. Writes a `rows`-row file (known contacts by
e-mail or phone, known domains, strangers, as the 100k in-request benchmark), validates it and
creates the job as the upload page does, starts `workers` Celery worker processes (each with
one process of its own, `--pool solo`, so that its memory is the worker's) against Redis, and
times from the upload's validation to the assembled file. Reports each worker's resident
memory when idle and at its peak, and checks the result's row count and order.

    make bench-calllist                                   # 1,000,000 rows, two workers, xl set
    make bench-calllist CALLLIST_ARGS="--rows 100000 --workers 1"

Needs the extra-large set seeded (`make bench BENCH_ARGS="--scale xl"`; migrated here if
behind) and Redis
(BENCH_REDIS_URL, default redis://127.0.0.1:6379/14, a database of its own, flushed first).
"""

import argparse
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/debrief_bench_xl"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"


def _rss_mb(pid: int, field: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _start_workers(count: int, log_dir: Path) -> list[subprocess.Popen]:
    workers = []
    for n in range(count):
        log = open(log_dir / f"worker{n}.log", "w")  # noqa: SIM115 (lives as long as the worker)
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "crm_site",
                    "worker",
                    "--pool",
                    "solo",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-n",
                    f"bench{n}@%h",
                    "-l",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
            )
        )
    return workers


def _wait_ready(workers: list[subprocess.Popen], timeout: float = 60) -> None:
    from crm_site.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= len(workers):
            return
        if any(w.poll() is not None for w in workers):
            raise SystemExit("A worker stopped while starting; see its log.")
    raise SystemExit("The workers did not answer within a minute.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    from bench.run import bench_environment

    bench_environment(os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL)
    redis_url = os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS
    os.environ["REDIS_URL"] = redis_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    media = Path(tempfile.mkdtemp(prefix="debrief-bench-media-"))
    os.environ["DEBRIEF_MEDIA_ROOT"] = str(media)
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.core.files.uploadedfile import UploadedFile

    from accounts.models import User
    from bench.suite import call_list_csv
    from suppressions import calllist, jobs
    from suppressions.models import CallListJob, CallListJobStatus

    redis.Redis.from_url(redis_url).flushdb()
    user = User.objects.get(email="rep@debrief.example")
    print(f"Writing a {args.rows:,}-row call list ...", flush=True)
    body = call_list_csv(args.rows)
    source = media / "calls.csv"
    source.write_bytes(body)
    del body

    workers = _start_workers(args.workers, media)
    try:
        _wait_ready(workers)
        time.sleep(1)
        idle = [_rss_mb(w.pid, "VmRSS") for w in workers]
        with open(source, "rb") as handle:
            upload = UploadedFile(handle, name="calls.csv", size=source.stat().st_size)
            started = time.perf_counter()
            layout = calllist.validate(upload)
            validated = time.perf_counter()
            job = jobs.call_list_job_create(upload=upload, layout=layout, owner=user)
        created = time.perf_counter()
        while True:
            job.refresh_from_db()
            if job.status not in (CallListJobStatus.QUEUED, CallListJobStatus.RUNNING):
                break
            if any(w.poll() is not None for w in workers):
                raise SystemExit("A worker stopped during the job; see its log.")
            time.sleep(0.2)
        finished = time.perf_counter()
        peaks = [_rss_mb(w.pid, "VmHWM") for w in workers]
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()

    ok = job.status == CallListJobStatus.DONE
    rows_out = 0
    in_order = True
    if ok:
        with open(jobs.result_file(job), newline="", encoding="utf-8-sig") as result:
            reader = csv.reader(result)
            next(reader)
            for n, row in enumerate(reader):
                rows_out += 1
                if in_order and row[0] != f"Lead {n}":
                    in_order = False
    print(
        f"{args.rows:,} rows, {args.workers} workers ({job.chunks.count()} chunks): "
        f"status {job.status}; validate {validated - started:.1f} s, create "
        f"{created - validated:.1f} s, checked and assembled {finished - created:.1f} s; "
        f"total {finished - started:.1f} s."
    )
    for n, (before, peak) in enumerate(zip(idle, peaks, strict=True)):
        print(f"  worker {n}: idle {before:.0f} MB, peak {peak:.0f} MB, +{peak - before:.0f} MB")
    print(f"  result: {rows_out:,} rows, {'in the same order' if in_order else 'OUT OF ORDER'}")
    CallListJob.objects.filter(pk=job.pk).delete()
    return 0 if ok and rows_out == args.rows and in_order else 1


if __name__ == "__main__":
    sys.exit(main())
