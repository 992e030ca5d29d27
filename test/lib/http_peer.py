#!/usr/bin/python3
"""test/lib/http_peer.py — an HTTP/1.1 peer on loopback for the dispatcher's tests.

It plays a merchant's notify endpoint or a PSP, misbehaving on request: the
first path segments choose what it does.

  /ok/...              200 "success"
  /slow/<ms>/...       wait <ms>, then 200 "success"
  /status/<code>/...   answer <code> (body "failure")
  /slowstatus/<ms>/<code>/...  wait <ms>, then answer <code>
  /reset/...           close the connection with a TCP reset, no answer
  /hang/...            read the request and never answer
  /malformed/...       answer bytes that are not HTTP, then close
  /big/<n>/...         200 with an n-byte body
  /nosuccess/...       200 with body "ok" (not the ack a notification needs)
  /json/...            200 {"psp_txn_id": "txn_<key>"} (a generic PSP)
  /slowjson/<ms>/...   wait <ms>, then the same
  /flaky/<n>/...       500 for the first n requests of each key, then 200 "success"
  /switch/<name>/...   whatever mode POST /_mode/<name>?<mode> last set (default ok)
  /throttle/<n>/<status>/<after>/...  the first n requests to this path answer <status>
                       with Retry-After: <after> (seconds; "date<s>": an HTTP date s seconds
                       ahead; "-": none), the later ones 200 "success"

Every request is recorded with its time and idempotency key (the
Idempotency-Key header, else the event_id form field).  Effects are counted
per key: a key is applied once, its re-sends are counted as duplicates.
GET /_stats answers {"requests", "applied", "duplicates", "keys": {key: n}};
GET /_log answers every request as [time, path, key, method, body, traceparent,
in_flight, answered], in_flight counting the requests to its path open at its
arrival (itself included), answered the time its answer was written (null if none was).

Usage: http_peer.py --port-file F [--port N] [--cert C --key K]
"""
import argparse
import asyncio
import email.utils
import json
import os
import socket
import ssl
import struct
import sys
import time
import urllib.parse

requests_log = []          # [time, path, key, method, body, traceparent]
received = {}              # key -> requests received
flaky_seen = {}            # key -> requests seen by /flaky
modes = {}                 # switch name -> mode path, e.g. "status/500"
throttled = {}             # path -> requests seen by /throttle
in_flight = {}             # path -> requests read and not yet answered


def key_of(headers, body):
    key = headers.get('idempotency-key')
    if key:
        return key
    try:
        fields = urllib.parse.parse_qs(body.decode('utf-8'), keep_blank_values=True)
        if 'event_id' in fields:
            return fields['event_id'][0]
    except UnicodeDecodeError:
        pass
    return None


def response(status, body, content_type='text/plain', close=False, extra=''):
    reason = {200: 'OK', 400: 'Bad Request', 404: 'Not Found', 408: 'Request Timeout',
              429: 'Too Many Requests', 500: 'Internal Server Error',
              503: 'Service Unavailable'}.get(status, 'Status')
    if isinstance(body, str):
        body = body.encode()
    head = ('HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n'
            % (status, reason, content_type, len(body), 'Connection: close\r\n' if close else '', extra))
    return head.encode() + body


async def act(segments, key, writer):
    """Bytes to answer, None to hang, 'reset' or 'close' after garbage."""
    mode = segments[0] if segments else 'ok'
    if mode == 'switch':
        name = segments[1] if len(segments) > 1 else ''
        return await act(modes.get(name, 'ok').split('/'), key, writer)
    if mode == 'ok':
        return response(200, 'success')
    if mode == 'slow':
        await asyncio.sleep(int(segments[1]) / 1000.0)
        return response(200, 'success')
    if mode == 'slowjson':
        await asyncio.sleep(int(segments[1]) / 1000.0)
        return response(200, json.dumps({'psp_txn_id': 'txn_%s' % key}), 'application/json')
    if mode == 'status':
        return response(int(segments[1]), 'failure')
    if mode == 'slowstatus':
        await asyncio.sleep(int(segments[1]) / 1000.0)
        return response(int(segments[2]), 'failure')
    if mode == 'reset':
        return 'reset'
    if mode == 'hang':
        return None
    if mode == 'malformed':
        return 'malformed'
    if mode == 'big':
        return response(200, 'x' * int(segments[1]))
    if mode == 'nosuccess':
        return response(200, 'ok')
    if mode == 'json':
        return response(200, json.dumps({'psp_txn_id': 'txn_%s' % key}), 'application/json')
    if mode == 'throttle':
        path = '/'.join(segments)
        n = throttled.get(path, 0)
        throttled[path] = n + 1
        if n >= int(segments[1]):
            return response(200, 'success')
        after = segments[3]
        if after.startswith('date'):
            after = email.utils.formatdate(time.time() + int(after[4:]), usegmt=True)
        return response(int(segments[2]), 'failure', extra='' if after == '-' else 'Retry-After: %s\r\n' % after)
    if mode == 'flaky':
        n = flaky_seen.get(key, 0)
        flaky_seen[key] = n + 1
        if n < int(segments[1]):
            return response(500, 'failure')
        return response(200, 'success')
    return response(404, 'unknown mode')


def control(method, path, query):
    if path == '/_stats':
        dup = sum(n - 1 for n in received.values())
        return response(200, json.dumps({'requests': len(requests_log), 'applied': len(received),
                                         'duplicates': dup, 'keys': received}), 'application/json')
    if path == '/_log':
        return response(200, json.dumps(requests_log), 'application/json')
    if path.startswith('/_mode/'):
        modes[path[len('/_mode/'):]] = query
        return response(200, 'ok')
    if path == '/_reset':
        requests_log.clear()
        received.clear()
        flaky_seen.clear()
        throttled.clear()
        return response(200, 'ok')
    return response(404, 'unknown control')


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b'\r\n\r\n')
            lines = head.decode('latin-1').split('\r\n')
            method, target, _ = lines[0].split(' ', 2)
            headers = {}
            for line in lines[1:]:
                if ':' in line:
                    k, v = line.split(':', 1)
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get('content-length', '0'))
            body = await reader.readexactly(length) if length else b''
            path, _, query = target.partition('?')
            if path.startswith('/_'):
                writer.write(control(method, path, query))
                await writer.drain()
                continue
            key = key_of(headers, body)
            in_flight[path] = in_flight.get(path, 0) + 1
            entry = [time.time(), path, key, method, body.decode('utf-8', 'replace'),
                     headers.get('traceparent'), in_flight[path], None]
            requests_log.append(entry)
            if key is not None:
                received[key] = received.get(key, 0) + 1
            try:
                answer = await act([s for s in path.split('/') if s], key, writer)
            finally:
                in_flight[path] -= 1
            entry[7] = time.time()
            if answer is None:
                await asyncio.sleep(3600)
                return
            if answer == 'reset':
                sock = writer.get_extra_info('socket')
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                writer.transport.abort()
                return
            if answer == 'malformed':
                writer.write(b'THIS IS NOT HTTP\x00\xff\r\n\r\n')
                await writer.drain()
                writer.close()
                return
            writer.write(answer)
            await writer.drain()
            if headers.get('connection', '').lower() == 'close':
                writer.close()
                return
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--port-file', required=True)
    ap.add_argument('--cert')
    ap.add_argument('--key')
    args = ap.parse_args()
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.cert, args.key)
    server = await asyncio.start_server(handle, '127.0.0.1', args.port, ssl=ctx, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    tmp = args.port_file + '.tmp'
    with open(tmp, 'w') as f:
        f.write('%d\n' % port)
    os.rename(tmp, args.port_file)
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
