"""Probes a running memnoded the way its clients and monitors do; prints a
JSON report. Run inside the deployment's network namespace by deployed.py
(and usable by hand):

  probe.py --grpc HOST:PORT [--token-file FILE] [--metrics URL]

- grpc.health.v1.Health/Check for the whole server (service ""), with no
  token, as the kubelet's grpc probe and memnodectl health do;
- MachineService/ListMachines without a token, and with the first token of
  FILE ("authorization: Bearer <token>");
- GET URL (the /metrics endpoint).

The messages are encoded by hand (no generated stubs needed): a
HealthCheckRequest for service "" and a ListMachinesRequest with no fields
are empty; HealthCheckResponse is field 1 (varint), SERVING = 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

import grpc


def raw(channel, method):
    return channel.unary_unary(method, request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)


def call(channel, method, metadata=None):
    try:
        reply = raw(channel, method)(b"", timeout=10, metadata=metadata)
        return {"code": "OK", "reply": reply.hex()}
    except grpc.RpcError as e:
        return {"code": e.code().name, "details": e.details()}


def first_token(path):
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                return line.split()[0]
    raise SystemExit(f"no token in {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc", required=True)
    ap.add_argument("--token-file")
    ap.add_argument("--metrics")
    args = ap.parse_args()
    report = {}
    with grpc.insecure_channel(args.grpc) as ch:
        health = call(ch, "/grpc.health.v1.Health/Check")
        if health["code"] == "OK":
            b = bytes.fromhex(health.pop("reply"))
            health["status"] = {b"\x08\x01": "SERVING", b"\x08\x02": "NOT_SERVING"}.get(b, b.hex())
        report["health"] = health
        list_method = "/memnode.v1.MachineService/ListMachines"
        anonymous = call(ch, list_method)
        anonymous.pop("reply", None)
        report["list_without_token"] = anonymous
        if args.token_file:
            token = first_token(args.token_file)
            r = call(ch, list_method, metadata=[("authorization", f"Bearer {token}")])
            if r["code"] == "OK":
                reply = bytes.fromhex(r.pop("reply"))
                r["has_default_machine"] = b"machines/default" in reply
            report["list_with_token"] = r
    if args.metrics:
        try:
            with urllib.request.urlopen(args.metrics, timeout=10) as resp:
                body = resp.read().decode(errors="replace")
                report["metrics"] = {"status": resp.status,
                                     "memnode_lines": sum(1 for l in body.splitlines()
                                                          if l.startswith("memnode_"))}
        except urllib.error.HTTPError as e:
            report["metrics"] = {"status": e.code}
        except OSError as e:
            report["metrics"] = {"status": None, "error": str(e)}
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    main()
