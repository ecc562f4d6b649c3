#!/usr/bin/env python3
"""http_range_server.py - a local HTTP/1.0 file server for test_get_model.sh: GET and HEAD of the
files in one folder, with single-range requests answered 206 (or 416), and faults on demand: cut
a body after N bytes (the header still promises the whole length), ignore Range, redirect.
Not a general server: no directory listing, no keep-alive, one byte range per request, stdlib only.

It binds 127.0.0.1 port 0, writes the port to --port-file once it listens (written to a temporary
name and renamed, so a reader never sees half of it), and appends one line per request to --log:
"METHOD PATH range=<Range header or -> status=<code> sent=<body bytes>".
Paths: /NAME serves DIR/NAME (NAME without '/'); /redirect/NAME answers 302 to /NAME, as Hugging
Face's resolve URLs redirect to their CDN."""
import argparse
import http.server
import os
import re
import sys
import threading
import time

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", required=True, help="folder whose files are served")
    p.add_argument("--port-file", required=True, help="the bound port is written here")
    p.add_argument("--log", required=True, help="one line per request is appended here")
    p.add_argument("--cut-after", type=int, default=-1,
                   help="send only this many body bytes, then close (default: never cut)")
    p.add_argument("--cut-count", type=int, default=1,
                   help="how many GET responses are cut (default 1; later ones are whole)")
    p.add_argument("--no-range", action="store_true", help="ignore Range: always 200 + whole file")
    p.add_argument("--rate", type=int, default=0,
                   help="throttle bodies to this many bytes per second (default: unthrottled)")
    return p.parse_args()


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "http_range_server/1"
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):  # quiet: the request log is --log
        pass

    def record(self, status, sent):
        rng = self.headers.get("Range") or "-"
        with self.server.lock:
            with open(self.server.opts.log, "a", encoding="utf-8") as f:
                f.write(f"{self.command} {self.path} range={rng} status={status} sent={sent}\n")

    def do_HEAD(self):
        self.serve(head=True)

    def do_GET(self):
        self.serve(head=False)

    def plain(self, status, text, extra=()):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.record(status, 0 if self.command == "HEAD" else len(body))

    def serve(self, head):
        opts = self.server.opts
        path = self.path.split("?", 1)[0]
        if path.startswith("/redirect/"):
            self.plain(302, "redirect\n", [("Location", path[len("/redirect"):])])
            return
        name = path[1:]
        full = os.path.join(opts.dir, name)
        if not name or "/" in name or name.startswith(".") or not os.path.isfile(full):
            self.plain(404, "not found\n")
            return
        size = os.path.getsize(full)
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng and not opts.no_range:
            m = RANGE_RE.match(rng.strip())
            if not m or (m.group(1) == "" and m.group(2) == ""):
                self.plain(416, "bad range\n", [("Content-Range", f"bytes */{size}")])
                return
            if m.group(1) == "":  # suffix range: the last N bytes
                start, end = max(0, size - int(m.group(2))), size - 1
            else:
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if start >= size or start > end:
                self.plain(416, "range not satisfiable\n", [("Content-Range", f"bytes */{size}")])
                return
            status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "none" if opts.no_range else "bytes")
        self.send_header("Connection", "close")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            self.record(status, 0)
            return
        limit = length
        with self.server.lock:
            if opts.cut_after >= 0 and self.server.cuts_left > 0:
                self.server.cuts_left -= 1
                limit = min(length, opts.cut_after)
        sent = 0
        try:
            with open(full, "rb") as f:
                f.seek(start)
                while sent < limit:
                    chunk = f.read(min(65536, limit - sent, opts.rate or 65536))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if opts.rate:
                        self.wfile.flush()
                        time.sleep(len(chunk) / opts.rate)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.record(status, sent)
        if sent < length:
            self.close_connection = True  # the client sees fewer bytes than Content-Length


def main():
    opts = parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.opts = opts
    server.lock = threading.Lock()
    server.cuts_left = opts.cut_count
    tmp = opts.port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{server.server_address[1]}\n")
    os.replace(tmp, opts.port_file)
    print(f"http_range_server: listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
