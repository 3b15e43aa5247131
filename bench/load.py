"""
`make load`: a bounded load test on loopback. Starts gunicorn (crm_site.wsgi, 2 sync workers,
DEBUG off) on a free port of 127.0.0.1 against the benchmark database, logs 50 demo users in
through the real login form (each with its own cookies), lets them click through a mix of pages
for a fixed time, prints req/s, p50, p99, errors and each worker's RSS, and stops gunicorn.
The whole run is capped at 60 s. Standard library only on the client side.

    python -m bench.load [--users 50] [--duration 30] [--think 0]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

HOST = "127.0.0.1"
TOTAL_LIMIT_S = 60
STARTUP_LIMIT_S = 20
STOP_LIMIT_S = 10
DRAIN_S = 12
PASSWORD = "debrief-demo-2026"
# Page mix: (name, weight). Every user visits only pages it may see.
MIX = [
    ("plan", 20),
    ("pipeline", 25),
    ("board", 15),
    ("company", 15),
    ("deal", 15),
    ("insights", 10),
]
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, -(-len(ordered) * pct // 100) - 1)] if ordered else float("nan")


# --- the users ------------------------------------------------------------------------------------
@dataclass
class Persona:
    email: str
    deals: list[int]
    companies: list[int]


def personas(count: int) -> list[Persona]:
    """The demo managers and the reps with the most deals, each with deals and companies."""
    from django.db.models import Count

    from accounts.models import Role, User
    from opportunities.models import OPEN_STAGES, Opportunity
    from opportunities.selectors import opportunities_visible_to

    managers = list(User.objects.filter(role=Role.MANAGER, is_active=True).order_by("email")[:2])
    reps = list(
        User.objects.filter(role=Role.REP, is_active=True)
        .annotate(n=Count("opportunities"))
        .order_by("-n", "email")[: max(0, count - len(managers))]
    )
    rng = random.Random(2026)
    chosen = []
    for user in [*managers, *reps][:count]:
        visible = opportunities_visible_to(user).filter(stage__in=OPEN_STAGES)
        rows = list(visible.order_by("-id").values_list("id", "company_id")[:200])
        if not rows:
            rows = list(Opportunity.objects.filter(owner=user).values_list("id", "company_id")[:50])
        picked = rng.sample(rows, min(30, len(rows)))
        chosen.append(
            Persona(user.email, [d for d, _ in picked], sorted({c for _, c in picked}) or [1])
        )
    return chosen


# --- one user's browser ---------------------------------------------------------------------------
@dataclass
class Sample:
    page: str
    ms: float
    status: int
    at: float


@dataclass
class Browser:
    port: int
    persona: Persona
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        headers = {"Host": f"{HOST}:{self.port}", "User-Agent": "debrief-load/1"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            data = urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            content = response.read()
            # The cookies are marked Secure (DEBUG off); this client sends them over loopback
            # HTTP anyway, as a TLS-terminating proxy in front of gunicorn would.
            for header in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = header.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            return response.status, content
        finally:
            conn.close()

    def login(self) -> bool:
        status, page = self.request("GET", "/accounts/login/")
        match = CSRF_INPUT.search(page.decode("utf-8", "replace"))
        if status != 200 or not match:
            return False
        status, _ = self.request(
            "POST",
            "/accounts/login/",
            {
                "csrfmiddlewaretoken": match.group(1),
                "username": self.persona.email,
                "password": PASSWORD,
            },
        )
        return status == 302 and "sessionid" in self.cookies

    def path_for(self, page: str, rng: random.Random) -> str:
        if page == "plan":
            return "/plan/"
        if page == "pipeline":
            return "/opportunities/"
        if page == "board":
            return "/opportunities/board/"
        if page == "company":
            return f"/companies/{rng.choice(self.persona.companies)}/"
        if page == "deal":
            return f"/opportunities/{rng.choice(self.persona.deals)}/"
        return "/insights/"


def user_loop(
    browser: Browser,
    start: threading.Event,
    stop_at: list[float],
    think: float,
    seed: int,
    out: list[Sample],
    errors: list[str],
) -> None:
    rng = random.Random(seed)
    pages, weights = zip(*MIX, strict=True)
    start.wait()
    while time.monotonic() < stop_at[0]:
        page = rng.choices(pages, weights)[0]
        path = browser.path_for(page, rng)
        began = time.perf_counter()
        try:
            status, _ = browser.request("GET", path)
        except OSError as exc:
            status = 0
            errors.append(f"{page} {path}: {type(exc).__name__}: {exc}")
        out.append(Sample(page, (time.perf_counter() - began) * 1000, status, time.monotonic()))
        if status != 200 and status != 0:
            errors.append(f"{page} {path}: HTTP {status}")
        if think:
            time.sleep(rng.uniform(0, 2 * think))


# --- gunicorn -------------------------------------------------------------------------------------
def worker_pids(master: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            pids.append(int(entry))
    return sorted(pids)


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def wait_healthy(port: int, deadline: float, process: subprocess.Popen) -> bool:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/healthz", headers={"Host": f"{HOST}:{port}"})
            if conn.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.25)
    return False


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_LIMIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


# --- the run --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n")[1]
    )
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=25, help="seconds of load (max 40)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--think", type=float, default=0.0, help="mean pause between a user's clicks (s)"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    deadline = started + TOTAL_LIMIT_S

    from bench.run import DEFAULT_URL, bench_environment

    url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL
    bench_environment(url)
    os.environ["ALLOWED_HOSTS"] = HOST
    from bench import seed

    seed.ensure_database(url)
    import django

    django.setup()
    from django.conf import settings

    prepared = seed.prepare_large()
    if prepared.get("seeded"):
        # Seeding took minutes; the 60 s budget is for the load test itself.
        started = time.monotonic()
        deadline = started + TOTAL_LIMIT_S
    users = personas(args.users)
    from django.db import connections

    connections.close_all()

    port = free_port()
    env = {**os.environ, "SECRET_KEY": secrets.token_urlsafe(50)}
    env.pop("WEB_CONCURRENCY", None)
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (kept open for gunicorn's lifetime)
        "w+", prefix="debrief-gunicorn-", suffix=".log", delete=False
    )
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "crm_site.wsgi",
        "--workers",
        str(args.workers),
        "--bind",
        f"{HOST}:{port}",
        "--graceful-timeout",
        "5",
    ]
    print(f"Starting gunicorn ({args.workers} workers) on {HOST}:{port}, log {log.name}")
    process = subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        if not wait_healthy(port, min(deadline, time.monotonic() + STARTUP_LIMIT_S), process):
            log.seek(0)
            print(log.read()[-3000:])
            print("gunicorn did not become healthy.")
            return 1
        workers = worker_pids(process.pid)
        idle = {pid: rss_mb(pid) for pid in workers}

        browsers = [Browser(port, persona) for persona in users]
        logged = [False] * len(browsers)

        def log_in(i: int) -> None:
            try:
                logged[i] = browsers[i].login()
            except OSError:
                logged[i] = False

        login_started = time.monotonic()
        threads = [
            threading.Thread(target=log_in, args=(i,), daemon=True) for i in range(len(browsers))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, deadline - time.monotonic() - 15))
        login_seconds = time.monotonic() - login_started
        active = [b for b, ok in zip(browsers, logged, strict=True) if ok]
        print(f"Logged in {len(active)}/{len(browsers)} users in {login_seconds:.1f} s.")
        if not active:
            return 1

        # Whatever the budget leaves (startup and logins come first, then the requests still
        # queued when the time is up drain, then gunicorn stops), at most --duration.
        duration = max(5.0, min(args.duration, 40.0, deadline - time.monotonic() - DRAIN_S - 4))
        samples: list[Sample] = []
        errors: list[str] = []
        go = threading.Event()
        stop_at = [0.0]
        loops = [
            threading.Thread(
                target=user_loop,
                args=(b, go, stop_at, args.think, i, samples, errors),
                daemon=True,
            )
            for i, b in enumerate(active)
        ]
        for thread in loops:
            thread.start()
        load_started = time.monotonic()
        stop_at[0] = load_started + duration
        go.set()
        # Requests sent before the end are waited for, up to DRAIN_S; any still queued then are
        # cut off when gunicorn stops and counted apart, not as errors.
        drain_until = min(stop_at[0] + DRAIN_S, deadline - 3)
        for thread in loops:
            thread.join(timeout=max(0.1, drain_until - time.monotonic()))
        cut_off = sum(thread.is_alive() for thread in loops)
        samples, errors = list(samples), list(errors)
        in_window = sum(1 for sample in samples if sample.at <= stop_at[0])
        after = {pid: rss_mb(pid) for pid in worker_pids(process.pid)}
    finally:
        stop(process)
        log.close()

    report(samples, in_window, errors, duration, len(active), cut_off, idle, after, args)
    print(f"Total wall time {time.monotonic() - started:.0f} s (limit {TOTAL_LIMIT_S} s).")
    return 0


def report(samples, in_window, errors, duration, users, cut_off, idle, after, args) -> None:
    latencies = [s.ms for s in samples]
    ok = sum(1 for s in samples if s.status == 200)
    print(
        f"\n{users} users, {args.workers} gunicorn workers, {duration:.0f} s, think {args.think} s"
    )
    # Throughput counts what completed within the window; latencies also include the requests
    # that drained after it (they were sent in time, and their wait is real).
    print(
        f"requests {len(samples)}  req/s {in_window / duration:.1f}  "
        f"p50 {percentile(latencies, 50):.0f} ms  p99 {percentile(latencies, 99):.0f} ms  "
        f"errors {len(samples) - ok}  cut off at the end {cut_off}"
    )
    print(f"\n{'page':<10} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for page, _ in MIX:
        rows = [s for s in samples if s.page == page]
        if not rows:
            continue
        times = [s.ms for s in rows]
        bad = sum(1 for s in rows if s.status != 200)
        print(
            f"{page:<10} {len(rows):>8} {percentile(times, 50):>8.0f} "
            f"{percentile(times, 99):>8.0f} {bad:>7}"
        )
    print("\ngunicorn worker RSS (MB): idle -> after load (target < 250)")
    for pid in sorted(set(idle) | set(after)):
        before = idle.get(pid)
        now = after.get(pid)
        flag = "" if now is None or now < 250 else "  OVER"
        print(f"  pid {pid}: {before or 0:.0f} -> {now or 0:.0f}{flag}")
    for message in sorted(set(errors))[:10]:
        print(f"  error: {message}")
    summary = {
        "users": users,
        "workers": args.workers,
        "duration_s": round(duration, 1),
        "requests": len(samples),
        "rps": round(in_window / duration, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
        "errors": len(samples) - ok,
        "cut_off": cut_off,
        "worker_rss_mb": {str(pid): round(v, 1) for pid, v in after.items() if v},
    }
    print("\n" + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
