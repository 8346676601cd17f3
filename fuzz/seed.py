#!/usr/bin/env python3
"""Generates the committed seed corpora of the fuzz targets (fuzz/seeds/<target>/) from events/.

Usage: python3 fuzz/seed.py            (from anywhere; rewrites fuzz/seeds/ entirely)

Standard library only. Seeds are small (every file < 16 KiB) and deterministic, so re-running the
script on unchanged events/ changes nothing. File names say where a seed comes from; `ok-*` seeds are
inputs the code under test accepts (the regression test checks that they still are), `bad-*` seeds
are malformed on purpose. Cases that probe the limits (deep nesting, too many items, bombs) are not
seeds: they are built in code by shared/tests/fuzz_regressions.rs.

Brotli and zstd have no standard-library encoders; their seeds are written as uncompressed
meta-blocks / raw blocks, which are valid streams that the real decoders accept.
"""

import base64
import glob
import gzip
import hashlib
import hmac
import json
import os
import shutil
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENTS = os.path.join(ROOT, "events")
SEEDS = os.path.join(ROOT, "fuzz", "seeds")

# Must match shared/src/fuzzing.rs.
COOKIE_KEY = b"fuzz-invite-cookie-key-0123456789abcdef"
RECEIVED_AT_SECS = 1_795_590_000
BROTLI_PREFIX = b"br:"
DSN_KEY = "c0ffee0c0ffee0c0ffee0c0ffee0c0ff"

MAX_SEED = 16 * 1024


# The functions behind API Gateway's HTTP routes (events/<function>.<case>.json).
HTTP_FUNCTIONS = ("accept-invite.", "enroll-authenticator.", "save-event.")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def body_of(event):
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()


def decoded_body(event):
    raw = body_of(event)
    if (event.get("headers") or {}).get("content-encoding") == "gzip":
        try:
            return gzip.decompress(raw)
        except Exception:  # the bad-gzip sample
            return None
    return raw


def envelope_items(envelope):
    """(item headers, payload) of an envelope, enough for the SDK samples (length or newline framed)."""
    lines = envelope.split(b"\n", 1)
    rest = lines[1] if len(lines) > 1 else b""
    items = []
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        header = json.loads(header_line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] + 1 :]
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, payload))
    return items


def zstd_raw(data):
    """A zstd frame holding `data` in raw blocks (single segment, no checksum)."""
    out = bytearray(b"\x28\xb5\x2f\xfd")
    n = len(data)
    if n < 256:
        out += bytes([0x20]) + n.to_bytes(1, "little")
    elif n < 65536 + 256:
        out += bytes([0x60]) + (n - 256).to_bytes(2, "little")
    else:
        out += bytes([0xA0]) + n.to_bytes(4, "little")
    blocks = [data[i : i + 128 * 1024] for i in range(0, n, 128 * 1024)] or [b""]
    for i, block in enumerate(blocks):
        last = 1 if i == len(blocks) - 1 else 0
        out += (last | (0 << 1) | (len(block) << 3)).to_bytes(3, "little")
        out += block
    return bytes(out)


class Bits:
    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, value, width):
        self.acc |= value << self.n
        self.n += width
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def align(self):
        if self.n:
            self.put(0, 8 - self.n)


def brotli_stored(data):
    """A brotli stream of uncompressed meta-blocks (RFC 7932 §9.2), window 2^16."""
    bits = Bits()
    bits.put(0, 1)  # WBITS = 16
    for i in range(0, len(data), 65536):
        chunk = data[i : i + 65536]
        bits.put(0, 1)  # ISLAST = 0
        bits.put(0, 2)  # MNIBBLES = 4
        bits.put(len(chunk) - 1, 16)  # MLEN - 1
        bits.put(1, 1)  # ISUNCOMPRESSED
        bits.align()
        bits.out += chunk
    bits.put(1, 1)  # ISLAST
    bits.put(1, 1)  # ISLASTEMPTY
    bits.align()
    return bytes(bits.out)


def sign_cookie(payload: bytes) -> str:
    p = base64.urlsafe_b64encode(payload).rstrip(b"=")
    mac = hmac.new(COOKIE_KEY, b"postflow-invite.v1." + p, hashlib.sha256).digest()
    return (p + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


def main():
    seeds = {t: {} for t in ["envelope", "store_body", "normalize", "apigw_event", "cookie", "auth_header", "phone_number"]}

    def add(target, name, data):
        if isinstance(data, str):
            data = data.encode()
        if len(data) <= MAX_SEED:
            seeds[target][name] = data

    api_events = sorted(
        p for p in glob.glob(os.path.join(EVENTS, "*.json")) if not p.endswith((".scenario.json", "seed.json"))
    )
    for path in api_events:
        name = os.path.basename(path)[: -len(".json")]
        if not name.startswith(HTTP_FUNCTIONS):
            # The authorizer's and the stream consumer's events are not API Gateway HTTP requests.
            continue
        event = load(path)
        add("apigw_event", f"ok-{name}.json", json.dumps(event, separators=(",", ":")))
        headers = event.get("headers") or {}
        query = event.get("rawQueryString") or ""
        auth = headers.get("x-sentry-auth", "")
        for cookie in event.get("cookies") or []:
            add("cookie", f"{name}.cookie", cookie)

        if not name.startswith("save-event."):
            continue
        body = decoded_body(event)
        raw = body_of(event)
        is_store = event.get("routeKey", "").endswith("/store/")
        if is_store:
            add("store_body", f"ok-{name}.json", body)
            add("store_body", f"ok-{name}.b64", base64.b64encode(body))
            add("store_body", f"ok-{name}.b64zlib", base64.b64encode(zlib.compress(body)))
            add("normalize", f"{name}.json", body)
            continue
        if body is None:
            add("envelope", f"bad-{name}.gz", raw)
            continue
        ok = "ok" if name.split(".")[1] not in ("missing-key", "wrong-key", "wrong-project") else "auth"
        add("envelope", f"{ok}-{name}.envelope", body)
        add("envelope", f"{ok}-{name}.gz", gzip.compress(body, mtime=0))
        add("envelope", f"{ok}-{name}.zlib", zlib.compress(body))
        if name.endswith(("python-exception", "node-transaction")):
            add("envelope", f"{ok}-{name}.zst", zstd_raw(body))
            add("envelope", f"{ok}-{name}.br", BROTLI_PREFIX + brotli_stored(body))

        header = json.loads(body.split(b"\n", 1)[0])
        dsn = header.get("dsn", "")
        add("auth_header", f"{name}.auth", "\n".join([auth, "", query, dsn]))
        for i, (item_header, payload) in enumerate(envelope_items(body)):
            ty = item_header.get("type")
            if ty in ("event", "transaction"):
                add("normalize", f"{name}.{i}-{ty}.json", payload)
                if ty == "transaction":
                    obj = json.loads(payload)
                    obj["type"] = "transaction"
                    add("normalize", f"{name}.{i}-{ty}-typed.json", json.dumps(obj))
                add("store_body", f"ok-{name}.{i}-{ty}.json", payload)
                if i == 0:
                    add("store_body", f"ok-{name}.{i}-{ty}.b64zlib", base64.b64encode(zlib.compress(payload)))

    # Hand-written envelopes: framing corner cases (Relay's parser rules).
    eid = "9ec79c33ec9942ab8353589fcb2e04dc"
    for name, data in {
        "ok-empty.envelope": b"{}",
        "ok-empty-items.envelope": b'{}\n{"type":"session"}\n{}\n{"type":"attachment","length":0}\n\n',
        "ok-length-no-newline.envelope": b'{"event_id":"%s"}\n{"type":"event","length":2}\n{}' % eid.encode(),
        "ok-dsn-header.envelope": (
            b'{"dsn":"https://%s@o1.ingest.example.com/42","sent_at":"2026-11-26T07:12:13Z"}\n'
            b'{"type":"event"}\n{"message":"hi"}\n' % DSN_KEY.encode()
        ),
        "ok-span-count.envelope": b'{}\n{"type":"span","item_count":3}\n[{},{},{}]\n',
        "bad-missing-newline.envelope": b'{}{"type":"event"}',
        "bad-length-past-eof.envelope": b'{}\n{"type":"event","length":99}\n{}',
        "bad-duplicate-sent-at.envelope": b'{"sent_at":"2026-11-26T07:12:13Z","sent_at":"2026-11-26T07:12:13Z"}\n',
        "bad-item-no-type.envelope": b'{}\n{"length":2}\n{}',
        "bad-event-not-object.envelope": b'{}\n{"type":"event"}\n[1,2]',
    }.items():
        add("envelope", name, data)

    for name, data in {
        "bad-not-base64": b"!!!not base64",
        "bad-event-id": b'{"event_id":"nope"}',
        "ok-transaction-type.json": b'{"type":"transaction","transaction":"/","start_timestamp":1795589990,'
        b'"timestamp":1795590000,"contexts":{"trace":{"trace_id":"4ac25c3e9b7c4f0688896b7ce2e15973",'
        b'"span_id":"90a6df4f2564eb84"}},"spans":[]}',
    }.items():
        add("store_body", name, data)

    add("normalize", "weird-types.json", json.dumps({
        "event_id": 5, "timestamp": "yesterday", "level": ["error"], "tags": [["a", "b"], ["c"], 3],
        "exception": {"values": [{"type": None, "value": {"x": 1}, "stacktrace": {"frames": [{}, 1]}}]},
        "breadcrumbs": [{"timestamp": 1e300}], "fingerprint": ["{{ default }}", 1.5, None],
        "user": {"ip_address": "{{auto}}", "id": 7}, "release": " \n", "environment": "x" * 80,
        "platform": "javascript", "logentry": {"formatted": "", "params": [1]}, "contexts": {"os": None},
    }))
    add("normalize", "not-an-object.json", b"[1,2,3]")

    # Cookies: a valid signed cookie, one bound to the fuzz caller, expired, tampered, header lists.
    valid = sign_cookie(json.dumps({"m": 7, "o": 1, "t": "abc", "e": RECEIVED_AT_SECS + 3600}).encode())
    bound = sign_cookie(json.dumps({"m": 7, "o": 1, "t": "abc", "u": "42", "e": RECEIVED_AT_SECS + 60}).encode())
    expired = sign_cookie(json.dumps({"m": 7, "o": 1, "t": "abc", "e": RECEIVED_AT_SECS}).encode())
    for name, data in {
        "signed-valid.cookie": valid,
        "signed-bound.cookie": bound,
        "signed-expired.cookie": expired,
        "header.cookie": f'other=1; postflow-invite="{valid}"; postflow-invite=second; =empty; novalue',
        "tampered.cookie": valid[:-2] + "AA",
        # Raw payloads: the target also signs its input as a payload (see shared::fuzzing::cookie).
        "payload-valid.json": json.dumps({"m": 7, "o": 1, "t": "abc", "u": "42", "e": RECEIVED_AT_SECS + 3600}),
        "payload-other-user.json": json.dumps({"m": 7, "o": 1, "t": "abc", "u": "43", "e": RECEIVED_AT_SECS + 3600}),
        "payload-huge-numbers.json": '{"m":18446744073709551615,"o":0,"t":"","e":9223372036854775807}',
    }.items():
        add("cookie", name, data)

    # Auth: X-Sentry-Auth \n Authorization \n query \n dsn.
    for name, data in {
        "python-header.auth": f"Sentry sentry_key={DSN_KEY}, sentry_version=7, sentry_client=sentry.python/2.75.0",
        "authorization.auth": f"\nSentry sentry_key={DSN_KEY},sentry_secret=s, sentry_version=7",
        "bearer.auth": "\nBearer xyz",
        "query.auth": f"\n\nsentry_version=7&sentry_key={DSN_KEY}&sentry_client=sentry.javascript.node%2F11.12.0",
        "dsn.auth": f"\n\n\nhttps://{DSN_KEY}:secret@o1.ingest.example.com/sub/42/",
        "mismatch.auth": f"Sentry sentry_key=abc\n\nsentry_key=def\nhttps://ghi@example.com/43",
        "flag-suffix.auth": "sEnTrY sentry_key=ABC.no-cache",
        "percent.auth": "\n\nsentry_key=%41%zz%+&sentry_version=7",
    }.items():
        add("auth_header", name, data)

    # Phone numbers as a user types them into the SMS enrollment form.
    for name, data in {
        "us-national.phone": "(234) 567-8900",
        "uk-mobile.phone": "+44 7400 123456",
        "premium.phone": "+1 900 555 0123",
        "full-width.phone": "\uff0b\uff14\uff14\u3000\uff17\uff14\uff10\uff10\u3000\uff11\uff12\uff13\uff14\uff15\uff16",
        "arabic-indic.phone": "+\u0669\u0667\u0661 \u0665\u0660 \u0661\u0662\u0663 \u0664\u0665\u0666\u0667",
        "vanity.phone": "1-800-FLOWERS",
        "extension.phone": "+1 234 567 8900 ext. 1234",
        "rfc3966.phone": "tel:+1-234-567-8900;ext=12;isub=99",
        "italian-zero.phone": "+39 06 1234 5678",
        "non-geographic.phone": "+800 1234 5678",
    }.items():
        add("phone_number", name, data)

    shutil.rmtree(SEEDS, ignore_errors=True)
    for target, files in seeds.items():
        os.makedirs(os.path.join(SEEDS, target))
        for name, data in sorted(files.items()):
            with open(os.path.join(SEEDS, target, name), "wb") as f:
                f.write(data)
        print(f"{target:12} {len(files):3} seeds, {sum(map(len, files.values())):7} bytes")


if __name__ == "__main__":
    main()
