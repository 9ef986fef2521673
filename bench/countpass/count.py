# The original per-node counting step, run under PyPy after `cut -d, -f1-5`: split every
# line on commas and count the 4th field (the first line is the header).
import sys

counts = {}
lines = iter(sys.stdin.buffer)
next(lines, None)
for line in lines:
    f = line.rstrip(b"\r\n").split(b",")
    if len(f) >= 4:
        counts[f[3]] = counts.get(f[3], 0) + 1
for k in sorted(counts):
    sys.stdout.write("%s,%d\n" % (k.decode(), counts[k]))
