#!/usr/bin/env python3
"""fuse_rw.py - the timer of the FUSE figures: N times, what `cat FILE` does (open, read
to the end, close) or, with --write TEXT, what `echo TEXT > FILE` does (open with O_TRUNC,
write TEXT and a newline, close). Prints one JSON line: path, op, n, us_per_op, ops_per_s.

    python3 fuse_rw.py /mnt/devices/0000:85:00.0/pools
    python3 fuse_rw.py --write 1 /tmp/hello/alloc
"""
import argparse
import json
import os
import time


def cat(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.read(fd, 65536):
            pass
    finally:
        os.close(fd)


def echo(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("-n", type=int, default=20000, help="operations (default 20000)")
    parser.add_argument("--write", metavar="TEXT", help="echo TEXT instead of cat")
    args = parser.parse_args()
    data = None if args.write is None else (args.write + "\n").encode()
    began = time.perf_counter()
    for _ in range(args.n):
        if data is None:
            cat(args.path)
        else:
            echo(args.path, data)
    elapsed = time.perf_counter() - began
    print(json.dumps({"path": args.path, "op": "read" if data is None else "write", "n": args.n,
                      "us_per_op": round(elapsed / args.n * 1e6, 2), "ops_per_s": round(args.n / elapsed)}))


if __name__ == "__main__":
    main()
