#!/usr/bin/env python3
"""Zip archives for the zip reader's tests (pay._zip_member), made by
Python's zipfile module and zlib, independently of pay's reader.  Writes
next to this file, from alipay.csv (make_statements.py):

  alipay_stored.zip    the bill as Alipay zips it: the 业务明细 CSV and its
                       业务明细(汇总) summary, names in GBK, stored
  alipay_deflated.zip  the same, deflated
  alipay_utf8.zip      deflated, names in UTF-8 (flag bit 11), as some tools write them
  alipay_bad_crc.zip   deflated, the detail member's CRC-32 wrong (local and central)
  alipay_truncated.zip alipay_deflated.zip cut in the middle of the detail member
  alipay_cut_member.zip  the central directory intact, the detail member's data cut short
  bomb.zip             a detail member of 16 MiB of zeros (ratio about 1000)
  many.zip             40 small members
  two_details.zip      two members named 业务明细 (neither the summary)
"""
import os
import struct
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ACCOUNT_DAY = "20889999999999990156_20261130"
DETAIL = ACCOUNT_DAY + "_业务明细.csv"
SUMMARY = ACCOUNT_DAY + "_业务明细(汇总).csv"
WHEN = (2026, 12, 1, 9, 0, 0)


class GbkInfo(zipfile.ZipInfo):
    """A member whose name is stored in GBK without the UTF-8 flag, as Alipay writes it."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("gbk"), self.flag_bits


def summary_bytes():
    lines = ["#支付宝业务汇总查询", "#账号：[20889999999999990156]", "门店编号,门店名称,交易订单总笔数,退款订单总笔数",
             "\t,\t,2\t,1\t", "#导出时间：[2026年12月01日 09:00:00]"]
    return ("\n".join(lines) + "\n").encode("gbk")


def archive(name, members, method, info=GbkInfo):
    path = os.path.join(HERE, name)
    with zipfile.ZipFile(path, "w") as z:
        for member_name, data in members:
            zi = info(member_name, WHEN)
            zi.compress_type = method
            z.writestr(zi, data)
    with open(path, "rb") as f:
        return f.read()


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def main():
    with open(os.path.join(HERE, "alipay.csv"), "rb") as f:
        bill = f.read()
    members = [(DETAIL, bill), (SUMMARY, summary_bytes())]
    archive("alipay_stored.zip", members, zipfile.ZIP_STORED)
    deflated = archive("alipay_deflated.zip", members, zipfile.ZIP_DEFLATED)
    archive("alipay_utf8.zip", members, zipfile.ZIP_DEFLATED, info=zipfile.ZipInfo)

    # the CRC-32 of the detail member, wrong in both headers
    bad = bytearray(deflated)
    crc = struct.pack("<I", zlib.crc32(bill))
    wrong = struct.pack("<I", zlib.crc32(bill) ^ 1)
    assert bad.count(crc) == 2
    write("alipay_bad_crc.zip", bytes(bad.replace(crc, wrong)))

    write("alipay_truncated.zip", deflated[:len(deflated) // 3])

    # the central directory still there, the member's data cut: a stored
    # detail member of which only the first 100 bytes remain
    with zipfile.ZipFile(os.path.join(HERE, "alipay_stored.zip")) as z:
        info = z.getinfo(DETAIL.encode("gbk").decode("cp437"))
    stored = open(os.path.join(HERE, "alipay_stored.zip"), "rb").read()
    head = 30 + len(DETAIL.encode("gbk"))
    cut = stored[:info.header_offset + head + 100]
    cd_start = stored.index(b"PK\x01\x02")
    tail = bytearray(stored[cd_start:])
    eocd = tail.rindex(b"PK\x05\x06")
    struct.pack_into("<I", tail, eocd + 16, len(cut))  # the directory now starts right after the cut data
    write("alipay_cut_member.zip", cut + bytes(tail))

    archive("bomb.zip", [(DETAIL, bytes(16 << 20))], zipfile.ZIP_DEFLATED)
    archive("many.zip", [(f"{i:02d}.csv", b"a,b\n") for i in range(39)] + [(DETAIL, bill)], zipfile.ZIP_STORED)
    archive("two_details.zip", [(DETAIL, bill), ("copy_" + DETAIL, bill)], zipfile.ZIP_DEFLATED)


if __name__ == "__main__":
    main()
