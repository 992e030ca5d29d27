#!/usr/bin/python3
"""test/bench/sink.py — a lean HTTP/1.1 sink for the dispatcher's capacity
benchmark: hundreds of keep-alive connections at once, one answer per request
after a latency chosen by the path, nothing else (no logging per request).

  /<ms>/...            wait <ms>, then 200 "success"
  /json/<ms>/...       wait <ms>, then 200 {"psp_txn_id": "txn_<n>"} (a generic PSP)

GET /_stats answers {"requests": n, "open": n, "max_open": n, "per_second": {"<path's
first segment>": {"<unix second>": n}}}; POST /_reset clears them.

Usage: sink.py --port-file F [--port N]
"""
import argparse
import asyncio
import json
import os
import time

stats = {'requests': 0, 'open': 0, 'max_open': 0}
per_second = {}            # first path segment -> {second: requests}
counter = 0


def answer(status, body, content_type='text/plain'):
    if isinstance(body, str):
        body = body.encode()
    return (b'HTTP/1.1 %d OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n'
            % (status, content_type.encode(), len(body))) + body


class Sink(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = b''

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b'\r\n\r\n')
            if end < 0:
                return
            head = self.buf[:end].decode('latin-1')
            length = 0
            for line in head.split('\r\n')[1:]:
                if line[:15].lower() == 'content-length:':
                    length = int(line[15:].strip())
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            self.request(head.split(' ', 2)[1])

    def request(self, target):
        global counter
        path = target.partition('?')[0]
        if path == '/_stats':
            self.transport.write(answer(200, json.dumps(dict(stats, per_second=per_second)), 'application/json'))
            return
        if path == '/_reset':
            per_second.clear()
            stats.update(requests=0, max_open=stats['open'])
            self.transport.write(answer(200, 'ok'))
            return
        seg = [s for s in path.split('/') if s]
        is_json = bool(seg) and seg[0] == 'json'
        if is_json:
            seg = seg[1:]
        try:
            ms = int(seg[0]) if seg else 0
        except ValueError:
            ms = 0
        stats['requests'] += 1
        stats['open'] += 1
        stats['max_open'] = max(stats['max_open'], stats['open'])
        key = seg[1] if len(seg) > 1 else ''
        sec = str(int(time.time()))
        bucket = per_second.setdefault(key, {})
        bucket[sec] = bucket.get(sec, 0) + 1
        counter += 1
        body = (answer(200, '{"psp_txn_id": "txn_%d"}' % counter, 'application/json') if is_json
                else answer(200, 'success'))
        asyncio.get_running_loop().call_later(ms / 1000.0, self.reply, body)

    def reply(self, body):
        stats['open'] -= 1
        if not self.transport.is_closing():
            self.transport.write(body)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--port-file', required=True)
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Sink, '127.0.0.1', args.port, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    with open(args.port_file + '.tmp', 'w') as f:
        f.write('%d\n' % port)
    os.rename(args.port_file + '.tmp', args.port_file)
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    asyncio.run(main())
