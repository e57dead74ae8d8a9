"""The copy matrix's REST API: a CSV file's rows as JSON pages (``GET /rows?page=N``, N from 1).

Run as a child of ``bench/copy.py --matrix``: ``python bench/rest_server.py FILE PAGE_SIZE``
prints its port once every page is rendered (so serving costs the copy
only the socket), then serves pages until killed; a page past the last
is ``[]``, which ends the ``page`` pagination style.
"""

from __future__ import annotations

import csv
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def pages(path: str, size: int) -> list[bytes]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)  # the header (the columns are by position, as the matrix writes them)
        rows = [
            {
                "order_id": int(order_id),
                "customer_id": int(customer_id),
                "customer_name": name or None,
                "contact_email": email or None,
                "total": float(total) if total else None,
                "ordered_at": ordered_at,
            }
            for order_id, customer_id, name, email, total, ordered_at in reader
        ]
    return [json.dumps(rows[i : i + size]).encode() for i in range(0, len(rows), size)]


def main() -> None:
    rendered = pages(sys.argv[1], int(sys.argv[2]))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            query = parse_qs(urlparse(self.path).query)
            number = int(query.get("page", ["1"])[0])
            body = rendered[number - 1] if 1 <= number <= len(rendered) else b"[]"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], len(rendered), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
