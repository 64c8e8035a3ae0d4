-- wrk script: every request is a POST with a 16 KiB body (Content-Length framing) to /post.
-- The upstream reads (discards) the body and answers 128 bytes.
wrk.method = "POST"
wrk.path = "/post"
wrk.body = string.rep("x", 16384)
wrk.headers["Content-Type"] = "application/octet-stream"
