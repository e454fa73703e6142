#!/usr/bin/env python3
"""Runs a command N times and prints its mean wall time (ms) and peak RSS (MiB).

Usage: measure.py RUNS COMMAND [ARGS...]   ->   "<mean_ms> <peak_rss_mib>"
Output of the command is discarded; a failing run is an error.
"""
import os
import subprocess
import sys
import time

runs = int(sys.argv[1])
command = sys.argv[2:]
total = 0.0
peak = 0
for _ in range(runs):
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    total += time.perf_counter() - start
    peak = max(peak, usage.ru_maxrss)
    if status != 0:
        sys.stderr.write(process.stderr.read().decode(errors="replace"))
        sys.exit(f"command failed: {' '.join(command)}")
print(f"{total / runs * 1000:.1f} {peak / 1024:.1f}")
