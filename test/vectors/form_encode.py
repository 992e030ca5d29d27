#!/usr/bin/python3
"""Known answers for pay.form_urlencode, made with Python's urllib (not our code).

application/x-www-form-urlencoded as the WHATWG URL standard says: keys in
byte order (UTF-8), ALPHA DIGIT *-._ kept, space as '+', every other byte
%XX upper-case.  urllib.parse.quote_plus keeps '~' too, so '~' is escaped
here by hand.  Nested values are compact JSON; JSON null is left out.
Prints a VALUES list for sql/outbox.sql.
"""
import json
import urllib.parse

CASES = [
    {"a": "1", "b": "2"},
    {"b": "x y", "a": "1&2=3", "c": None, "d": ""},
    {"amount": "1000", "currency": "USD", "event_id": "evt_7_paid", "id": "7",
     "merchant_order_no": "A/B+C?D", "status": "paid"},
    {"\u00e9": "\u00fc\u20ac", "z": "~*-._!'()"},
    {"n": 12.50, "t": True, "f": False, "i": -3},
    {"o": {"k": [1, "v w"], "a": None}, "metadata[order_id]": "42"},
    {"ab": "1", "a": "2", "b": "3", "aa": "4", "B": "5"},
    {},
]


def enc(s):
    return urllib.parse.quote_plus(s.encode('utf-8'), safe='*').replace('~', '%7E')


def text(v):
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, (int, float)):
        return json.dumps(v)
    return json.dumps(v, separators=(',', ':'), ensure_ascii=False, sort_keys=True)


def form(d):
    items = sorted(((k, v) for k, v in d.items() if v is not None), key=lambda kv: kv[0].encode('utf-8'))
    return '&'.join(enc(k) + '=' + enc(text(v)) for k, v in items)


def sql(s):
    return "'" + s.replace("'", "''") + "'"


print(',\n'.join('  (%d, %s::jsonb, %s)' % (i + 1, sql(json.dumps(c, ensure_ascii=False)), sql(form(c)))
                 for i, c in enumerate(CASES)))
