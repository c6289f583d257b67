"""SSM → Sage latency: from a prospect saved in SSM to the tiers in Sage, and from a quote saved in
SSM to « Brouillon – Validé » with Sage's prices, p50 and p95.

Two ways the pass starts, measured in one run on the local pipeline (simulator at the 13
requests/s plan, a demo Sage company through pyodbc):
- webhook: the simulator calls the registered `/hooks` URL on each account insert; the handler
  runs what the `ssm_hooks` function and the agent do (the SSM pass, the commands applied to Sage,
  the results bound). Each latency is measured from the SSM save to the row in Sage.
- polling: the pass runs once per cycle, every `[agent] interval_s` (default 900 s). A change waits
  for the next cycle, uniformly within the interval, then the cycle's own work: its latency is
  that wait plus the cycle's measured processing time (the wait is not slept).
Goals with a webhook: p95 ≤ 10 s for a prospect, ≤ 15 s for a quote. The quotes' polling figures
are the same uniform wait plus the webhook's measured time (the same work, started by the cycle).

    python bench/bench_inbound.py --changes 20
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

QUICK_ARGS = ["--changes", "10"]
WEBHOOK_P95_TARGET_S = 10.0
QUOTE_P95_TARGET_S = 15.0
DEFAULT_INTERVAL_S = 900.0                      # [agent] interval_s by default (shared/config.py)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def run(changes: int, folder: Path) -> dict:
    from agent.demo_builder import build_demo_dossier
    from local.demo import free_port, write_config
    from local.runtime import LocalRuntime
    from local.simulator.server import SsmSimulator
    from local.simulator.user import SsmUserSession
    from shared.config import load_settings
    from shared.sync.binder import external_id

    database = build_demo_dossier(folder / "BIJOU.db", size="tiny").path
    with SsmSimulator(seed=1, rate_plan="13") as simulator:
        config = write_config(folder, base_url=simulator.base_url, public_key=simulator.public_key,
                              private_key=simulator.private_key, admin_email=simulator.admin_email,
                              dossiers=[("BIJOU", "Bijouterie (banc d'essai)", database)], status_port=free_port())
        settings = load_settings(config)
        with sqlite3.connect(database) as db:
            for no, first, last, mail in db.execute("SELECT CO_No, CO_Prenom, CO_Nom, CO_EMail FROM F_COLLABORATEUR"):
                simulator.seed_user(first or last, last, mail.strip(), ext_id=external_id("BIJOU", str(no)))
            email = db.execute("SELECT CO_EMail FROM F_COLLABORATEUR ORDER BY CO_No").fetchone()[0].strip()
        with LocalRuntime(settings) as runtime:
            runtime.run_once()                                   # first load; the pass cursor starts
            called = threading.Event()

            def pass_now():                                     # in this thread: the agent's state is not shared
                called.wait(30)
                called.clear()
                runtime.pass_ssm_changes()
                runtime.run_agent()
                runtime.dispatcher.drain()

            hook = _serve(called.set)
            url = f"http://127.0.0.1:{hook.server_address[1]}/api/ssm/hooks"
            with SsmUserSession(simulator.base_url, *simulator.user_credentials(email), email=email) as rep:
                hook_id = rep._client.create("hooks", {"name": "connector", "action": "insert", "entity": "account",
                                                       "url": url})
                webhook = [_one_change(rep, database, f"Prospect web {n}", pass_now) for n in range(changes)]
                rep._client.delete("hooks", hook_id)
                hook_id = rep._client.create("hooks", {"name": "connector", "action": "insert",
                                                       "entity": "salesorder", "url": url})
                account, product = _quotable(runtime)
                quotes = [_one_quote(rep, simulator, account, product, pass_now) for _ in range(changes)]
                rep._client.delete("hooks", hook_id)
            hook.shutdown()
            processing = []
            with SsmUserSession(simulator.base_url, *simulator.user_credentials(email), email=email) as rep:
                for n in range(changes):
                    rep.create_account(f"Prospect cycle {n}")
                    started = time.perf_counter()
                    runtime.run_once()
                    processing.append(time.perf_counter() - started)
    interval = DEFAULT_INTERVAL_S                                # the product's default, not the demo's
    rng = random.Random(1)
    polling = [rng.uniform(0, interval) + cost for cost in processing]
    return {"webhook": webhook, "polling": polling, "processing": processing, "interval": interval,
            "quotes": quotes, "quotes_polling": [rng.uniform(0, interval) + cost for cost in quotes],
            "cores": os.cpu_count()}


def _quotable(runtime) -> tuple[int, int]:
    """An SSM client account and product of the dossier (the quotes' account and line)."""
    links = {entity: next(l.ssm_id for l in runtime.store.list_links("BIJOU", entity) if l.ssm_id and not l.deleted)
             for entity in ("account", "product")}
    return links["account"], links["product"]


def _one_quote(rep, simulator, account: int, product: int, on_hook) -> float:
    """From a quote saved in SSM to « Brouillon – Validé » with Sage's prices."""
    started = time.perf_counter()
    quote = rep.create_quote(account, [{"product_id": product, "quantity": 2, "price": 1}])
    on_hook()
    deadline = started + 60
    while time.perf_counter() < deadline:
        if simulator.record("salesorders", quote)["statusId"]["value"] == "Brouillon – Validé":
            return time.perf_counter() - started
        time.sleep(0.02)
    return float("inf")


def _one_change(rep, database: Path, name: str, on_hook) -> float:
    started = time.perf_counter()
    rep.create_account(name)
    on_hook()
    deadline = started + 60
    while time.perf_counter() < deadline:
        with sqlite3.connect(database) as db:
            if db.execute("SELECT 1 FROM F_COMPTET WHERE CT_Intitule = ?", (name,)).fetchone():
                return time.perf_counter() - started
        time.sleep(0.02)
    return float("inf")


def _serve(on_call) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            on_call()
            body = json.dumps({"ok": True}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def report(figures: dict) -> bool:
    web, poll = figures["webhook"], figures["polling"]
    print(f"machine: {figures['cores']} cores; {len(web)} changes each way")
    print(f"webhook : p50 {percentile(web, 0.5):6.2f} s   p95 {percentile(web, 0.95):6.2f} s   "
          f"(target p95 <= {WEBHOOK_P95_TARGET_S:g} s: {'met' if percentile(web, 0.95) <= WEBHOOK_P95_TARGET_S else 'NOT met'})")
    print(f"polling : p50 {percentile(poll, 0.5):6.1f} s   p95 {percentile(poll, 0.95):6.1f} s   "
          f"(interval {figures['interval']:g} s; a cycle's own work p50 {statistics.median(figures['processing']):.2f} s)")
    quotes, quotes_poll = figures["quotes"], figures["quotes_polling"]
    print(f"quote to « Brouillon – Validé », webhook : p50 {percentile(quotes, 0.5):6.2f} s   p95 "
          f"{percentile(quotes, 0.95):6.2f} s   (target p95 <= {QUOTE_P95_TARGET_S:g} s: "
          f"{'met' if percentile(quotes, 0.95) <= QUOTE_P95_TARGET_S else 'NOT met'})")
    print(f"quote to « Brouillon – Validé », polling : p50 {percentile(quotes_poll, 0.5):6.1f} s   p95 "
          f"{percentile(quotes_poll, 0.95):6.1f} s   (interval {figures['interval']:g} s)")
    from figures import Figure, emit

    emit("inbound", [
        Figure("prospect SSM -> Sage by webhook, p95", f"{percentile(web, 0.95):.2f} s",
               f"<= {WEBHOOK_P95_TARGET_S:g} s", percentile(web, 0.95) <= WEBHOOK_P95_TARGET_S),
        Figure("quote SSM -> « Brouillon – Validé » by webhook, p95", f"{percentile(quotes, 0.95):.2f} s",
               f"<= {QUOTE_P95_TARGET_S:g} s", percentile(quotes, 0.95) <= QUOTE_P95_TARGET_S),
        Figure("a polling cycle's own work, p50", f"{statistics.median(figures['processing']):.2f} s")])
    return percentile(web, 0.95) <= WEBHOOK_P95_TARGET_S and percentile(quotes, 0.95) <= QUOTE_P95_TARGET_S


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20, help="prospects saved in SSM each way (default 20)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-inbound-") as folder:
        report(run(args.changes, Path(folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
