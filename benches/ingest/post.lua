-- wrk -s benches/ingest/post.lua: POSTs the envelopes listed in $PAYLOAD_LIST (one path a line),
-- round robin, to $INGEST_PATH (default /api/42/envelope/) with the DSN key $DSN_KEY; $PAYLOAD_GZIP=1
-- adds Content-Encoding: gzip (the files are then gzip already, as SDKs send them).
local bodies = {}
for path in io.lines(os.getenv("PAYLOAD_LIST")) do
  local f = assert(io.open(path, "rb"))
  bodies[#bodies + 1] = f:read("*a")
  f:close()
end
local path = os.getenv("INGEST_PATH") or "/api/42/envelope/"
local headers = {
  ["Content-Type"] = "application/x-sentry-envelope",
  ["X-Sentry-Auth"] = "Sentry sentry_key=" .. (os.getenv("DSN_KEY") or "c0ffee0c0ffee0c0ffee0c0ffee0c0ff")
    .. ", sentry_version=7, sentry_client=bench/1.0",
}
if os.getenv("PAYLOAD_GZIP") == "1" then headers["Content-Encoding"] = "gzip" end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", path, headers, bodies[(n % #bodies) + 1])
end
