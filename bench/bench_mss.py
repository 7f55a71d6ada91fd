"""MSSanté benchmark on loopback: messages/s built (plan → CDA → XDM + PDF → MIME), sent
(SMTP submission with STARTTLS, AUTH and mutual TLS to the sandbox operator, one session per
message as the connector does), and received and parsed (IMAP with STARTTLS: search, fetch,
MIME parse, safe XDM read and checks, flag), plus the XDM pack/read alone.

Baseline measured in the same run: the stdlib `email` parser on the same messages (parse only).
Results: bench/results/mss.json.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import platform
import sys
import tempfile
import time
from email import policy
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from connectors.base import Envelope, Recipient  # noqa: E402
from connectors.mss import xdm  # noqa: E402
from connectors.sandbox.mss import MssSandbox  # noqa: E402
from gateway.delivery.payload_mss import build_message  # noqa: E402
from gateway.delivery.payloads import BuildContext  # noqa: E402
from gateway.model import Plan  # noqa: E402

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.timezone.utc)
DOCTOR = "jeanne.martin@medecin.sandbox.mssante.fr"
MESSAGES = 60


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds else 0.0


def main() -> dict:
    plans = [Plan.model_validate_json(p.read_bytes()) for p in sorted((HERE.parent / "fixtures" / "plans").glob("*.json"))]
    plans = (plans * (MESSAGES // len(plans) + 1))[:MESSAGES]

    start = time.perf_counter()
    packed = [xdm.pack_plan(p, now=NOW) for p in plans]
    pack_s = time.perf_counter() - start
    start = time.perf_counter()
    for item in packed:
        xdm.check(xdm.read(item.archive))
    read_s = time.perf_counter() - start

    start = time.perf_counter()
    payloads = [build_message(p, BuildContext(tenant_slug="bench", tenant_finess=p.platform.finess, plan_version=1,
                                              now=NOW, idempotency_key=f"rls-{i:040x}")) for i, p in enumerate(plans)]
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    for payload in payloads:
        email.message_from_bytes(payload, policy=policy.default)
    baseline_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp, MssSandbox(Path(tmp)) as sandbox:
        for correspondent in sandbox.correspondents:
            correspondent.reply = False  # measure Relais, not the scripted partner
        connector = sandbox.connector(state_dir=str(Path(tmp) / "state"), request_mdn=False, poll_batch=MESSAGES)
        start = time.perf_counter()
        for i, payload in enumerate(payloads):
            connector.send(Envelope(f"ex-{i}", f"rls-{i:040x}", "mss", "xdm-message", "message/rfc822", payload,
                                    Recipient("professional", DOCTOR)))
        send_s = time.perf_counter() - start
        sandbox.wait(60)
        # the sent messages, delivered to the platform's own mailbox, are what it then receives
        for message in sandbox.store.messages(DOCTOR):
            sandbox.store.deliver(sandbox.platform_address, message.data)
        start = time.perf_counter()
        items = list(connector.poll())
        receive_s = time.perf_counter() - start
        connector.close()
    documents = sum(1 for i in items if i.kind == "mss-document")
    mean_kb = round(sum(len(p) for p in payloads) / len(payloads) / 1024, 1)
    results = {
        "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
        "messages": MESSAGES,
        "mean_message_kB": mean_kb,
        "baseline_email_parse_msgs_per_s": rate(MESSAGES, baseline_s),
        "xdm_pack_per_s": rate(MESSAGES, pack_s),
        "xdm_read_and_check_per_s": rate(MESSAGES, read_s),
        "build_message_per_s": rate(MESSAGES, build_s),
        "smtp_send_per_s": rate(MESSAGES, send_s),
        "imap_receive_and_parse_per_s": rate(MESSAGES, receive_s),
        "documents_received": documents,
    }
    results["receive_vs_baseline"] = round(results["imap_receive_and_parse_per_s"]
                                           / results["baseline_email_parse_msgs_per_s"], 3)
    out = HERE / "results" / "mss.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    for key, value in results.items():
        print(f"{key:38} {value}")
    return results


if __name__ == "__main__":
    main()
