"""End-to-end test of a *deployed* Postflow stack, through its HTTP API only (plus the AWS APIs for the seed
and to read the Kinesis stream back). Run by scripts/deploy-local after `sam deploy`; works against any
deployment whose JWT issuer it can sign for.

    python tests/deployed/e2e.py --base URL --table T --stream S --oidc DIR --audience postflow \
        --postflow target/release/postflow

--base   the API's base URL (the ApiUrl output on AWS; on ministack the path-style
         http://127.0.0.1:PORT/_aws/execute-api/<apiId>, since *.execute-api.localhost does not resolve here)
--oidc   the folder of tests/deployed/oidc.py (issuer + signing key) that the stack's JwtIssuer names

Steps (the post flow of events/1-post-flow.scenario.json, as a browser and real SDKs would drive it):
  1. seed events/seed.json into the deployed table with `postflow seed --aws` (AWS APIs);
  2. the JWT authorizer: no token, a token signed by another key, wrong audience, wrong issuer, expired -> 401;
  3. accept-invite GET (anonymous route) for the 2FA org -> 200, needs2fa, pending-invite cookie set;
  4. accept-invite POST (JWT) -> 400 "unable to accept" (2FA missing);
  5. enroll GET/POST TOTP (JWT): invalid OTP -> 400, a real pyotp code + the invite cookie -> 204, which also
     accepts the pending invite in the same transaction; then POST accept -> "member already exists",
     GET recovery -> "Already enrolled", GET totp -> "rotation";
  6. save-event: the real Python Sentry SDK (tests/sdk/e2e.py) with its DSN on this API sends an error, a
     message and a transaction; a captured envelope is posted twice (duplicate), a wrong key is refused;
  7. the Kinesis stream is read back (GetShardIterator/GetRecords): exactly one record per saved event.
Exit status 0 only if every check passed; each failure is printed.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pyotp
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oidc  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "8d3f7a1c2b9e4f6051a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708"
DSN_KEY = "c0ffee0c0ffee0c0ffee0c0ffee0c0ff"
COOKIE = "postflow-invite"

failures: list[str] = []
gaps: list[str] = []
EMULATOR = ""   # set by --emulator: the name of the emulator whose known gaps are reported, not failed


def known_gap(cond: bool, what: str, gap: str, detail: object = "") -> bool:
    """A check that fails on the emulator for a documented reason (`gap`). Against AWS (no --emulator) it is
    an ordinary check. On the emulator a failure prints GAP and does not fail the run; a pass prints
    `gap closed` so that the note can be removed."""
    if not EMULATOR:
        return check(cond, what, detail)
    if cond:
        print(f"ok   {what}  (known {EMULATOR} gap did not show: {gap} -- update the notes)", flush=True)
    else:
        print(f"GAP  {what}  -- {EMULATOR}: {gap} (got {detail})", flush=True)
        gaps.append(f"{what}: {gap}")
    return cond


def check(cond: bool, what: str, detail: object = "") -> bool:
    print(f"{'ok  ' if cond else 'FAIL'} {what}" + ("" if cond or detail == "" else f"  -- {detail}"), flush=True)
    if not cond:
        failures.append(what)
    return cond


def subset(want, got) -> bool:
    """`want` is contained in `got` (dicts: every key matches recursively; lists: element-wise)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and subset(v, got[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(subset(a, b) for a, b in zip(want, got))
    return want == got


class Api:
    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.http = requests.Session()   # no cookie jar use: cookies are handled explicitly below
        self.http.trust_env = False

    def call(self, method, path, *, token=None, cookie=None, json_body=None, headers=None, data=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if cookie:
            h["Cookie"] = f"{COOKIE}={cookie}"
        t0 = time.monotonic()
        r = self.http.request(method, self.base + path, headers=h, json=json_body, data=data, timeout=30)
        ms = (time.monotonic() - t0) * 1000
        try:
            body = r.json() if r.content else None
        except ValueError:
            body = r.text
        print(f"     {method:7} {path[:70]:70} {r.status_code}  {ms:7.1f} ms", flush=True)
        return r, body

    def expect(self, what, method, path, status, body=None, **kw):
        r, got = self.call(method, path, **kw)
        ok = r.status_code == status and (body is None or subset(body, got))
        check(ok, what, f"got {r.status_code} {json.dumps(got)[:300]}")
        return r, got


def set_cookie(r, name=COOKIE):
    """(value, attributes) of the Set-Cookie for `name`, or None. requests folds repeated headers; read raw."""
    for value in r.raw.headers.getlist("Set-Cookie") if hasattr(r.raw.headers, "getlist") else []:
        first, _, attrs = value.partition(";")
        k, _, v = first.partition("=")
        if k.strip() == name:
            return v.strip(), attrs
    return None


def seed(args, env):
    t0 = time.monotonic()
    out = subprocess.run([args.postflow, "seed", str(ROOT / "events/seed.json"), "--aws"],
                         env=env, capture_output=True, text=True)
    check(out.returncode == 0, "seed events/seed.json through the AWS APIs (postflow seed --aws)",
          out.stderr.strip()[-500:])
    print(f"     {out.stdout.strip()} ({(time.monotonic() - t0) * 1000:.0f} ms)")


def authorizer_checks(api, args, claims):
    path = "/api/0/users/me/authenticators/totp/enroll/"
    unauthorized = {"message": "Unauthorized"}
    api.expect("JWT authorizer: no token -> 401", "GET", path, 401, unauthorized)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    api.expect("JWT authorizer: token signed by another key (same kid) -> 401", "GET", path, 401, unauthorized,
               token=oidc.token(args.oidc, claims, key=other_key))
    api.expect("JWT authorizer: wrong audience -> 401", "GET", path, 401, unauthorized,
               token=oidc.token(args.oidc, {**claims, "aud": "someone-else"}))
    api.expect("JWT authorizer: wrong issuer -> 401", "GET", path, 401, unauthorized,
               token=oidc.token(args.oidc, {**claims, "iss": "https://issuer.invalid"}))
    api.expect("JWT authorizer: expired token -> 401", "GET", path, 401, unauthorized,
               token=oidc.token(args.oidc, {**claims, "exp": int(time.time()) - 60}))


def post_flow(api, args, token):
    accept = f"/api/0/accept-invite/secure/20/{TOKEN}/"
    enroll = "/api/0/users/me/authenticators/{}/enroll/"

    # GET is `Authorizer: NONE` on API Gateway: the bearer token sent here must NOT reach the function.
    r, _ = api.expect("accept-invite GET (anonymous route, 2FA org) -> 200 needs2fa, needsAuthentication",
                      "GET", accept, 200,
                      {"orgSlug": "secure", "needsAuthentication": True, "needs2fa": True}, token=token)
    cookie = set_cookie(r)
    check(cookie is not None and cookie[0] != "", "accept-invite GET sets the postflow-invite cookie",
          dict(r.headers))
    cookie = cookie[0] if cookie else None

    api.expect("accept-invite POST without 2FA -> 400 unable to accept", "POST", accept, 400,
               {"details": "unable to accept organization invite"}, token=token, cookie=cookie)
    api.expect("accept-invite POST without a token -> 401 (JWT route)", "POST", accept, 401, cookie=cookie)

    r, got = api.expect("enroll GET totp -> 200 new", "GET", enroll.format("totp"), 200,
                        {"id": "totp", "status": "new", "isEnrolled": False}, token=token)
    secret = (got or {}).get("secret") if isinstance(got, dict) else None
    check(bool(secret), "enroll GET totp issues a secret")
    secret = secret or "A" * 32

    api.expect("enroll POST with an invalid OTP -> 400 Invalid OTP", "POST", enroll.format("totp"), 400,
               [{"details": "Invalid OTP"}], token=token, json_body={"secret": secret, "otp": "000000"})
    code = pyotp.TOTP(secret).now()
    r, _ = api.expect("enroll POST with a pyotp code + invite cookie -> 204", "POST", enroll.format("totp"), 204,
                      token=token, cookie=cookie, json_body={"secret": secret, "otp": code})
    cleared = set_cookie(r)
    check(cleared is not None and cleared[0] == "" and "Max-Age=0" in cleared[1],
          "enroll POST accepted the pending invite (invite cookie cleared)", dict(r.headers))
    api.expect("the same POST again (a retry whose answer was lost) -> 204, idempotent", "POST",
               enroll.format("totp"), 204, token=token, json_body={"secret": secret, "otp": code})

    api.expect("accept-invite POST after enrollment (the invite is the caller's membership now) -> 204",
               "POST", accept, 204, token=token, cookie=cookie)
    api.expect("enroll GET recovery -> 400 Already enrolled", "GET", enroll.format("recovery"), 400,
               {"details": "Already enrolled"}, token=token)
    api.expect("enroll GET totp again -> 200 rotation", "GET", enroll.format("totp"), 200,
               {"status": "rotation", "isEnrolled": False}, token=token)


def save_events(api, args):
    """Real SDK + a captured envelope twice + a wrong key. Returns what must be on the stream."""
    dsn = api.base.replace("://", f"://{DSN_KEY}@", 1) + "/42"
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, str(ROOT / "tests/sdk/e2e.py"), dsn], capture_output=True, text=True,
                         timeout=120)
    ms = (time.monotonic() - t0) * 1000
    ids = {}
    if check(out.returncode == 0, f"sentry-sdk {sentry_version()} sends an error, a message and a transaction "
                                  f"to DSN {dsn} ({ms:.0f} ms)", out.stderr[-800:]):
        ids = json.loads(out.stdout.strip().splitlines()[-1])
        ids = {k: v.replace("-", "") for k, v in ids.items() if v}
        check(set(ids) == {"exception", "message"}, "the SDK returned event ids for the error and the message", ids)

    ev = json.loads((ROOT / "events/save-event.python-exception.json").read_text())
    body = base64.b64decode(ev["body"]) if ev.get("isBase64Encoded") else ev["body"].encode()
    headers = {k: v for k, v in ev["headers"].items() if k.lower() not in ("host", "content-length")}
    dup_id = "82bb26d0dec34af7b29085449b92ddd7"
    api.expect("save-event: captured python-exception envelope -> 200 id", "POST", "/api/42/envelope/", 200,
               {"id": dup_id}, headers=headers, data=body)
    api.expect("save-event: the same envelope again (duplicate) -> 200 same id", "POST", "/api/42/envelope/", 200,
               {"id": dup_id}, headers=headers, data=body)
    wrong = dict(headers, **{"x-sentry-auth": headers["x-sentry-auth"].replace(DSN_KEY, "f" * 32)})
    r, _ = api.call("POST", "/api/42/envelope/", headers=wrong, data=body)
    check(r.status_code in (401, 403), "save-event: unknown DSN key -> 401/403", r.status_code)
    r, _ = api.call("OPTIONS", "/api/42/envelope/", headers={"Origin": "https://app.example",
                                                            "Access-Control-Request-Method": "POST"})
    known_gap(r.status_code in (200, 204) and "CORS not configured" not in r.text,
              "save-event: CORS preflight reaches the OPTIONS route (answered by the function)",
              "the HTTP API answers every OPTIONS itself (403 'CORS not configured' without a CorsConfiguration) "
              "instead of routing it to the OPTIONS route as AWS does", f"{r.status_code} {r.text[:80]}")
    return ids, dup_id


def sentry_version():
    import sentry_sdk
    return sentry_sdk.VERSION


def read_stream(kinesis, stream):
    records = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            out = kinesis.get_records(ShardIterator=it, Limit=1000)
            records.extend(out["Records"])
            if not out["Records"] and out.get("MillisBehindLatest", 0) == 0:
                break
            it = out.get("NextShardIterator")
    return records


def stream_checks(kinesis, stream, ids, dup_id):
    records = read_stream(kinesis, stream)
    msgs = []
    for rec in records:
        try:
            msgs.append((rec, json.loads(rec["Data"])))
        except ValueError:
            check(False, "every stream record is JSON", rec["Data"][:200])
    print(f"     {len(records)} record(s) on {stream}")
    for kind, event_id in sorted(ids.items()):
        found = [m for _, m in msgs if m[2].get("event_id") == event_id]
        if check(len(found) == 1, f"stream: the SDK {kind} {event_id} is on the stream once", len(found)):
            m = found[0]
            check(m[:2] == [2, "insert"] and m[2]["project_id"] == 42 and m[2]["organization_id"] == 1
                  and isinstance(m[2].get("group_id"), int)
                  and m[2]["data"].get("release") == "e2e-python@1.0" and m[2]["data"].get("environment") == "e2e"
                  and "python" in m[2]["data"]["sdk"]["name"],
                  f"stream: the {kind} record is an eventstream insert for project 42 with its group and release",
                  json.dumps(m)[:400])
    tx = [m for _, m in msgs if m[2].get("data", {}).get("transaction") == "e2e-python-transaction"]
    if check(len(tx) == 1, "stream: the SDK transaction is on the stream once", len(tx)):
        check(tx[0][2]["data"].get("type") == "transaction" and bool(tx[0][2]["data"].get("spans")),
              "stream: the transaction record carries its spans")
    dups = [(r, m) for r, m in msgs if m[2].get("event_id") == dup_id]
    if check(len(dups) == 1, "stream: the duplicated envelope is streamed once", len(dups)):
        check(dups[0][0]["PartitionKey"] == "42", "stream: partition key is the project id",
              dups[0][0]["PartitionKey"])
    expected = len(ids) + 1 + (1 if tx else 0)
    check(len(msgs) == expected, f"stream: exactly {expected} records (nothing else was published)", len(msgs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--stream", required=True)
    ap.add_argument("--oidc", required=True)
    ap.add_argument("--audience", default="postflow")
    ap.add_argument("--postflow", default=str(ROOT / "target/release/postflow"))
    ap.add_argument("--emulator", default="", help="name of the emulator (e.g. ministack): its documented gaps "
                                                    "are reported as GAP instead of failing")
    args = ap.parse_args()
    global EMULATOR
    EMULATOR = args.emulator

    t_start = time.monotonic()
    env = dict(os.environ, TABLE_NAME=args.table, STREAM_NAME=args.stream)
    api = Api(args.base)
    print(f"deployed-stack e2e against {api.base} (table {args.table}, stream {args.stream})")

    seed(args, env)
    now = int(time.time())
    claims = {"sub": "42", "email": "bar@example.com", "email_verified": True, "auth_time": now,
              "aud": args.audience}
    authorizer_checks(api, args, claims)
    post_flow(api, args, oidc.token(args.oidc, claims))
    ids, dup_id = save_events(api, args)
    stream_checks(boto3.client("kinesis"), args.stream, ids, dup_id)

    total = time.monotonic() - t_start
    print(f"e2e: {len(failures)} failed, {len(gaps)} known emulator gap(s); {total:.1f} s")
    for g in gaps:
        print(f"  GAP: {g}")
    for f in failures:
        print(f"  FAILED: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
