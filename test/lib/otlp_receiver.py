#!/usr/bin/python3
"""test/lib/otlp_receiver.py — a minimal OTLP/HTTP collector on loopback for the tests.

Every POST is answered 200 "{}" and its body recorded as received (text);
GET /_bodies answers the recorded bodies as a JSON array of strings.

Usage: otlp_receiver.py --port-file F
"""
import argparse
import http.server
import json
import os
import threading

bodies = []
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def reply(self, status, body):
        data = body.encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        body = self.rfile.read(n).decode('utf-8', 'replace')
        with lock:
            bodies.append({'path': self.path, 'content_type': self.headers.get('Content-Type'),
                           'body': body})
        self.reply(200, '{}')

    def do_GET(self):
        with lock:
            self.reply(200, json.dumps(bodies))

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port-file', required=True)
    args = ap.parse_args()
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    tmp = args.port_file + '.tmp'
    with open(tmp, 'w') as f:
        f.write('%d\n' % server.server_address[1])
    os.rename(tmp, args.port_file)
    server.serve_forever()


if __name__ == '__main__':
    main()
