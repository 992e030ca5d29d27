"""Identifiers and timestamps in the providers' formats."""

import datetime
import secrets
import string
import time

ALNUM = string.ascii_letters + string.digits
BEIJING = datetime.timezone(datetime.timedelta(hours=8))


def alnum(n):
    """n random letters and digits."""
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def digits(n):
    """n random decimal digits."""
    return "".join(secrets.choice(string.digits) for _ in range(n))


def stripe_id(prefix):
    """A Stripe-style object id: pi_3..., re_..., evt_..."""
    return f"{prefix}_3{alnum(23)}"


def beijing_time(ts=None):
    """"yyyy-MM-dd HH:mm:ss" in Beijing time (UTC+8), as Alipay writes times."""
    return datetime.datetime.fromtimestamp(ts if ts is not None else time.time(), BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def parse_beijing_time(text):
    """Unix seconds of an Alipay time string; raises ValueError."""
    dt = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    return dt.timestamp()


def rfc3339_beijing(ts=None):
    """"2024-01-02T03:04:05+08:00", as WeChat Pay writes times."""
    return datetime.datetime.fromtimestamp(ts if ts is not None else time.time(), BEIJING).isoformat(timespec="seconds")
